"""Indicators on tiny hand-made fixtures: every expected value is computed by hand."""

from __future__ import annotations

import math
import pickle

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from geopandas.testing import assert_geodataframe_equal
from hypothesis import given, settings
from hypothesis import strategies as st

from observatoire.analysis.coverage import bati, part_contrainte, zae_dominante, zonage_dominant
from observatoire.analysis.distances import distance_plus_proche, distance_targets, distances_routes
from observatoire.analysis.friche_links import friche
from observatoire.analysis.indicators import Constraint, compute_indicators
from observatoire.analysis.nearest import DistanceTargets, nearest_distance
from observatoire.analysis.overlay import covered_share, overlap_pairs
from observatoire.analysis.shape import compacite, emprise_possible, largeur_utile
from observatoire.config import load_territory
from observatoire.errors import ConfigError
from observatoire.ingest import ingest

X0, Y0 = 900_000.0, 6_700_000.0
CRS = "EPSG:2154"


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    """A box in local metres, placed in Lambert-93."""
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def frame(geoms: list, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)


def parcels(geoms: list) -> gpd.GeoDataFrame:
    idu = [f"25267000AB{k:04d}" for k in range(len(geoms))]
    return frame(geoms, idu=idu, surface_m2=[g.area for g in geoms])


def friches_frame(geoms: list, **cols) -> gpd.GeoDataFrame:
    n = len(geoms)
    base = {"site_id": [f"F{k}" for k in range(n)], "site_statut": ["friche sans projet"] * n,
            "site_type": ["friche industrielle"] * n, "unite_fonciere_refcad": [None] * n}
    return frame(geoms, **(base | cols))


# --------------------------------------------------------------------------- shape


def test_compacite_square_and_rectangle():
    p = parcels([box(0, 0, 100, 100), box(0, 0, 10, 40)])
    # Square: 4π·10000 / 400² = π/4; 10 × 40: 4π·400 / 100² = 0.16π.
    assert compacite(p).tolist() == pytest.approx([math.pi / 4, 0.16 * math.pi])


def test_largeur_utile_equivalent_rectangle():
    l_shape = shapely.union(box(0, 0, 60, 120), box(0, 0, 120, 60))
    p = parcels([box(0, 0, 40, 200), box(0, 0, 50, 50), l_shape])
    # Exact for a rectangle (40 m), a square (50 m) and an L of 60 m arms:
    # A = 10 800, P = 480 → w = (240 − √(240² − 4·10 800)) / 2 = 60.
    assert largeur_utile(p).tolist() == pytest.approx([40, 50, 60])


def test_emprise_50m():
    centre = shapely.Point(X0 + 500, Y0 + 500)
    tilted = shapely.affinity.rotate(box(0, 0, 60, 55), 30, origin="centroid")
    geoms = [
        box(0, 0, 50, 50),                 # exactly the footprint
        box(0, 0, 49, 300),                # too narrow
        tilted,                            # fits, rotated
        centre.buffer(30, quad_segs=64),   # disc Ø 60: a 50 m square needs Ø 70.7
        centre.buffer(36, quad_segs=64),   # disc Ø 72: fits
        shapely.union(box(0, 0, 40, 200), box(0, 0, 200, 40)),  # L of 40 m arms
        shapely.Polygon([(X0, Y0), (X0 + 150, Y0), (X0, Y0 + 150)]),  # right triangle
        box(0, 0, 100, 100),               # wide: a disc of Ø 70.7 fits, any orientation
        box(0, 0, 60, 400),                # too narrow for the disc; the square fits
    ]
    assert emprise_possible(parcels(geoms)).tolist() == [True, False, True, False, True,
                                                         False, True, True, True]


# --------------------------------------------------------------------------- overlaps


def test_overlap_pairs_inside_crossing_and_containing():
    a = np.array([box(0, 0, 100, 100), box(200, 0, 210, 10)])
    b = np.array([box(10, 10, 20, 30),      # inside a0: 200 m²
                  box(90, 0, 110, 10),      # crosses a0's edge: 100 m² inside
                  box(150, -50, 300, 50)])  # contains a1: 100 m²
    ia, ib, area = overlap_pairs(a, b)
    assert list(zip(ia.tolist(), ib.tolist(), area.tolist(), strict=True)) == [
        (0, 0, 200.0), (0, 1, 100.0), (1, 2, 100.0)]


