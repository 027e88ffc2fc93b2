"""Friches: CNIG Géostandard Friches CSV, Cartofriches (GeoPackage/GeoJSON), or a mapped layer.

The CNIG field names are kept (``site_id``, ``site_statut``, ``site_type``…). A
friche gives a point in ``friches`` (its ``geompoint``, or a point on its
surface) and, when its perimeter is known, a polygon in ``friches_surfaces``.
Parcel lists arrive as ``a|b`` (CNIG) or ``{a,b}`` (Cartofriches) and are stored as
``a|b`` in ``unite_fonciere_refcad``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.config import Source
from observatoire.errors import SchemaError, SourceError, where
from observatoire.readers.crs import to_territory_crs
from observatoire.readers.fields import map_fields, numbers, text
from observatoire.readers.gdal import (
    check_file,
    ensure_geometry,
    first_line,
    pick_layer,
    read_vector,
)
from observatoire.readers.geometry import clean_geometries
from observatoire.readers.layers import stable_sort
from observatoire.readers.lineage import ReadResult, SourceReport, new_report, relative_name
from observatoire.readers.provenance import note_provenance
from observatoire.readers.tiles import BBox, clip_to_bbox
from observatoire.schema import FRICHES, FRICHES_SURFACES, LINEAGE, NULL, LayerSchema, conform

FRICHES_FIELDS = {
    "site_id": ["site_id"],
    "site_nom": ["site_nom"],
    "site_type": ["site_type"],
    "site_statut": ["site_statut"],
    "site_occupation": ["site_occupation"],
    "comm_insee": ["comm_insee"],
    "comm_nom": ["comm_nom"],
    "unite_fonciere_surface": ["unite_fonciere_surface"],
    "unite_fonciere_refcad": ["unite_fonciere_refcad", "l_idpar"],
    "source_nom": ["source_nom"],
    # Kept when the source has it (CNIG Friches, Cartofriches): shown in the map's popups.
    "site_adresse": ["site_adresse"],
}
#: CNIG Friches fields kept when the source has them: they answer Mutafriches' questions
#: (building state, pollution, heritage, owner) and are completed by the observatory.
FRICHES_MUTABILITE_FIELDS = {
    name: [name] for name in (
        "bati_nombre", "bati_etat", "bati_pollution", "bati_patrimoine",
        "sol_pollution_existe", "proprio_type", "proprio_personne", "urba_zone_type",
        "urba_zone_lib")
}
CSV_MISSING = {"", "NA", "NaN", "N/A"}


def detect_format(path: Path) -> str:
    """Guess the friches format from the file name."""
    return "cnig_csv" if path.suffix.lower() in (".csv", ".txt") else "cartofriches"


def read_friches(source: Source, *, crs: str, base: Path | None = None,
                 bbox: BBox | None = None) -> ReadResult:
    """Read friches into ``friches`` (points) and ``friches_surfaces`` (perimeters).

    Parameters
    ----------
    source
        The ``friches`` source (CNIG CSV, Cartofriches, or a mapped layer).
    crs
        The territory CRS.
    base
        Folder against which lineage names are written.
    bbox
        Only the friches (points, and perimeters) intersecting this box, in the
        territory CRS. The files are read whole, since duplicates (same
        ``site_id``) are resolved over all of them, then clipped.

    Returns
    -------
    ReadResult
        ``frame`` holds the points; ``extra["friches_surfaces"]`` the perimeters.
    """
    report = new_report("friches", source.paths, source.format, source.layer)
    points: list[gpd.GeoDataFrame] = []
    surfaces: list[gpd.GeoDataFrame] = []
    for path in source.paths:
        fmt = source.format if source.format != "auto" else detect_format(path)
        report.format = fmt
        if fmt == "cnig_csv":
            attrs, pts, polys = _read_cnig_csv(path, source, report)
        else:
            attrs, pts, polys = _read_vector_friches(path, source, report)
        lineage = relative_name(path, base)
        attrs[LINEAGE] = lineage
        for geoms, gtype, bucket in ((pts, "Point", points), (polys, "MultiPolygon", surfaces)):
            frame = gpd.GeoDataFrame(attrs.copy(), geometry=geoms, crs=_crs_of(geoms))
            frame = frame[~(shapely.is_missing(frame.geometry.values)
                            | shapely.is_empty(frame.geometry.values))]
            if len(frame) == 0:
                continue
            # The CSV's WKT has no CRS of its own: the standard's lon/lat is set above,
            # and a declared ``crs`` must not be counted as overriding the file.
            declared = None if fmt == "cnig_csv" else source.crs
            frame = to_territory_crs(frame, target=crs, declared=declared, path=path,
                                     layer=source.layer, report=report,
                                     key=source.key or None)
            frame = clean_geometries(frame, geometry_type=gtype, report=report, path=path,
                                     layer=source.layer)
            bucket.append(frame)
    friches = clip_to_bbox(_finish(points, crs, FRICHES, report), bbox).reset_index(drop=True)
    surf = clip_to_bbox(_finish(surfaces, crs, FRICHES_SURFACES, report, count_dups=False),
                        bbox).reset_index(drop=True)
    report.features_kept = len(friches)
    return ReadResult(friches, report, extra={"friches_surfaces": surf})


def _crs_of(geoms: gpd.GeoSeries | np.ndarray) -> object:
    return geoms.crs if isinstance(geoms, gpd.GeoSeries) else None


def _finish(frames: list[gpd.GeoDataFrame], crs: str, schema: LayerSchema, report: SourceReport,
            *, count_dups: bool = True) -> gpd.GeoDataFrame:
    if not frames:
        return conform(gpd.GeoDataFrame({c: [] for c in schema.columns},
                                        geometry=gpd.GeoSeries([], crs=crs), crs=crs), schema)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)
    # Sorting by id, then source file, then geometry: duplicates resolve the same way
    # whatever the order of the input files.
    frame = stable_sort(frame, ["site_id", LINEAGE])
    dup = frame["site_id"].duplicated()
    if count_dups:
        report.count("friches en double (même site_id) écartées", int(dup.sum()))
    frame = frame[~dup].reset_index(drop=True)
    return conform(frame, schema)


def _normalise_attrs(fields: pd.DataFrame, path: Path, layer: str | None,
                     report: SourceReport | None = None) -> pd.DataFrame:
    out = pd.DataFrame(index=fields.index)
    for canon in (*FRICHES_FIELDS, *FRICHES_MUTABILITE_FIELDS):
        if canon in fields:
            out[canon] = text(fields[canon])
    if "site_id" not in out:
        raise SchemaError(
            f"{where(path, layer, 'site_id')} : champ obligatoire introuvable ; indiquez-le avec "
            f"« champs.site_id = \"NOM_DU_CHAMP\" »"
        )
    missing_id = out["site_id"].isna()
    if missing_id.any():
        row = int(np.flatnonzero(missing_id.to_numpy())[0])
        raise SchemaError(
            f"{where(path, layer, 'site_id')} : identifiant vide pour {int(missing_id.sum())} "
            f"friche(s) (ex. ligne {row + 2 if layer is None else row}) ; chaque friche doit "
            f"avoir un site_id"
        )
    if "unite_fonciere_refcad" in out:
        out["unite_fonciere_refcad"] = out["unite_fonciere_refcad"].map(parse_idu_list)
    if "unite_fonciere_surface" in out:
        out["unite_fonciere_surface"] = numbers(out["unite_fonciere_surface"], report=report,
                                                field_name="unite_fonciere_surface")
    return out


def parse_idu_list(value: object) -> str | None:
    """Normalise a parcel list — ``{a,b}`` (Cartofriches), ``a|b`` or ``a,b`` — to ``a|b``.

    A missing value (``None``, NaN: a text column of pandas 3) and the missing
    markers (``NA``, ``NaN``… in any case) give ``None``.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    s = str(value).strip().strip("{}[]")
    items = [i.strip().strip('"\'') for i in s.replace("|", ",").replace(";", ",").split(",")]
    items = [i.upper() for i in items if i and i.upper() not in _MISSING_UPPER]
    return "|".join(dict.fromkeys(items)) or None


