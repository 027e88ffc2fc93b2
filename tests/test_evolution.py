"""Continuous observation on the real sample: two vintages, the changes computed by hand.

The second vintage of Gennes (25267) is derived from the sample by documented edits
(:func:`second_vintage`):

- parcel 252670000B0036 (5,678.40 m², outside the activity zone) is split in two
  along the vertical line through its centroid: 252670000B9001 (west) and
  252670000B9002 (east);
- parcels 252670000B0032 and 252670000B0033 (touching along 213 m) are merged
  into 252670000B9003;
- parcel 252670000B0039 is renumbered 252670000B9004 (same shape);
- a building is added on parcel 252670000B0619 (4,055.73 m², wholly inside the
  activity zone UY, empty, a vacant land unit, in the candidate site
  G-252670000B0613): the parcel less a 3 m band along its limits;
- friche 25056_18566 goes from « friche potentielle » to « friche avec projet ».
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import SAMPLE

from observatoire.config import load_territory
from observatoire.observation import history
from observatoire.pipeline import build

D1 = dt.date(2021, 11, 23)  # the sample cadastre's vintage (metadata of parcel.gpkg)
D2 = dt.date(2025, 1, 1)
SPLIT = "252670000B0036"
MERGED = ("252670000B0032", "252670000B0033")
RENUMBERED = "252670000B0039"
BUILT = "252670000B0619"
FRICHE = "25056_18566"
ZAE = "25267_SITE-ECO_00001"


def territory_file(folder: Path, *, parcels: Path, buildings: Path, friches: Path,
                   out: Path, date: dt.date | None, publications: bool = False) -> Path:
    """Write a territory file of the sample with the given parcels, buildings and friches.

    ``publications``: the report, the map and the CNIG export too.
    """
    line = f"date_observation = {date.isoformat()}\n" if date else ""
    toml = folder / "territoire.toml"
    toml.write_text(f"""
[territoire]
nom = "Gennes"
communes = ["25267"]
epci_nom = "Grand Besançon Métropole"
epci_siren = "242500361"
{line}
[sources.parcelles]
chemin = "{parcels}"
format = "bdparcellaire"
couche = "parcel"

[sources.zonage]
chemin = "{SAMPLE / 'zoning.gpkg'}"
couche = "zoning2"

[sources.batiments]
chemin = "{buildings}"

[sources.routes]
chemin = "{SAMPLE / 'road.gpkg'}"

[sources.friches]
chemin = "{friches}"
format = "cartofriches"

[sorties]
dossier = "{out}"

