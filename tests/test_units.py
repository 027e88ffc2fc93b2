"""Contiguity, land units, candidate sites and ZAE availability on hand-made layouts."""

from __future__ import annotations

from collections import deque

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from observatoire.analysis.units import (
    candidate_pairs,
    connected_components,
    contiguity_pairs,
    contiguous,
    eligible,
    gisements,
    meilleurs_sites,
    parcel_proprietaires,
    shared_edge_pairs,
    unit_of_parcel,
    unites_foncieres,
)

X0, Y0 = 920_000.0, 6_700_000.0
CRS = "EPSG:2154"


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def values(series: pd.Series) -> list:
    """Values with every missing one as ``None`` (pandas text columns hold NaN)."""
    return series.astype(object).where(series.notna(), None).tolist()


def parcels(geoms: list, idus: list[str] | None = None, **cols) -> gpd.GeoDataFrame:
    idus = idus or [f"25267000AB{k:04d}" for k in range(len(geoms))]
    return gpd.GeoDataFrame({"idu": idus, "code_insee": "25267",
                             "surface_m2": [g.area for g in geoms], **cols},
                            geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)


# --------------------------------------------------------------------------- graph


def bfs_components(n: int, edges: list[tuple[int, int]]) -> list[int]:
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    label = [-1] * n
    for s in range(n):
        if label[s] >= 0:
            continue
        label[s] = s
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v in adj[u]:
                if label[v] < 0:
                    label[v] = s
                    queue.append(v)
    return label


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 60), data=st.data())
def test_connected_components_match_bfs(n, data):
    edges = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                               max_size=3 * n))
    pairs = np.array(edges, dtype=np.int64).T.reshape(2, -1)
    labels = connected_components(n, pairs)
    # BFS from the smallest node labels each component by its smallest node too.
    assert labels.tolist() == bfs_components(n, edges)


def test_contiguity_rules():
    geoms = np.array([
        box(0, 0, 10, 10),
        box(10, 0, 20, 10),        # shares an edge with 0
        box(20.2, 0, 30, 10),      # 0.2 m gap with 1: tolerated
        box(20, 10, 30, 20),       # touches 1 at a corner only
        box(0, 22, 10, 30),        # 12 m north of 0: across a road
        box(-9.9, 0.05, 0.05, 9.9),  # overlaps 0 by 5 cm (misaligned plan)
    ])
    pairs = candidate_pairs(geoms)
    mask = contiguous(geoms, pairs)
    found = {tuple(p) for p in pairs[:, mask].T.tolist()}
    assert found == {(0, 1), (1, 2), (2, 3), (0, 5)}
    # 1–3 touch at (20, 10) only; 2–3 are 0.2 m apart along an edge.
    assert (1, 3) in {tuple(p) for p in pairs.T.tolist()} and (1, 3) not in found


def test_shared_edges_found_without_predicate():
    geoms = np.array([box(0, 0, 10, 10), box(10, 0, 20, 10), box(20, 10, 30, 20)])
    assert shared_edge_pairs(geoms).T.tolist() == [[0, 1]]


# --------------------------------------------------------------------------- units

#: Four parcels in a row: 0 and 1 touch, a 12 m road separates 1 and 2, 2 and 3 touch.
ROW = [box(0, 0, 50, 50), box(50, 0, 100, 50), box(112, 0, 162, 50), box(162, 0, 212, 50)]