_MISSING_UPPER = {m.upper() for m in CSV_MISSING}


def _read_cnig_csv(path: Path, source: Source, report: SourceReport
                   ) -> tuple[pd.DataFrame, gpd.GeoSeries, gpd.GeoSeries]:
    check_file(path)
    # utf-8-sig: spreadsheets often save a byte-order mark, which would otherwise
    # stick to the first column's name.
    encoding = source.encoding or "utf-8-sig"
    try:
        with open(path, encoding=encoding, newline="") as f:
            header = f.readline(65536)
            # The header decides: WKT polygons hold many commas, names never do.
            sep = ";" if header.count(";") >= header.count(",") else ","
            f.seek(0)
            df = pd.read_csv(f, sep=sep, dtype=str, keep_default_na=False,
                             quoting=csv.QUOTE_MINIMAL)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path} : encodage illisible en {encoding.removesuffix('-sig')} (octet "
            f"0x{exc.object[exc.start]:02x} en position {exc.start}) ; le standard CNIG impose "
            f"l'UTF-8 — réenregistrez le fichier en UTF-8 ou déclarez "
            f"« {source.key or 'sources.friches'}.encodage = \"latin-1\" »"
        ) from None
    except pd.errors.EmptyDataError:
        raise SourceError(f"{path} : CSV vide ; vérifiez le fichier") from None
    except (pd.errors.ParserError, csv.Error, ValueError, OverflowError) as exc:
        raise SourceError(
            f"{path} : CSV illisible ({first_line(exc)}) ; vérifiez qu'il est complet et que le "
            f"séparateur est « ; »"
        ) from None
    report.features_read += len(df)
    if len(df) == 0:
        raise SourceError(f"{path} : CSV sans aucune friche")
    df = df.replace(list(CSV_MISSING), None)
    note_provenance(report, df, path=path)
    fields = map_fields(df, FRICHES_FIELDS | FRICHES_MUTABILITE_FIELDS
                        | {"geompoint": ["geompoint"], "geomsurf": ["geomsurf"]},
                        source.fields, path=path, layer=None, required=["site_id"],
                        key=source.key or None)
    if "geompoint" not in fields and "geomsurf" not in fields:
        raise SchemaError(
            f"{where(path, None, 'geompoint')} : ni geompoint ni geomsurf ; le standard CNIG "
            f"Friches impose une géométrie WKT dans geompoint"
        )
    attrs = _normalise_attrs(fields, path, None, report)
    points = _parse_wkt(fields.get("geompoint"), path, "geompoint", len(df))
    polys = _parse_wkt(fields.get("geomsurf"), path, "geomsurf", len(df))
    no_point = shapely.is_missing(points)
    if no_point.any():
        points = points.copy()
        points[no_point] = shapely.point_on_surface(polys[no_point])
    nothing = shapely.is_missing(points)
    if nothing.any():
        report.count("friches sans géométrie écartées", int(nothing.sum()))
    crs = source.crs or "EPSG:4326"  # the standard's WKT is in lon/lat (WGS 84)
    return (attrs, gpd.GeoSeries(points, index=attrs.index, crs=crs),
            gpd.GeoSeries(polys, index=attrs.index, crs=crs))


