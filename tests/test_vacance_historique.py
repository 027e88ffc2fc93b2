"""Legal vacancy evaluated from the history's observations of the establishments.

Three vintages of the real sample (Gennes, 25267), built in one output folder with
an establishments layer (``etablissements.gpkg``, points) written by the test:

- observation 1, 01/06/2021: the sample; « SCIERIE DU PARC » (SIRET 11111111100011)
  active on parcel 252670000B0619 (a land unit of the activity zone UY, unbuilt),
  « GARAGE DE GENNES » (SIRET 22222222200013) active on 252670000B0627;
- observation 2, 01/01/2022: parcel 252670000B0619 renumbered 252670000B9005 (same
  shape, so its land unit becomes UF-252670000B9005); the sawmill is absent from the
  establishments file (a stock of active establishments drops closed ones); the
  garage is still active;
- observation 3, 01/06/2024: as observation 2.

Without history, the closing dates of each vintage decide: the unit of the sawmill
has no establishment, active or closed, in vintages 2 and 3, so it would be vacant
in both. With the history:

- at 01/01/2022, the threshold is 01/01/2020: observation 1 (01/06/2021) is after
  it, the sawmill was seen active then on the parcel now numbered B9005 (the
  history's parcel links it through the lineage rule: same shape), so the unit is
  « non vacante »; no observation is dated on or before 01/01/2020, so the history is
  too short for the vacancy itself and ``regle_vacance`` says so;
- at 01/06/2024, the threshold is 01/01/2022: observation 2 is dated on it (the
  window is covered), no establishment was observed on the unit then nor is active
  now, so the unit is « vacante » by the observations.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from conftest import SAMPLE, sample_context_sources
from shapely.geometry import box

from observatoire.analysis.zae_inventory import (
    EstablishmentHistory,
    ObservedEstablishments,
    inventory,
)
from observatoire.config import load_territory
from observatoire.observation import history
from observatoire.pipeline import build

D1, D2, D3 = dt.date(2021, 6, 1), dt.date(2022, 1, 1), dt.date(2024, 6, 1)
SAWMILL_PARCEL = "252670000B0619"
RENUMBERED = "252670000B9005"
GARAGE_PARCEL = "252670000B0627"
ZAE = "25267_SITE-ECO_00001"

LEGAL = ("Définition légale (art. L318-8-2 du code de l'urbanisme) : unité vacante si aucun "
         "établissement n'y est actif au {obs} et si le dernier y a fermé au plus tard le 1er "
         "janvier {y} (inoccupée depuis au moins deux ans au 1er janvier {year}) ; ")
REST = ("établissements rattachés à l'unité qui les contient ou à moins de 10 m ; unité "
        "rattachée à la zone qui couvre la plus grande part de sa surface (au moins 50 %) ; "
        "date d'observation {obs}")


def _idu(frame: pd.DataFrame) -> pd.Series:
    return frame["DEPCOM"] + frame["COM_ABS"] + frame["SECTION"] + frame["NUMERO"]


def _establishments(path: Path, parcels: gpd.GeoDataFrame, *, sawmill: bool) -> Path:
    """Write the establishments layer: the garage, and the sawmill when ``sawmill``."""
    idu = _idu(parcels)
    rows = [("22222222200013", "GARAGE DE GENNES", "45.20A", GARAGE_PARCEL)]
    if sawmill:
        rows.insert(0, ("11111111100011", "SCIERIE DU PARC", "16.10A", SAWMILL_PARCEL))
    points = [parcels.geometry[idu == p].iloc[0].representative_point() for *_, p in rows]
    frame = gpd.GeoDataFrame({
        "siret": [r[0] for r in rows], "nom": [r[1] for r in rows],
        "naf": [r[2] for r in rows], "etat": "A", "date_creation": "2010-01-01",
    }, geometry=points, crs=parcels.crs)
    pyogrio.write_dataframe(frame, path, layer="etablissements")
    return path


def _territory(folder: Path, *, parcels: Path, etablissements: Path, out: Path,
               date: dt.date) -> Path:
    toml = folder / "territoire.toml"
    toml.write_text(f"""
[territoire]
nom = "Gennes"
communes = ["25267"]
epci_nom = "Grand Besançon Métropole"
epci_siren = "242500361"
date_observation = {date.isoformat()}

[sources.parcelles]
chemin = "{parcels}"
format = "bdparcellaire"
couche = "parcel"

