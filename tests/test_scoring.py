"""Scoring profiles: a five-parcel example worked out by hand, exclusions, reliability,
profile parsing errors, invariants (Hypothesis), and the sample territory."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from conftest import gennes_parcels_and_friches
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from observatoire.analysis import ExtraInputs, analyse, road_classes
from observatoire.analysis.indicators import Indicators
from observatoire.analysis.scoring import (
    UNDETERMINED,
    aggregate,
    format_values,
    indicator_source,
    render,
    score_parcels,
    source_weights,
)
from observatoire.config import analysis_options
from observatoire.errors import ConfigError
from observatoire.profiles import default_profiles_table, load_profiles, parse_profile

# --------------------------------------------------------------------------- by hand

PROFILE = {
    "libelle": "Test",
    "classes": {"A": 75, "B": 60, "C": 45, "D": 30},
    "exclusions": {
        "agricole_naturelle": {"indicateur": "zone_typezone", "dans": ["A", "N"],
                               "raison": "zone {zone_libelle} du PLU"},
        "petite": {"indicateur": "surface_m2", "inferieur_a": 500,
                   "raison": "surface de {valeur}"},
    },
    "criteres": {
        "zonage": {"indicateur": "zonage_vocation", "poids": 40, "fonction": "classes",
                   "valeurs": {"activite": 1.0, "U": 0.5}, "autre": 0.0,
                   "atout": "zone d'activité ({zone_libelle})",
                   "faiblesse": "zone {zone_libelle} non dédiée"},
        "surface": {"indicateur": "surface_m2", "poids": 30, "fonction": "lineaire",
                    "points": [[1000, 0.0], [5000, 1.0]],
                    "atout": "grande surface ({valeur})", "faiblesse": "petite ({valeur})"},
        "pente": {"indicateur": "pente_moy_pct", "poids": 20, "fonction": "lineaire",
                  "points": [[2, 1.0], [10, 0.0]], "atout": "plat ({valeur})",
                  "faiblesse": "pentu ({valeur})"},
        "desserte": {"indicateur": "dist_route_principale_m", "poids": 10,
                     "fonction": "paliers", "points": [[0, 1.0], [500, 0.5], [2000, 0.0]],
                     "atout": "route à {valeur}", "faiblesse": "route loin ({valeur})"},
    },
}


def five_parcels() -> Indicators:
    frame = pd.DataFrame({
        "surface_m2": [5000.0, 3000.0, 8000.0, 400.0, 2000.0],
        "zone_libelle": ["UY", "UB", "N", "UY", "AU1"],
        "zone_typezone": ["U", "U", "N", "U", "AU"],
        "zone_activite": pd.array([True, False, False, True, False], dtype="boolean"),
        "pente_moy_pct": [2.0, 6.0, 1.0, 1.0, np.nan],
        "dist_route_principale_m": [100.0, 800.0, 50.0, 50.0, 2500.0],
    })
    return Indicators(frame=frame, available=frozenset(frame.columns))


def test_five_parcels_by_hand():
    profile = parse_profile("test", PROFILE)
    out = score_parcels(five_parcels(), [profile])
    # P1: activity zone (1 × 40), 5 000 m² (1 × 30), 2 % (1 × 20), 100 m (1 × 10) → 100.
    # P2: zone U (0.5 × 40 = 20), 3 000 m² ((3000−1000)/4000 = 0.5 × 30 = 15),
    #     6 % (1 − 4/8 = 0.5 × 20 = 10), 800 m (step 500 → 0.5 × 10 = 5) → 50.
    # P3: zone N → excluded.  P4: 400 m² < 500 → excluded.
    # P5: zone AU (autre: 0), 2 000 m² (0.25 × 30 = 7.5), slope unknown (left out:
    #     the weights known are 40 + 30 + 10 = 80), 2 500 m (≥ 2 000 → 0) → 100·7.5/80.
    expected = [100.0, 50.0, np.nan, np.nan, 100 * 7.5 / 80]
    np.testing.assert_allclose(out["score_test"], expected)
    assert out["classe_test"].tolist() == ["A", "C", None, None, "E"]
    assert out["exclu_test"].tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(out["fiabilite_test"], [1, 1, 1, 1, 0.8])
    np.testing.assert_allclose(out.loc[1, ["contrib_test_zonage", "contrib_test_surface",
                                           "contrib_test_pente", "contrib_test_desserte"]]
                               .astype(float), [20, 15, 10, 5])
    np.testing.assert_allclose(out.loc[4, ["contrib_test_zonage", "contrib_test_surface",
                                           "contrib_test_desserte"]].astype(float),
                               [0, 100 * 7.5 / 80, 0])
    assert np.isnan(out.loc[4, "contrib_test_pente"])
    # Excluded parcels: reasons, no score, no contribution.
    assert out.loc[2, "exclusions_test"] == "zone N du PLU"
    assert out.loc[3, "exclusions_test"] == "surface de 400 m²"
    assert out.loc[3, "raisons_test"] == "Exclue : surface de 400 m²"
    assert out.loc[[2, 3], "contrib_test_zonage"].isna().all()
    assert pd.isna(out.loc[0, "exclusions_test"])
    # Reasons name the strengths and weaknesses, with the indicators' values.
    assert out.loc[0, "raisons_test"] == (
        "Atouts : zone d'activité (UY) ; grande surface (5\u202f000 m²) ; plat (2,0 %).")
    assert out.loc[4, "raisons_test"] == (
        "Faiblesses : zone AU1 non dédiée ; petite (2\u202f000 m²) ; route loin (2,5 km). "
        "Non évalué : pente (donnée absente).")


def test_contributions_add_up_to_the_score():
    out = score_parcels(five_parcels(), [parse_profile("test", PROFILE)])
    contrib = out.filter(like="contrib_test_").sum(axis=1, min_count=1)
    np.testing.assert_allclose(contrib[out["score_test"].notna()],
                               out["score_test"].dropna())


def test_missing_layer_lowers_reliability_not_the_score():
    ind = five_parcels()
    without_slope = Indicators(frame=ind.frame.assign(pente_moy_pct=np.nan),
                               available=ind.available - {"pente_moy_pct"})
    out = score_parcels(without_slope, [parse_profile("test", PROFILE)])
    np.testing.assert_allclose(out["fiabilite_test"], 0.8)
    # P1 keeps 100 over the 80 points known: the slope does not count as 0 (that would
    # give 80).
    assert out.loc[0, "score_test"] == pytest.approx(100)
    assert out["contrib_test_pente"].isna().all()
    assert "Non évalué : pente (donnée absente)." in out.loc[0, "raisons_test"]


def test_distance_to_a_given_layer_without_feature_is_far():
    ind = five_parcels()
    frame = ind.frame.assign(dist_route_principale_m=np.nan)
    out = score_parcels(Indicators(frame, ind.available), [parse_profile("test", PROFILE)])
    # The routes layer was given but has no main road: beyond every step → 0, and known.
    assert out.loc[0, "contrib_test_desserte"] == 0
    assert out.loc[0, "score_test"] == pytest.approx(90)
    assert "route loin (aucune dans les données)" in out.loc[0, "raisons_test"]


def test_exclusion_lifted_by_friche_and_skipped_when_unknown():
    table = copy.deepcopy(PROFILE)
    table["exclusions"]["batie"] = {"indicateur": "part_batie", "superieur_a": 0.6,
                                    "sauf": "en_friche", "raison": "bâtie à {valeur}"}
    frame = pd.DataFrame({"surface_m2": [5000.0] * 3, "part_batie": [0.9, 0.9, 0.1],
                          "friche_id": [None, "F1", None]})
    ind = Indicators(frame, frozenset({"surface_m2", "part_batie", "friche_id"}))
    out = score_parcels(ind, [parse_profile("test", table)])
    assert out["exclu_test"].tolist() == [True, False, False]
    assert out.loc[0, "exclusions_test"] == "bâtie à 90 %"
    # Zoning is unknown: the A/N exclusion cannot be checked, nobody is excluded by it.
    # Zoning, slope and roads are left out of the score: only the surface (30 of the
    # 100 points) is known.
    assert out["fiabilite_test"].tolist() == pytest.approx([0.3] * 3)
    assert out.loc[2, "score_test"] == pytest.approx(100)


def test_class_thresholds():
    table = copy.deepcopy(PROFILE)
    table["exclusions"] = {}
    table["criteres"] = {"surface": {"indicateur": "surface_m2", "poids": 1,
                                     "fonction": "lineaire", "points": [[0, 0], [100, 1]]}}
    frame = pd.DataFrame({"surface_m2": [100, 75, 74.99, 60, 45, 30, 29.9, 0.0]})
    out = score_parcels(Indicators(frame, frozenset(frame.columns)),
                        [parse_profile("t", table)])
    assert out["classe_t"].tolist() == ["A", "A", "B", "B", "C", "D", "E", "E"]


def _one_parcel(**context: object) -> Indicators:
    """A real-looking parcel: 1 ha, 50 m wide, compact, on a friche; ``context`` adds columns."""
    frame = pd.DataFrame({"surface_m2": [10_000.0], "largeur_utile_m": [50.0],
                          "compacite": [0.7], "friche_id": ["F1"], "friche_statut":
                          ["friche sans projet"], **{k: [v] for k, v in context.items()}})
    return Indicators(frame=frame, available=frozenset(frame.columns))


def test_parcels_and_friches_alone_give_no_class():
    """Scored from the parcels and the friches only: the score stays, the class does not."""
    profiles = load_profiles({})
    assert [p.fiabilite_min for p in profiles] == [0.75, 0.75]
    out = score_parcels(_one_parcel(), profiles)
    # industrie: surface 1 ha → 0.8 × 15 = 12, width 50 m → 1 × 10, compacity 0.7 → 1 × 5,
    # friche → 1 × 5: 32 points of the 15 + 10 + 5 + 5 = 35 known; reliability 35/100.
    assert out.loc[0, "score_industrie"] == pytest.approx(100 * 32 / 35)
    assert out.loc[0, "fiabilite_industrie"] == pytest.approx(0.35)
    assert out.loc[0, "classe_industrie"] == UNDETERMINED == "non déterminée"
    # logistique: surface 1 ha → 0.5 × 20 = 10, width 50 m → 0.5 × 10 = 5: 15 of 30 known.
    assert out.loc[0, "score_logistique"] == pytest.approx(50)
    assert out.loc[0, "fiabilite_logistique"] == pytest.approx(0.30)
    assert out.loc[0, "classe_logistique"] == UNDETERMINED
    assert not out.loc[0, "exclu_industrie"]


def test_with_zoning_buildings_and_roads_the_class_is_determined():
    ind = _one_parcel(zone_typezone="U", zone_activite=True, zone_libelle="UY",
                      part_batie=0.0, dist_route_principale_m=100.0,
                      dist_route_autoroute_m=3000.0)
    out = score_parcels(ind, load_profiles({}))
    # industrie: 32 + zoning 25 + no building 10 + main road 10 = 77 of 80 known → 96.25, A.
    assert out.loc[0, "fiabilite_industrie"] == pytest.approx(0.80)
    assert out.loc[0, "score_industrie"] == pytest.approx(100 * 77 / 80)
    assert out.loc[0, "classe_industrie"] == "A"
    # logistique: 15 + zoning 20 + building 5 + road 10 + motorway at 3 km 0.5 × 10 = 55
    # of 75 known (exactly the threshold 0.75: determined) → 73.3, B.
    assert out.loc[0, "fiabilite_logistique"] == pytest.approx(0.75)
    assert out.loc[0, "score_logistique"] == pytest.approx(100 * 55 / 75)
    assert out.loc[0, "classe_logistique"] == "B"


def test_reliability_threshold_of_a_profile():
    table = copy.deepcopy(PROFILE)
    ind = five_parcels()
    without_slope = Indicators(frame=ind.frame.assign(pente_moy_pct=np.nan),
                               available=ind.available - {"pente_moy_pct"})
    # Reliability 0.8 everywhere: determined at the default 0.75, not at 0.85.
    assert parse_profile("t", table).fiabilite_min == 0.75
    out = score_parcels(without_slope, [parse_profile("t", table)])
    assert out["classe_t"].tolist() == ["A", "C", None, None, "E"]
    table["fiabilite_min"] = 0.85
    out = score_parcels(without_slope, [parse_profile("t", table)])
    assert out["classe_t"].tolist() == [UNDETERMINED, UNDETERMINED, None, None, UNDETERMINED]
    np.testing.assert_allclose(out["score_t"], [100, 100 * 40 / 80, np.nan, np.nan,
                                                100 * 7.5 / 80])
    for bad in (1.5, -0.1, "haute", True):
        table["fiabilite_min"] = bad
        with pytest.raises(ConfigError, match=r"profils\.t\.fiabilite_min"):
            parse_profile("t", table)


def test_source_weights_of_the_shipped_profiles():
    ind, log_ = load_profiles({})
    assert source_weights(ind) == pytest.approx({
        "zonage": 0.25, "parcelles": 0.30, "mnt": 0.10, "batiments": 0.10, "routes": 0.10,
        "friches": 0.05, "contraintes": 0.05, "postes_electriques": 0.05})
    assert source_weights(log_) == pytest.approx({
        "zonage": 0.20, "parcelles": 0.30, "mnt": 0.15, "routes": 0.20, "batiments": 0.05,
        "contraintes": 0.05, "voies_ferrees": 0.05})
    assert indicator_source("dist_route_rapide_m") == "routes"
    assert indicator_source("part_contrainte_ppri") == "contraintes"
    assert indicator_source("zonage_vocation") == "zonage"
    assert indicator_source("altitude") is None


def test_format_values_french():
    s = pd.Series([850.0, 12_500.0, 123_456.0, np.nan])
    # Half rounds up, as a French reader expects (12 500 m² = 1,25 ha → 1,3 ha).
    assert format_values("surface_m2", s).to_pylist() == ["850 m²", "1,3 ha", "12,3 ha", None]
    assert format_values("pente_moy_pct", pd.Series([2.25, -0.04, -1.06])).to_pylist() == [
        "2,3 %", "0,0 %", "-1,1 %"]
    assert format_values("part_batie", pd.Series([0.354])).to_pylist() == ["35 %"]
    assert format_values("dist_route_locale_m", pd.Series([444.0, 2345.0, np.nan])
                         ).to_pylist() == ["440 m", "2,3 km", "aucune dans les données"]
    assert format_values("largeur_utile_m", pd.Series([1234.4])).to_pylist() == ["1\u202f234 m"]
    assert format_values("en_friche", pd.Series([True, False])).to_pylist() == ["oui", "non"]


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-1e7, 1e7), st.sampled_from([0.05, 0.25, 1.0,
                                                                         np.nan, -0.004])),
                       min_size=1, max_size=30),
       name=st.sampled_from(["surface_m2", "pente_moy_pct", "part_batie", "compacite",
                             "dist_route_locale_m", "largeur_utile_m", "nb_batiments"]))
def test_each_value_is_formatted_on_its_own(values, name):
    """Formatting a column (each distinct value written once) equals formatting each
    value alone: texts do not depend on the other rows, so partitions agree."""
    s = pd.Series(np.round(values) if name == "nb_batiments" else values, dtype="float64")
    whole = format_values(name, s).to_pylist()
    alone = [format_values(name, s.iloc[[k]]).to_pylist()[0] for k in range(len(s))]
    assert whole == alone


def test_render_with_and_without_the_shared_cache():
    frame = pd.DataFrame({"surface_m2": [850.0, 12_500.0, np.nan, 850.0],
                          "zone_libelle": ["UY", None, "AU", "UY"],
                          "part_contraintes": [0.5, 0.0, 1.0, 0.25]})
    rows = np.array([3, 0, 2])
    cache: dict = {}
    for template, value, expected in (
            ("surface de {valeur}", "surface_m2", ["surface de 850 m²", "surface de 850 m²",
                                                   "surface de ?"]),
            ("zone {zone_libelle} ({valeur})", "part_contraintes",
             ["zone UY (25 %)", "zone UY (50 %)", "zone AU (100 %)"]),
            ("forme compacte", "compacite", ["forme compacte"] * 3),
            # An indicator absent from the table reads « ? ».
            ("loin ({dist_route_autoroute_m})", "surface_m2", ["loin (?)"] * 3)):
        plain = render(template, frame, rows, value=value).to_pylist()
        cached = render(template, frame, rows, value=value, formatted=cache).to_pylist()
        assert plain == cached == expected
    assert set(cache) == {"surface_m2"}


# --------------------------------------------------------------------------- parsing
# --------------------------------------------------------------------------- parsing


def test_shipped_profiles():
    profiles = load_profiles({})
    assert [p.name for p in profiles] == ["industrie", "logistique"]
    for p in profiles:
        assert p.total_weight == 100
        assert all(c.strength or c.weakness for c in p.criteria)


def test_territory_overrides_merge_key_by_key():
    profiles = load_profiles({
        "industrie": {"criteres": {"pente": {"poids": 30}, "forme": {"poids": 0}},
                      "exclusions": {"trop_petite": {"active": False}}},
        "artisanat": copy.deepcopy(PROFILE),
    })
    assert [p.name for p in profiles] == ["industrie", "logistique", "artisanat"]
    ind = profiles[0]
    weights = {c.name: c.weight for c in ind.criteria}
    assert weights["pente"] == 30 and "forme" not in weights
    # The rest of the criterion (points, texts) comes from the shipped profile.
    pente = next(c for c in ind.criteria if c.name == "pente")
    assert pente.points[0] == (2.0, 1.0)
    assert "trop_petite" not in [e.name for e in ind.exclusions]


@pytest.mark.parametrize(("change", "key"), [
    (lambda t: t["criteres"]["pente"].update(poids=-1), "profils.t.criteres.pente.poids"),
    (lambda t: t["criteres"]["pente"].update(poids="lourd"), "profils.t.criteres.pente.poids"),
    (lambda t: t["criteres"]["pente"].update(indicateur="altitude"),
     "profils.t.criteres.pente.indicateur"),
    (lambda t: t["criteres"]["pente"].update(points=[[5, 1], [2, 0]]),
     "profils.t.criteres.pente.points"),
    (lambda t: t["criteres"]["pente"].update(points=[[2, 1.5]]),
     r"profils.t.criteres.pente.points\[0\]"),
    (lambda t: t["criteres"]["pente"].update(fonction="cubique"),
     "profils.t.criteres.pente.fonction"),
    (lambda t: t["criteres"]["pente"].update(poid=3), "profils.t.criteres.pente.poid"),
    (lambda t: t["criteres"]["pente"].pop("poids"), "profils.t.criteres.pente.poids"),
    (lambda t: t["criteres"]["pente"].update(atout="pente {altitude}"),
     "profils.t.criteres.pente.atout"),
    (lambda t: t["classes"].update(B=80), "profils.t.classes"),
    (lambda t: t["classes"].pop("D"), "profils.t.classes.D"),
    (lambda t: t["exclusions"]["petite"].pop("inferieur_a"), "profils.t.exclusions.petite"),
    (lambda t: t["exclusions"]["petite"].pop("raison"), "profils.t.exclusions.petite.raison"),
    (lambda t: t.update(critere={}), "profils.t.critere"),
])
def test_profile_errors_name_the_key(change, key):
    table = copy.deepcopy(PROFILE)
    change(table)
    with pytest.raises(ConfigError, match=key):
        parse_profile("t", table)


def test_all_weights_zero_is_refused():
    table = copy.deepcopy(PROFILE)
    for c in table["criteres"].values():
        c["poids"] = 0
    with pytest.raises(ConfigError, match="poids positif"):
        parse_profile("t", table)


def test_default_profiles_file_parses():
    raw = default_profiles_table()
    assert set(raw) == {"industrie", "logistique"}


# --------------------------------------------------------------------------- invariants

numeric = st.one_of(st.floats(-1e5, 1e6), st.just(np.nan))


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.floats(0.1, 50), min_size=1, max_size=5),
    data=st.data(),
)
def test_score_in_range_and_monotone(weights, data):
    k = len(weights)
    n = 8
    sat = np.array(data.draw(st.lists(st.lists(
        st.one_of(st.floats(0, 1), st.just(np.nan)), min_size=k, max_size=k),
        min_size=n, max_size=n)), dtype=float)
    w = np.array(weights)
    score, contrib, rel = aggregate(sat, w)
    ok = ~np.isnan(score)
    assert ((score[ok] >= -1e-9) & (score[ok] <= 100 + 1e-9)).all()
    assert ((rel >= 0) & (rel <= 1 + 1e-12)).all()
    np.testing.assert_allclose(np.nansum(contrib, axis=1)[ok], score[ok], atol=1e-9)
    # Raising one criterion's satisfaction never lowers the score.
    j = data.draw(st.integers(0, k - 1))
    raised = sat.copy()
    known = ~np.isnan(raised[:, j])
    raised[known, j] = np.minimum(1.0, raised[known, j] + data.draw(st.floats(0, 1)))
    score2, _, rel2 = aggregate(raised, w)
    assert (score2[ok] >= score[ok] - 1e-9).all()
    np.testing.assert_array_equal(rel2, rel)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(numeric, min_size=5, max_size=5), bump=st.floats(0, 1e5),
       col=st.sampled_from(["surface_m2", "largeur_utile_m"]))
def test_raising_an_indicator_with_increasing_satisfaction_never_lowers_scores(values, bump,
                                                                               col):
    profile = load_profiles({})[0]
    frame = pd.DataFrame({"surface_m2": [3000.0] * 5, "largeur_utile_m": [30.0] * 5,
                          "part_batie": [0.05] * 5})
    frame[col] = values
    ind = Indicators(frame, frozenset(frame.columns))
    before = score_parcels(ind, [profile])["score_industrie"]
    after = score_parcels(Indicators(frame.assign(**{col: frame[col] + bump}),
                                     ind.available), [profile])["score_industrie"]
    both = before.notna() & after.notna()
    assert (after[both] >= before[both] - 1e-9).all()
    assert ((before.dropna() >= 0) & (before.dropna() <= 100)).all()


# --------------------------------------------------------------------------- full runs

X0, Y0 = 910_000.0, 6_690_000.0


@dataclass
class Scene:
    parcelles: gpd.GeoDataFrame
    zonage: gpd.GeoDataFrame
    zae: gpd.GeoDataFrame
    batiments: gpd.GeoDataFrame
    routes: gpd.GeoDataFrame
    friches: gpd.GeoDataFrame
    friches_surfaces: gpd.GeoDataFrame
    available: set = field(default_factory=lambda: {"zonage", "zae", "batiments", "routes",
                                                    "friches"})


@dataclass
class Dem:
    array: np.ndarray
    transform: Affine
    crs: str = "EPSG:2154"
    nodata: float | None = None


def make_scene(seed: int, dx: float = 0.0, dy: float = 0.0) -> tuple[Scene, Dem]:
    """A 5 × 4 block of jittered parcels with zoning, buildings, a road, a friche, a DEM."""
    rng = np.random.default_rng(seed)
    nx, ny, size = 5, 4, 60.0
    xs = np.arange(nx + 1) * size
    ys = np.arange(ny + 1) * size
    gx, gy = np.meshgrid(xs, ys)
    inner = (gx > 0) & (gx < xs[-1]) & (gy > 0) & (gy < ys[-1])
    gx = gx + inner * rng.uniform(-15, 15, gx.shape)
    gy = gy + inner * rng.uniform(-15, 15, gy.shape)
    polys, idus = [], []
    for j in range(ny):
        for i in range(nx):
            ring = [(gx[j, i], gy[j, i]), (gx[j, i + 1], gy[j, i + 1]),
                    (gx[j + 1, i + 1], gy[j + 1, i + 1]), (gx[j + 1, i], gy[j + 1, i])]
            polys.append(shapely.MultiPolygon([shapely.Polygon(
                [(X0 + dx + x, Y0 + dy + y) for x, y in ring])]))
            idus.append(f"252670000B{j * nx + i:04d}")

    def shift(g):
        return shapely.transform(g, lambda c: c + [X0 + dx, Y0 + dy])

    crs = "EPSG:2154"
    parcelles = gpd.GeoDataFrame(
        {"idu": idus, "code_insee": "25267", "surface_m2": [p.area for p in polys],
         "source": "test"}, geometry=polys, crs=crs)
    zonage = gpd.GeoDataFrame(
        {"libelle": ["UY", "UB", "N"], "typezone": ["U", "U", "N"],
         "zone_activite": [True, False, False], "source": "t"},
        geometry=[shift(shapely.box(-10, -10, 130, 250)), shift(shapely.box(130, -10, 250, 250)),
                  shift(shapely.box(250, -10, 400, 250))], crs=crs)
    zae = gpd.GeoDataFrame({"zae_id": ["Z1"], "source": "t"},
                           geometry=[shift(shapely.box(-10, -10, 130, 250))], crs=crs)
    cx = rng.uniform(20, 280, 6)
    cy = rng.uniform(20, 220, 6)
    batiments = gpd.GeoDataFrame({"source": ["t"] * 6}, geometry=[
        shift(shapely.box(x, y, x + rng.uniform(5, 30), y + rng.uniform(5, 30)))
        for x, y in zip(cx, cy, strict=True)], crs=crs)
    routes = gpd.GeoDataFrame({"classe": ["principale", "locale"], "source": "t"}, geometry=[
        shift(shapely.LineString([(-50, -20), (400, -20)])),
        shift(shapely.LineString([(-20, -50), (-20, 300)]))], crs=crs)
    fr_cols = {"site_id": ["F1"], "site_statut": ["friche sans projet"],
               "site_type": ["friche industrielle"], "unite_fonciere_refcad": [None],
               "source": ["t"]}
    friches = gpd.GeoDataFrame(fr_cols, geometry=[shift(shapely.Point(150, 100))], crs=crs)
    surfaces = gpd.GeoDataFrame(fr_cols, geometry=[shift(shapely.box(130, 70, 200, 130))],
                                crs=crs)
    res = 5.0
    cols, rows = np.meshgrid(np.arange(100), np.arange(80))
    z = 0.04 * cols * res + 3 * np.sin(rows / 7.0) + rng.normal(0, 0.2, cols.shape)
    dem = Dem(z, Affine(res, 0, X0 + dx - 50, 0, -res, Y0 + dy + 300))
    return Scene(parcelles, zonage, zae, batiments, routes, friches, surfaces), dem


SCORE_COLUMNS = ["score_industrie", "fiabilite_industrie", "score_logistique",
                 "fiabilite_logistique", "pente_moy_pct", "part_batie"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), dx=st.integers(-20_000, 20_000).map(lambda v: v * 5.0),
       dy=st.integers(-20_000, 20_000).map(lambda v: v * 5.0))
def test_translating_every_layer_changes_no_score(seed, dx, dy):
    assume(dx or dy)
    a_scene, a_dem = make_scene(seed)
    b_scene, b_dem = make_scene(seed, dx, dy)
    a = analyse(a_scene, extra=ExtraInputs(mnt=a_dem))
    b = analyse(b_scene, extra=ExtraInputs(mnt=b_dem))
    for col in SCORE_COLUMNS:
        np.testing.assert_allclose(a.parcelles[col].to_numpy(float),
                                   b.parcelles[col].to_numpy(float), atol=1e-6, err_msg=col)
    assert a.parcelles["classe_industrie"].tolist() == b.parcelles["classe_industrie"].tolist()
    assert a.gisements["idus"].tolist() == b.gisements["idus"].tolist()


def test_row_order_does_not_matter_and_runs_repeat():
    scene, dem = make_scene(7)
    first = analyse(scene, extra=ExtraInputs(mnt=dem))
    rng = np.random.default_rng(1)
    shuffled = Scene(**{k: (v.iloc[rng.permutation(len(v))] if isinstance(v, pd.DataFrame)
                            else v) for k, v in scene.__dict__.items()})
    second = analyse(shuffled, extra=ExtraInputs(mnt=dem))
    cols = [c for c in first.parcelles.columns if c != "geometry"]
    pd.testing.assert_frame_equal(first.parcelles[cols], second.parcelles[cols])
    pd.testing.assert_frame_equal(first.gisements.drop(columns="geometry"),
                                  second.gisements.drop(columns="geometry"))
    third = analyse(scene, extra=ExtraInputs(mnt=dem))
    pd.testing.assert_frame_equal(first.parcelles[cols], third.parcelles[cols])


def test_several_profiles_and_options():
    scene, dem = make_scene(3)
    extra = {"fret": {"criteres": {"route": {"indicateur": "dist_route_rapide_m", "poids": 1,
                                             "fonction": "lineaire",
                                             "points": [[0, 1], [1000, 0]]}}}}
    out = analyse(scene, extra=ExtraInputs(mnt=dem), profiles=load_profiles(extra),
                  options=analysis_options({
                      "classes_routes": {"rapide": ["principale", "autoroute"]},
                      "score_min_gisement": 0}))
    assert [p.name for p in out.profiles] == ["industrie", "logistique", "fret"]
    assert "dist_route_rapide_m" in out.parcelles
    assert out.parcelles["score_fret"].notna().any()
    with pytest.raises(ConfigError, match="options.classes_routes.rapide"):
        analysis_options({"classes_routes": {"rapide": ["tgv"]}})
    with pytest.raises(ConfigError, match="options.seuil_bati_gisement"):
        analysis_options({"seuil_bati_gisement": 3})


def test_road_distances_computed_are_those_used_or_configured():
    profiles = load_profiles({})
    # The shipped profiles use the main roads and the motorways only.
    assert road_classes(None, profiles) == {"principale": ("principale",),
                                            "autoroute": ("autoroute",)}
    assert road_classes({"rapide": ("autoroute", "principale")}, profiles) == {
        "rapide": ("autoroute", "principale"), "principale": ("principale",),
        "autoroute": ("autoroute",)}
    odd = load_profiles({"x": {"criteres": {"acces": {
        "indicateur": "dist_route_express_m", "poids": 1, "fonction": "lineaire",
        "points": [[0, 1], [100, 0]]}}}})
    with pytest.raises(ConfigError, match=r"profils\.x\.criteres\.acces\.indicateur.*"
                                          r"options\.classes_routes"):
        road_classes(None, odd)


# --------------------------------------------------------------------------- sample


@pytest.fixture(scope="module")
def sample():
    from observatoire.config import load_territory
    from observatoire.ingest import ingest

    territory = load_territory("data/sample/territoire.toml")
    layers = ingest(territory)
    return layers, analyse(layers, profiles=territory.profiles, options=territory.options.analysis)


def test_sample_activity_zone_is_among_the_best(sample):
    _, result = sample
    p = result.parcelles
    uy_free = p[(p["zone_libelle"] == "UY") & (p["nb_batiments"] == 0) & ~p["exclu_industrie"]]
    assert len(uy_free) >= 5
    assert set(uy_free["classe_industrie"]) <= {"A", "B"}
    # They rank in the top decile of the scored parcels.
    threshold = p["score_industrie"].quantile(0.9)
    assert (uy_free["score_industrie"] >= threshold).mean() >= 0.8
    assert uy_free["raisons_industrie"].str.contains("zone d'activité du PLU (UY)",
                                                     regex=False).all()


def test_sample_agricultural_and_natural_zones_excluded(sample):
    _, result = sample
    p = result.parcelles
    an = p[p["zone_typezone"].isin(["A", "N"])]
    assert len(an) > 300
    assert an["exclu_industrie"].all() and an["score_industrie"].isna().all()
    assert (an["exclusions_industrie"].str.contains("zone ")
            & an["exclusions_industrie"].str.contains("du PLU")).all()
    assert an["raisons_industrie"].str.startswith("Exclue : ").all()


def test_sample_reasons_consistent_with_indicators(sample):
    _, result = sample
    p = result.parcelles
    scored = p[~p["exclu_industrie"]]
    says_free = scored["raisons_industrie"].str.contains("emprise bâtie faible", regex=False)
    assert says_free.sum() > 50
    assert (scored.loc[says_free, "part_batie"] <= 0.15).all()
    says_built = scored["raisons_industrie"].str.contains("déjà bâtie", regex=False)
    assert (scored.loc[says_built, "part_batie"] >= 0.3 - 1e-9).all()
    # No DEM, no constraint, no substation on the sample: reliability 80 % for industrie.
    np.testing.assert_allclose(scored["fiabilite_industrie"], 0.8)
    assert scored["raisons_industrie"].str.contains("Non évalué : pente").all()


def test_sample_reliability_falls_when_a_layer_is_removed(sample):
    layers, result = sample
    fewer = copy.copy(layers)
    fewer.available = set(layers.available) - {"batiments"}
    without = analyse(fewer)
    a = result.parcelles.set_index("idu")
    b = without.parcelles.set_index("idu")
    both = ~a["exclu_industrie"] & ~b["exclu_industrie"]
    np.testing.assert_allclose(b.loc[both, "fiabilite_industrie"],
                               a.loc[both, "fiabilite_industrie"] - 0.10)
    assert b["part_batie"].isna().all()
    assert math.isclose(b["fiabilite_industrie"].max(), 0.7)


def test_sample_classes_are_determined(sample):
    """Zoning, buildings, roads and friches: 0.80 and 0.75, at or above the threshold."""
    _, result = sample
    p = result.parcelles
    for name in ("industrie", "logistique"):
        scored = p[~p[f"exclu_{name}"]]
        assert len(scored) > 150
        assert set(scored[f"classe_{name}"]) <= {"A", "B", "C", "D", "E"}
    assert (p.loc[~p["exclu_logistique"], "fiabilite_logistique"] == 0.75).all()
    assert len(result.gisements) > 0


def test_sample_parcels_and_friches_only(tmp_path):
    """The real parcels and friches of Gennes alone: every score kept, no class, no site."""
    from observatoire.config import load_territory
    from observatoire.ingest import ingest

    toml = gennes_parcels_and_friches(tmp_path)
    territory = load_territory(toml)
    result = analyse(ingest(territory), profiles=territory.profiles)
    p = result.parcelles
    scored = p[~p["exclu_industrie"]]
    # Only the minimal surface can exclude: zoning and buildings are unknown.
    assert p["exclu_industrie"].sum() == (p["surface_m2"] < 300).sum()
    assert len(scored) > 700 and scored["score_industrie"].notna().all()
    np.testing.assert_allclose(scored["fiabilite_industrie"], 0.35)
    assert (scored["classe_industrie"] == UNDETERMINED).all()
    assert scored["score_industrie"].max() > 75  # what would have been an A
    assert len(result.gisements) == 0 and len(result.meilleurs_sites) == 0
