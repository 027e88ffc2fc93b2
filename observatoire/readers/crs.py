"""Coordinate reference systems of a source: checked, then brought to the territory's.

A layer without a CRS is refused unless the territory file declares one (the source's
``crs`` key, which also overrides a wrong ``.prj``); when most coordinates fall outside
the CRS's domain over French territory (Lambert-93 numbers said to be EPSG:4326) the
layer is refused with a hint (metres or degrees); a few NaN or absurd coordinates are
dropped and counted in the source's report.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from observatoire.errors import CRSError, where
from observatoire.readers.gdal import first_line, gdal_notes
from observatoire.readers.lineage import SourceReport

log = logging.getLogger(__name__)


#: Plausible bounds (x_min, y_min, x_max, y_max) of each CRS over French territory,
#: with a margin; coordinates outside mean the declared CRS is wrong.
CRS_BOUNDS: dict[int, tuple[float, float, float, float]] = {
    4326: (-180.0, -90.0, 180.0, 90.0),
    4171: (-180.0, -90.0, 180.0, 90.0),
    2154: (-400_000.0, 5_900_000.0, 1_600_000.0, 7_300_000.0),
    5490: (300_000.0, 1_400_000.0, 900_000.0, 2_000_000.0),
    2972: (-100_000.0, 100_000.0, 700_000.0, 700_000.0),
    2975: (200_000.0, 7_500_000.0, 500_000.0, 7_800_000.0),
    4471: (400_000.0, 8_500_000.0, 600_000.0, 8_700_000.0),
}


def to_territory_crs(frame: gpd.GeoDataFrame, *, target: str, declared: str | None,
                     path: Path, layer: str | None, report: SourceReport,
                     key: str | None = None) -> gpd.GeoDataFrame:
    """Bring a layer to the territory CRS after checking its own CRS.

    The CRS declared in the territory file (the source's ``crs`` key) wins over
    the file's own: it is how a user fixes a missing or wrong ``.prj``. A layer
    with no CRS and none declared is refused. Coordinates are checked against the
    domain of the source CRS and, after reprojection, of the territory CRS: when
    most features fall outside, the CRS is wrong and the layer is refused; a few
    features with absurd or non-finite (NaN) coordinates are dropped and counted.

    Parameters
    ----------
    frame
        The layer as read.
    target
        The territory's CRS.
    declared
        The CRS declared for the source, if any.
    path, layer
        For messages.
    report
        Receives the CRS read and the features dropped.
    key
        The TOML key of the source (``sources.parcelles``), for messages.

    Returns
    -------
    geopandas.GeoDataFrame
        The layer in ``target``.

    Raises
    ------
    CRSError
        No CRS and none declared, or coordinates that contradict the CRS.
    """
    crs_key = f"{key}.crs" if key else "crs"
    if declared is not None:
        declared_crs = CRS.from_user_input(declared)
        if frame.crs is not None and not same_crs(frame.crs, declared_crs):
            log.info("%s : CRS du fichier (%s) remplacé par %s (%s)", where(path, layer),
                     _crs_label(CRS.from_user_input(frame.crs)), declared, crs_key)
            report.count("CRS du fichier remplacé par celui déclaré (fichiers)", 1)
        frame = frame.set_crs(declared_crs, allow_override=True)
    elif frame.crs is None:
        raise CRSError(
            f"{where(path, layer)} : aucun système de coordonnées (pas de .prj ?) ; "
            f"déclarez-le avec la clé « {crs_key} » du fichier de territoire "
            f"(ex. crs = \"EPSG:2154\")"
        )
    src = CRS.from_user_input(frame.crs)
    report.crs_in = _crs_label(src)
    frame = screen_coordinates(frame, path=path, layer=layer, report=report, key=crs_key)
    target_crs = CRS.from_user_input(target)
    if same_crs(src, target_crs):
        # Same CRS described differently (IGNF WKT of EDIGEO, ESRI .prj): relabel only.
        return frame.set_crs(target_crs, allow_override=True)
    try:
        with gdal_notes(path, layer):
            out = frame.to_crs(target_crs)
    except Exception as exc:  # pyproj refuses some transformations outright
        raise CRSError(
            f"{where(path, layer)} : reprojection de {_crs_label(src)} vers {target} impossible "
            f"({first_line(exc)}) ; vérifiez le système de coordonnées (clé « {crs_key} »)"
        ) from None
    return screen_coordinates(out, path=path, layer=layer, report=report, key=crs_key,
                              source_crs=src)


def epsg_code(crs: Any) -> int | None:
    """Return the EPSG code of a CRS (70 % confidence), or ``None``.

    Matching a WKT against the EPSG database takes a tenth of a second (EDIGEO's
    IGNF:LAMB93, ESRI ``.prj``); the answer is cached per WKT.
    """
    return _epsg_of_wkt(CRS.from_user_input(crs).to_wkt())


@functools.lru_cache(maxsize=64)
def _epsg_of_wkt(wkt: str) -> int | None:
    return CRS.from_wkt(wkt).to_epsg(min_confidence=70)


def same_crs(a: Any, b: Any) -> bool:
    """Whether two CRS are the same: same EPSG code when both have one, else equal."""
    ca, cb = CRS.from_user_input(a), CRS.from_user_input(b)
    ea, eb = epsg_code(ca), epsg_code(cb)
    if ea is not None and eb is not None:
        return bool(ea == eb)
    return bool(ca == cb)


def _crs_label(crs: CRS) -> str:
    epsg = epsg_code(crs)
    return f"EPSG:{epsg}" if epsg else crs.name


def _coordinate_problems(frame: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray,
                                                             tuple[float, ...] | None]:
    """Per feature: non-finite coordinates, and coordinates outside the CRS's domain."""
    geoms = frame.geometry.values
    n = len(geoms)
    nonfinite = np.zeros(n, dtype=bool)
    outside = np.zeros(n, dtype=bool)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return nonfinite, outside, None
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    nonfinite[np.unique(idx[~np.isfinite(coords).all(axis=1)])] = True
    epsg = epsg_code(frame.crs) if frame.crs is not None else None
    bounds = CRS_BOUNDS.get(epsg) if epsg else None
    if bounds is not None:
        ok = present & ~nonfinite
        b = shapely.bounds(geoms[ok])
        out_ok = ((b[:, 0] < bounds[0]) | (b[:, 1] < bounds[1]) | (b[:, 2] > bounds[2])
                  | (b[:, 3] > bounds[3]))
        outside[np.flatnonzero(ok)[out_ok]] = True
    return nonfinite, outside, bounds


def screen_coordinates(frame: gpd.GeoDataFrame, *, path: Path, layer: str | None,
                       report: SourceReport, key: str = "crs",
                       source_crs: CRS | None = None) -> gpd.GeoDataFrame:
    """Drop a few features with absurd coordinates, or refuse a layer in the wrong CRS.

    Parameters
    ----------
    frame
        A layer with its CRS set.
    path, layer, key
        For messages (``key`` is the TOML key of the source's CRS).
    report
        Counts the features dropped.
    source_crs
        When ``frame`` was reprojected, the CRS it came from (for messages).

    Returns
    -------
    geopandas.GeoDataFrame
        ``frame`` without the features whose coordinates are non-finite or outside
        the CRS's domain over French territory.

    Raises
    ------
    CRSError
        In the source CRS, when more than half of the features are concerned (the
        declared CRS is wrong); after reprojection (``source_crs`` given), when all
        are (a national file legitimately holds features outside the territory's
        projection, e.g. overseas sites for a metropolitan territory).
    """
    nonfinite, outside, bounds = _coordinate_problems(frame)
    bad = nonfinite | outside
    if not bad.any():
        return frame
    geoms = frame.geometry.values
    present = int((~(shapely.is_missing(geoms) | shapely.is_empty(geoms))).sum())
    epsg = epsg_code(frame.crs)
    first = frame.index[np.flatnonzero(bad)[0]]
    n_bad = int(bad.sum())
    refused = n_bad >= present if source_crs is not None else 2 * n_bad > present
    if refused:
        if nonfinite.sum() >= outside.sum() and source_crs is None:
            raise CRSError(
                f"{where(path, layer)} : coordonnées non finies (NaN ou infinies) pour "
                f"{int(nonfinite.sum())} entité(s) sur {present} (ex. entité {first}) ; "
                f"le fichier est corrompu — corrigez-le ou téléchargez-le à nouveau"
            )
        xmin, ymin, xmax, ymax = shapely.total_bounds(geoms[~nonfinite])
        if source_crs is not None:
            hint = (f"une fois reprojetées depuis {_crs_label(source_crs)}, elles tombent hors "
                    f"du domaine de la projection du territoire ; vérifiez le CRS de la source "
                    f"(clé « {key} » ; axes inversés ?) et « territoire.crs »")
        elif epsg in (4326, 4171, 4258) and max(abs(xmax), abs(ymax)) > 1000:
            hint = (f"ces nombres ressemblent à des mètres (Lambert-93 ?) ; déclarez "
                    f"« {key} = \"EPSG:2154\" » dans le fichier de territoire ou corrigez le "
                    f".prj du fichier")
        elif max(abs(xmin), abs(xmax), abs(ymin), abs(ymax)) <= 360:
            hint = (f"ces nombres ressemblent à des degrés (WGS 84 ?) ; déclarez "
                    f"« {key} = \"EPSG:4326\" » dans le fichier de territoire ou corrigez le "
                    f".prj du fichier")
        else:
            hint = (f"vérifiez le système de coordonnées du fichier ou déclarez le bon avec "
                    f"« {key} »")
        raise CRSError(
            f"{where(path, layer)} : coordonnées incompatibles avec EPSG:{epsg} pour "
            f"{int(bad.sum())} entité(s) sur {present} (emprise {xmin:.6g}, {ymin:.6g}, "
            f"{xmax:.6g}, {ymax:.6g}) : {hint}"
        )
    report.count("entités aux coordonnées non finies (NaN) écartées", int(nonfinite.sum()))
    if source_crs is None:
        report.count(f"entités aux coordonnées hors du domaine de EPSG:{epsg} écartées",
                     int(outside.sum()))
    else:
        report.count(f"entités hors du domaine de la projection du territoire (EPSG:{epsg}) "
                     f"écartées", int(outside.sum()))
    log.warning("%s : %d entité(s) aux coordonnées non finies ou hors du domaine de EPSG:%s "
                "écartée(s), ex. entité %s", where(path, layer), int(bad.sum()), epsg, first)
    return frame[~bad]
