"""Tiled reads: a grid of tiles reads a large source piece by piece, each feature exactly once.

The invariant: for any grid, the union over the tiles of ``read_batiments(source,
bbox=B, tile=t)`` is ``read_batiments(source, bbox=B)`` (same rows, columns and
dtypes), and the merged reports count each feature and each repair once.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from observatoire.config import Source, load_territory
from observatoire.errors import ConfigError, SourceError
from observatoire.readers.layers import read_batiments, read_routes
from observatoire.readers.lineage import SourceReport, merge_reports
from observatoire.readers.tiles import (
    BBOX_MARGIN_M,
    Tile,
    max_feature_extent,
    tile_grid,
    tile_read_box,
)

L93 = "EPSG:2154"
X0, Y0 = 900_000.0, 6_700_000.0
#: The territory box of the hand-built file: 3 × 3 tiles of 100 m.
BOX = (X0, Y0, X0 + 300.0, Y0 + 300.0)
REPAIRED = "géométries réparées (make_valid)"


# --- the grid ---------------------------------------------------------------------------------

def test_grid_of_squares_whose_edge_tiles_reach_infinity():
    tiles = tile_grid((0.0, 0.0, 25.0, 15.0), size=10.0)
    assert [(t.column, t.row) for t in tiles] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert [t.bounds for t in tiles[:3]] == [(0.0, 0.0, 10.0, 10.0), (10.0, 0.0, 20.0, 10.0),
                                             (20.0, 0.0, 30.0, 10.0)]
    assert tiles[4].bounds == (10.0, 10.0, 20.0, 20.0)
    inf = math.inf
    assert [t.assignment for t in tiles] == [
        (-inf, -inf, 10.0, 10.0), (10.0, -inf, 20.0, 10.0), (20.0, -inf, inf, 10.0),
        (-inf, 10.0, 10.0, inf), (10.0, 10.0, 20.0, inf), (20.0, 10.0, inf, inf)]
    assert [t.is_first for t in tiles] == [True] + [False] * 5


def test_a_tile_larger_than_the_box_is_the_only_one_and_owns_everything():
    (tile,) = tile_grid((5.0, 5.0, 6.0, 6.0), size=1000.0)
    assert tile.bounds == (5.0, 5.0, 1005.0, 1005.0)
    assert tile.assignment == (-math.inf, -math.inf, math.inf, math.inf) and tile.is_first
    far = [shapely.box(-1e6, -1e6, -1e6 + 1, -1e6 + 1), shapely.box(1e6, 1e6, 1e6 + 1, 1e6 + 1),
           None, shapely.Polygon()]
    assert tile.owns(far).tolist() == [True, True, True, True]
    assert tile_grid((3.0, 4.0, 3.0, 4.0), size=1.0)[0].is_first  # a point: one tile


def test_the_lower_left_corner_decides_on_half_open_edges():
    tiles = {(t.column, t.row): t for t in tile_grid((0.0, 0.0, 20.0, 20.0), size=10.0)}
    on_edge = shapely.box(10.0, 10.0, 15.0, 15.0)  # corner on the shared edges
    across = shapely.box(9.0, 9.0, 11.0, 11.0)  # over the four tiles
    assert [k for k, t in tiles.items() if t.owns([on_edge])[0]] == [(1, 1)]
    assert [k for k, t in tiles.items() if t.owns([across])[0]] == [(0, 0)]
    # Null and empty geometries have no corner: the first tile answers for them.
    assert [k for k, t in tiles.items() if t.owns([None, shapely.Point()]).all()] == [(0, 0)]
    assert tiles[(0, 0)].owns([]).shape == (0,)


@settings(max_examples=40, deadline=None)
@given(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(0, 1e3),
                 st.floats(0, 1e3)),
       st.floats(40.0, 800.0),
       st.lists(st.tuples(st.floats(-3e3, 3e3), st.floats(-3e3, 3e3), st.floats(0, 500),
                          st.floats(0, 500)), min_size=1, max_size=30))
def test_every_geometry_belongs_to_exactly_one_tile(box, size, rects):
    xmin, ymin, w, h = box
    tiles = tile_grid((xmin, ymin, xmin + w, ymin + h), size=size)
    geoms = [shapely.box(x, y, x + dx, y + dy) for x, y, dx, dy in rects] + [None]
    owners = np.sum([t.owns(geoms) for t in tiles], axis=0)
    assert owners.tolist() == [1] * len(geoms)


@pytest.mark.parametrize(("bounds", "size", "message"), [
    ((0, 0, 10, 10), 0.0, "taille 0.0 invalide"),
    ((0, 0, 10, 10), -5, "taille -5 invalide"),
    ((0, 0, 10, 10), float("nan"), "taille nan invalide"),
    ((10, 0, 0, 10), 1.0, "emprise .* invalide"),
    ((0, 0, float("inf"), 10), 1.0, "emprise .* invalide"),
    ((0, 0, 1e6, 1e6), 0.5, "choisissez des tuiles plus grandes"),
])
def test_bad_grids_are_refused(bounds, size, message):
    with pytest.raises(ConfigError, match=message):
        tile_grid(bounds, size=size)


# --- merged reports -------------------------------------------------------------------------

def test_merge_reports_sums_counts_and_keeps_the_earliest_time():
    a, b = Path("a.gpkg"), Path("b.gpkg")
    first = SourceReport(kind="batiments", paths=[a], format="auto", layer=None, checksum="c1",
                         features_read=10, features_kept=8, crs_in=None,
                         repairs={"géométries nulles": 2}, read_at="2026-01-02T10:00:05+00:00")
    second = SourceReport(kind="batiments", paths=[a, b], format="auto", layer="bati",
                          checksum="c1", features_read=5, features_kept=5, crs_in="EPSG:2154",
                          repairs={"géométries nulles": 1, REPAIRED: 3},
                          read_at="2026-01-02T09:59:59+00:00")
    third = SourceReport(kind="batiments", paths=[b], format="auto", layer="bati", checksum="c1",
                         features_read=0, features_kept=0, crs_in="EPSG:2154", repairs={},
                         read_at="")
    merged = merge_reports([first, second, third])
    assert merged == SourceReport(kind="batiments", paths=[a, b], format="auto", layer="bati",
                                  checksum="c1", features_read=15, features_kept=13,
                                  crs_in="EPSG:2154",
                                  repairs={"géométries nulles": 3, REPAIRED: 3},
                                  read_at="2026-01-02T09:59:59+00:00")
    assert first.repairs == {"géométries nulles": 2}  # the pieces are not modified
    assert merge_reports([third]) == third
    with pytest.raises(ValueError, match="aucun rapport"):
        merge_reports([])


# --- the invariant ----------------------------------------------------------------------------

def _rows(frame: gpd.GeoDataFrame, key: str) -> list[tuple]:
    """Rows as comparable tuples (key, geometry WKB, every attribute as text), sorted."""
    def as_text(column: pd.Series) -> list[str]:
        return ["<NULL>" if pd.isna(v) else repr(v) for v in column.astype(object)]

    attrs = zip(*(as_text(frame[c]) for c in frame.columns if c != frame.geometry.name),
                strict=True)
    wkb = shapely.to_wkb(np.asarray(frame.geometry.values, dtype=object))
    return sorted(zip(as_text(frame[key]), wkb, attrs, strict=True))


def _is_text(dtype) -> bool:
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def _kinds(frame: gpd.GeoDataFrame) -> dict[str, str]:
    return {c: "texte" if _is_text(d) else str(d) for c, d in frame.dtypes.items()}


def assert_tiles_make_the_whole(reader, source: Source, *, size: float,
                                bbox: tuple[float, ...] | None, grid=None, key="bati_id"):
    """Read ``source`` whole and tile by tile; check the invariant; return both."""
    whole = reader(source, crs=L93, bbox=bbox)
    tiles = tile_grid(grid or bbox, size=size)
    pieces = [reader(source, crs=L93, bbox=bbox, tile=t) for t in tiles]
    for piece in pieces:
        assert list(piece.frame.columns) == list(whole.frame.columns)
        assert piece.frame.crs == whole.frame.crs
        assert piece.report.checksum == whole.report.checksum
        # conform() types an all-null text column ``object``, another ``str``: a tile
        # whose ids are all null has an object column; otherwise the dtypes are the whole's.
        for column, dtype in whole.frame.dtypes.items():
            if piece.frame[column].notna().any() or not _is_text(dtype):
                assert piece.frame[column].dtype == dtype, column
    union = pd.concat([p.frame for p in pieces if len(p.frame)], ignore_index=True)
    union = gpd.GeoDataFrame(union, geometry="geometry", crs=L93)
    assert _kinds(union) == _kinds(whole.frame)
    assert _rows(union, key) == _rows(whole.frame, key)
    merged = merge_reports([p.report for p in pieces])
    assert merged.features_read == whole.report.features_read
    assert merged.features_kept == whole.report.features_kept == len(whole.frame)
    assert merged.repairs == whole.report.repairs
    assert (merged.layer, merged.crs_in) == (whole.report.layer, whole.report.crs_in)
    return whole, dict(zip([(t.column, t.row) for t in tiles], pieces, strict=True))


def _sample(kind: str) -> Source:
    source = load_territory(SAMPLE / "territoire.toml").source(kind)
    assert source is not None
    return source


SAMPLE_BOX = (935_565.0, 6_686_720.0, 937_587.0, 6_687_750.0)
#: A corner of the sample where buildings are larger than 8 m tiles and cross the box's edges.
SMALL_BOX = (936_110.0, 6_686_740.0, 936_150.0, 6_686_780.0)


@pytest.mark.parametrize(("bbox", "size"), [
    (SAMPLE_BOX, 10_000.0),  # a single tile
    (SAMPLE_BOX, 300.0),
    ((936_000.0, 6_686_900.0, 936_600.0, 6_687_400.0), 130.0),  # a box cutting the layer
    (SMALL_BOX, 8.0),  # tiles smaller than one building
])
def test_tiles_of_the_sample_buildings_make_the_whole_read(bbox, size):
    whole, pieces = assert_tiles_make_the_whole(read_batiments, _sample("batiments"), size=size,
                                                bbox=bbox)
    assert len(whole.frame) > 0
    if len(pieces) > 1:
        assert sum(len(p.frame) > 0 for p in pieces.values()) > 1
        assert any(len(p.frame) == 0 for p in pieces.values()) or size > 100


def test_tiles_smaller_than_a_building_split_it_nowhere():
    """In SMALL_BOX, one building covers several 8 m tiles and is read by one only."""
    whole, pieces = assert_tiles_make_the_whole(read_batiments, _sample("batiments"), size=8.0,
                                                bbox=SMALL_BOX)
    widths = whole.frame.geometry.bounds
    big = whole.frame[(widths.maxx - widths.minx > 16) | (widths.maxy - widths.miny > 16)]
    assert len(big) > 0
    for geom in big.geometry:
        holders = [k for k, p in pieces.items()
                   if (p.frame.geometry.geom_equals_exact(geom, 0)).any()]
        assert len(holders) == 1


def test_tiles_of_the_sample_roads_make_the_whole_read():
    """Roads reach far beyond a 250 m tile: the read box reaches by the longest one."""
    assert_tiles_make_the_whole(read_routes, _sample("routes"), size=250.0,
                                bbox=(935_500.0, 6_686_300.0, 937_000.0, 6_687_500.0),
                                key="route_id")


# --- a hand-built file with the hard cases -----------------------------------------------------

def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def _poly(*xy: tuple[float, float]) -> shapely.Polygon:
    return shapely.Polygon([(X0 + x, Y0 + y) for x, y in xy])


#: id → (geometry, HAUTEUR as text); coordinates relative to (X0, Y0), tiles of 100 m.
BUILDINGS: dict[str, tuple[shapely.Geometry | None, str | None]] = {
    # Over the corner shared by four tiles: corner (90, 190) in tile (0, 1).
    "quatre": (_box(90, 190, 110, 210), "9"),
    # A bow-tie across the edge x = 200: repaired once, by tile (1, 0).
    "papillon": (_poly((190, 50), (210, 70), (210, 50), (190, 70)), "4,5"),
    # Corner outside the box, the building inside it: first column.
    "dehors_gauche": (_box(-20, 150, 10, 160), "3"),
    "dehors_coin": (_box(-20, -20, 20, 20), None),
    # Corner in tile (0, 0), the building 170 m away from that square: a ⌝ of 230 m.
    "equerre": (shapely.union(_box(60, 270, 290, 290), _box(270, 60, 290, 290)), "12"),
    # Outside the box by 10 m: read by GDAL (margin) and counted, then clipped away.
    "marge": (_box(310, 100, 320, 110), "7"),
    # Outside by 70 m: beyond the margin of the box's read, within that of a tile's.
    "loin": (_box(370, 100, 380, 110), "8"),
    # Corner exactly on the edges x = 100, y = 100: tile (1, 1) only.
    "sur_le_bord": (_box(100, 100, 120, 130), "douze"),
    # A polygon flattened to a line, alone in tile (1, 2): dropped and counted once.
    "ecrase": (_poly((150, 250), (160, 250), (155, 250), (150, 250)), "5"),
    "ordinaire": (_box(230, 230, 240, 245), "6"),
    "sans_geometrie": (None, "1"),
}


def _buildings_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"ID": list(BUILDINGS), "HAUTEUR": [h for _, h in BUILDINGS.values()]},
        geometry=[g for g, _ in BUILDINGS.values()], crs=L93)


@pytest.fixture
def buildings(tmp_path: Path) -> Source:
    path = tmp_path / "batiment.gpkg"
    pyogrio.write_dataframe(_buildings_frame(), path, layer="batiment",
                            geometry_type="MultiPolygon", promote_to_multi=True)
    return Source(kind="batiments", paths=(path,), key="sources.batiments")


def _holder(pieces: dict, bati_id: str) -> list[tuple[int, int]]:
    return [k for k, p in pieces.items() if bati_id in set(p.frame["bati_id"])]


def test_hand_built_tiles_make_the_whole_read(buildings):
    whole, pieces = assert_tiles_make_the_whole(read_batiments, buildings, size=100.0,
                                                bbox=BOX)
    kept = set(whole.frame["bati_id"])
    assert kept == {"quatre", "papillon", "dehors_gauche", "dehors_coin", "equerre",
                    "sur_le_bord", "ordinaire"}
    # Read: all but the null geometry (it meets no box) — "marge", in GDAL's margin, too.
    assert whole.report.features_read == 9
    assert whole.report.repairs == {
        REPAIRED: 2, "géométries d'un autre type que MultiPolygon écartées": 1,
        "valeurs non numériques du champ « hauteur » mises à NULL": 1}
    assert _holder(pieces, "quatre") == [(0, 1)]
    assert _holder(pieces, "papillon") == [(1, 0)]
    assert _holder(pieces, "dehors_gauche") == [(0, 1)]
    assert _holder(pieces, "dehors_coin") == [(0, 0)]
    assert _holder(pieces, "equerre") == [(0, 0)]
    assert _holder(pieces, "sur_le_bord") == [(1, 1)]
    assert pieces[(1, 0)].report.repairs == {REPAIRED: 1}
    # The flattened polygon is alone in its tile: no GeometryError, counted there only.
    assert len(pieces[(1, 2)].frame) == 0
    assert pieces[(1, 2)].report.repairs == {
        REPAIRED: 1, "géométries d'un autre type que MultiPolygon écartées": 1}
    assert pieces[(1, 2)].report.features_read == 1
    # "marge" is read and counted by its tile, then clipped away.
    assert pieces[(2, 1)].report.features_read == 1 and len(pieces[(2, 1)].frame) == 0
    assert pieces[(1, 1)].frame["hauteur"].isna().all()


def test_a_building_far_from_the_square_of_its_tile_is_read_by_that_tile(buildings):
    """GDAL keeps what meets its box: the box reaches beyond the square by the widest feature."""
    equerre = BUILDINGS["equerre"][0]
    (first,) = [t for t in tile_grid(BOX, size=100.0) if t.is_first]
    square_and_margin = shapely.box(*first.bounds).buffer(BBOX_MARGIN_M, join_style="mitre")
    assert not equerre.intersects(square_and_margin)
    path = buildings.paths[0]
    assert max_feature_extent(path, "batiment", crs=L93) == pytest.approx(230.0, abs=0.01)
    box = tile_read_box(path, "batiment", first, crs=L93, bbox=BOX)
    assert box is not None and box is not False
    assert equerre.intersects(shapely.box(*box))


def test_hand_built_tiles_without_a_box(buildings):
    """Without ``bbox`` the tiles read the whole layer: the null geometry is counted once."""
    whole, pieces = assert_tiles_make_the_whole(read_batiments, buildings, size=100.0,
                                                bbox=None, grid=BOX)
    assert whole.report.features_read == len(BUILDINGS)
    assert _holder(pieces, "loin") == [(2, 1)]
    assert whole.report.repairs["géométries nulles"] == 1
    assert pieces[(0, 0)].report.repairs["géométries nulles"] == 1
    assert _holder(pieces, "marge") == [(2, 1)]


@pytest.mark.parametrize("size", [35.0, 100.0, 1000.0])
def test_hand_built_tiles_of_a_file_in_lon_lat(tmp_path, size):
    """Tiles in the territory CRS, GDAL reads degrees: the corner is taken after reprojection."""
    path = tmp_path / "batiment.gpkg"
    pyogrio.write_dataframe(_buildings_frame().to_crs(4326), path, layer="batiment",
                            geometry_type="MultiPolygon", promote_to_multi=True)
    # The envelope in degrees of a 230 m square, turned by the meridian convergence (2°).
    assert 230.0 < max_feature_extent(path, "batiment", crs=L93) < 260.0
    source = Source(kind="batiments", paths=(path,), key="sources.batiments")
    whole, _ = assert_tiles_make_the_whole(read_batiments, source, size=size, bbox=BOX)
    assert "equerre" in set(whole.frame["bati_id"])


def test_tiles_of_several_files_with_a_declared_crs(tmp_path):
    """The declared CRS replaces each file's: counted once per file, not once per tile."""
    frame = _buildings_frame()
    paths = []
    for i, part in enumerate((frame.iloc[::2], frame.iloc[1::2])):
        path = tmp_path / f"batiment{i}.gpkg"
        # Lambert-93 numbers labelled Lambert II étendu: the territory file declares 2154.
        pyogrio.write_dataframe(part.set_crs(27572, allow_override=True), path,
                                layer="batiment", geometry_type="MultiPolygon",
                                promote_to_multi=True)
        paths.append(path)
    source = Source(kind="batiments", paths=tuple(paths), crs=L93, key="sources.batiments")
    whole, _ = assert_tiles_make_the_whole(read_batiments, source, size=100.0, bbox=BOX)
    assert whole.report.repairs["CRS du fichier remplacé par celui déclaré (fichiers)"] == 2


