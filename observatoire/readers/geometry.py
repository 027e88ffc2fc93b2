"""Geometries of a source made clean: one type per layer, valid, 2D, counted.

Invalid geometries (bow-tie, ring touching itself) are repaired with ``make_valid``;
null, empty, collapsed or other-type geometries are dropped; Z / M coordinates are
dropped to 2D; single parts are promoted to multi. Each repair is counted in the
source's report; a layer with nothing of its geometry type is refused
(:class:`GeometryError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from observatoire.errors import GeometryError, where
from observatoire.readers.gdal import gdal_notes
from observatoire.readers.lineage import SourceReport

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
    if len(geoms) and (shapely.has_z(geoms).any() or shapely.has_m(geoms).any()):
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
    ok = np.isin(ids, [t for t, name in _TYPE_NAMES.items() if name in wanted])
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


def layer_declares(path: Path, layer: str | None, geometry_type: str) -> bool:
    """Whether GDAL declares the layer's geometries of the family of ``geometry_type``.

    ``Polygon`` and ``MultiPolygon Z`` are of the ``MultiPolygon`` family; a layer of
    mixed or unknown type is not.
    """
    try:
        with gdal_notes(path, layer):
            declared = pyogrio.read_info(path, layer=layer).get("geometry_type") or ""
    except Exception:
        return False
    return declared.split(" ")[0] in _FAMILY.get(geometry_type, ())
