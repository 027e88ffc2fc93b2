"""Shared reading steps: open a file, check its CRS, repair geometries, map fields.

The functions here are the only ones in the readers that touch GDAL; each turns
GDAL's failures into :class:`SourceError` / :class:`CRSError` messages that name
the file and layer and say what to do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from observatoire.errors import CRSError, GeometryError, SchemaError, SourceError, where

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


@dataclass
class SourceReport:
    """What reading one source did, for the ``sources`` table and the CLI.

    Attributes
    ----------
    kind
        Source family.
    paths
        Files read.
    format
        Format recognised.
    layer
        Layer read, if any.
    checksum
        SHA-256 of the files' bytes (sorted by path).
    features_read
        Features in the files.
    features_kept
        Features in the canonical layer.
    crs_in
        CRS of the files (or the one assumed).
    repairs
        What was repaired or dropped, and how many: ``{"géométries réparées": 3}``.
    read_at
        When the source was read (ISO 8601, UTC).
    """

    kind: str
    paths: list[Path]
    format: str
    layer: str | None = None
    checksum: str = ""
    features_read: int = 0
    features_kept: int = 0
    crs_in: str | None = None
    repairs: dict[str, int] = field(default_factory=dict)
    read_at: str = ""

    def count(self, what: str, n: int) -> None:
        """Add ``n`` to the repair counter ``what`` (nothing when ``n`` is 0)."""
        if n:
            self.repairs[what] = self.repairs.get(what, 0) + int(n)


@dataclass
class ReadResult:
    """A canonical layer and the report of how it was read."""

    frame: gpd.GeoDataFrame
    report: SourceReport
    extra: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)


def checksum_files(paths: Iterable[Path]) -> str:
    """Return the SHA-256 of the files' bytes, in path order."""
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def new_report(kind: str, paths: Iterable[Path], fmt: str, layer: str | None = None
               ) -> SourceReport:
    """Start the report of a source, with its checksum and the reading time."""
    paths = list(paths)
    for p in paths:
        check_file(p)
    return SourceReport(
        kind=kind,
        paths=paths,
        format=fmt,
        layer=layer,
        checksum=checksum_files(paths),
        read_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )


def check_file(path: Path) -> None:
    """Raise :class:`SourceError` unless ``path`` is a non-empty readable file."""
    if not path.exists():
        raise SourceError(
            f"{path} : fichier introuvable ; vérifiez le chemin dans le fichier de territoire "
            f"(il est relatif au dossier de ce fichier)"
        )
    if path.is_dir():
        raise SourceError(f"{path} : c'est un dossier, pas un fichier ; indiquez le fichier")
    if path.stat().st_size == 0:
        raise SourceError(f"{path} : fichier vide (0 octet) ; téléchargez-le à nouveau")


