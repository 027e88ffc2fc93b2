"""Background of the map, drawn from the observatory's own layers: it reads without network.

Three layers make a light, topographic-like background under the thematic layers
of ``carte.html``:

- the outline of each commune (its parcels dissolved,
  :func:`observatoire.analysis.limites.commune_outlines`) and its name;
- the roads (``routes``) by class: motorways and main roads at every zoom,
  secondary roads from zoom 12, local roads from zoom 14;
- the buildings (``batiments``) from zoom 16.

What is drawn at each zoom is simplified to what that zoom can show
(:data:`LEVELS`): a level shown from zoom *z* is simplified (Douglas-Peucker) to
about half a pixel of zoom *z* and its coordinates are rounded to about one pixel
(1e-4 degree, some 10 m, for the far levels; 1e-5 degree, some 1 m, for the near
ones) before they are delta-encoded as integers. The communes and the main roads
have a far level (coarse) and a near one (fine); local roads and buildings are
grouped by cells of :data:`CELL_DEG` degree and the page only draws the cells
around the view.

A département holds millions of buildings: beyond :data:`MAX_FEATURES`, the map
keeps the largest buildings (halls and warehouses first) and the most important
roads, then the longest; the GeoPackage keeps them all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.geopackage import reading_unpublished

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackgroundLevel:
    """One layer of the background at a range of zooms.

    Attributes
    ----------
    name
        Id in the page.
    source
        Layer drawn: ``limites_communes``, ``routes`` or ``batiments``.
    kind
        ``polygon`` or ``line`` (the outline of a polygon layer: communes).
    zmin, zmax
        Zooms at which it is drawn (inclusive).
    tolerance
        Simplification tolerance, in metres.
    scale
        Coordinates are rounded to ``1 / scale`` degree.
    classes
        Road classes (``routes.classe``) drawn; ``None``: every feature.
    tiled
        Grouped by cells of :data:`CELL_DEG`, drawn around the view only.
    """

    name: str
    source: str
    kind: str
    zmin: int
    zmax: int
    tolerance: float
    scale: int
    classes: tuple[str, ...] | None = None
    tiled: bool = False

    @property
    def style(self) -> str:
        """Key of the level's style in :data:`STYLES`."""
        if self.source == "routes" and self.classes:
            return self.classes[0]
        return {"limites_communes": "commune", "batiments": "batiment"}[self.source]


FAR, NEAR = 10_000, 100_000
#: Zoom from which the near levels of communes and main roads replace the far ones.
NEAR_ZOOM = 13
#: The background's levels, from bottom to top.
LEVELS: tuple[BackgroundLevel, ...] = (
    BackgroundLevel("batiments", "batiments", "polygon", 16, 19, 0.5, NEAR, tiled=True),
    BackgroundLevel("routes_locales", "routes", "line", 14, 19, 1.5, NEAR, ("locale",),
                    tiled=True),
    BackgroundLevel("routes_secondaires", "routes", "line", 12, 19, 3.0, NEAR, ("secondaire",)),
    BackgroundLevel("routes_principales_loin", "routes", "line", 0, NEAR_ZOOM - 1, 20.0, FAR,
                    ("principale",)),
    BackgroundLevel("routes_principales", "routes", "line", NEAR_ZOOM, 19, 2.0, NEAR,
                    ("principale",)),
    BackgroundLevel("autoroutes_loin", "routes", "line", 0, NEAR_ZOOM - 1, 20.0, FAR,
                    ("autoroute",)),
    BackgroundLevel("autoroutes", "routes", "line", NEAR_ZOOM, 19, 2.0, NEAR, ("autoroute",)),
    BackgroundLevel("communes_loin", "limites_communes", "line", 0, NEAR_ZOOM - 1, 20.0, FAR),
    BackgroundLevel("communes", "limites_communes", "line", NEAR_ZOOM, 19, 2.0, NEAR),
)