def test_a_tile_that_reads_nothing_is_not_an_empty_layer(buildings, tmp_path):
    far = Tile(bounds=(0.0, 0.0, 10.0, 10.0), assignment=(0.0, 0.0, 10.0, 10.0))
    assert tile_read_box(buildings.paths[0], "batiment", far, crs=L93, bbox=BOX) is False
    result = read_batiments(buildings, crs=L93, bbox=BOX, tile=far)
    assert len(result.frame) == 0 and result.report.features_read == 0
    assert list(result.frame.columns) == ["bati_id", "nature", "hauteur", "source", "geometry"]
    # A tile inside the box holding no building: nothing, no error.
    empty_tile = [t for t in tile_grid(BOX, size=100.0) if (t.column, t.row) == (2, 0)][0]
    assert len(read_batiments(buildings, crs=L93, bbox=BOX, tile=empty_tile).frame) == 0
    # A genuinely empty layer is still refused.
    empty = tmp_path / "vide.gpkg"
    pyogrio.write_dataframe(_buildings_frame().iloc[:0], empty, layer="batiment",
                            geometry_type="MultiPolygon")
    source = Source(kind="batiments", paths=(empty,), key="sources.batiments")
    for tile in (far, empty_tile, tile_grid(BOX, size=100.0)[0]):
        with pytest.raises(SourceError, match="couche vide"):
            read_batiments(source, crs=L93, bbox=BOX, tile=tile)


def test_max_feature_extent_without_a_spatial_index(tmp_path):
    """A shapefile (no R-tree) is scanned; an unknown layer gives infinity (read everything)."""
    path = tmp_path / "batiment.shp"
    pyogrio.write_dataframe(_buildings_frame(), path)
    assert max_feature_extent(path, "batiment", crs=L93) == 230.0
    assert max_feature_extent(path, "absente", crs=L93) == math.inf
    assert max_feature_extent(tmp_path / "absent.gpkg", None, crs=L93) == math.inf


def test_features_without_geometry_are_not_read_through_a_box(buildings):
    """GDAL's Arrow reader returns them when the box holds the layer's extent: dropped alike."""
    everything = (X0 - 100.0, Y0 - 100.0, X0 + 500.0, Y0 + 500.0)
    raw = pyogrio.read_dataframe(buildings.paths[0], bbox=everything, use_arrow=True)
    whole, _ = assert_tiles_make_the_whole(read_batiments, buildings, size=100.0,
                                           bbox=everything)
    assert whole.report.features_read == len(BUILDINGS) - 1
    assert "géométries nulles" not in whole.report.repairs
    assert len(raw) >= whole.report.features_read  # GDAL's quirk, or its fix
