"""Slope of a digital elevation model and its zonal statistics per parcel.

The slope grid is computed once for the whole DEM (Horn's 3 × 3 method, as
``gdaldem slope``), in percent. Zonal statistics then use the *cell-centre rule*
(a cell belongs to a parcel when its centre lies inside, as
``rasterio.features.rasterize(all_touched=False)``), evaluated by a vectorised
scanline over the polygon edges: no label raster is allocated, so memory grows
with the number of covered cells, not with the size of the DEM. A parcel whose
interior holds no cell centre (smaller or thinner than a cell) takes the value of
the cell under its representative point.

``scripts/compare_slope_exactextract.py`` measures this method against
exactextract (coverage-weighted) for speed and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import shapely
from affine import Affine

from observatoire.analysis.geometry import edges, ramp


class RasterLike(Protocol):
    """A north-up raster held in memory (what the ``mnt`` reader returns), read only."""

    @property
    def array(self) -> np.ndarray:
        """The cells (rows, columns)."""

    @property
    def transform(self) -> Affine:
        """Cell to map coordinates."""

    @property
    def crs(self) -> str:
        """The coordinate reference system (``EPSG:…``)."""

    @property
    def nodata(self) -> float | None:
        """The value of missing cells."""


@dataclass(frozen=True)
class ZonalStats:
    """Per-geometry statistics of a raster.

    Attributes
    ----------
    mean, max
        Mean and maximum of the valid cells (NaN when none).
    count
        Number of cells whose centre is inside (valid or not).
    """

    mean: np.ndarray
    max: np.ndarray
    count: np.ndarray


def masked_elevation(raster: RasterLike) -> np.ndarray:
    """Return the elevations as float64 with NaN where the raster has no data.

    Parameters
    ----------
    raster
        The DEM; cells equal to ``nodata`` (within float32 rounding) and non-finite
        cells are masked.

    Returns
    -------
    numpy.ndarray
        A new 2-D array.
    """
    z = np.array(raster.array, dtype="float64", copy=True)
    if raster.nodata is not None and np.isfinite(raster.nodata):
        # ASCII grids store -9999.9, read back as float32: compare at float32 precision.
        z[np.isclose(z, raster.nodata, rtol=0.0, atol=abs(raster.nodata) * 1e-6 + 1e-6)] = np.nan
    z[~np.isfinite(z)] = np.nan
    return z


def slope_percent(elevation: np.ndarray, *, cell_size: tuple[float, float]) -> np.ndarray:
    """Slope of each cell in percent (100 · rise / run), Horn's method.

    Parameters
    ----------
    elevation
        2-D elevations (m), NaN where unknown.
    cell_size
        Cell width and height (m), positive.

    Returns
    -------
    numpy.ndarray
        Slope in percent; NaN where the cell or one of its 8 neighbours is NaN. At
        the raster's edges the grid is extended linearly, so a plane keeps its exact
        slope up to the border.
    """
    z = np.asarray(elevation, dtype="float64")
    if z.ndim != 2:
        raise ValueError("elevation must be a 2-D array")
    dx, dy = (abs(float(c)) for c in cell_size)
    p = _pad_linear(z)
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * dx)
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * dy)
    out = 100.0 * np.hypot(dzdx, dzdy)
    out[np.isnan(z)] = np.nan
    return out


def _pad_linear(z: np.ndarray) -> np.ndarray:
    """Pad by one cell on each side, extrapolating linearly (replicating if 1 cell wide)."""
    p = np.pad(z, 1, mode="edge")
    if z.shape[0] > 1:
        p[0, 1:-1] = 2 * z[0] - z[1]
        p[-1, 1:-1] = 2 * z[-1] - z[-2]
    if z.shape[1] > 1:
        p[:, 0] = 2 * p[:, 1] - p[:, 2]
        p[:, -1] = 2 * p[:, -2] - p[:, -3]
    return p


@dataclass(frozen=True)
class RasterWindow:
    """A window of a raster (a view of its array), usable wherever a raster is."""

    array: np.ndarray
    transform: Affine
    crs: str
    nodata: float | None


def raster_window(raster: RasterLike, bounds: tuple[float, float, float, float], *,
                  margin: int = 2) -> RasterLike:
    """Return the cells of ``raster`` meeting ``bounds``, plus ``margin`` cells around.

    The slope of a cell reads its 8 neighbours: with a margin of 2 cells, every cell
    whose centre lies in ``bounds`` gets the slope it has in the whole raster (at the
    raster's edge the window stops there, and the edge is extrapolated as in the
    whole). A rotated raster is returned whole.
    """
    t = raster.transform
    if t.b != 0 or t.d != 0:
        return raster
    c0, c1 = (bounds[0] - t.c) / t.a, (bounds[2] - t.c) / t.a
    r0, r1 = (bounds[3] - t.f) / t.e, (bounds[1] - t.f) / t.e
    height, width = raster.array.shape
    col0 = min(max(int(np.floor(min(c0, c1))) - margin, 0), width - 1)
    col1 = max(min(int(np.ceil(max(c0, c1))) + margin, width), col0 + 1)
    row0 = min(max(int(np.floor(min(r0, r1))) - margin, 0), height - 1)
    row1 = max(min(int(np.ceil(max(r0, r1))) + margin, height), row0 + 1)
    return RasterWindow(array=raster.array[row0:row1, col0:col1],
                        transform=t @ Affine.translation(col0, row0), crs=raster.crs,
                        nodata=raster.nodata)


def cell_size(transform: Affine) -> tuple[float, float]:
    """Width and height of a cell of a north-up raster.

    Raises
    ------
    ValueError
        When the raster is rotated.
    """
    if transform.b != 0 or transform.d != 0:
        raise ValueError("rotated rasters are not supported; warp the DEM north-up first")
    return abs(transform.a), abs(transform.e)


def covered_spans(geoms: np.ndarray, *, transform: Affine, shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find the runs of cells whose centre lies inside each polygon (vectorised scanline).

    Parameters
    ----------
    geoms
        Polygons or multipolygons (missing or empty ones cover nothing).
    transform
        Affine transform of a north-up (or south-up) raster.
    shape
        (rows, columns) of the raster.

    Returns
    -------
    tuple of numpy.ndarray
        ``geom_index``, ``row``, ``first_col`` and ``n_cols`` of every non-empty run of
        cells, grouped by ``geom_index`` in increasing order.
    """
    cell_size(transform)
    empty = (np.zeros(0, dtype=np.int64),) * 4
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) == 0:
        return empty
    x0, y0, x1, y1, edge_geom = edges(geoms)
    if len(edge_geom) == 0:
        return empty
    # Grid space: u = column coordinate, v = row coordinate; cell (r, c) has centre (c+.5, r+.5).
    inv = ~transform
    u0 = inv.a * x0 + inv.b * y0 + inv.c
    v0 = inv.d * x0 + inv.e * y0 + inv.f
    u1 = inv.a * x1 + inv.b * y1 + inv.c
    v1 = inv.d * x1 + inv.e * y1 + inv.f
    vmin, vmax = np.minimum(v0, v1), np.maximum(v0, v1)
    # Rows whose centre line v = r + 0.5 lies in [vmin, vmax): half-open, so a vertex on
    # a scanline is counted once and every (polygon, row) holds an even number of crossings.
    r_first = np.maximum(np.ceil(vmin - 0.5), 0).astype(np.int64)
    r_stop = np.minimum(np.ceil(vmax - 0.5), shape[0]).astype(np.int64)
    n_rows = np.maximum(r_stop - r_first, 0)
    if n_rows.sum() == 0:
        return empty
    e = np.repeat(np.arange(len(u0)), n_rows)
    rows = r_first[e] + ramp(n_rows)
    t = (rows + 0.5 - v0[e]) / (v1[e] - v0[e])
    xs = u0[e] + t * (u1[e] - u0[e])
    gid = edge_geom[e]
    # Crossings come out nearly sorted by (polygon, row): a stable sort on that key is
    # cheap; only the rare groups of more than two crossings need sorting by x.
    key = gid * np.int64(shape[0]) + rows
    order = np.argsort(key, kind="stable")
    key, gid, rows, xs = key[order], gid[order], rows[order], xs[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    big = np.flatnonzero(np.repeat(sizes > 2, sizes))
    if len(big):
        xs[big] = xs[big][np.lexsort((xs[big], key[big]))]
    xa, xb = np.minimum(xs[0::2], xs[1::2]), np.maximum(xs[0::2], xs[1::2])
    c_first = np.maximum(np.ceil(xa - 0.5), 0).astype(np.int64)
    c_stop = np.minimum(np.ceil(xb - 0.5), shape[1]).astype(np.int64)
    keep = c_stop > c_first
    return gid[0::2][keep], rows[0::2][keep], c_first[keep], (c_stop - c_first)[keep]


def covered_cells(geoms: np.ndarray, *, transform: Affine, shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells whose centre lies inside each polygon.

    Parameters
    ----------
    geoms
        Polygons or multipolygons.
    transform
        Affine transform of the raster.
    shape
        (rows, columns) of the raster.

    Returns
    -------
    tuple of numpy.ndarray
        ``geom_index``, ``row``, ``col`` of every covered cell, grouped by
        ``geom_index`` in increasing order.
    """
    gid, rows, first, n = covered_spans(geoms, transform=transform, shape=shape)
    s = np.repeat(np.arange(len(gid)), n)
    return gid[s], rows[s], first[s] + ramp(n)


def zonal_stats(geoms: np.ndarray, values: np.ndarray, *, transform: Affine) -> ZonalStats:
    """Mean and maximum of ``values`` over the cells of each polygon.

    Parameters
    ----------
    geoms
        Polygons, in the raster's CRS.
    values
        2-D raster, NaN where unknown.
    transform
        Its affine transform.

    Returns
    -------
    ZonalStats
        Arrays aligned to ``geoms``. A polygon that covers no cell centre takes the
        value of the cell under its representative point (``count`` stays 0).
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    gid, rows, first, n_cols = covered_spans(geoms, transform=transform, shape=values.shape)
    span_start = np.cumsum(n_cols) - n_cols
    flat = np.arange(int(n_cols.sum()), dtype=np.int64) + np.repeat(
        rows * values.shape[1] + first - span_start, n_cols)
    vals = values.ravel()[flat]
    ok = ~np.isnan(vals)
    # Runs are contiguous in ``vals``: reduce each run, then each polygon's runs.
    count = np.bincount(gid, weights=n_cols, minlength=n).astype(np.int64)
    mean = np.full(n, np.nan)
    vmax = np.full(n, np.nan)
    if len(vals):
        run_valid = np.add.reduceat(ok.astype(np.int64), span_start)
        run_sum = np.add.reduceat(np.where(ok, vals, 0.0), span_start)
        run_max = np.maximum.reduceat(np.where(ok, vals, -np.inf), span_start)
        n_valid = np.bincount(gid, weights=run_valid, minlength=n)
        total = np.bincount(gid, weights=run_sum, minlength=n)
        has = n_valid > 0
        mean[has] = total[has] / n_valid[has]
        g_start = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]])
        gmax = np.maximum.reduceat(run_max, g_start)
        vmax[gid[g_start]] = np.where(np.isfinite(gmax), gmax, np.nan)
    missing = np.flatnonzero(count == 0)
    if len(missing):
        fallback = _value_at(shapely.point_on_surface(geoms[missing]), values, transform)
        mean[missing] = fallback
        vmax[missing] = fallback
    return ZonalStats(mean=mean, max=vmax, count=count)