#: Style of each kind of feature (Leaflet path options) and its French legend label.
STYLES: dict[str, dict] = {
    "commune": {"libelle": "Limite de commune", "color": "#4d4d4d", "weight": 1.5,
                "dashArray": "8 4 2 4", "fill": False},
    "autoroute": {"libelle": "Autoroute", "color": "#d7869a", "weight": 4},
    "principale": {"libelle": "Route principale", "color": "#e9b07a", "weight": 3},
    "secondaire": {"libelle": "Route secondaire", "color": "#e4cf8c", "weight": 2},
    "locale": {"libelle": "Route locale", "color": "#c4c4c4", "weight": 1.2},
    "batiment": {"libelle": "Bâtiment (à partir du zoom 16)", "color": "#a89f96",
                 "weight": 0.5, "fillColor": "#d8d0c8", "fillOpacity": 1.0},
}
#: Road classes from the most to the least important.
ROAD_ORDER = ("autoroute", "principale", "secondaire", "locale")
#: Side of the cells of tiled levels, in degrees (about 1.1 km × 0.75 km in France).
CELL_DEG = 0.01
#: Beyond these many features, the map's background keeps the largest buildings, and
#: the most important, then longest, roads; the GeoPackage keeps them all.
MAX_FEATURES = {"batiments": 150_000, "routes": 100_000}
#: Features read at once from a GeoPackage.
BATCH_ROWS = 100_000


def background_data(layers: Mapping[str, gpd.GeoDataFrame], *, crs: str | None = None,
                    names: Mapping[str, str] | None = None) -> dict | None:
    """Return the background of the map page (JSON-serialisable), or ``None`` without one.

    Parameters
    ----------
    layers
        ``limites_communes`` (``code_insee``, outline), ``routes`` (``classe``) and
        ``batiments``, in the territory's CRS; absent ones are left out.
    crs
        Their CRS when the frames have none.
    names
        INSEE code → name of the communes (their labels).

    Returns
    -------
    dict or None
        ``niveaux``: one entry per non-empty level of :data:`LEVELS` (``id``,
        ``style``, ``zmin``, ``zmax``, encoded ``geom``, ``n``, and for tiled
        levels ``cellules``: ``[ix, iy, n, …]`` cell by cell); ``styles``
        (:data:`STYLES`); ``etiquettes``: ``[name, lon, lat, width]`` per commune
        (a point inside it, the width of its outline in degrees of longitude).
    """
    frames = select_background({k: v for k, v in layers.items()
                                if k in ("limites_communes", "routes", "batiments")})
    levels = []
    for level in LEVELS:
        frame = frames.get(level.source)
        if frame is None or len(frame) == 0:
            continue
        if level.classes is not None:
            if "classe" not in frame:
                continue
            frame = frame[frame["classe"].isin(level.classes).to_numpy()]
            if len(frame) == 0:
                continue
        entry = _level(frame, level, crs)
        if entry is not None:
            levels.append(entry)
    if not levels:
        return None
    return {"niveaux": levels, "styles": STYLES,
            "etiquettes": _labels(frames.get("limites_communes"), crs, names or {})}


