"""Reading part of a source: a bounding box pushed down to GDAL, and tiles.

A territory reads only the features near it (:func:`bbox_in_file_crs`, then
:func:`clip_to_bbox` after reprojection); a large source is read piece by piece on a
:func:`tile_grid`, each feature answered for by exactly one tile
(:func:`read_tile_vector`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import CRS, Transformer

from observatoire.errors import ConfigError
from observatoire.readers.crs import CRS_BOUNDS, epsg_code, same_crs
from observatoire.readers.gdal import gdal_notes, read_vector

#: A bounding box pushed down to GDAL is enlarged by this margin (m, territory CRS),
#: or by this share of its larger side when more, so that reprojecting it to the
#: file's CRS never loses a feature; the exact filter comes after reprojection.
BBOX_MARGIN_M = 50.0


BBOX_MARGIN_SHARE = 0.01


BBox = tuple[float, float, float, float]


def as_bbox(values: Iterable[float]) -> BBox:
    """Return four bounds (xmin, ymin, xmax, ymax) as a :data:`BBox` of floats."""
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


def bbox_in_file_crs(path: Path, layer: str | None, bbox: BBox, *, crs: str,
                     declared: str | None = None) -> BBox | None:
    """Return a box of the file's CRS holding ``bbox`` (territory CRS), to pass to GDAL.

    The box is enlarged (:data:`BBOX_MARGIN_M`, :data:`BBOX_MARGIN_SHARE`) then
    transformed with densified edges, so that every feature whose reprojected
    geometry meets ``bbox`` is read; :func:`clip_to_bbox` then keeps exactly those.

    Parameters
    ----------
    path, layer
        The file and layer to read.
    bbox
        (xmin, ymin, xmax, ymax) in the territory CRS.
    crs
        The territory CRS.
    declared
        The CRS declared for the source (it overrides the file's).

    Returns
    -------
    tuple or None
        The box in the file's CRS; ``None`` when the file's CRS is unknown, its
        extent contradicts its CRS (a full read then refuses it, or drops the
        absurd features, as without a box) or the box cannot be transformed: then
        read everything and clip after.
    """
    try:
        with gdal_notes(path, layer):
            info = pyogrio.read_info(path, layer=layer)
    except Exception:  # read_vector reports unreadable files with a clear message
        return None
    file_crs = declared if declared is not None else info.get("crs")
    if not file_crs:
        return None
    xmin, ymin, xmax, ymax = (float(v) for v in bbox)
    margin = max(BBOX_MARGIN_M, BBOX_MARGIN_SHARE * max(xmax - xmin, ymax - ymin))
    wide = (xmin - margin, ymin - margin, xmax + margin, ymax + margin)
    try:
        src, dst = CRS.from_user_input(crs), CRS.from_user_input(file_crs)
        limits = CRS_BOUNDS.get(epsg_code(dst) or 0)
        extent = info.get("total_bounds")
        if limits is not None and extent is not None and not (
                np.isfinite(extent).all() and extent[0] >= limits[0] and extent[1] >= limits[1]
                and extent[2] <= limits[2] and extent[3] <= limits[3]):
            return None
        if same_crs(src, dst):
            return wide
        out = Transformer.from_crs(src, dst, always_xy=True).transform_bounds(
            *wide, densify_pts=51)
    except Exception:  # pyproj refuses the CRS or the transformation
        return None
    return as_bbox(out) if np.isfinite(out).all() else None


def clip_to_bbox(frame: gpd.GeoDataFrame, bbox: BBox | None) -> gpd.GeoDataFrame:
    """Keep the features whose geometry intersects ``bbox`` (same CRS); all when ``None``."""
    if bbox is None:
        return frame
    keep = shapely.intersects(np.asarray(frame.geometry.array, dtype=object),
                              shapely.box(*bbox))
    return frame[keep]


#: More tiles than this in one grid means the tile size was given in the wrong unit.
MAX_TILES = 1_000_000


@dataclass(frozen=True)
class Tile:
    """One square of a :func:`tile_grid`, and the features it answers for.

    Attributes
    ----------
    bounds
        The square (xmin, ymin, xmax, ymax), territory CRS.
    assignment
        The half-open box ``[x0, x1) × [y0, y1)`` holding the lower-left corner
        ``(minx, miny)`` of the bounds of the features assigned to the tile: the
        square, extended to −∞ in the first column and row and to +∞ in the last,
        so that every feature is assigned to exactly one tile of the grid.
    column, row
        Position in the grid, (0, 0) being the lower-left tile.
    """

    bounds: BBox
    assignment: BBox
    column: int = 0
    row: int = 0

    @property
    def is_first(self) -> bool:
        """Whether the tile reaches −∞ on both axes (it also answers for null geometries)."""
        return self.assignment[0] == -math.inf and self.assignment[1] == -math.inf

    def owns(self, geometries: Any) -> np.ndarray:
        """Whether each geometry is assigned to this tile.

        Parameters
        ----------
        geometries
            Geometries (array, GeoSeries) in the territory CRS.

        Returns
        -------
        numpy.ndarray
            Booleans: the lower-left corner of the geometry's bounds lies in
            :attr:`assignment`; null and empty geometries, which have no corner,
            belong to the first tile.
        """
        geoms = np.asarray(geometries, dtype=object)
        if len(geoms) == 0:
            return np.zeros(0, dtype=bool)
        corner = shapely.bounds(geoms)[:, :2]
        x, y = corner[:, 0], corner[:, 1]
        x0, y0, x1, y1 = self.assignment
        with np.errstate(invalid="ignore"):
            mine = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        if self.is_first:
            mine |= np.isnan(x) | np.isnan(y)
        return mine


def tile_grid(bounds: BBox, *, size: float) -> list[Tile]:
    """Cover a box with square tiles, each feature being assigned to exactly one.

    Parameters
    ----------
    bounds
        The box to cover (xmin, ymin, xmax, ymax), territory CRS.
    size
        Side of the squares (territory CRS units: metres). The squares start at the
        lower-left corner of ``bounds``; the last column and row may reach beyond it.

    Returns
    -------
    list of Tile
        Row by row from the bottom, column by column from the left; the first one
        (:attr:`Tile.is_first`) is the lower-left tile. A feature belongs to the tile
        whose :attr:`Tile.assignment` holds the lower-left corner of its bounds,
        including a feature whose corner lies outside ``bounds``.

    Raises
    ------
    ConfigError
        When ``size`` is not a positive number, ``bounds`` is not a finite box, or
        the grid would hold more than :data:`MAX_TILES` tiles.
    """
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    if not (math.isfinite(xmin + ymin + xmax + ymax) and xmin <= xmax and ymin <= ymax):
        raise ConfigError(
            f"grille de tuiles : emprise {tuple(bounds)} invalide ; donnez (xmin, ymin, xmax, "
            f"ymax) finis, avec xmin ≤ xmax et ymin ≤ ymax, dans le CRS du territoire"
        )
    if not (isinstance(size, int | float) and math.isfinite(size) and size > 0):
        raise ConfigError(
            f"grille de tuiles : taille {size!r} invalide ; donnez une longueur positive, en "
            f"unités du CRS du territoire (mètres)"
        )
    columns = max(1, math.ceil((xmax - xmin) / size))
    rows = max(1, math.ceil((ymax - ymin) / size))
    if columns * rows > MAX_TILES:
        raise ConfigError(
            f"grille de tuiles : {columns} × {rows} tuiles de {size:g} m pour une emprise de "
            f"{xmax - xmin:.0f} × {ymax - ymin:.0f} m ; choisissez des tuiles plus grandes"
        )
    # Neighbours share the very same float edge, so no corner falls between two tiles.
    xs = [xmin + size * i for i in range(columns + 1)]
    ys = [ymin + size * j for j in range(rows + 1)]
    cut_x = [-math.inf, *xs[1:-1], math.inf]
    cut_y = [-math.inf, *ys[1:-1], math.inf]
    return [Tile(bounds=(xs[i], ys[j], xs[i + 1], ys[j + 1]),
                 assignment=(cut_x[i], cut_y[j], cut_x[i + 1], cut_y[j + 1]), column=i, row=j)
            for j in range(rows) for i in range(columns)]


def max_feature_extent(path: Path, layer: str | None, *, crs: str,
                       declared: str | None = None) -> float:
    """Return the largest width or height of a feature's bounds, in the territory CRS.

    A GeoPackage's R-tree answers without reading the geometries; other formats
    are scanned once (:func:`pyogrio.read_bounds`). The answer is remembered per
    state of the file (path, size, modification time).

    Parameters
    ----------
    path, layer
        The file and layer.
    crs
        The territory CRS.
    declared
        The CRS declared for the source (it overrides the file's).

    Returns
    -------
    float
        The extent (0 for a layer without geometry); ``inf`` when it cannot be
        known (unreadable file, no CRS).
    """
    try:
        state = path.stat()
    except OSError:
        return math.inf
    return _max_feature_extent(str(path), layer, state.st_size, state.st_mtime_ns, crs,
                               declared)


@functools.lru_cache(maxsize=64)
def _max_feature_extent(path: str, layer: str | None, size: int, mtime: int, crs: str,
                        declared: str | None) -> float:
    file = Path(path)
    try:
        with gdal_notes(file, layer):
            info = pyogrio.read_info(file, layer=layer)
            file_crs = declared if declared is not None else info.get("crs")
            if not file_crs:
                return math.inf
            same = same_crs(file_crs, crs)
            envelopes = _feature_envelopes(file, layer, info, widest_only=same)
            if not same:
                envelopes = _envelopes_in_crs(envelopes, file_crs, crs)
    except Exception:  # read_vector reports unreadable files with a clear message
        return math.inf
    extents = np.concatenate([envelopes[:, 2] - envelopes[:, 0],
                              envelopes[:, 3] - envelopes[:, 1]])
    extents = extents[np.isfinite(extents)]
    if len(extents) == 0:
        return 0.0
    widest = float(extents.max())
    # Corners and edge midpoints of a reprojected box bound it to a hair: keep a margin.
    return widest if same else widest * 1.01 + 1.0


def _feature_envelopes(path: Path, layer: str | None, info: Mapping[str, Any], *,
                       widest_only: bool) -> np.ndarray:
    """Bounds of the features (n × 4), or only the widest width and height (1 × 4)."""
    geometry = info.get("geometry_name")
    if info.get("driver") == "GPKG" and geometry:
        table = f"rtree_{info['layer_name']}_{geometry}".replace('"', '""')
        columns = ("0 AS minx, 0 AS miny, max(maxx - minx) AS maxx, max(maxy - miny) AS maxy"
                   if widest_only else "minx, miny, maxx, maxy")
        try:
            rows = pyogrio.read_dataframe(path, sql=f'SELECT {columns} FROM "{table}"')
            return rows[["minx", "miny", "maxx", "maxy"]].to_numpy(dtype="float64",
                                                                  na_value=np.nan)
        except Exception:  # no spatial index: scan the geometries
            pass
    _, bounds = pyogrio.read_bounds(path, layer=layer)
    return np.asarray(bounds, dtype="float64").T.reshape(-1, 4)


def _envelopes_in_crs(envelopes: np.ndarray, src: Any, dst: Any) -> np.ndarray:
    """Bounds in ``dst`` of boxes of ``src``, from their corners and edge midpoints."""
    x0, y0, x1, y1 = envelopes.T
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xs = np.stack([x0, x1, x0, x1, xm, xm, x0, x1], axis=1)
    ys = np.stack([y0, y0, y1, y1, y0, y1, ym, ym], axis=1)
    tx, ty = Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst),
                                  always_xy=True).transform(xs, ys)
    tx, ty = np.asarray(tx, dtype="float64"), np.asarray(ty, dtype="float64")
    return np.column_stack([tx.min(axis=1), ty.min(axis=1), tx.max(axis=1), ty.max(axis=1)])


def _box_intersection(a: BBox, b: BBox) -> BBox | None:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] <= box[2] and box[1] <= box[3] else None


def _box_in_territory_crs(path: Path, layer: str | None, box: BBox, *, crs: str,
                          declared: str | None) -> BBox | None:
    """Return a territory-CRS box holding ``box`` (file CRS), or ``None`` when unknown."""
    try:
        with gdal_notes(path, layer):
            file_crs = declared if declared is not None else pyogrio.read_info(
                path, layer=layer).get("crs")
        if not file_crs:
            return None
        if same_crs(file_crs, crs):
            return box
        out = Transformer.from_crs(CRS.from_user_input(file_crs), CRS.from_user_input(crs),
                                   always_xy=True).transform_bounds(*box, densify_pts=51)
    except Exception:  # pyproj refuses the CRS or the transformation
        return None
    return as_bbox(out) if np.isfinite(out).all() else None


def _bbox_read_boxes(path: Path, layer: str | None, bbox: BBox, *, crs: str,
                     declared: str | None) -> tuple[BBox | None, BBox | None]:
    """Return the box a read of ``bbox`` passes to GDAL, and a territory-CRS box holding it.

    The same for every tile of a grid: remembered per state of the file.
    """
    try:
        state = path.stat()
    except OSError:
        return None, None
    return _bbox_read_boxes_of(str(path), layer, as_bbox(bbox), crs, declared,
                               state.st_size, state.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _bbox_read_boxes_of(path: str, layer: str | None, bbox: BBox, crs: str,
                        declared: str | None, size: int, mtime: int
                        ) -> tuple[BBox | None, BBox | None]:
    file = Path(path)
    whole = bbox_in_file_crs(file, layer, bbox, crs=crs, declared=declared)
    if whole is None:
        return None, None
    return whole, _box_in_territory_crs(file, layer, whole, crs=crs, declared=declared)


def tile_read_box(path: Path, layer: str | None, tile: Tile, *, crs: str,
                  bbox: BBox | None = None, declared: str | None = None
                  ) -> BBox | None | Literal[False]:
    """Return the box of the file's CRS that GDAL must read for one tile.

    GDAL keeps the features whose geometry meets its box, and a feature assigned
    to a tile (by the corner of its bounds) need not meet the tile's square: the
    box reaches beyond the square, up and right, by :func:`max_feature_extent`.
    With ``bbox``, it is also cut to the box a read of ``bbox`` passes to GDAL
    (:func:`bbox_in_file_crs`), so that the tiles read, between them, exactly the
    features that read does, each feature being read by the tile it is assigned
    to (and perhaps by neighbours, which :meth:`Tile.owns` drops).

    Parameters
    ----------
    path, layer
        The file and layer.
    tile
        The tile.
    crs
        The territory CRS.
    bbox
        The territory's box (territory CRS), if the read is limited to it.
    declared
        The CRS declared for the source (it overrides the file's).

    Returns
    -------
    tuple, None or False
        The box; ``None`` to read the whole layer (a tile of the edge of the grid
        without ``bbox``, or a file whose CRS or extent forbids a box, as for
        :func:`bbox_in_file_crs`); ``False`` when no feature of ``bbox`` can be
        assigned to the tile (a tile outside the box).
    """
    reach = max_feature_extent(path, layer, crs=crs, declared=declared)
    x0, y0, x1, y1 = tile.assignment
    region: BBox = (x0, y0, x1 + reach, y1 + reach)
    if bbox is None:
        if not np.isfinite(region).all():
            return None
        return bbox_in_file_crs(path, layer, region, crs=crs, declared=declared)
    whole, seen = _bbox_read_boxes(path, layer, bbox, crs=crs, declared=declared)
    if whole is None:
        return None
    if seen is None:
        return whole
    near = _box_intersection(region, seen)
    if near is None:
        return False
    box = bbox_in_file_crs(path, layer, near, crs=crs, declared=declared)
    if box is None:
        return whole
    part = _box_intersection(box, whole)
    return part if part is not None else False


def read_tile_vector(path: Path, layer: str | None, tile: Tile, *, crs: str,
                     bbox: BBox | None = None, declared: str | None = None,
                     encoding: str | None = None, key: str | None = None
                     ) -> gpd.GeoDataFrame:
    """Read what one tile of a layer needs (see :func:`tile_read_box`).

    Parameters
    ----------
    path, layer
        The file and layer.
    tile
        The tile.
    crs
        The territory CRS.
    bbox
        The territory's box (territory CRS), if the read is limited to it.
    declared
        The CRS declared for the source.
    encoding, key
        As for :func:`read_vector`.

    Returns
    -------
    geopandas.GeoDataFrame
        As stored (file CRS, no repair): every feature a read of ``bbox`` (the
        whole layer without it) would return and that is assigned to ``tile``,
        among others that :meth:`Tile.owns` drops after reprojection.

    Raises
    ------
    SourceError
        As :func:`read_vector`.
    """
    box = tile_read_box(path, layer, tile, crs=crs, bbox=bbox, declared=declared)
    if box is False:
        # No feature of the box can be assigned to this tile: only the fields are needed.
        return read_vector(path, layer, encoding=encoding, key=key, max_features=1).iloc[:0]
    return read_vector(path, layer, encoding=encoding, key=key, bbox=box)