def table_proprietaires(rows: list[tuple[str, str, str, str | None, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["idu", "proprietaire_cle", "proprietaire_type",
                                       "proprietaire_nom", "proprietaire_siren"])


def test_units_same_proprietaire_contiguous_and_road_breaks():
    p = parcels(ROW)
    idu = p["idu"].tolist()
    table = table_proprietaires([
        (idu[0], "siren:111111111", "personne morale", "SCI DU PRE", "111111111"),
        (idu[1], "siren:111111111", "personne morale", "SCI DU PRE", "111111111"),
        (idu[2], "siren:111111111", "personne morale", "SCI DU PRE", "111111111"),
        (idu[3], "compte:B042", "personne physique", "DUPONT JEAN", None),
    ])
    proprietaires = parcel_proprietaires(p, table, absents="personne physique")
    units = unites_foncieres(p, proprietaires=proprietaires)
    assert units["idus"].tolist() == [f"{idu[0]}|{idu[1]}", idu[2], idu[3]]
    assert units["uf_id"].tolist() == [f"UF-{idu[0]}", f"UF-{idu[2]}", f"UF-{idu[3]}"]
    assert units["nb_parcelles"].tolist() == [2, 1, 1]
    assert units["surface_m2"].tolist() == pytest.approx([5000, 2500, 2500])
    assert values(units["proprietaire_nom"]) == ["SCI DU PRE", "SCI DU PRE", None]
    assert values(units["proprietaire_type"]) == ["personne morale", "personne morale",
                                                   "personne physique"]
    assert (units["methode"] == "proprietaire").all()
    # A natural person is never named, anywhere.
    assert not units.astype(str).apply(lambda c: c.str.contains("DUPONT")).any().any()
    # The merged unit is one polygon of the summed area.
    assert units.geometry.iloc[0].area == pytest.approx(5000)
    assert shapely.get_num_geometries(units.geometry.iloc[0]) == 1
    assert unit_of_parcel(p, units).tolist() == [f"UF-{idu[0]}", f"UF-{idu[0]}",
                                                 f"UF-{idu[2]}", f"UF-{idu[3]}"]


def test_units_co_proprietaires_and_absent_parcels():
    p = parcels(ROW[:2] + [box(100, 0, 150, 50)])
    idu = p["idu"].tolist()
    table = table_proprietaires([
        (idu[0], "siren:111111111", "personne morale", "SCI A", "111111111"),
        (idu[0], "siren:222222222", "personne morale", "SARL B", "222222222"),
        (idu[1], "siren:222222222", "personne morale", "SARL B", "222222222"),
        (idu[1], "siren:111111111", "personne morale", "SCI A", "111111111"),
    ])
    proprietaires = parcel_proprietaires(p, table, absents="personne physique")
    assert values(proprietaires["proprietaire_nom"]) == ["SARL B | SCI A", "SARL B | SCI A", None]
    assert values(proprietaires["proprietaire_type"]) == ["personne morale", "personne morale",
                                                    "personne physique"]
    units = unites_foncieres(p, proprietaires=proprietaires)
    # Same set of co-owners → one unit; the absent parcel is its own unit.
    assert units["nb_parcelles"].tolist() == [2, 1]
    assert values(units["proprietaire_siren"]) == ["111111111|222222222", None]


def test_units_without_proprietaires_table():
    p = parcels(ROW)
    units = unites_foncieres(p)
    assert len(units) == 4
    assert (units["methode"] == "parcelle").all()
    assert (units["proprietaire_type"] == "inconnu").all()
    assert units["proprietaire_nom"].isna().all()
    assert set(units.geom_type) == {"MultiPolygon"}


def test_units_of_no_parcel():
    """A build by partition asks the units of no parcel (a ZAE layer meeting none)."""
    units = unites_foncieres(parcels([]))
    assert len(units) == 0 and "uf_id" in units.columns


# --------------------------------------------------------------------------- sites


def scored_row() -> gpd.GeoDataFrame:
    """Six parcels: 0-1-2 touch in a row, then a road, then 3-4 touch, 5 is built."""
    geoms = [box(0, 0, 50, 50), box(50, 0, 100, 50), box(100, 0, 200, 50),
             box(212, 0, 262, 50), box(262, 0, 312, 50), box(312, 0, 362, 50)]
    return parcels(
        geoms,
        score_industrie=[80.0, 60.0, 40.0, 90.0, 70.0, 95.0],
        exclu_industrie=[False, False, False, False, False, False],
        part_batie=[0.0, 0.05, 0.0, 0.0, 0.0, 0.5],
        zae_id=["Z1", "Z1", None, "Z2", None, "Z2"],
        part_zae=[1.0, 1.0, 0.0, 1.0, 0.0, 1.0],
        friche_id=[None, "F1", None, None, None, None],
    )


def test_gisements_by_hand():
    p = scored_row()
    idu = p["idu"].tolist()
    sites = gisements(p, profile="industrie", score_min=50, seuil_bati=0.1)
    # Eligible: 0, 1 (score ≥ 50, built < 10 %), 3, 4. Parcel 2 scores 40, 5 is built.
    assert sites["idus"].tolist() == [f"{idu[3]}|{idu[4]}", f"{idu[0]}|{idu[1]}"]
    # Site 3-4: (90·2500 + 70·2500)/5000 = 80; site 0-1: (80 + 60)/2 = 70.
    assert sites["score_moyen"].tolist() == pytest.approx([80, 70])
    assert sites["score_min"].tolist() == pytest.approx([70, 60])
    assert sites["surface_m2"].tolist() == pytest.approx([5000, 5000])
    assert sites["nb_parcelles"].tolist() == [2, 2]
    assert values(sites["zae_id"]) == ["Z2", "Z1"]
    assert values(sites["friche_id"]) == [None, "F1"]
    assert sites["gisement_id"].tolist() == [f"G-{idu[3]}", f"G-{idu[0]}"]
    assert sites["nb_proprietaires"].isna().all()
    assert sites.geometry.area.tolist() == pytest.approx([5000, 5000])
    # Lowering the minimum score lets parcel 2 join the first site.
    more = gisements(p, profile="industrie", score_min=30, seuil_bati=0.1)
    assert f"{idu[0]}|{idu[1]}|{idu[2]}" in more["idus"].tolist()


def test_gisements_leave_out_undetermined_classes():
    """A score on too few criteria (class « non déterminée ») makes no candidate site."""
    p = scored_row()
    idu = p["idu"].tolist()
    p["classe_industrie"] = ["A", "B", "D", "non déterminée", "B", "A"]
    sites = gisements(p, profile="industrie", score_min=50, seuil_bati=0.1)
    # Parcel 3 (90, undetermined) is left out: 4 stands alone, with its 70.
    assert sites["idus"].tolist() == [f"{idu[0]}|{idu[1]}", idu[4]]
    assert sites["score_moyen"].tolist() == pytest.approx([70, 70])


def test_gisements_proprietaires_count():
    p = scored_row()
    idu = p["idu"].tolist()
    table = table_proprietaires(
        [(idu[3], "siren:111111111", "personne morale", "SCI", "111111111")])
    proprietaires = parcel_proprietaires(p, table)
    sites = gisements(p, profile="industrie", proprietaires=proprietaires, score_min=50)
    # Site 3-4: one known owner, plus parcel 4 of unknown owner.
    assert sites["nb_proprietaires"].tolist() == [2, 2]


def test_best_sites_table():
    p = scored_row()
    sites = gisements(p, profile="industrie", score_min=50)
    table = meilleurs_sites(sites, classes={"A": 75, "B": 60, "C": 45, "D": 30})
    assert table["rang"].tolist() == [1, 2]
    assert table["classe"].tolist() == ["A", "B"]
    assert table["surface_ha"].tolist() == [0.5, 0.5]
    assert {"x", "y", "lon", "lat"} <= set(table.columns)
    assert 5 < table["lon"].iloc[0] < 8 and 46 < table["lat"].iloc[0] < 48


def test_units_and_sites_do_not_depend_on_row_order():
    p = scored_row()
    shuffled = p.iloc[[4, 2, 0, 5, 3, 1]]
    a = gisements(p, profile="industrie", score_min=50)
    b = gisements(shuffled, profile="industrie", score_min=50)
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    ua = unites_foncieres(p)
    ub = unites_foncieres(shuffled)
    assert ua["uf_id"].tolist() == ub["uf_id"].tolist()


def test_contiguity_pairs_on_the_sample():
    from observatoire.config import load_territory
    from observatoire.ingest import ingest

    layers = ingest(load_territory("data/sample/territoire.toml"))
    g = np.asarray(layers.parcelles.geometry.array)
    pairs = contiguity_pairs(g)
    cand = candidate_pairs(g)
    # Every pair kept is within the tolerance and not a mere corner contact.
    assert pairs.shape[1] < cand.shape[1]
    a, b = g[pairs[0]], g[pairs[1]]
    assert (shapely.distance(a, b) <= 0.5).all()
    assert not shapely.relate_pattern(a, b, "FF*F0****").any()


# --------------------------------------------------------------------------- partitions


def grid_with_roads() -> gpd.GeoDataFrame:
    """8 × 3 parcels of 50 m; a 12 m road runs north–south after the 3rd column, and
    the parcels east of x = 200 m are split by a 0.3 m gap (still contiguous)."""
    geoms, idus = [], []
    for col in range(8):
        x = col * 50 + (12 if col >= 3 else 0) + (0.3 if col >= 5 else 0)
        for row in range(3):
            geoms.append(box(x, row * 50, x + 50, row * 50 + 50))
            idus.append(f"25267000AB{col * 3 + row:04d}")
    return parcels(geoms, idus)


def test_contiguity_breaks_at_roads_and_tolerates_small_gaps():
    p = grid_with_roads()
    pairs = contiguity_pairs(np.asarray(p.geometry.array))
    labels = connected_components(len(p), pairs)
    # The road breaks contiguity: 3 columns west of it, 5 east (the gap is tolerated).
    assert sorted(np.unique(labels, return_counts=True)[1].tolist()) == [9, 15]
    assert labels[23] == labels[9] != labels[0]


def test_gisements_of_a_subset_holding_whole_components():
    p = grid_with_roads()
    pairs = contiguity_pairs(np.asarray(p.geometry.array))
    scored = p.assign(exclu_t=False, score_t=60.0, part_batie=0.0, zae_id=None, part_zae=0.0,
                      friche_id=None)
    scored.loc[[4, 10], "score_t"] = 20.0
    ok = eligible(scored, profile="t")
    whole = gisements(scored, profile="t", pairs=pairs)
    # The pairs of the subset, renumbered into its positions (what the pipeline's
    # contiguity graph gives for the parcels of a group).
    position = np.cumsum(ok) - 1
    keep = ok[pairs[0]] & ok[pairs[1]]
    subset = scored[ok].reset_index(drop=True)
    part = gisements(subset, profile="t", pairs=position[pairs[:, keep]])
    pd.testing.assert_frame_equal(pd.DataFrame(part.drop(columns="geometry")),
                                  pd.DataFrame(whole.drop(columns="geometry")))
    assert part.geometry.geom_equals(whole.geometry).all()