def select_background(layers: Mapping[str, gpd.GeoDataFrame], *,
                      limits: Mapping[str, int] | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Keep at most ``limits`` buildings and roads: the largest, the most important.

    Ties go to the westernmost, then southernmost feature: the same features are
    kept whatever the order of the rows.

    Parameters
    ----------
    layers
        The background's layers by name.
    limits
        Features kept per layer (default :data:`MAX_FEATURES`).

    Returns
    -------
    dict
        The layers, those over their limit cut down.
    """
    out = dict(layers)
    for source, limit in (MAX_FEATURES if limits is None else limits).items():
        frame = out.get(source)
        if frame is not None and len(frame) > limit:
            keep = np.sort(_ranking(frame, source)[:limit])
            log.info("fond de carte : %d %s dessinés sur %d", limit, source, len(frame))
            out[source] = frame.iloc[keep]
    return out


def read_background(gpkg: Path, *, limites: gpd.GeoDataFrame | None = None
                    ) -> dict[str, gpd.GeoDataFrame]:
    """Read the roads and buildings of the background back from a GeoPackage, in batches.

    A build by partition does not hold them in memory; at most
    :data:`MAX_FEATURES` of each are kept while reading (as
    :func:`select_background` would keep them).

    Parameters
    ----------
    gpkg
        The GeoPackage (being written: named ``*.tmp``).
    limites
        The outlines of the communes, returned with the layers read.

    Returns
    -------
    dict
        ``limites_communes``, ``routes`` (``classe`` only), ``batiments`` (geometry only).
    """
    import pyogrio

    out: dict[str, gpd.GeoDataFrame] = {}
    if limites is not None:
        out["limites_communes"] = limites
    with reading_unpublished():
        present = {str(name) for name, _ in pyogrio.list_layers(gpkg)}
    for source, columns in (("routes", ["classe"]), ("batiments", [])):
        if source in present:
            out[source] = _read_largest(gpkg, source, columns, MAX_FEATURES[source])
    return out


def _read_largest(gpkg: Path, layer: str, columns: list[str], limit: int) -> gpd.GeoDataFrame:
    """Stream ``layer`` in batches, keeping the ``limit`` first of :func:`_ranking`."""
    import pyogrio

    kept: gpd.GeoDataFrame | None = None
    with reading_unpublished(), pyogrio.open_arrow(gpkg, layer=layer, columns=columns,
                                                    batch_size=BATCH_ROWS,
                                                    use_pyarrow=True) as (meta, reader):
        for batch in reader:
            geoms = shapely.from_wkb(batch.column(meta["geometry_name"]).to_numpy(
                zero_copy_only=False))
            frame = gpd.GeoDataFrame(
                {c: batch.column(c).to_pandas() for c in columns}, geometry=geoms,
                crs=meta["crs"])
            kept = frame if kept is None else gpd.GeoDataFrame(
                pd.concat([kept, frame], ignore_index=True), crs=meta["crs"])
            if len(kept) > 2 * limit:
                kept = kept.iloc[np.sort(_ranking(kept, layer)[:limit])].reset_index(drop=True)
        if kept is None:  # an empty layer
            kept = gpd.GeoDataFrame({c: pd.Series([], dtype=object) for c in columns},
                                    geometry=gpd.GeoSeries([], crs=meta["crs"]),
                                    crs=meta["crs"])
    if len(kept) > limit:
        kept = kept.iloc[np.sort(_ranking(kept, layer)[:limit])].reset_index(drop=True)
    return kept




def _ranking(frame: gpd.GeoDataFrame, source: str) -> np.ndarray:
    """Positions of the rows, the ones to keep first (deterministic)."""
    geoms = np.asarray(frame.geometry.values)
    bounds = shapely.bounds(geoms)
    keys = [bounds[:, 1], bounds[:, 0]]
    if source == "routes":
        keys.append(-shapely.length(geoms))
        if "classe" in frame:
            rank = {c: i for i, c in enumerate(ROAD_ORDER)}
            keys.append(frame["classe"].map(rank).fillna(len(ROAD_ORDER)).to_numpy(float))
    else:
        keys.append(-shapely.area(geoms))
    return np.lexsort([np.nan_to_num(k, nan=np.inf) for k in keys])


def _level(frame: gpd.GeoDataFrame, level: BackgroundLevel, crs: str | None) -> dict | None:
    from observatoire.publish.carte import encode_polygons

    geoms = frame.geometry
    if geoms.crs is None and crs:
        geoms = geoms.set_crs(crs)
    values = np.asarray(geoms.values)
    values = values[~(shapely.is_missing(values) | shapely.is_empty(values))]
    if level.kind == "line" and level.source != "routes":
        # An outline is drawn, not filled: its boundary.
        values = shapely.boundary(values)
    if geoms.crs is not None and geoms.crs.is_projected:
        values = shapely.simplify(values, level.tolerance, preserve_topology=True)
    shown = gpd.GeoSeries(values, crs=geoms.crs)
    if shown.crs is not None and shown.crs.to_epsg() != 4326:
        shown = shown.to_crs(4326)
    values = np.asarray(shown.values)
    # Cell by cell, then west to east: the same order whatever the order of the rows,
    # and short deltas between neighbours.
    bounds = shapely.bounds(values)
    ix = np.floor(bounds[:, 0] / CELL_DEG).astype(np.int64)
    iy = np.floor(bounds[:, 1] / CELL_DEG).astype(np.int64)
    order = np.lexsort((bounds[:, 3], bounds[:, 2], bounds[:, 1], bounds[:, 0], ix, iy)
                       if level.tiled else (bounds[:, 3], bounds[:, 2], bounds[:, 1],
                                            bounds[:, 0]))
    values, ix, iy = values[order], ix[order], iy[order]
    geom = (encode_polygons(gpd.GeoSeries(values), scale=level.scale) if level.kind == "polygon"
            else encode_lines(gpd.GeoSeries(values), scale=level.scale))
    entry = {"id": level.name, "style": level.style, "zmin": level.zmin, "zmax": level.zmax,
             "n": len(values), "geom": geom}
    if level.tiled:
        change = np.r_[True, (ix[1:] != ix[:-1]) | (iy[1:] != iy[:-1])]
        starts = np.flatnonzero(change)
        counts = np.diff(np.r_[starts, len(values)])
        entry["cellules"] = {"taille": CELL_DEG, "c": np.column_stack(
            [ix[starts], iy[starts], counts]).ravel().tolist()}
    return entry


def encode_lines(geoms: gpd.GeoSeries, *, scale: int = 1_000_000) -> dict:
    """Encode (multi)linestrings (WGS 84) as delta-encoded integer coordinates.

    Returns
    -------
    dict
        ``type`` ``line``; ``f``: lines per feature (one number when all are 1),
        ``r``: vertices per line, ``c``: flat ``[dx, dy, …]`` integer deltas in
        ``1 / s`` degree from the previous vertex of the layer, ``s``: the scale.
        Repeated vertices (after rounding) are dropped, and lines left with fewer
        than two vertices.
    """
    from observatoire.publish.carte import _counts

    values = np.asarray(geoms.values)
    n = len(values)
    parts, feature_of_part = shapely.get_parts(values, return_index=True)
    is_line = np.isin(shapely.get_type_id(parts), (1, 2))
    parts, feature_of_part = parts[is_line], feature_of_part[is_line]
    coords, part_of_vertex = shapely.get_coordinates(parts, return_index=True)
    q = np.rint(coords * scale).astype(np.int64)
    keep = np.ones(len(q), dtype=bool)
    if len(q):
        keep[1:] = ~((q[1:] == q[:-1]).all(axis=1) & (part_of_vertex[1:] == part_of_vertex[:-1]))
    q, part_of_vertex = q[keep], part_of_vertex[keep]
    per_part = np.bincount(part_of_vertex, minlength=len(parts))
    ok = per_part >= 2
    q = q[ok[part_of_vertex]]
    parts_per_feature = np.bincount(feature_of_part[ok], minlength=n)
    deltas = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    return {"type": "line", "s": scale, "f": _counts(parts_per_feature),
            "r": per_part[ok].tolist(), "c": deltas.ravel().tolist()}


def _labels(outlines: gpd.GeoDataFrame | None, crs: str | None,
            names: Mapping[str, str]) -> list[list]:
    """``[name, lon, lat, width]`` of each commune: a point inside its outline, its width."""
    if outlines is None or len(outlines) == 0 or "code_insee" not in outlines:
        return []
    outlines = outlines[~(outlines.geometry.isna() | outlines.geometry.is_empty)]
    # By code: the same list whatever the order the partitions gave their communes in.
    outlines = outlines.iloc[np.argsort(outlines["code_insee"].astype(str).to_numpy(),
                                        kind="stable")]
    shapes = gpd.GeoSeries(np.asarray(outlines.geometry.values), crs=outlines.crs or crs)
    points = gpd.GeoSeries(shapely.point_on_surface(np.asarray(shapes.values)), crs=shapes.crs)
    if shapes.crs is not None and shapes.crs.to_epsg() != 4326:
        shapes, points = shapes.to_crs(4326), points.to_crs(4326)
    xy = shapely.get_coordinates(np.asarray(points.values)).round(5)
    bounds = shapes.bounds
    widths = (bounds["maxx"] - bounds["minx"]).round(5).to_numpy()
    codes = outlines["code_insee"].astype(str).to_numpy()
    return [[names.get(code, code), float(x), float(y), float(w)]
            for code, (x, y), w in zip(codes, xy, widths, strict=True)]