def test_overlap_pairs_with_a_shared_tree_and_prepared_zones():
    # Five parcels in one zone (met by five pairs: the zone is prepared), one across
    # its edge; a building in the first parcel.
    a = np.array([box(10 * k, 0, 10 * k + 10, 10) for k in range(5)] + [box(95, 0, 105, 10)])
    zone = np.array([box(-1, -1, 100, 11)])
    ia, ib, area = overlap_pairs(a, zone, tree=shapely.STRtree(a))
    assert ia.tolist() == [0, 1, 2, 3, 4, 5]
    assert area.tolist() == pytest.approx([100, 100, 100, 100, 100, 50])
    # Nothing stays prepared: a prepared parcel would slow the contiguity tests.
    assert not shapely.is_prepared(a).any() and not shapely.is_prepared(zone).any()
    p = parcels(list(a))
    z = frame(list(zone), libelle=["UX"], typezone=["U"], zone_activite=[True])
    tree = shapely.STRtree(a)
    assert zonage_dominant(p, z, tree=tree)["zone_libelle"].tolist() == ["UX"] * 6
    assert part_contrainte(p, z, tree=tree).tolist() == pytest.approx([1] * 5 + [0.5])


def test_covered_share_counts_overlaps_once():
    a = np.array([box(0, 0, 100, 100), box(500, 500, 510, 510), box(0, 200, 10, 210)])
    # Two constraint polygons over the first parcel, 50 % each, overlapping on 25 %:
    # union 75 %. The second parcel lies inside a big polygon; the third in none.
    b = np.array([box(0, 0, 50, 100), box(0, 0, 100, 50), box(400, 400, 600, 600)])
    assert covered_share(a, b).tolist() == pytest.approx([0.75, 1.0, 0.0])


def test_bati_share_and_count():
    p = parcels([box(0, 0, 100, 100), box(100, 0, 200, 100)])
    b = frame([box(10, 10, 20, 30),       # 200 m² inside parcel 0
               box(90, 40, 110, 50),      # 200 m², half in each parcel
               box(195, 60, 205, 70),     # 100 m²: 50 in parcel 1, 50 outside
               box(-19, 50, 1, 55)],      # 100 m²: 5 m² in parcel 0 (a sliver)
              source=["b"] * 4)
    out = bati(p, b)
    # Parcel 0: 200 + 100 + 5 = 305 m² of 10 000; parcel 1: 100 + 50 = 150 m².
    assert out["part_batie"].tolist() == pytest.approx([0.0305, 0.0150])
    # The sliver (5 m², 5 % of its building) is not counted as a building.
    assert out["nb_batiments"].tolist() == [2, 2]


def test_zonage_dominant():
    p = parcels([box(0, 0, 100, 100), box(1000, 1000, 1010, 1010)])
    z = frame([box(-50, -50, 30, 150), box(30, -50, 200, 150)], libelle=["UA", "UY"],
              typezone=["U", "U"], zone_activite=[False, True])
    out = zonage_dominant(p, z)
    # 30 % in UA, 70 % in UY → UY; the second parcel is outside every zone.
    assert out["zone_libelle"].tolist() == ["UY", None]
    assert out["zone_typezone"].tolist() == ["U", None]
    assert bool(out["zone_activite"].iloc[0]) is True
    assert pd.isna(out["zone_activite"].iloc[1])


def test_zae_share():
    p = parcels([box(0, 0, 100, 100), box(300, 0, 400, 100)])
    z = frame([box(75, 0, 150, 100)], zae_id=["Z1"])
    out = zae_dominante(p, z)
    assert out["zae_id"].tolist() == ["Z1", None]
    assert out["part_zae"].tolist() == pytest.approx([0.25, 0.0])