def _value_at(points: np.ndarray, values: np.ndarray, transform: Affine) -> np.ndarray:
    """Value of the cell under each point (NaN outside the raster or for empty points)."""
    out = np.full(len(points), np.nan)
    present = ~(shapely.is_missing(points) | shapely.is_empty(points))
    if not present.any():
        return out
    xy = shapely.get_coordinates(points[present])
    inv = ~transform
    c = np.floor(inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c).astype(np.int64)
    r = np.floor(inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f).astype(np.int64)
    inside = (r >= 0) & (r < values.shape[0]) & (c >= 0) & (c < values.shape[1])
    got = np.full(len(xy), np.nan)
    got[inside] = values[r[inside], c[inside]]
    out[present] = got
    return out


def parcel_slope(geoms: np.ndarray, raster: RasterLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and maximum slope (%) of each parcel.

    Parameters
    ----------
    geoms
        Parcel polygons, in the raster's CRS.
    raster
        The DEM (elevations in metres, nodata honoured).

    Returns
    -------
    tuple of numpy.ndarray
        ``pente_moy_pct`` and ``pente_max_pct``; NaN for parcels off the DEM or on
        nodata cells.
    """
    slope = slope_percent(masked_elevation(raster), cell_size=cell_size(raster.transform))
    stats = zonal_stats(geoms, slope, transform=raster.transform)
    return stats.mean, stats.max


__all__ = ["RasterLike", "RasterWindow", "ZonalStats", "cell_size", "covered_cells",
           "covered_spans", "masked_elevation", "parcel_slope", "raster_window",
           "slope_percent", "zonal_stats"]
