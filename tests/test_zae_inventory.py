"""ZAE inventory: units per zone, occupants, vacancy (legal and presumed), rates by hand."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from observatoire.analysis.zae_inventory import (
    ZAE_COLUMNS,
    ZAE_UNITES_COLUMNS,
    VacancyRule,
    assign_units,
    inventory,
    observation_date,
    occupant_label,
)
from observatoire.config import vacancy_rule
from observatoire.errors import ConfigError, SchemaError

CRS = "EPSG:2154"
X0, Y0 = 930_000.0, 6_680_000.0


def box(x1: float, y1: float, x2: float, y2: float) -> shapely.Geometry:
    return shapely.MultiPolygon([shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)])


def pt(x: float, y: float) -> shapely.Point:
    return shapely.Point(X0 + x, Y0 + y)


@pytest.fixture
def zae() -> gpd.GeoDataFrame:
    # Zone A: 100 m × 100 m; zone B: 100 m further east, holds no unit.
    return gpd.GeoDataFrame({
        "zae_id": ["25267_SITE-ECO_00001", "25267_SITE-ECO_00002"],
        "zae_nom": ["ZA des Essarts", "ZA vide"],
        "zae_origine": ["couche", "couche"],
    }, geometry=[box(0, 0, 100, 100), box(300, 0, 400, 100)], crs=CRS)


@pytest.fixture
def unites() -> gpd.GeoDataFrame:
    """Six units; U1–U4 belong to zone A (U4 cut by its boundary), U5 and U6 do not.

    Areas inside zone A: U1 2500, U2 1500, U3 2500, U4 2500 (of 3500) m².
    """
    return gpd.GeoDataFrame({
        "uf_id": ["U1", "U2", "U3", "U4", "U5", "U6"],
        "idus": ["25267000AB0001", "25267000AB0002", "25267000AB0003|25267000AB0004",
                 "25267000AB0005", "25267000AB0006", "25267000AB0007"],
        "nb_parcelles": [1, 1, 2, 1, 1, 1],
        "surface_m2": [2500.0, 1500.0, 2500.0, 3500.0, 5000.0, 1400.0],
        "proprietaire_type": ["personne morale", "personne physique", "personne morale",
                              None, "inconnu", "inconnu"],
        "proprietaire_nom": ["SARL ALPHA", "DUPONT JEAN", "COMMUNE DE GENNES", None, None,
                             None],
        "proprietaire_siren": ["123456789", "999999999", "212502671", None, None, None],
        "methode": "proprietaire",
    }, geometry=[
        box(0, 0, 50, 50),        # U1
        box(50, 0, 100, 30),      # U2 (50..100 × 30..50 is a road, no unit)
        box(0, 50, 50, 100),      # U3
        box(50, 50, 120, 100),    # U4: 70 × 50, 50 × 50 inside the zone
        box(100, 0, 200, 50),     # U5: touches zone A, outside
        box(90, -70, 160, -50),   # U6: outside (south)
    ], crs=CRS)


@pytest.fixture
def etablissements() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "siret": ["12345678900012", "22222222200011", "33333333300015", "44444444400018",
                  "55555555500013", "66666666600016"],
        "siren": ["123456789", "222222222", "333333333", "444444444", "555555555",
                  "666666666"],
        "nom": ["GARAGE ALPHA", "ANCIENNE SCIERIE", "IMPRIMERIE", "FUTUR", "SCI DU PARC",
                None],
        "raison_sociale": [None, None, None, None, None, None],
        "categorie_juridique": [None, None, None, None, "6540", "1000"],
        "type_personne": [None, None, None, None, "personne morale", "personne physique"],
        "diffusible": [True] * 6,
        "naf": ["45.20A", "16.10A", "18.12Z", "25.11Z", "68.20B", "43.32A"],
        "etat": ["A", "F", "F", "A", "A", "F"],
        "date_creation": ["2010-01-01", "1990-01-01", "2000-01-01", "2025-06-01",
                          "2015-01-01", "2001-01-01"],
        "date_fermeture": [None, "2020-05-01", "2024-02-01", None, None, "2019-01-01"],
    }, geometry=[
        pt(10, 10),     # U1, active
        pt(70, 10),     # U2, closed 2020-05-01 (≤ 2023-01-01)
        pt(10, 60),     # U3, closed 2024-02-01 (recent)
        pt(20, 20),     # U1, created after the observation date: ignored
        pt(20, 70),     # U3, a SCI: not an occupant
        pt(75, 31),     # 1 m north of U2, on the road: attached to U2, closed long ago
    ], crs=CRS)


OBS = dt.date(2025, 3, 1)


def test_units_belong_to_the_zone_holding_most_of_their_area(zae, unites):
    a = assign_units(zae, unites)
    assert sorted(unites.loc[a.index, "uf_id"]) == ["U1", "U2", "U3", "U4"]
    u4 = a.loc[unites.index[unites["uf_id"] == "U4"][0]]
    assert u4["part_dans_zae"] == pytest.approx(2500 / 3500)
    assert u4["surface_dans_zae_m2"] == pytest.approx(2500)
    assert bool(u4["coupee_par_limite"])
    assert not a.loc[a.index != u4.name, "coupee_par_limite"].any()
    # With a stricter share, the cut unit (71 %) leaves the zone.
    strict = assign_units(zae, unites, rule=VacancyRule(part_min_zae=0.8))
    assert "U4" not in set(unites.loc[strict.index, "uf_id"])


def test_legal_vacancy_rates_computed_by_hand(zae, unites, etablissements):
    zout, zu = inventory(zae, unites, None, etablissements, date_observation=OBS)
    assert list(zu.columns[:-1]) == list(ZAE_UNITES_COLUMNS)
    by = zu.set_index("uf_id")
    # U1: an active establishment (the one created after the observation date is ignored).
    assert by.loc["U1", "occupation"] == "occupée"
    assert by.loc["U1", "statut_vacance"] == "non vacante"
    assert by.loc["U1", "nb_occupants"] == 1
    assert by.loc["U1", "occupants"] == "12345678900012 – GARAGE ALPHA"
    # U2: closed 2020-05-01 and a natural person's establishment closed 2019 (on the road).
    assert by.loc["U2", "statut_vacance"] == "vacante"
    assert by.loc["U2", "nb_etablissements_fermes"] == 2
    assert by.loc["U2", "date_derniere_fermeture"] == "2020-05-01"
    assert "01/05/2020" in by.loc["U2", "raison_vacance"]
    assert "1er janvier 2023" in by.loc["U2", "raison_vacance"]
    # U3: closed 2024-02-01, less than two years on 1 January 2025; the SCI does not count.
    assert by.loc["U3", "statut_vacance"] == "non vacante"
    assert by.loc["U3", "nb_occupants"] == 0
    assert "moins de deux ans" in by.loc["U3", "raison_vacance"]
    # U4: no establishment at all, cut by the boundary, owner unknown.
    assert by.loc["U4", "statut_vacance"] == "vacante"
    assert bool(by.loc["U4", "coupee_par_limite"])
    assert by.loc["U4", "proprietaire_type"] == "inconnu"
    assert "aucun établissement" in by.loc["U4", "raison_vacance"]

    a = zout.set_index("zae_id").loc["25267_SITE-ECO_00001"]
    assert a["nb_unites"] == 4
    assert a["nb_unites_vacantes"] == 2
    assert a["taux_vacance"] == pytest.approx(2 / 4)
    # By area inside the zone: (U2 1500 + U4 2500) / (2500 + 1500 + 2500 + 2500).
    assert a["taux_vacance_surface"] == pytest.approx(4000 / 9000)
    assert a["surface_disponible_m2"] == pytest.approx(4000)
    # U2 and U4 are vacant but a road (y 30..50) separates them: the largest piece in one
    # holding is U4's part inside the zone, 50 × 50 m.
    assert a["plus_grande_surface_dispo_m2"] == pytest.approx(2500, rel=1e-3)
    assert "L318-8-2" in a["regle_vacance"] and "01/03/2025" in a["regle_vacance"]
    b = zout.set_index("zae_id").loc["25267_SITE-ECO_00002"]
    assert b["nb_unites"] == 0 and b["nb_unites_vacantes"] == 0
    assert np.isnan(b["taux_vacance"]) and np.isnan(b["taux_vacance_surface"])
    assert set(ZAE_COLUMNS) <= set(zout.columns)


def test_closure_on_the_threshold_day_is_vacant(zae, unites, etablissements):
    e = etablissements.copy()
    e.loc[2, "date_fermeture"] = "2023-01-01"  # U3's establishment: exactly two years
    _, zu = inventory(zae, unites, None, e, date_observation=OBS)
    assert zu.set_index("uf_id").loc["U3", "statut_vacance"] == "vacante"
    e.loc[2, "date_fermeture"] = "2023-01-02"
    _, zu = inventory(zae, unites, None, e, date_observation=OBS)
    assert zu.set_index("uf_id").loc["U3", "statut_vacance"] == "non vacante"


def test_closed_after_the_observation_date_was_active(zae, unites, etablissements):
    _, zu = inventory(zae, unites, None, etablissements, date_observation="2024-01-15")
    # U3's establishment closed 2024-02-01: still active on 15 January 2024.
    assert zu.set_index("uf_id").loc["U3", "statut_vacance"] == "non vacante"
    assert zu.set_index("uf_id").loc["U3", "nb_occupants"] == 1


def test_closure_without_date_gives_presumed_vacancy(zae, unites, etablissements):
    e = etablissements.copy()
    e.loc[1, "date_fermeture"] = None
    e = e.drop(index=5)
    _, zu = inventory(zae, unites, None, e, date_observation=OBS)
    u2 = zu.set_index("uf_id").loc["U2"]
    assert u2["statut_vacance"] == "présumée vacante"
    assert u2["occupation"] == "présumée vacante"
    assert "date inconnue" in u2["raison_vacance"]


def test_natural_persons_are_never_named(zae, unites, etablissements):
    e = etablissements.copy()
    e.loc[5, ["etat", "date_fermeture"]] = ["A", None]  # the sole proprietor is active on U2
    _, zu = inventory(zae, unites, None, e, date_observation=OBS)
    text = " ".join(map(str, pd.DataFrame(zu.drop(columns="geometry")).to_numpy().ravel()))
    assert "DUPONT" not in text
    assert "66666666600016" not in text
    u2 = zu.set_index("uf_id").loc["U2"]
    assert u2["proprietaire_type"] == "personne physique"
    assert u2["proprietaire_nom"] is None and u2["proprietaire_siren"] is None
    assert u2["occupants"] == "entrepreneur individuel (non nommé)"
    u1 = zu.set_index("uf_id").loc["U1"]
    assert (u1["proprietaire_nom"], u1["proprietaire_siren"]) == ("SARL ALPHA", "123456789")


def test_occupant_label_hides_non_diffusible_establishments():
    e = pd.DataFrame({"siret": ["1", "2", "3"], "nom": ["A", None, "C"],
                      "raison_sociale": [None, "B SA", None],
                      "type_personne": [None, "personne morale", None],
                      "diffusible": [True, True, False]})
    assert occupant_label(e).tolist() == ["1 – A", "2 – B SA",
                                          "établissement non diffusible (non nommé)"]


def test_presumed_occupancy_from_buildings(zae, unites):
    batiments = gpd.GeoDataFrame({"bati_id": ["b1", "b2", "b3"]}, geometry=[
        box(10, 10, 30, 30),     # U1: 400 m², 16 %
        box(60, 10, 63, 13),     # U2: a 9 m² shed
        box(105, 60, 115, 70),   # U4: 100 m² outside the zone, 2.9 % of the unit
    ], crs=CRS)
    zout, zu = inventory(zae, unites, batiments, None, date_observation=OBS)
    by = zu.set_index("uf_id")
    assert by.loc["U1", "occupation"] == "présumée occupée"
    assert by.loc["U1", "surface_batie_m2"] == pytest.approx(400)
    assert "16 %" in by.loc["U1", "raison_vacance"]
    assert by.loc["U2", "occupation"] == "présumée vacante"
    assert by.loc["U3", "occupation"] == "présumée vacante"
    assert by.loc["U4", "occupation"] == "présumée occupée"
    assert by["nb_occupants"].isna().all() and by["occupants"].isna().all()
    a = zout.set_index("zae_id").loc["25267_SITE-ECO_00001"]
    assert a["nb_unites_vacantes"] == 2
    assert a["taux_vacance"] == pytest.approx(0.5)
    assert a["taux_vacance_surface"] == pytest.approx((1500 + 2500) / 9000)
    assert "Présomption par le bâti" in a["regle_vacance"]
    # A stricter footprint threshold makes U4 (100 m²) vacant too.
    zout, _ = inventory(zae, unites, batiments, None, date_observation=OBS,
                        rule=vacancy_rule({"surface_batie_min_m2": 200}))
    assert zout.set_index("zae_id").loc["25267_SITE-ECO_00001", "nb_unites_vacantes"] == 3


def test_no_establishments_nor_buildings_gives_null_rates(zae, unites):
    zout, zu = inventory(zae, unites, None, None, date_observation=OBS)
    a = zout.set_index("zae_id").loc["25267_SITE-ECO_00001"]
    assert a["nb_unites"] == 4
    assert pd.isna(a["nb_unites_vacantes"]) and np.isnan(a["taux_vacance"])
    assert (zu["statut_vacance"] == "inconnue").all()
    assert zu["occupation"].isna().all()


def test_default_observation_date_is_today_and_said(zae, unites):
    zout, _ = inventory(zae, unites, None, None)
    today = dt.date.today().strftime("%d/%m/%Y")
    assert f"date d'observation {today} (date du jour" in zout["regle_vacance"].iloc[0]


def test_inputs_are_not_modified(zae, unites, etablissements):
    before = (zae.copy(), unites.copy(), etablissements.copy())
    inventory(zae, unites, None, etablissements, date_observation=OBS)
    for a, b in zip(before, (zae, unites, etablissements), strict=True):
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))


def test_translation_changes_no_rate(zae, unites, etablissements):
    z1, _ = inventory(zae, unites, None, etablissements, date_observation=OBS)
    moved = [f.set_geometry(f.geometry.translate(1234.5, -987.0))
             for f in (zae, unites, etablissements)]
    z2, _ = inventory(*moved[:2], None, moved[2], date_observation=OBS)
    cols = ["nb_unites", "nb_unites_vacantes", "taux_vacance", "taux_vacance_surface"]
    pd.testing.assert_frame_equal(pd.DataFrame(z1[cols]), pd.DataFrame(z2[cols]))


def test_vacancy_rule_options_are_checked():
    assert vacancy_rule(None) == VacancyRule()
    r = vacancy_rule({"surface_batie_min_m2": 30, "part_min_zae": 0.6, "naf_exclus": []})
    assert (r.surface_batie_min_m2, r.part_min_zae, r.naf_exclus) == (30.0, 0.6, ())
    with pytest.raises(ConfigError, match=r"options\.vacance\.seuil"):
        vacancy_rule({"seuil": 3})
    with pytest.raises(ConfigError, match=r"options\.vacance\.part_min_zae.*entre 0 et 1"):
        vacancy_rule({"part_min_zae": 1.5})
    with pytest.raises(ConfigError, match=r"nombre attendu"):
        vacancy_rule({"surface_batie_min_m2": "50"})
    with pytest.raises(ConfigError, match=r"liste de textes"):
        vacancy_rule({"naf_exclus": "68.20B"})


def test_observation_date_parsing():
    assert observation_date("2025-01-01") == (dt.date(2025, 1, 1), False)
    assert observation_date(dt.date(2024, 5, 2)) == (dt.date(2024, 5, 2), False)
    assert observation_date(None)[1] is True
    with pytest.raises(ConfigError, match=r"options\.date_observation.*ISO"):
        observation_date("01/01/2025")


def test_missing_unit_fields_and_mixed_crs_are_refused(zae, unites):
    with pytest.raises(SchemaError, match="unites_foncieres.*proprietaire_type"):
        inventory(zae, unites.drop(columns=["proprietaire_type"]), None, None,
                  date_observation=OBS)
    with pytest.raises(SchemaError, match="zae.*CRS"):
        inventory(zae.to_crs(4326), unites, None, None, date_observation=OBS)


def test_empty_establishments_layer_makes_every_unit_vacant(zae, unites, etablissements):
    zout, zu = inventory(zae, unites, None, etablissements.iloc[:0], date_observation=OBS)
    assert (zu["statut_vacance"] == "vacante").all()
    assert zout.set_index("zae_id").loc["25267_SITE-ECO_00001", "taux_vacance"] == 1.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(1, 4),
                          st.integers(1, 4), st.booleans()), min_size=1, max_size=12))
def test_rates_stay_in_range(cells):
    """Random grid units and buildings: counts add up and rates stay within 0–1."""
    zae = gpd.GeoDataFrame({"zae_id": ["Z1"], "zae_nom": ["Z"]},
                           geometry=[box(0, 0, 55, 55)], crs=CRS)
    units = gpd.GeoDataFrame({
        "uf_id": [f"U{i}" for i in range(len(cells))],
        "idus": [f"25267000AB{i:04d}" for i in range(len(cells))],
        "surface_m2": float("nan"), "proprietaire_type": "inconnu",
        "proprietaire_nom": None, "proprietaire_siren": None,
    }, geometry=[box(10 * x, 10 * y, 10 * (x + w), 10 * (y + h)) for x, y, w, h, _ in cells],
        crs=CRS)
    built = [box(10 * x + 1, 10 * y + 1, 10 * x + 9, 10 * y + 9)
             for x, y, _, _, b in cells if b]
    batiments = gpd.GeoDataFrame(geometry=gpd.GeoSeries(built, crs=CRS), crs=CRS)
    zout, zu = inventory(zae, units, batiments, None, date_observation=OBS)
    z = zout.iloc[0]
    assert z["nb_unites"] == len(zu)
    assert 0 <= z["nb_unites_vacantes"] <= z["nb_unites"]
    if len(zu):
        assert 0.0 <= z["taux_vacance"] <= 1.0
        assert 0.0 <= z["taux_vacance_surface"] <= 1.0 + 1e-9
        assert (zu["part_dans_zae"] >= 0.5).all()
        assert z["surface_disponible_m2"] <= zu["surface_dans_zae_m2"].sum() + 1e-6


def test_overlap_areas_leaves_the_callers_geometries_unprepared():
    """Prepared indexes live on the geometry objects: a département's units would keep them."""
    from observatoire.analysis.zae_inventory import overlap_areas

    a = np.array([box(0, 0, 10, 10), box(20, 0, 30, 10), box(2, 2, 4, 4)], dtype=object)
    b = np.array([box(5, 0, 25, 10), box(1, 1, 5, 5)], dtype=object)
    shapely.prepare(b[1])  # prepared by the caller: stays so
    ia, ib, area = overlap_areas(a, b)
    pairs = {(int(i), int(j)): float(s) for i, j, s in zip(ia, ib, area, strict=True)}
    assert pairs == {(0, 0): 50.0, (1, 0): 50.0, (0, 1): 16.0, (2, 1): 4.0}
    assert not shapely.is_prepared(a).any()
    assert shapely.is_prepared(b).tolist() == [False, True]