def _parse_wkt(series: pd.Series | None, path: Path, field: str, n: int) -> np.ndarray:
    if series is None:
        return np.full(n, None, dtype=object)
    values = series.to_numpy(dtype=object)
    geoms = shapely.from_wkt(values, on_invalid="ignore")
    broken = pd.notna(values) & shapely.is_missing(geoms)
    if broken.any():
        row = int(np.flatnonzero(broken)[0])
        raise SchemaError(
            f"{where(path, None, field)} : WKT invalide ligne {row + 2} ({str(values[row])[:60]!r})"
            f" ; {int(broken.sum())} ligne(s) concernée(s) — attendu par ex. \"POINT (2.35 48.85)\""
        )
    return geoms


def _read_vector_friches(path: Path, source: Source, report: SourceReport
                         ) -> tuple[pd.DataFrame, gpd.GeoSeries, gpd.GeoSeries]:
    layer = pick_layer(path, source.layer, prefer=("friches",))
    raw = ensure_geometry(read_vector(path, layer, encoding=source.encoding,
                                      key=source.key or None), path=path, layer=layer)
    report.features_read += len(raw)
    report.layer = layer
    if len(raw) == 0:
        raise SourceError(f"{where(path, layer)} : couche vide (aucune friche)")
    note_provenance(report, raw, path=path)
    fields = map_fields(raw, FRICHES_FIELDS | FRICHES_MUTABILITE_FIELDS, source.fields,
                        path=path, layer=layer, required=["site_id"], key=source.key or None)
    attrs = _normalise_attrs(pd.DataFrame(fields.drop(columns="geometry")), path, layer, report)
    geoms = raw.geometry.values
    ids = shapely.get_type_id(geoms)
    is_area = np.isin(ids, [3, 6]) | ((ids == 7) & (shapely.area(geoms) > 0))
    polys = np.where(is_area, geoms, NULL)
    points = np.where(is_area, NULL, geoms)
    if is_area.any():
        points[is_area] = shapely.point_on_surface(geoms[is_area])
    return (attrs, gpd.GeoSeries(points, index=attrs.index, crs=raw.crs),
            gpd.GeoSeries(polys, index=attrs.index, crs=raw.crs))