def list_layers(path: Path) -> list[str]:
    """Return the vector layers of ``path``, or raise a readable :class:`SourceError`."""
    check_file(path)
    try:
        return [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # GDAL raises several types for the same unreadable file.
        raise SourceError(
            f"{path} : fichier illisible ou format non reconnu ({_first_line(exc)}) ; "
            f"vérifiez qu'il est complet (téléchargement interrompu ?) et de format vectoriel"
        ) from None


def pick_layer(path: Path, layer: str | None, *, prefer: Iterable[str] = ()) -> str:
    """Choose the layer to read: the one asked for, a preferred one, or the only one."""
    layers = list_layers(path)
    vector = [n for n in layers if n not in ("layer_styles", "qgis_projects")]
    if layer is not None:
        if layer not in layers:
            raise SourceError(
                f"{where(path, layer)} : couche absente ; couches disponibles : "
                f"{', '.join(layers) or 'aucune'} (clé « couche » du fichier de territoire)"
            )
        return layer
    for name in prefer:
        if name in vector:
            return name
    if not vector:
        raise SourceError(f"{path} : aucune couche vectorielle dans ce fichier")
    if len(vector) > 1:
        log.info("%s : plusieurs couches, lecture de « %s »", path, vector[0])
    return vector[0]


def read_vector(path: Path, layer: str | None = None, *, encoding: str | None = None,
                columns: list[str] | None = None, bbox: tuple[float, ...] | None = None,
                **kwargs: Any) -> gpd.GeoDataFrame:
    """Read a vector layer with pyogrio (Arrow when possible), with readable errors.

    Parameters
    ----------
    path
        The file.
    layer
        The layer (``None``: the first one).
    encoding
        Attribute encoding to force.
    columns
        Subset of fields to read.
    bbox
        Only features intersecting this box (in the file's CRS).
    **kwargs
        Passed to :func:`pyogrio.read_dataframe`.

    Returns
    -------
    geopandas.GeoDataFrame
        The layer as stored (no reprojection, no repair).

    Raises
    ------
    SourceError
        When GDAL cannot read the file.
    """
    check_file(path)
    opts: dict[str, Any] = dict(layer=layer, columns=columns, bbox=bbox, **kwargs)
    if encoding:
        opts["encoding"] = encoding
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                return pyogrio.read_dataframe(path, use_arrow=True, **opts)
            except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
                raise
            except Exception:
                # Arrow refuses a few drivers/encodings; the classic path reads them.
                return pyogrio.read_dataframe(path, use_arrow=False, **opts)
    except Exception as exc:
        raise SourceError(
            f"{where(path, layer)} : lecture impossible ({_first_line(exc)}) ; vérifiez que le "
            f"fichier est complet et non corrompu (téléchargez-le à nouveau)"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def to_territory_crs(frame: gpd.GeoDataFrame, *, target: str, declared: str | None,
                     path: Path, layer: str | None, report: SourceReport) -> gpd.GeoDataFrame:
    """Bring a layer to the territory CRS after checking its own CRS.

    A layer without CRS takes ``declared`` (the ``crs`` key of the source) or is
    refused. Coordinates that cannot belong to the CRS (Lambert-93 numbers in a
    file that says EPSG:4326) are refused.

    Raises
    ------
    CRSError
        No CRS and none declared, or coordinates outside the CRS's domain.
    """
    crs = frame.crs
    if crs is None:
        if declared is None:
            raise CRSError(
                f"{where(path, layer)} : aucun système de coordonnées (pas de .prj ?) ; "
                f"déclarez-le avec la clé « crs » de la source (ex. crs = \"EPSG:2154\")"
            )
        crs = CRS.from_user_input(declared)
        frame = frame.set_crs(crs, allow_override=True)
    src = CRS.from_user_input(crs)
    epsg = src.to_epsg(min_confidence=70)
    report.crs_in = f"EPSG:{epsg}" if epsg else src.name
    check_coordinates(frame, path=path, layer=layer)
    target_crs = CRS.from_user_input(target)
    if epsg == target_crs.to_epsg():
        # Same CRS described differently (IGNF WKT of EDIGEO, ESRI .prj): relabel only.
        return frame.set_crs(target_crs, allow_override=True)
    return frame.to_crs(target_crs)


def check_coordinates(frame: gpd.GeoDataFrame, *, path: Path, layer: str | None) -> None:
    """Refuse non-finite coordinates and bounds that contradict the declared CRS."""
    geoms = frame.geometry.values
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return
    coords = shapely.get_coordinates(geoms[present])
    if len(coords) and not np.isfinite(coords).all():
        bad = np.flatnonzero(present)[0]
        raise CRSError(
            f"{where(path, layer)} : coordonnées non finies (NaN ou infinies), ex. entité "
            f"{frame.index[bad]} ; corrigez ou retirez ces entités"
        )
    epsg = (CRS.from_user_input(frame.crs).to_epsg(min_confidence=70)
            if frame.crs is not None else None)
    bounds = CRS_BOUNDS.get(epsg) if epsg else None
    if bounds is None:
        return
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms[present])
    if xmin < bounds[0] or ymin < bounds[1] or xmax > bounds[2] or ymax > bounds[3]:
        hint = ""
        if epsg in (4326, 4171) and abs(xmax) > 1000:
            hint = (" : ces nombres ressemblent à des mètres (Lambert-93 ?) ; déclarez "
                    "crs = \"EPSG:2154\" dans la source ou corrigez le .prj du fichier")
        raise CRSError(
            f"{where(path, layer)} : coordonnées incompatibles avec EPSG:{epsg} "
            f"(emprise {xmin:.6g}, {ymin:.6g}, {xmax:.6g}, {ymax:.6g}){hint or ' ; vérifiez le système de coordonnées déclaré'}"
        )


_MULTI = {"Polygon": "MultiPolygon", "LineString": "MultiLineString", "Point": "Point"}
_FAMILY = {
    "MultiPolygon": ("Polygon", "MultiPolygon"),
    "MultiLineString": ("LineString", "MultiLineString"),
    "Point": ("Point",),
}


def clean_geometries(frame: gpd.GeoDataFrame, *, geometry_type: str, report: SourceReport,
                     path: Path, layer: str | None, keep_missing: bool = False
                     ) -> gpd.GeoDataFrame:
    """Repair and unify geometries: drop Z, ``make_valid``, keep one type, promote to multi.

    Every repair and every dropped feature is counted in ``report``. Features whose
    geometry is null, empty or of another dimension (a polygon collapsed to a line)
    are dropped unless ``keep_missing``.

    Raises
    ------
    GeometryError
        When the layer holds geometries but none of the expected type.
    """
    geoms = frame.geometry.values
    if len(geoms) and shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
    missing = shapely.is_missing(geoms)
    empty = shapely.is_empty(geoms) & ~missing
    report.count("géométries nulles", int(missing.sum()))
    report.count("géométries vides", int(empty.sum()))
    present = ~missing & ~empty
    invalid = present & ~shapely.is_valid(geoms)
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid], method="structure",
                                            keep_collapsed=False)
        report.count("géométries réparées (make_valid)", int(invalid.sum()))
    wanted = _FAMILY[geometry_type]
    geoms = _extract_family(geoms, wanted)
    wrong = present & (shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if wrong.any():
        report.count(f"géométries d'un autre type que {geometry_type} écartées", int(wrong.sum()))
    if present.any() and wrong.sum() == present.sum():
        types = sorted(set(shapely.get_type_id(frame.geometry.values[present]).tolist()))
        names = ", ".join(_TYPE_NAMES.get(t, str(t)) for t in types)
        raise GeometryError(
            f"{where(path, layer)} : géométries de type {names}, alors que la couche attend "
            f"{geometry_type} ; indiquez la bonne couche ou le bon fichier"
        )
    geoms = _promote_multi(geoms, geometry_type)
    out = frame.copy()
    out[out.geometry.name] = gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not keep_missing:
        out = out[keep]
    return out


def _promote_multi(geoms: np.ndarray, geometry_type: str) -> np.ndarray:
    """Turn single polygons/lines into one-part multi geometries."""
    single_type = {"MultiPolygon": shapely.GeometryType.POLYGON,
                   "MultiLineString": shapely.GeometryType.LINESTRING}.get(geometry_type)
    if single_type is None:
        return geoms
    single = shapely.get_type_id(geoms) == single_type
    if not single.any():
        return geoms
    build = shapely.multipolygons if geometry_type == "MultiPolygon" else shapely.multilinestrings
    out = geoms.copy()
    out[single] = build(geoms[single], indices=np.arange(int(single.sum())))
    return out


_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def _extract_family(geoms: np.ndarray, wanted: tuple[str, ...]) -> np.ndarray:
    """Keep only the parts of the wanted family (e.g. polygons of a collection)."""
    ids = shapely.get_type_id(geoms)
    names = np.array([_TYPE_NAMES.get(int(i), "") if i >= 0 else "" for i in ids])
    ok = np.isin(names, wanted)
    out = geoms.copy()
    mixed = ~ok & (ids == shapely.GeometryType.GEOMETRYCOLLECTION)
    for i in np.flatnonzero(mixed):
        parts = [p for p in shapely.get_parts(geoms[i]) if p.geom_type in wanted]
        out[i] = _merge_parts(parts, wanted[-1]) if parts else None
    multipoint = ~ok & (ids == shapely.GeometryType.MULTIPOINT) & ("Point" in wanted)
    if multipoint.any():
        # A multipoint site keeps one representative location.
        out[multipoint] = shapely.point_on_surface(geoms[multipoint])
    other = ~ok & ~mixed & ~multipoint
    out[other] = None
    return out


def _merge_parts(parts: list[Any], target: str) -> Any:
    if target == "MultiPolygon":
        polys = [q for p in parts for q in shapely.get_parts(p)]
        return shapely.MultiPolygon(polys)
    if target == "MultiLineString":
        lines = [q for p in parts for q in shapely.get_parts(p)]
        return shapely.MultiLineString(lines)
    return parts[0]


def map_fields(frame: pd.DataFrame, mapping: Mapping[str, str | Iterable[str]],
               overrides: Mapping[str, str], *, path: Path, layer: str | None,
               required: Iterable[str] = ()) -> pd.DataFrame:
    """Rename source fields to canonical names.

    Parameters
    ----------
    frame
        The layer as read.
    mapping
        Canonical name → candidate source names (case-insensitive), tried in order.
    overrides
        Canonical name → source name from the territory file; wins over ``mapping``.
    path, layer
        For messages.
    required
        Canonical names that must be found.

    Returns
    -------
    pandas.DataFrame
        A frame with canonical columns (those found) and the geometry.

    Raises
    ------
    SchemaError
        When a required field is not found, or an override names a missing field.
    """
    lower = {c.lower(): c for c in frame.columns}
    data: dict[str, Any] = {}
    for canon, src in overrides.items():
        if src not in frame.columns and src.lower() not in lower:
            raise SchemaError(
                f"{where(path, layer, src)} : champ absent (déclaré dans « champs.{canon} ») ; "
                f"champs disponibles : {', '.join(map(str, frame.columns[:30]))}"
            )
        data[canon] = frame[src if src in frame.columns else lower[src.lower()]]
    for canon, candidates in mapping.items():
        if canon in data:
            continue
        cands = [candidates] if isinstance(candidates, str) else list(candidates)
        for c in cands:
            if c.lower() in lower:
                data[canon] = frame[lower[c.lower()]]
                break
    missing = [c for c in required if c not in data]
    if missing:
        cands = mapping.get(missing[0], missing[0])
        cands = [cands] if isinstance(cands, str) else list(cands)
        raise SchemaError(
            f"{where(path, layer, missing[0])} : champ obligatoire introuvable (cherché : "
            f"{', '.join(cands)}) ; indiquez le champ source avec « champs.{missing[0]} = "
            f"\"NOM_DU_CHAMP\" » dans le fichier de territoire"
        )
    out = pd.DataFrame(data, index=frame.index)
    if isinstance(frame, gpd.GeoDataFrame):
        return gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs)
    return out


def text(series: pd.Series) -> pd.Series:
    """Return ``series`` as text (``None`` for missing), numbers without ``.0``."""
    def conv(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        s = str(v).strip()
        return s or None
    return series.astype(object).map(conv)


def relative_name(path: Path, base: Path | None) -> str:
    """Return the lineage name of a source file: relative to ``base`` when possible."""
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return path.name
