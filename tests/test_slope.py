"""Slope grid and zonal statistics: tilted planes, hand-made rasters, rasterio parity, real DEM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio.features
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from observatoire.analysis.slope import (
    cell_size,
    covered_cells,
    masked_elevation,
    parcel_slope,
    raster_window,
    slope_percent,
    zonal_stats,
)
from observatoire.config import Source
from observatoire.readers.mnt import RasterResult, read_mnt

TESTDATA = Path(__file__).resolve().parent / "data"


def plane(nrows: int, ncols: int, *, res: float, a: float, b: float,
          x0: float = 900_000.0, y0: float = 6_700_000.0) -> tuple[np.ndarray, Affine]:
    """z = a·x + b·y sampled at cell centres of a north-up grid."""
    transform = Affine(res, 0, x0, 0, -res, y0)
    cols, rows = np.meshgrid(np.arange(ncols), np.arange(nrows))
    x = x0 + (cols + 0.5) * res
    y = y0 - (rows + 0.5) * res
    return a * (x - x0) + b * (y - y0) + 200.0, transform


class Raster:
    def __init__(self, array: np.ndarray, transform: Affine, nodata: float | None = None):
        self.array, self.transform, self.nodata, self.crs = array, transform, nodata, "EPSG:2154"


def test_tilted_plane_slope_is_exact_everywhere_including_edges():
    z, tr = plane(40, 60, res=5.0, a=0.05, b=0.0)
    s = slope_percent(z, cell_size=cell_size(tr))
    # z = 0.05·x rises 5 m every 100 m: 5 % in every cell, borders included.
    np.testing.assert_allclose(s, 5.0, rtol=0, atol=1e-9)


def test_oblique_plane_slope():
    # Gradient (0.03, 0.04): |∇z| = 0.05 → 5 %.
    z, tr = plane(30, 30, res=2.0, a=0.03, b=0.04)
    np.testing.assert_allclose(slope_percent(z, cell_size=cell_size(tr)), 5.0, atol=1e-9)


def test_nodata_is_masked_and_does_not_leak():
    z, tr = plane(10, 10, res=10.0, a=0.05, b=0.0)
    z = z.astype("float32")
    z[4, 4] = np.float32(-9999.9)  # as read from an ESRI ASCII grid
    elev = masked_elevation(Raster(z, tr, nodata=-9999.9))
    assert np.isnan(elev[4, 4]) and np.isfinite(elev).sum() == 99
    s = slope_percent(elev, cell_size=(10.0, 10.0))
    # The nodata cell and its 8 neighbours have no slope; the rest keep 5 %.
    assert np.isnan(s[3:6, 3:6]).all()
    assert np.isnan(s).sum() == 9
    np.testing.assert_allclose(s[np.isfinite(s)], 5.0, atol=1e-3)


def test_zonal_stats_by_hand():
    # 4 × 4 raster of 10 m cells, values 0..15 row by row, origin (0, 40).
    values = np.arange(16, dtype=float).reshape(4, 4)
    tr = Affine(10, 0, 0, 0, -10, 40)
    # A square over the centres of cells (1,1), (1,2), (2,1), (2,2): values 5, 6, 9, 10.
    square = shapely.box(12, 12, 28, 28)
    # A polygon off the raster, and one smaller than a cell in cell (0, 3) (value 3).
    off = shapely.box(100, 100, 110, 110)
    tiny = shapely.box(31, 31, 33, 33)
    stats = zonal_stats(np.array([square, off, tiny]), values, transform=tr)
    assert stats.mean[0] == pytest.approx((5 + 6 + 9 + 10) / 4)
    assert stats.max[0] == 10
    assert stats.count.tolist() == [4, 0, 0]
    assert np.isnan(stats.mean[1]) and np.isnan(stats.max[1])
    assert stats.mean[2] == 3 and stats.max[2] == 3


def test_zonal_stats_ignore_nan_cells():
    values = np.arange(16, dtype=float).reshape(4, 4)
    values[1, 1] = np.nan
    tr = Affine(10, 0, 0, 0, -10, 40)
    stats = zonal_stats(np.array([shapely.box(12, 12, 28, 28)]), values, transform=tr)
    assert stats.mean[0] == pytest.approx((6 + 9 + 10) / 3)
    assert stats.count[0] == 4


def test_holes_and_multiparts():
    values = np.ones((10, 10))
    tr = Affine(1, 0, 0, 0, -1, 10)
    ring = shapely.box(0, 0, 10, 10).difference(shapely.box(3, 3, 7, 7))
    multi = shapely.MultiPolygon([shapely.box(0, 0, 2, 2), shapely.box(8, 8, 10, 10)])
    gid, _, _ = covered_cells(np.array([ring, multi]), transform=tr, shape=values.shape)
    assert np.bincount(gid).tolist() == [100 - 16, 8]


def test_parcel_slope_on_tilted_plane():
    z, tr = plane(100, 100, res=5.0, a=0.05, b=0.0)
    x0, y0 = 900_000.0, 6_700_000.0
    parcels = np.array([shapely.box(x0 + 50, y0 - 300, x0 + 180, y0 - 120),
                        shapely.box(x0 + 401, y0 - 99, x0 + 403, y0 - 97)])
    mean, vmax = parcel_slope(parcels, Raster(z, tr))
    np.testing.assert_allclose(mean, 5.0, atol=1e-9)
    np.testing.assert_allclose(vmax, 5.0, atol=1e-9)


polygon_xy = st.lists(st.tuples(st.floats(0.13, 49.87), st.floats(0.11, 39.91)),
                      min_size=3, max_size=12)


@settings(max_examples=40, deadline=None)
@given(st.lists(polygon_xy, min_size=1, max_size=6))
def test_scanline_matches_rasterio(polys_xy):
    """The vectorised scanline selects the cells rasterio burns (all_touched=False)."""
    geoms = []
    for xy in polys_xy:
        g = shapely.make_valid(shapely.Polygon(xy).buffer(0))
        if g.is_empty or g.area == 0:
            continue
        polys = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
        if polys:
            geoms.append(shapely.MultiPolygon(polys))
    if not geoms:
        return
    tr = Affine(1.0, 0, 0, 0, -1.0, 40)
    shape = (40, 50)
    for k, g in enumerate(geoms):
        gid, r, c = covered_cells(np.array([g]), transform=tr, shape=shape)
        mine = np.zeros(shape, dtype=np.uint8)
        mine[r, c] = 1
        ref = rasterio.features.rasterize([(g, 1)], out_shape=shape, transform=tr,
                                          all_touched=False, dtype="uint8")
        # Cell centres lying exactly on an edge are a matter of convention: only they
        # may differ.
        rows, cols = np.nonzero(mine != ref)
        centres = shapely.points(cols + 0.5, 40 - (rows + 0.5))
        assert (shapely.distance(centres, g.boundary) < 1e-9).all(), k


def test_real_dem_slope_statistics():
    """The real Strasbourg DEM (no .prj, nodata -9999.9): masked, plausible slopes."""
    path = TESTDATA / "MNT.asc"
    dem: RasterResult = read_mnt(Source(kind="mnt", paths=(path,), key="sources.mnt",
                                        crs="EPSG:2154"), crs="EPSG:2154")
    elev = masked_elevation(dem)
    assert np.nanmin(elev) > 100 and np.nanmax(elev) < 200  # Rhine plain, ~135–160 m
    slope = slope_percent(elev, cell_size=cell_size(dem.transform))
    valid = slope[np.isfinite(slope)]
    # A nodata value leaking into a 3 × 3 window would give slopes of 10⁴–10⁵ %.
    assert valid.max() < 150
    assert 0.2 < np.median(valid) < 5
    assert np.isnan(slope[np.isnan(elev)]).all()
    # Parcels: one in the valid area, one entirely on nodata (the grid's first row).
    xmin, ymin, xmax, ymax = dem.bounds
    inside = shapely.box(1_050_500, 6_840_000, 1_050_700, 6_840_150)
    on_nodata = shapely.box(xmin + 1, ymax - 9, xmin + 30, ymax - 1)
    mean, vmax = parcel_slope(np.array([inside, on_nodata]), dem)
    assert 0 <= mean[0] <= vmax[0] < 150
    assert np.isnan(mean[1]) and np.isnan(vmax[1])


def test_window_gives_the_whole_raster_slopes():
    # A rough surface with nodata holes; parcels inside, across the edge and off the DEM.
    rng = np.random.default_rng(3)
    tr = Affine.translation(1000.0, 2000.0) @ Affine.scale(5.0, -5.0)
    z = rng.normal(100.0, 3.0, (60, 80)).cumsum(axis=1) / 10
    z[10:13, 20:22] = -9999.0
    raster = Raster(z, tr, nodata=-9999.0)
    boxes = [(1003, 1710, 1041, 1760), (1100, 1800, 1180, 1850), (1380, 1930, 1420, 2010),
             (1195, 1905, 1222, 1947), (2000, 3000, 2050, 3050)]
    parcels = shapely.box(*np.array(boxes, dtype=float).T)
    whole = parcel_slope(parcels, raster)
    for k, p in enumerate(parcels):
        window = raster_window(raster, p.bounds)
        assert window.array.size < z.size
        part = parcel_slope(np.array([p]), window)
        np.testing.assert_array_equal(part[0], whole[0][k:k + 1])
        np.testing.assert_array_equal(part[1], whole[1][k:k + 1])
    assert np.isnan(whole[0][-1])  # off the DEM: NaN, through the window too