{sample_context_sources(friches=False)}
[sources.etablissements]
chemin = "{etablissements}"

[sorties]
dossier = "{out}"

[options]
atlas = false
rapport = false
carte = false
export_cnig = false
""", encoding="utf-8")
    return toml


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    """Build the three observations in one folder; the layers of each, by date."""
    root = tmp_path_factory.mktemp("vacance")
    out = root / "out"
    parcels = pyogrio.read_dataframe(SAMPLE / "parcel.gpkg", layer="parcel")
    renumbered = parcels.copy()
    renumbered.loc[_idu(parcels) == SAWMILL_PARCEL, "NUMERO"] = "9005"
    renumbered_path = root / "parcel-2.gpkg"
    pyogrio.write_dataframe(renumbered, renumbered_path, layer="parcel")
    layers = {}
    for date, parcel_path, sawmill in ((D1, SAMPLE / "parcel.gpkg", True),
                                       (D2, renumbered_path, False),
                                       (D3, renumbered_path, False)):
        folder = root / date.isoformat()
        folder.mkdir()
        etabs = _establishments(folder / "etablissements.gpkg",
                                parcels if sawmill else renumbered, sawmill=sawmill)
        build(load_territory(_territory(folder, parcels=parcel_path, etablissements=etabs,
                                        out=out, date=date)))
        gpkg = out / "observatoire.gpkg"
        layers[date] = {name: pyogrio.read_dataframe(gpkg, layer=name)
                        for name in ("zae", "zae_unites")}
    return out, layers


def _unit(layers: dict, uf_id: str) -> pd.Series:
    units = layers["zae_unites"].set_index("uf_id")
    return units.loc[uf_id]


def _rule(layers: dict) -> str:
    zae = layers["zae"].set_index("zae_id")
    return zae.loc[ZAE, "regle_vacance"]


@pytest.mark.slow
def test_the_history_keeps_the_active_establishments_per_parcel(observations):
    out, _ = observations
    folder = history.history_folder(out / "observatoire.gpkg")
    assert history.observation_dates(folder) == [D1, D2, D3]
    read = history.read_establishments(folder, before=dt.date(2030, 1, 1))
    assert read is not None and not read.sans_etablissements
    seen = {o.date: dict(zip(o.parcelles["idu"], o.parcelles["nb_etablissements_actifs"],
                             strict=True)) for o in read.observations}
    assert seen == {D1: {SAWMILL_PARCEL: 1, GARAGE_PARCEL: 1},
                    D2: {GARAGE_PARCEL: 1}, D3: {GARAGE_PARCEL: 1}}
    # Rows are stored once: observation 3 is observation 2 again, it adds no row.
    lignes = sorted((folder / "lignes").glob(f"{D3.isoformat()}.*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in lignes) == 0


@pytest.mark.slow
def test_first_observation_keeps_the_closing_dates_rule(observations):
    _, layers = observations
    obs = "01/06/2021"
    assert _rule(layers[D1]) == (LEGAL.format(obs=obs, y=2019, year=2021)
                                 + REST.format(obs=obs))
    sawmill = _unit(layers[D1], f"UF-{SAWMILL_PARCEL}")
    assert sawmill["statut_vacance"] == "non vacante"
    assert sawmill["raison_vacance"] == "1 établissement(s) actif(s) au 01/06/2021"


@pytest.mark.slow
def test_seen_active_less_than_two_years_before_is_not_vacant(observations):
    _, layers = observations
    unit = _unit(layers[D2], f"UF-{RENUMBERED}")
    assert unit["idus"] == RENUMBERED
    assert unit["statut_vacance"] == "non vacante"
    assert unit["occupation"] == "occupée"
    assert unit["raison_vacance"] == (
        "aucun établissement actif au 01/01/2022 ; établissement actif observé le 01/06/2021 "
        "(observation de l'historique), après le 1er janvier 2020 : inoccupée depuis moins de "
        "deux ans au 1er janvier 2022, donc non vacante au sens de l'article L318-8-2")
    # The history is too short for vacancy itself: the closing dates rule, said so.
    obs = "01/01/2022"
    assert _rule(layers[D2]) == (
        LEGAL.format(obs=obs, y=2020, year=2022) + REST.format(obs=obs)
        + " ; historique trop court pour la règle des observations : aucune observation des "
          "établissements au plus tard le 1er janvier 2020 (observations des établissements : "
          "01/06/2021) : règle des dates de fermeture du millésime d'établissements, et unité "
          "non vacante si un établissement y a été observé actif après le 1er janvier 2020")
    # A unit where nothing was ever seen: vacant by the closing dates (none at all).
    other = _unit(layers[D2], "UF-252670000B0613")
    assert other["statut_vacance"] == "vacante"
    assert other["raison_vacance"] == "aucun établissement, actif ou fermé, localisé sur l'unité"


@pytest.mark.slow
def test_vacant_by_the_observations_once_the_window_is_covered(observations):
    _, layers = observations
    unit = _unit(layers[D3], f"UF-{RENUMBERED}")
    assert unit["statut_vacance"] == "vacante"
    assert unit["occupation"] == "vacante"
    assert unit["raison_vacance"] == (
        "aucun établissement actif observé sur l'unité aux observations du 01/01/2022 (la "
        "première au plus tard le 1er janvier 2022) ni au 01/06/2024 : inoccupée depuis au "
        "moins deux ans au 1er janvier 2024")
    garage = _unit(layers[D3], f"UF-{GARAGE_PARCEL}")
    assert garage["statut_vacance"] == "non vacante"
    assert garage["raison_vacance"] == "1 établissement(s) actif(s) au 01/06/2024"
    assert _rule(layers[D3]) == (
        "Définition légale (art. L318-8-2 du code de l'urbanisme) évaluée sur les observations "
        "de l'historique du 01/01/2022 et le millésime d'établissements du 01/06/2024 : unité "
        "vacante si aucun établissement actif n'y a été observé à ces dates (la première au "
        "plus tard le 1er janvier 2022) ni n'y a fermé après le 1er janvier 2022 ; non vacante "
        "si un établissement y est actif ou y a été observé actif après le 1er janvier 2022 ; "
        "unité où un établissement était actif le 01/01/2022 et aucun depuis : dates de "
        "fermeture du millésime ; " + REST.format(obs="01/06/2024"))
    # 10 units, the garage's only occupied: 9 vacant.
    zae = layers[D3]["zae"].set_index("zae_id")
    assert zae.loc[ZAE, "nb_unites_vacantes"] == 9
    assert zae.loc[ZAE, "taux_vacance"] == pytest.approx(0.9)


# The rule on small synthetic layers: zone Z (100 m × 50 m) of two units, U1 (west)
# and U2 (east), 50 m × 50 m each; the observation of 01/03/2025 (threshold 01/01/2023).
OBS = dt.date(2025, 3, 1)
CRS = "EPSG:2154"
NEVER = "aucun établissement, actif ou fermé, localisé sur l'unité"


def _zone_and_units() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    zae = gpd.GeoDataFrame({"zae_id": ["Z"], "zae_nom": ["Zone"]},
                           geometry=[box(0, 0, 100, 50)], crs=CRS)
    unites = gpd.GeoDataFrame({
        "uf_id": ["U1", "U2"], "idus": ["P1", "P2"], "surface_m2": [2500.0, 2500.0],
        "proprietaire_type": "inconnu", "proprietaire_nom": None, "proprietaire_siren": None,
    }, geometry=[box(0, 0, 50, 50), box(50, 0, 100, 50)], crs=CRS)
    return zae, unites


def _now(*, closed_on_u1: str | None = None) -> gpd.GeoDataFrame:
    """The current vintage: one active establishment on U2 (and one closed on U1)."""
    rows = [("20000000000002", "A", None, shapely.Point(75, 25))]
    if closed_on_u1:
        rows.append(("10000000000001", "F", closed_on_u1, shapely.Point(25, 25)))
    return gpd.GeoDataFrame({"siret": [r[0] for r in rows], "etat": [r[1] for r in rows],
                             "date_creation": "2000-01-01",
                             "date_fermeture": [r[2] for r in rows]},
                            geometry=[r[3] for r in rows], crs=CRS)


def _seen(date: dt.date, *shapes: shapely.Geometry) -> ObservedEstablishments:
    """An earlier observation where establishments were active on ``shapes``."""
    return ObservedEstablishments(date=date, parcelles=gpd.GeoDataFrame(
        {"idu": [f"O{i}" for i in range(len(shapes))], "nb_etablissements_actifs": 1},
        geometry=list(shapes), crs=CRS))


def _statuses(historique: EstablishmentHistory | None, **now) -> tuple[pd.DataFrame, str]:
    zae, unites = _zone_and_units()
    zout, zu = inventory(zae, unites, None, _now(**now), date_observation=OBS,
                         historique=historique)
    return zu.set_index("uf_id"), zout["regle_vacance"].iloc[0]


def test_no_history_and_an_empty_one_change_nothing():
    plain, text = _statuses(None)
    empty, empty_text = _statuses(EstablishmentHistory())
    pd.testing.assert_frame_equal(pd.DataFrame(plain), pd.DataFrame(empty))
    assert text == empty_text == (LEGAL.format(obs="01/03/2025", y=2023, year=2025)
                                  + REST.format(obs="01/03/2025"))
    assert plain.loc["U1", "raison_vacance"] == NEVER


def test_history_without_establishments_keeps_the_closing_dates_and_says_so():
    units, text = _statuses(EstablishmentHistory(sans_etablissements=(dt.date(2022, 6, 1),)))
    assert units.loc["U1", "statut_vacance"] == "vacante"
    assert units.loc["U1", "raison_vacance"] == NEVER
    assert text.endswith(
        " ; historique : aucune observation des établissements (observations du 01/06/2022 "
        "faites sans couche d'établissements) : règle des dates de fermeture du millésime "
        "d'établissements")


def test_vacant_by_the_observations_and_sliver_of_a_neighbour_ignored():
    # 01/06/2022 (on or before the threshold) and 01/06/2023: an establishment on a
    # parcel overlapping U1 by a 2 m band only (100 m² = 4 % of U1, 3.8 % of itself):
    # not U1's, but U2's (2,500 m², all of U2).
    historique = EstablishmentHistory(observations=(
        _seen(dt.date(2022, 6, 1), box(48, 0, 100, 50)),
        _seen(dt.date(2023, 6, 1), box(48, 0, 100, 50))))
    units, _ = _statuses(historique)
    assert units.loc["U1", "statut_vacance"] == "vacante"
    assert units.loc["U1", "raison_vacance"] == (
        "aucun établissement actif observé sur l'unité aux observations du 01/06/2022, "
        "01/06/2023 (la première au plus tard le 1er janvier 2023) ni au 01/03/2025 : "
        "inoccupée depuis au moins deux ans au 1er janvier 2025")
    assert units.loc["U2", "raison_vacance"] == "1 établissement(s) actif(s) au 01/03/2025"


def test_a_split_parcel_carries_its_establishment_to_both_units():
    # On 01/01/2024 (after the threshold) one parcel covered both units, occupied:
    # each unit lies wholly in it (a piece of a split), both were occupied then.
    historique = EstablishmentHistory(observations=(
        _seen(dt.date(2022, 6, 1)), _seen(dt.date(2024, 1, 1), box(0, 0, 100, 50))))
    units, _ = _statuses(historique)
    assert units.loc["U1", "statut_vacance"] == "non vacante"
    assert units.loc["U1", "raison_vacance"] == (
        "aucun établissement actif au 01/03/2025 ; établissement actif observé le 01/01/2024 "
        "(observation de l'historique), après le 1er janvier 2023 : inoccupée depuis moins de "
        "deux ans au 1er janvier 2025, donc non vacante au sens de l'article L318-8-2")


def test_occupied_at_the_first_observation_only_falls_back_to_the_closing_dates():
    # Seen occupied on 01/06/2022 (before the threshold), not on 01/06/2023: freed in
    # between, maybe after the threshold; the closing dates decide.
    historique = EstablishmentHistory(observations=(
        _seen(dt.date(2022, 6, 1), box(0, 0, 50, 50)), _seen(dt.date(2023, 6, 1))))
    units, _ = _statuses(historique)
    assert units.loc["U1", "statut_vacance"] == "vacante"
    assert units.loc["U1", "raison_vacance"] == (
        NEVER + " ; établissement actif observé le 01/06/2022, aucun aux observations "
                "suivantes (01/06/2023)")
    # With a closure on 01/02/2023 (after the threshold) in the current vintage: not vacant.
    units, _ = _statuses(historique, closed_on_u1="2023-02-01")
    assert units.loc["U1", "statut_vacance"] == "non vacante"
    assert units.loc["U1", "raison_vacance"].startswith(
        "aucun établissement actif ; dernière fermeture le 01/02/2023 : inoccupée depuis moins "
        "de deux ans au 1er janvier 2025")


def test_a_recent_closure_outweighs_observations_that_saw_nothing():
    historique = EstablishmentHistory(observations=(_seen(dt.date(2022, 6, 1)),))
    units, _ = _statuses(historique, closed_on_u1="2024-01-01")
    assert units.loc["U1", "statut_vacance"] == "non vacante"
    assert units.loc["U1", "raison_vacance"].startswith(
        "aucun établissement actif ; dernière fermeture le 01/01/2024")


@pytest.mark.slow
def test_without_date_observation_the_history_is_not_used(observations, tmp_path, caplog):
    # The inventory would be dated today and the observation by the cadastre's
    # vintage: the history is left aside, the closing dates decide, the log says so.
    out, _ = observations
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    folder = tmp_path / "v"
    folder.mkdir()
    parcels = pyogrio.read_dataframe(SAMPLE / "parcel.gpkg", layer="parcel")
    etabs = _establishments(folder / "etablissements.gpkg", parcels, sawmill=False)
    toml = _territory(folder, parcels=SAMPLE / "parcel.gpkg", etablissements=etabs, out=copy,
                      date=D1)
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        f"date_observation = {D1.isoformat()}\n", ""), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="observatoire.pipeline.build"):
        build(load_territory(toml))
    assert ("Vacance des ZAE : l'historique n'est pas utilisé sans date_observation (dans "
            "[territoire]) ; règle des dates de fermeture du millésime d'établissements"
            in caplog.messages)
    units = pyogrio.read_dataframe(copy / "observatoire.gpkg", layer="zae_unites")
    sawmill = units.set_index("uf_id").loc[f"UF-{SAWMILL_PARCEL}"]
    assert sawmill["raison_vacance"] == NEVER
    rule = pyogrio.read_dataframe(copy / "observatoire.gpkg", layer="zae")["regle_vacance"][0]
    assert rule.startswith("Définition légale (art. L318-8-2 du code de l'urbanisme) : unité "
                           "vacante si aucun établissement n'y est actif au ")
    assert "historique" not in rule


def test_active_establishments_per_parcel_across_batches(tmp_path, monkeypatch):
    from observatoire.observation import capture

    # P1, P2, P3: 10 m × 10 m, P2 and P3 6 m apart (a road between them).
    # Written P3 first: the road's point finds P3 (4 m) in the first batch, then P2 (2 m).
    parcels = gpd.GeoDataFrame({"idu": ["P3", "P2", "P1"]},
                               geometry=[box(36, 0, 46, 10), box(20, 0, 30, 10),
                                         box(0, 0, 10, 10)], crs=CRS)
    etabs = gpd.GeoDataFrame({
        "siret": [f"{k}" * 14 for k in range(1, 7)],
        "etat": ["A", "A", "A", "F", "A", "A"],
        "date_creation": "2000-01-01",
        "date_fermeture": [None, None, None, "2020-01-01", None, None],
        "naf": ["25.11Z", "25.11Z", "25.11Z", "25.11Z", "68.20B", "25.11Z"],
    }, geometry=[
        shapely.Point(5, 5),    # in P1
        shapely.Point(2, 8),    # in P1 too
        shapely.Point(32, 5),   # on the road: 2 m from P2, 4 m from P3 → P2
        shapely.Point(25, 5),   # in P2, closed: not active
        shapely.Point(40, 5),   # in P3, a property company (68.20B): does not occupy it
        shapely.Point(60, 5),   # 14 m from P3: beyond the 10 m radius, attached to none
    ], crs=CRS)
    gpkg = tmp_path / "observatoire.gpkg"
    pyogrio.write_dataframe(parcels, gpkg, layer="parcelles")
    pyogrio.write_dataframe(etabs, gpkg, layer="etablissements")
    # One parcel per batch: the nearest over all batches wins.
    monkeypatch.setattr(capture, "BATCH", 1)
    counts = capture.active_establishments(gpkg, dt.date(2024, 1, 1))
    assert counts.to_dict() == {"P1": 2, "P2": 1}
    folder = tmp_path / "historique"
    capture.stage_capture(gpkg, folder, dt.date(2024, 1, 1)).publish()
    read = history.read_establishments(folder, before=dt.date(2025, 1, 1))
    assert read is not None
    (observed,) = read.observations
    assert dict(zip(observed.parcelles["idu"], observed.parcelles["nb_etablissements_actifs"],
                    strict=True)) == {"P1": 2, "P2": 1}
    assert observed.parcelles.geometry.area.tolist() == [100.0, 100.0]