def test_friche_links_and_priority():
    geoms = [box(0, 0, 100, 100), box(100, 0, 200, 100), box(200, 0, 300, 100),
             box(300, 0, 400, 100)]
    p = parcels(geoms)
    idu = p["idu"].tolist()
    # F0: a perimeter covering 40 % of parcel 0 and 10 % of parcel 1 (too little).
    # F1: a point in parcel 2 and its perimeter unknown. F2: lists parcel 3's IDU and
    # has its point in parcel 2 too: the IDU link wins for parcel 3; for parcel 2 the
    # two points compete and the smallest site_id wins.
    surfaces = friches_frame([box(60, 0, 110, 100)])
    points = friches_frame([shapely.Point(X0 + 250, Y0 + 50), shapely.Point(X0 + 260, Y0 + 50)],
                           site_id=["F1", "F2"], unite_fonciere_refcad=[None, idu[3]],
                           site_statut=["friche potentielle", "friche avec projet"])
    out = friche(p, points, surfaces)
    assert out["friche_id"].tolist() == ["F0", None, "F1", "F2"]
    assert out["friche_statut"].tolist() == ["friche sans projet", None,
                                             "friche potentielle", "friche avec projet"]
    assert out["friche_type"].iloc[0] == "friche industrielle"


def test_distances():
    p = parcels([box(0, 0, 10, 10), box(100, 0, 110, 10)])
    line = shapely.LineString([(X0 + 30, Y0 - 100), (X0 + 30, Y0 + 100)])
    rail = frame([line], nature=["voie"])
    # Parcel 0: its east edge x = 10 is 20 m from the line x = 30; parcel 1: 70 m.
    assert distance_plus_proche(p, rail, name="d").tolist() == pytest.approx([20, 70])
    empty = frame([], nature=[])
    assert distance_plus_proche(p, empty, name="d").isna().all()


coord = st.floats(-2000, 2000)


@settings(max_examples=50, deadline=None)
@given(parcels_xy=st.lists(st.tuples(coord, coord, st.floats(1, 80), st.floats(1, 80)),
                           min_size=1, max_size=15),
       lines_xy=st.lists(st.tuples(coord, coord, coord, coord), min_size=1, max_size=8),
       cell_parcels=st.sampled_from([1, 2, 16, 64]))