[options]
atlas = false
rapport = {str(publications).lower()}
carte = {str(publications).lower()}
export_cnig = {str(publications).lower()}
""", encoding="utf-8")
    return toml


def _idu(frame: pd.DataFrame) -> pd.Series:
    return frame["DEPCOM"] + frame["COM_ABS"] + frame["SECTION"] + frame["NUMERO"]


def second_vintage(folder: Path) -> tuple[Path, Path, Path]:
    """Write the edited parcels, buildings and friches (see the module's docstring)."""
    parcels = pyogrio.read_dataframe(SAMPLE / "parcel.gpkg", layer="parcel")
    idu = _idu(parcels)
    # Split: the parent cut by the vertical line through its centroid.
    parent = parcels[idu == SPLIT].iloc[0]
    x = parent.geometry.centroid.x
    minx, miny, maxx, maxy = parent.geometry.bounds
    west = parent.geometry.intersection(shapely.box(minx - 1, miny - 1, x, maxy + 1))
    east = parent.geometry.intersection(shapely.box(x, miny - 1, maxx + 1, maxy + 1))
    pieces = [parent.copy(), parent.copy()]
    pieces[0]["NUMERO"], pieces[0]["geometry"] = "9001", west
    pieces[1]["NUMERO"], pieces[1]["geometry"] = "9002", east
    # Merge: the union of the two, under a new number.
    merged = parcels[idu == MERGED[0]].iloc[0].copy()
    merged["NUMERO"] = "9003"
    merged["geometry"] = shapely.union_all(parcels[idu.isin(MERGED)].geometry.values)
    # Renumbering: same shape, new number.
    parcels.loc[idu == RENUMBERED, "NUMERO"] = "9004"
    kept = parcels[~idu.isin([SPLIT, *MERGED])]
    edited = gpd.GeoDataFrame(pd.concat([kept, pd.DataFrame(pieces), pd.DataFrame([merged])],
                                        ignore_index=True), geometry="geometry",
                              crs=parcels.crs)
    edited["geometry"] = shapely.multipolygons(shapely.get_parts(edited.geometry.values),
                                               indices=shapely.get_parts(
                                                   edited.geometry.values,
                                                   return_index=True)[1])
    parcel_path = folder / "parcel.gpkg"
    pyogrio.write_dataframe(edited, parcel_path, layer="parcel")

    buildings = pyogrio.read_dataframe(SAMPLE / "building.gpkg")
    target = parcels[_idu(parcels) == BUILT].geometry.iloc[0]
    new = buildings.iloc[[0]].copy()
    new["ID"] = "BATIMENT_AJOUTE"
    new["geometry"] = [shapely.force_3d(shapely.multipolygons([target.buffer(-3)]))]
    building_path = folder / "building.gpkg"
    pyogrio.write_dataframe(pd.concat([buildings, new], ignore_index=True), building_path)

    data = json.loads((SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson")
                      .read_text(encoding="utf-8"))
    for feature in data["features"]:
        if feature["properties"]["site_id"] == FRICHE:
            assert feature["properties"]["site_statut"] == "friche potentielle"
            feature["properties"]["site_statut"] = "friche avec projet"
    friche_path = folder / "friches.geojson"
    friche_path.write_text(json.dumps(data), encoding="utf-8")
    return parcel_path, building_path, friche_path


@pytest.fixture(scope="module")
def vintages(tmp_path_factory):
    """Build the sample (first vintage), then its second vintage, into one folder."""
    root = tmp_path_factory.mktemp("evolution")
    out = root / "out"
    (root / "v1").mkdir()
    (root / "v2").mkdir()
    first = territory_file(root / "v1", parcels=SAMPLE / "parcel.gpkg",
                           buildings=SAMPLE / "building.gpkg",
                           friches=SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson",
                           out=out, date=None)
    build(load_territory(first))
    parcels, buildings, friches = second_vintage(root / "v2")
    second = territory_file(root / "v2", parcels=parcels, buildings=buildings,
                            friches=friches, out=out, date=D2, publications=True)
    result = build(load_territory(second))
    return out, first, second, result


def _layer(out: Path, name: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(out / "observatoire.gpkg", layer=name)


@pytest.mark.slow
def test_dates_from_the_vintage_then_from_the_territory_file(vintages):
    out, *_ = vintages
    assert history.observation_dates(out / "historique") == [D1, D2]


@pytest.mark.slow
def test_parcel_lineage_of_the_edits(vintages):
    out, *_ = vintages
    parcels = _layer(out, "evolution_parcelles").set_index("idu_precedents")
    lineage = parcels[parcels["changement"] != "inchangée"]
    by_new = lineage.reset_index().set_index("idu")
    assert by_new.loc["252670000B9001", "changement"] == "divisée"
    assert by_new.loc["252670000B9002", "changement"] == "divisée"
    assert by_new.loc["252670000B9001", "idu_precedents"] == SPLIT
    assert by_new.loc["252670000B9003", "changement"] == "fusionnée"
    assert by_new.loc["252670000B9003", "idu_precedents"] == ",".join(MERGED)
    assert by_new.loc["252670000B9004", "changement"] == "renumérotée"
    assert by_new.loc["252670000B9004", "idu_precedents"] == RENUMBERED
    # Nothing else changed in the cadastre: 2 + 1 + 1 new parcels, none deleted.
    assert "supprimée" not in set(lineage["changement"])
    assert sorted(lineage.reset_index()["idu"].dropna()) == [
        "252670000B9001", "252670000B9002", "252670000B9003", "252670000B9004"]
    # The halves of the split parcel add up to it (5,678.40 m²).
    halves = by_new.loc[["252670000B9001", "252670000B9002"], "surface_m2"]
    assert halves.sum() == pytest.approx(5678.40, abs=0.05)
    merged = by_new.loc["252670000B9003"]
    assert merged["surface_m2"] == pytest.approx(2490.23 + 2432.36, abs=0.05)


@pytest.mark.slow
def test_building_added_on_an_empty_parcel_of_the_zae(vintages):
    out, *_ = vintages
    parcels = _layer(out, "evolution_parcelles").set_index("idu")
    built = parcels.loc[BUILT]
    assert built["changement"] == "inchangée"
    assert built["evolution"] == "nouvellement bâtie"
    assert built["part_batie_avant"] == 0
    assert built["part_batie"] > 0.1  # the analysis' threshold (seuil_bati_gisement)
    assert built["nouveaux_batiments"] == 1
    assert built["surface_consommee_m2"] == pytest.approx(4055.73, abs=0.01)
    assert built["gisement_avant"] == "G-252670000B0613"
    assert built["gisement"] is None
    # Built, it is excluded from the industrial profile: class A before, none now.
    assert built["avant_classe_industrie"] == "A"
    assert built["classe_industrie"] is None
    assert built["critere_industrie"] == "exclusion"
    # The only newly built parcel.
    assert parcels["nouvellement_batie"].fillna(False).astype(bool).sum() == 1
    zae = _layer(out, "evolution_zae").set_index("zae_id").loc[ZAE]
    # Wholly inside the ZAE (part_zae = 1): 0.405573 ha consumed, in Gennes.
    assert zae["surface_consommee_ha"] == pytest.approx(0.405573, abs=1e-5)
    assert zae["consommation_par_commune"] == "25267 : 0,41 ha"
    # Its land unit was one of the 9 vacant units out of 10: now occupied.
    assert (zae["nb_unites_vacantes_avant"], zae["nb_unites_vacantes"]) == (9, 8)
    assert (zae["unites_occupees"], zae["unites_liberees"]) == (1, 0)
    assert zae["taux_vacance_avant"] == pytest.approx(0.9)
    assert zae["taux_vacance"] == pytest.approx(0.8)
    assert zae["changement"] == "modifiée"


@pytest.mark.slow
def test_candidate_site_reduced_by_the_built_parcel(vintages):
    out, *_ = vintages
    sites = _layer(out, "evolution_gisements").set_index("gisement_id")
    site = sites.loc["G-252670000B0613"]
    assert site["statut"] == "réduit"
    assert site["surface_avant_m2"] - site["surface_m2"] == pytest.approx(4055.73, abs=0.05)


@pytest.mark.slow
def test_friche_status_change(vintages):
    out, *_ = vintages
    friches = _layer(out, "evolution_friches")
    assert friches[["site_id", "statut_avant", "site_statut", "changement"]].values.tolist() \
        == [[FRICHE, "friche potentielle", "friche avec projet", "statut modifié"]]
    assert friches.geometry.notna().all()


@pytest.mark.slow
def test_evolution_csv_and_styles(vintages):
    out, *_ = vintages
    table = pd.read_csv(out / "evolution.csv", sep=";", decimal=",", encoding="utf-8-sig",
                        dtype={"Parcelle (IDU)": str})
    row = table.set_index("Parcelle (IDU)").loc[BUILT]
    assert row["Évolution principale"] == "nouvellement bâtie"
    assert row["Surface consommée (m²)"] == pytest.approx(4055.73, abs=0.01)
    assert set(table["Observation précédente"]) == {D1.isoformat()}
    import sqlite3

    with sqlite3.connect(out / "observatoire.gpkg") as con:
        styled = {r[0] for r in con.execute("SELECT f_table_name FROM layer_styles")}
    assert {"evolution_parcelles", "evolution_zae", "evolution_friches",
            "evolution_gisements"} <= styled


@pytest.mark.slow
def test_report_section_and_series(vintages):
    out, *_ = vintages
    page = (out / "rapport.html").read_text(encoding="utf-8")
    assert "Évolution depuis le 23 novembre 2021" in page
    assert "Séries sur les 2 observations de l&#39;historique" in page
    assert "parcelles nouvellement bâties : 1" in page
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    # Observation, hectares A and B, land consumed in ZAE (0.405573 ha), vacancy
    # (9 then 8 vacant units out of 10), friches (the 8 of the sample's file, nearby).
    assert "23 novembre 2021 " in text
    assert re.search(r"1er janvier 2025 [\d ,]+ 0,4 80,0 8 ", text), text[-3000:]


@pytest.mark.slow
def test_map_layer_of_changes(vintages):
    from observatoire.publish.carte import page_data

    out, *_ = vintages
    data = page_data((out / "carte.html").read_text(encoding="utf-8"))
    layer = next(x for x in data["layers"] if x["id"] == "evolution_parcelles")
    assert layer["libelle"] == "Changements depuis le 23 novembre 2021"
    assert layer["visible"] is False  # a toggle of the layer control
    assert sorted(layer["props"]["evolution"]["v"]) == [
        "divisée", "divisée", "fusionnée", "nouvellement bâtie", "renumérotée"]


@pytest.mark.slow
def test_cnig_dates_from_the_history(vintages):
    out, *_ = vintages
    cnig = out / "cnig" / "sites_economiques.gpkg"
    sites = pyogrio.read_dataframe(cnig, layer="site_eco", read_geometry=False)
    # The zone was first observed on the first vintage; this observation updates it.
    assert sites[["site_id", "site_identif_date", "site_actu_date"]].values.tolist() == [
        [ZAE, D1.isoformat(), D2.isoformat()]]
    terrains = pyogrio.read_dataframe(cnig, layer="terrain_eco", read_geometry=False)
    assert len(terrains) == 10
    assert set(terrains["terr_identif_date"]) == {D1.isoformat()}
    assert set(terrains["terr_actu_date"]) == {D2.isoformat()}


@pytest.mark.slow
def test_cli_evolution_between_two_observations(vintages, capsys):
    from observatoire.cli import main

    out, _, second, _ = vintages
    gpkg = out / "observatoire.gpkg"
    layers = dict(pyogrio.list_layers(gpkg))
    (out / "evolution.csv").unlink()
    assert main(["evolution", "--config", str(second), "--depuis", D1.isoformat(),
                 "--jusqua", D2.isoformat()]) == 0
    printed = capsys.readouterr().out
    assert "Évolution du 23/11/2021 au 01/01/2025 :" in printed
    assert re.search(r"parcelles divisées +1\n", printed)
    assert re.search(r"parcelles nouvellement bâties +1\n", printed)
    assert re.search(r"foncier consommé en ZAE \(ha\) +0,41\n", printed)
    # The same layers, the evolution layers rewritten in place; the CSV written again.
    assert dict(pyogrio.list_layers(gpkg)) == layers
    assert pyogrio.read_info(gpkg, layer="parcelles")["features"] == 828 - 3 + 3
    assert pyogrio.read_info(gpkg, layer="evolution_parcelles")["features"] == 5
    assert (out / "evolution.csv").exists()


@pytest.mark.slow
def test_rebuilding_an_observation_gives_identical_history(vintages):
    out, _, second, _ = vintages
    folder = out / "historique"
    before = history.read_observation(folder, D2)
    shapes = sorted(p.name.split(".")[0] for p in (folder / "geometries").glob("*.parquet"))
    build(load_territory(second))
    after = history.read_observation(folder, D2)
    assert history.observation_dates(folder) == [D1, D2]
    for name in ("parcelles", "zae", "friches", "gisements"):
        pd.testing.assert_frame_equal(pd.DataFrame(getattr(before, name)),
                                      pd.DataFrame(getattr(after, name)))
    assert shapely.equals(before.parcelles.geometry.values,
                          after.parcelles.geometry.values).all()
    # One file of shapes per observation, no leftover of the replaced one.
    assert sorted(p.name.split(".")[0] for p in (folder / "geometries").glob("*.parquet")) \
        == shapes == [D1.isoformat(), D2.isoformat()]
    # The second observation stores only the shapes the edits made: 2 halves + 1 merge.
    second_shapes = gpd.read_parquet(next((folder / "geometries").glob(f"{D2}.*.parquet")))
    assert len(second_shapes) == 3


_KILLED = """
import os, signal, sys
from observatoire.config import load_territory
from observatoire.observation import history
from observatoire.pipeline import build
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
history._write_manifest = die
build(load_territory(sys.argv[1]))
"""


@pytest.mark.slow
def test_sigkill_while_the_build_appends_keeps_the_history(vintages, tmp_path):
    out, _, second, _ = vintages
    folder = out / "historique"
    before = history.read_observation(folder, D2)
    third = Path(second).read_text(encoding="utf-8").replace(
        f"date_observation = {D2.isoformat()}", "date_observation = 2026-01-01")
    toml = tmp_path / "territoire.toml"
    toml.write_text(third, encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _KILLED, str(toml)], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          check=False, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    # Killed while committing the observation of 2026-01-01: the history is the one
    # before, readable and whole.
    assert history.observation_dates(folder) == [D1, D2]
    after = history.read_observation(folder, D2)
    pd.testing.assert_frame_equal(pd.DataFrame(before.parcelles),
                                  pd.DataFrame(after.parcelles))
    assert len(history.read_observation(folder, D1).parcelles) == 828


# Non-slow: the evolution functions on small observations, the territory file, the CLI.

def _observation(date: dt.date, parcels: list[tuple[str, tuple[float, float, float, float],
                                                    float, str | None]],
                 zae: pd.DataFrame, friches: pd.DataFrame,
                 gisements: pd.DataFrame) -> history.Observation:
    frame = gpd.GeoDataFrame(
        {"idu": [p[0] for p in parcels], "part_batie": [p[2] for p in parcels],
         "gisement_id": [p[3] for p in parcels], "zae_id": "Z1", "part_zae": 0.5,
         "code_insee": "25267"},
        geometry=[shapely.box(*p[1]) for p in parcels], crs="EPSG:2154")
    frame["surface_m2"] = frame.area
    frame.insert(1, "empreinte", history.fingerprints(frame.geometry))
    return history.Observation(date=date, parcelles=frame, zae=zae, friches=friches,
                               gisements=gisements)


def test_evolution_computed_by_hand_on_small_observations():
    from observatoire.observation import evolution

    zae1 = pd.DataFrame({"zae_id": ["Z1"], "nb_unites": [4], "nb_unites_vacantes": [3],
                         "taux_vacance": [0.75], "surface_disponible_m2": [30_000.0]})
    zae2 = zae1.assign(nb_unites_vacantes=[1], taux_vacance=[0.25],
                       surface_disponible_m2=[20_000.0])
    fr1 = pd.DataFrame({"site_id": ["F1", "F2"], "site_statut": ["friche sans projet",
                                                                 "friche avec projet"]})
    fr2 = pd.DataFrame({"site_id": ["F1", "F3"], "site_statut": ["friche reconvertie",
                                                                 "friche sans projet"]})
    g1 = pd.DataFrame({"gisement_id": ["GA", "GB"], "surface_m2": [20_000.0, 10_000.0],
                       "zae_id": ["Z1", None]})
    g2 = pd.DataFrame({"gisement_id": ["GA", "GC"], "surface_m2": [10_000.0, 10_000.0],
                       "zae_id": ["Z1", None]})
    # A and B (100 m × 100 m) form site GA; C forms GB. Then B is built (0 → 0.6, over
    # the 0.1 threshold), C leaves its site, D (a parcel where there was none) forms GC.
    old = _observation(D1, [("A", (0, 0, 100, 100), 0.0, "GA"),
                            ("B", (100, 0, 200, 100), 0.0, "GA"),
                            ("C", (200, 0, 300, 100), 0.0, "GB")], zae1, fr1, g1)
    new = _observation(D2, [("A", (0, 0, 100, 100), 0.0, "GA"),
                            ("B", (100, 0, 200, 100), 0.6, None),
                            ("C", (200, 0, 300, 100), 0.0, None),
                            ("D", (0, 500, 100, 600), 0.0, "GC")], zae2, fr2, g2)
    parcels = evolution.evolution_parcelles(old, new, seuil_bati=0.1).set_index("idu")
    # The main change: being built, then entering or leaving a site, then the cadastre.
    assert parcels["evolution"].to_dict() == {"B": "nouvellement bâtie",
                                              "C": "sortie de gisement",
                                              "D": "entrée en gisement"}
    assert parcels.loc["D", "changement"] == "créée"
    assert parcels.loc["B", "surface_consommee_m2"] == pytest.approx(10_000)
    zae = evolution.evolution_zae(old, new, parcels.reset_index()).set_index("zae_id")
    # 10,000 m² built, half of it inside the ZAE (part_zae 0.5): 0.5 ha.
    assert zae.loc["Z1", "surface_consommee_ha"] == pytest.approx(0.5)
    assert zae.loc["Z1", "consommation_par_commune"] == "25267 : 0,50 ha"
    assert (zae.loc["Z1", "unites_occupees"], zae.loc["Z1", "unites_liberees"]) == (2, 0)
    assert zae.loc["Z1", "evolution_surface_disponible_m2"] == -10_000
    sites = evolution.evolution_gisements(old, new, parcels.reset_index()).set_index(
        "gisement_id")
    assert sites["statut"].to_dict() == {"GA": "réduit", "GC": "nouveau", "GB": "disparu"}
    assert sites.loc["GA", ["surface_avant_m2", "surface_m2"]].tolist() == [20_000, 10_000]
    friches = evolution.evolution_friches(old, new).set_index("site_id")
    assert friches["changement"].to_dict() == {"F1": "statut modifié", "F2": "disparue",
                                               "F3": "nouvelle"}
    assert friches.loc["F1", ["statut_avant", "site_statut"]].tolist() == [
        "friche sans projet", "friche reconvertie"]


def test_report_series_of_land_consumed_follows_the_lineage(tmp_path):
    """The report's « foncier consommé » on the derived vintage, parcel B0039 built.

    Three observations appended to a history: the sample (D1), its second vintage
    (D2: B0039 renumbered B9004, same shape) and the second vintage again (D3). The
    attributes are set by hand: B0039 / B9004 (2,718.45 m²) is in zone Z and built at
    every observation (built share 0.5); B0619 (4,055.73 m²) is in Z, unbuilt at D1,
    built at D2 (0.4); every other parcel is unbuilt and outside any zone. Land
    consumed: at D2, B0619 only, 0.405573 ha (matching by IDU would also count
    B9004, a parcel with no predecessor of its IDU: 0.677418 ha); at D3, nothing.
    """
    from observatoire.observation.evolution import evolution_parcelles
    from observatoire.observation.run import Evolution
    from observatoire.publish import rapport_evolution

    v2_path, _, _ = second_vintage(tmp_path)

    def observed(path: Path, built_now: bool) -> gpd.GeoDataFrame:
        raw = pyogrio.read_dataframe(path, layer="parcel")
        frame = gpd.GeoDataFrame({"idu": _idu(raw).to_numpy()}, geometry=raw.geometry.values,
                                 crs=raw.crs)
        frame["surface_m2"] = frame.area.round(2)
        in_zone = frame["idu"].isin([RENUMBERED, "252670000B9004", BUILT])
        frame["zae_id"] = np.where(in_zone, "Z", None)
        frame["part_zae"] = np.where(in_zone, 1.0, 0.0)
        frame["part_batie"] = np.select(
            [frame["idu"].isin([RENUMBERED, "252670000B9004"]), frame["idu"] == BUILT],
            [0.5, 0.4 if built_now else 0.0], 0.0)
        return frame

    folder = tmp_path / "historique"
    empty = pd.DataFrame({"zae_id": pd.Series([], dtype=object)})
    d3 = dt.date(2026, 1, 1)
    for date, path, built_now in ((D1, SAMPLE / "parcel.gpkg", False), (D2, v2_path, True),
                                  (d3, v2_path, True)):
        frame = observed(path, built_now)
        history.append_observation(folder, date, parcelles=frame, zae=empty, friches=empty)
    areas = frame.set_index("idu")["surface_m2"]
    assert (areas[BUILT], areas["252670000B9004"]) == (4055.73, 2718.45)
    manifest = history.read_manifest(folder)
    old, new = history.read_changes(folder, D2, d3)
    current = Evolution(depuis=D2, jusqua=d3, layers={
        "evolution_parcelles": evolution_parcelles(old, new, seuil_bati=0.1)})
    parcelles = history.read_table(folder, "parcelles", manifest=manifest,
                                   columns=["idu", "surface_m2", "part_batie", "zae_id",
                                            "part_zae"])
    consumed = rapport_evolution._consumed(folder, manifest, parcelles, [D1, D2, d3],
                                           seuil_bati=0.1, current=current)
    assert consumed is not None
    assert np.isnan(consumed[D1])
    assert consumed[D2] == pytest.approx(0.405573)
    assert consumed[d3] == 0.0


def test_date_observation_in_territoire_or_options(tmp_path):
    from observatoire.errors import ConfigError

    def load(extra_territoire: str, extra_options: str = "") -> dt.date | None:
        toml = tmp_path / "t.toml"
        toml.write_text(f"""
[territoire]
nom = "Gennes"
communes = ["25267"]
{extra_territoire}
[sources.parcelles]
chemin = "{SAMPLE / 'parcel.gpkg'}"
[options]
{extra_options}
""", encoding="utf-8")
        return load_territory(toml).options.date_observation

    assert load("date_observation = 2025-01-01") == D2
    assert load('date_observation = "2025-01-01"') == D2
    assert load("", 'date_observation = "2021-11-23"') == D1
    assert load("") is None
    with pytest.raises(ConfigError, match="territoire.date_observation.*2025-13-01.*AAAA-MM-JJ"):
        load('date_observation = "2025-13-01"')
    with pytest.raises(ConfigError, match="diffèrent ; n'en gardez qu'une"):
        load("date_observation = 2025-01-01", 'date_observation = "2021-11-23"')


def test_cli_unknown_date_lists_the_observations(tmp_path, capsys):
    from observatoire.cli import EXIT_USER_ERROR, main

    out = tmp_path / "out"
    toml = territory_file(tmp_path, parcels=SAMPLE / "parcel.gpkg",
                          buildings=SAMPLE / "building.gpkg",
                          friches=SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson",
                          out=out, date=None)
    assert main(["evolution", "--config", str(toml)]) == EXIT_USER_ERROR
    assert "observatoire absent" in capsys.readouterr().err
    parcels = gpd.GeoDataFrame({"idu": ["A"]}, geometry=[shapely.box(0, 0, 1, 1)],
                               crs="EPSG:2154")
    out.mkdir()
    pyogrio.write_dataframe(parcels, out / "observatoire.gpkg", layer="parcelles")
    empty = pd.DataFrame({"zae_id": []})
    for date in (D1, D2):
        history.append_observation(out / "historique", date, parcelles=parcels, zae=empty,
                                   friches=pd.DataFrame({"site_id": []}))
    assert main(["evolution", "--config", str(toml), "--depuis", "2022-01-01"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "--depuis 2022-01-01 : pas d'observation" in err
    assert "observations : 2021-11-23, 2025-01-01" in err
    assert main(["evolution", "--config", str(toml), "--depuis", "2025-01-01",
                 "--jusqua", "2021-11-23"]) == EXIT_USER_ERROR
    assert "doit précéder --jusqua" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evolution", "--config", str(toml), "--depuis", "hier"])
    assert "date invalide « hier »" in capsys.readouterr().err