def test_nearest_distance_is_exact(parcels_xy, lines_xy, cell_parcels):
    """Whatever the cell size, the result is the brute-force minimum."""
    a = np.array([box(x, y, x + w, y + h) for x, y, w, h in parcels_xy])
    b = np.array([shapely.LineString([(X0 + x0, Y0 + y0), (X0 + x1 + 0.5, Y0 + y1)])
                  for x0, y0, x1, y1 in lines_xy])
    brute = shapely.distance(a[:, None], b[None, :]).min(axis=1)
    np.testing.assert_allclose(nearest_distance(a, b, cell_parcels=cell_parcels), brute, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(parcels_xy=st.lists(st.tuples(coord, coord, st.floats(1, 80), st.floats(1, 80)),
                           min_size=1, max_size=20),
       targets=st.lists(st.tuples(st.integers(0, 3), coord, coord, st.floats(0, 300)),
                        min_size=1, max_size=8),
       cell_parcels=st.sampled_from([1, 3, 16]))
def test_nearest_distance_equals_geos_for_points_lines_and_polygons(parcels_xy, targets,
                                                                   cell_parcels):
    """Bit for bit the GEOS distance to the nearest feature, whatever the feature type."""
    a = np.array([box(x, y, x + w, y + h) for x, y, w, h in parcels_xy] + [None],
                 dtype=object)
    made = []
    for kind, x, y, size in targets:
        p = shapely.Point(X0 + x, Y0 + y)
        made.append([p,
                     shapely.LineString([(X0 + x, Y0 + y), (X0 + x + size, Y0 + y + 1),
                                         (X0 + x + size, Y0 + y + size + 1)]),
                     p.buffer(size + 1, quad_segs=3),
                     shapely.MultiLineString([[(X0 + x, Y0 + y), (X0 + x, Y0 + y + 1)],
                                              [(X0 + x + size, Y0), (X0 + x + 1, Y0)]])
                     ][kind])
    b = np.array([*made, shapely.Point()], dtype=object)
    present = b[~shapely.is_empty(b)]
    brute = shapely.distance(a[:-1, None], present[None, :]).min(axis=1)
    got = nearest_distance(a, b, cell_parcels=cell_parcels)
    np.testing.assert_array_equal(got[:-1], brute)
    assert np.isnan(got[-1])
    # Indexed once, and after a pickle round trip: the same bits.
    targets = DistanceTargets(b)
    np.testing.assert_array_equal(nearest_distance(a, targets, cell_parcels=cell_parcels), got)
    np.testing.assert_array_equal(
        nearest_distance(a, pickle.loads(pickle.dumps(targets)), cell_parcels=cell_parcels), got)


def test_nearest_distance_inside_a_polygon_is_zero():
    ring = shapely.difference(box(-500, -500, 500, 500), box(-400, -400, 400, 400))
    a = np.array([box(0, 0, 10, 10), box(420, 0, 430, 10), box(700, 0, 710, 10)])
    # The first parcel lies in the hole, 390 m from the ring (400 − 10); the second
    # inside the ring itself; the third outside, 200 m away.
    assert nearest_distance(a, np.array([ring])).tolist() == [390.0, 0.0, 200.0]


def test_nearest_distance_far_sparse_layer():
    a = np.array([box(x, y, x + 20, y + 20) for x in range(0, 2000, 40)
                  for y in range(0, 2000, 40)])
    b = np.array([shapely.Point(X0 + 10_000, Y0 + 1000), shapely.Point(X0 - 3000, Y0 + 500)])
    brute = shapely.distance(a[:, None], b[None, :]).min(axis=1)
    np.testing.assert_array_equal(nearest_distance(a, b), brute)


def test_distances_routes_classes():
    p = parcels([box(0, 0, 10, 10)])
    routes = frame([shapely.LineString([(X0 + 50, Y0), (X0 + 50, Y0 + 10)]),
                    shapely.LineString([(X0 - 200, Y0), (X0 - 200, Y0 + 10)])],
                   classe=["locale", "autoroute"])
    out = distances_routes(p, routes, classes={"locale": ("locale",),
                                                "rapide": ("autoroute", "principale"),
                                                "principale": ("principale",)})
    assert out["dist_route_locale_m"].tolist() == pytest.approx([40])
    assert out["dist_route_rapide_m"].tolist() == pytest.approx([200])
    assert out["dist_route_principale_m"].isna().all()


def same(x: np.ndarray | pd.Series, y: np.ndarray | pd.Series) -> bool:
    """Bit-identical float arrays, NaN equal to NaN."""
    return np.array_equal(np.asarray(x, dtype=float), np.asarray(y, dtype=float), equal_nan=True)


def test_distance_targets_indexed_once_give_the_same_distances():
    ring = shapely.difference(box(-500, -500, 500, 500), box(-400, -400, 400, 400))
    line = shapely.LineString([(X0 + 1000, Y0 - 100), (X0 + 1000, Y0 + 100)])
    point = shapely.Point(X0 - 1000, Y0 + 5)
    far = box(1500, -3000, 5000, 3000)
    b = np.array([ring, None, line, shapely.LineString(), point, far,
                  shapely.Point(X0 + 2020, Y0 + 5)], dtype=object)
    a = np.array([box(0, 0, 10, 10), box(420, 0, 430, 10), box(700, 0, 710, 10),
                  box(-1030, 0, -1010, 10), box(2000, 0, 2010, 10), None], dtype=object)
    targets = DistanceTargets(b)
    assert len(targets) == 5  # the missing and the empty target are dropped
    # In the ring's hole 390 m from it; inside the ring 0; 200 m east of it (the
    # line is 290 m away); the point is 10 m east of the fourth parcel; the fifth
    # lies 10 m from a point but deep inside a polygon: 0.
    expected = np.array([390.0, 0.0, 200.0, 10.0, 0.0, np.nan])
    assert same(nearest_distance(a, b), expected)
    assert same(nearest_distance(a, targets), expected)
    index = targets._indexed()
    # Other parcels with the same targets: the index is reused, not rebuilt.
    assert same(nearest_distance(a[::-1], targets), expected[::-1])
    assert targets._indexed() is index
    copy = pickle.loads(pickle.dumps(targets))
    assert copy._index is None and len(copy) == 5
    assert same(nearest_distance(a, copy), expected)
    p = parcels(list(a[:5]))
    for cibles in (frame(list(b), nature=list("abcdefg")), b, targets):
        assert same(distance_plus_proche(p, cibles, name="d"), expected[:5])


def test_parcels_deep_inside_a_polygon_near_other_targets_are_at_zero():
    """The nearest edge belongs to a point; the polygon holding the parcel is far."""
    a = np.array([box(x, y, x + 10, y + 10) for x in range(0, 800, 40)
                  for y in range(0, 800, 40)])
    b = np.array([box(300, 300, 5000, 5000),
                  *[shapely.Point(X0 + x + 25, Y0 + y + 5) for x in range(0, 800, 40)
                    for y in range(0, 800, 40)]])
    brute = shapely.distance(a[:, None], b[None, :]).min(axis=1)
    assert (brute == 0).sum() == 12 * 12  # the parcels from x = y = 320 m on
    targets = pickle.loads(pickle.dumps(DistanceTargets(b)))
    for cell_parcels in (1, 16, 64):
        np.testing.assert_array_equal(nearest_distance(a, b, cell_parcels=cell_parcels), brute)
        np.testing.assert_array_equal(
            nearest_distance(a, targets, cell_parcels=cell_parcels), brute)


def test_distance_targets_empty_layer_gives_nan():
    p = parcels([box(0, 0, 10, 10)])
    empty = DistanceTargets(np.array([None, shapely.Point()], dtype=object))
    assert len(empty) == 0
    assert distance_plus_proche(p, empty, name="d").isna().all()
    a = np.asarray(p.geometry.array, dtype=object)
    assert np.isnan(nearest_distance(a, pickle.loads(pickle.dumps(empty)))).all()


def test_distance_targets_keys_follow_the_layers_given():
    s = scene()
    rail = frame([shapely.LineString([(X0 + 30, Y0 - 100), (X0 + 30, Y0 + 100)])],
                 nature=["voie"])
    classes = {"principale": ("principale",), "rapide": ("autoroute",)}
    t = distance_targets(routes=s["routes"], couches={"voies_ferrees": rail},
                         classes_routes=classes)
    assert set(t) == {"dist_route_principale_m", "dist_route_rapide_m", "dist_voie_ferree_m"}
    assert (len(t["dist_route_principale_m"]), len(t["dist_route_rapide_m"])) == (1, 0)
    assert distance_targets() == {}
    only = distance_targets(couches={"postes_electriques": frame([shapely.Point(X0, Y0)],
                                                                 nature=["p"])})
    assert list(only) == ["dist_poste_electrique_m"]


def test_compute_indicators_with_prepared_targets_is_identical():
    s = scene()
    rail = frame([shapely.LineString([(X0 + 30, Y0 - 100), (X0 + 30, Y0 + 100)])],
                 nature=["voie"])
    # A substation polygon holding the first parcel and overlapping the second: 0 m.
    poste = frame([box(-20, -20, 150, 150), shapely.Point(X0 + 900, Y0)], nature=["a", "b"])
    classes = {"principale": ("principale",), "locale": ("locale",)}
    couches = {"voies_ferrees": rail, "postes_electriques": poste}
    cibles = distance_targets(routes=s["routes"], couches=couches, classes_routes=classes)
    plain = compute_indicators(s["parcelles"], routes=s["routes"], couches=couches,
                               classes_routes=classes)
    fast = compute_indicators(s["parcelles"], routes=s["routes"], couches=couches,
                              classes_routes=classes, cibles=cibles)
    pd.testing.assert_frame_equal(plain.frame, fast.frame, check_exact=True)
    assert plain.available == fast.available
    f = fast.frame
    assert f["dist_route_principale_m"].tolist() == [5.0, 5.0]
    assert f["dist_route_locale_m"].isna().all()
    assert f["dist_voie_ferree_m"].tolist() == [0.0, 70.0]
    assert f["dist_poste_electrique_m"].tolist() == [0.0, 0.0]
    # A layer given as None stays NULL and unavailable, whatever ``cibles`` holds.
    gone = compute_indicators(s["parcelles"], routes=s["routes"], classes_routes=classes,
                              cibles=cibles)
    assert gone.frame["dist_voie_ferree_m"].isna().all()
    assert "dist_voie_ferree_m" not in gone.available
    assert "dist_poste_electrique_m" not in gone.available
    assert gone.frame["dist_route_principale_m"].tolist() == [5.0, 5.0]


def test_distances_routes_prepared_on_the_sample_territory():
    layers = ingest(load_territory("data/sample/territoire.toml"))
    parcelles, routes = layers.parcelles, layers.routes
    cibles = pickle.loads(pickle.dumps(distance_targets(routes=routes)))
    whole = distances_routes(parcelles, routes)
    # The sample has local, main and secondary roads, no motorway.
    assert whole["dist_route_autoroute_m"].isna().all()
    assert whole.drop(columns="dist_route_autoroute_m").notna().all().all()
    # Section by section, as the partitioned build does, the shared targets serve.
    for _, rows in parcelles.groupby("section").indices.items():
        part = parcelles.iloc[np.sort(rows)]
        plain = distances_routes(part, routes)
        fast = distances_routes(part, routes, cibles=cibles)
        assert list(fast.columns) == list(plain.columns)
        for col in plain:
            assert same(fast[col], plain[col]), col
            assert same(fast[col], whole.loc[part.index, col]), col


def test_part_contrainte():
    p = parcels([box(0, 0, 100, 100)])
    flood = frame([box(-10, -10, 20, 110)], source=["ppri"])
    # 20 m of the parcel's 100 m width: 20 %.
    assert part_contrainte(p, flood).tolist() == pytest.approx([0.2])


# --------------------------------------------------------------------------- all


def scene() -> dict:
    geoms = [box(0, 0, 100, 100), box(100, 0, 200, 100)]
    return {
        "parcelles": parcels(geoms),
        "zonage": frame([box(-10, -10, 300, 300)], libelle=["UY"], typezone=["U"],
                        zone_activite=[True]),
        "batiments": frame([box(10, 10, 20, 20)], source=["b"]),
        "routes": frame([shapely.LineString([(X0, Y0 - 5), (X0 + 300, Y0 - 5)])],
                        classe=["principale"]),
    }


class Dem:
    def __init__(self) -> None:
        cols, rows = np.meshgrid(np.arange(60), np.arange(60))
        self.array = 0.05 * (cols + 0.5) * 5.0
        self.transform = Affine(5, 0, X0 - 50, 0, -5, Y0 + 250)
        self.crs, self.nodata = CRS, None


def test_compute_indicators_availability_and_nulls():
    s = scene()
    ind = compute_indicators(s["parcelles"], zonage=s["zonage"], batiments=s["batiments"],
                             routes=s["routes"], mnt=Dem())
    f = ind.frame
    assert f["part_batie"].tolist() == pytest.approx([0.01, 0.0])
    assert f["zone_libelle"].tolist() == ["UY", "UY"]
    assert f["dist_route_principale_m"].tolist() == pytest.approx([5, 5])
    assert f["pente_moy_pct"].tolist() == pytest.approx([5, 5])
    # Absent layers: NULL, never 0, and not available.
    for col in ("zae_id", "part_zae", "friche_id", "dist_voie_ferree_m",
                "dist_poste_electrique_m"):
        assert f[col].isna().all(), col
        assert col not in ind.available
    assert {"part_batie", "zone_libelle", "pente_moy_pct",
            "dist_route_principale_m"} <= ind.available


def test_compute_indicators_empty_layer_is_available():
    s = scene()
    no_building = s["batiments"].iloc[0:0]
    ind = compute_indicators(s["parcelles"], batiments=no_building)
    assert ind.frame["part_batie"].tolist() == [0.0, 0.0]
    assert "part_batie" in ind.available


def test_constraint_columns_and_name_clash():
    s = scene()
    flood = frame([box(0, 0, 50, 100)], source=["ppri"])
    c1 = Constraint("Zone rouge PPRI", "inondation", True, flood)
    ind = compute_indicators(s["parcelles"], contraintes=[c1])
    assert ind.frame["part_contrainte_zone_rouge_ppri"].tolist() == pytest.approx([0.5, 0.0])
    c2 = Constraint("zone-rouge ppri", "inondation", False, flood)
    with pytest.raises(ConfigError, match="même identifiant"):
        compute_indicators(s["parcelles"], contraintes=[c1, c2])


def test_inputs_are_not_modified():
    s = scene()
    before = {k: v.copy() for k, v in s.items()}
    compute_indicators(s["parcelles"], zonage=s["zonage"], batiments=s["batiments"],
                       routes=s["routes"])
    for k, v in s.items():
        assert_geodataframe_equal(v, before[k])


# --------------------------------------------------------------------------- dist_zae_m


def test_dist_zae_m_by_hand():
    """3-4-5: the parcel's corner (10, 10) is 30 m and 40 m from the zone's (40, 50)."""
    p = parcels([box(0, 0, 10, 10), box(45, 55, 60, 70)])
    zae = frame([box(40, 50, 100, 100)], zae_id=["Z1"])
    ind = compute_indicators(p, zae=zae, classes_routes={})
    assert ind.frame["dist_zae_m"].tolist() == pytest.approx([50.0, 0.0])
    assert "dist_zae_m" in ind.available
    assert compute_indicators(p, classes_routes={}).frame["dist_zae_m"].isna().all()


def test_dist_zae_m_on_the_sample_territory_whole_and_by_partition():
    """Gennes: its one ZAE is the PLU's UY zone; parcel B 569 lies 160 m from it.

    The nearest points are the parcel's vertex (938 032.25, 6 687 244.38) and the
    zone's vertex (937 964.6428…, 6 687 389.3324…): √(67.6072² + 144.9524²) = 159.94 m.
    """
    from observatoire.analysis import analysis_context, partition_task

    layers = ingest(load_territory("data/sample/territoire.toml"))
    parcelles, zae = layers.parcelles, layers.zae
    assert len(zae) == 1
    ind = compute_indicators(parcelles, zae=zae, classes_routes={}).frame
    row = parcelles.index[parcelles["idu"] == "252670000B0569"][0]
    corner = np.array([938032.25, 6687244.38])
    vertices = shapely.get_coordinates(zae.geometry.iloc[0])
    nearest = vertices[np.argmin(np.hypot(*(vertices - corner).T))]
    assert nearest == pytest.approx([937964.6429, 6687389.3324], abs=1e-4)
    assert ind.loc[row, "dist_zae_m"] == pytest.approx(math.hypot(*(corner - nearest)))
    assert ind.loc[row, "dist_zae_m"] == pytest.approx(159.94, abs=0.01)
    # Parcels in the zone are at 0 m, the others farther.
    inside = ind["zae_id"].notna()
    assert (ind.loc[inside, "dist_zae_m"] == 0).all() and (ind.loc[~inside, "dist_zae_m"] > 0).all()
    # A partition whose box misses the zone still measures it: the zone is a whole
    # distance target, while the partition's overlay layers hold no ZAE.
    ctx = analysis_context(layers)
    part = parcelles[parcelles["section"] == "ZB"]
    bounds = tuple(part.total_bounds)
    assert len(ctx.around(bounds).zae) == 0
    frame_b, available, _ = partition_task((part, bounds, {}), ctx)
    assert "dist_zae_m" in available
    assert same(frame_b["dist_zae_m"], ind.loc[part.index, "dist_zae_m"])
