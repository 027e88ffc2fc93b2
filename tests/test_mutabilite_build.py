"""Mutabilité in the build: both builds, the layers, the criteria table, the map and the report.

The sample territory (Gennes) with, built in code: two friches in the CNIG Friches
CSV layout on Gennes' real parcels (one by its parcel list, one by its point), a
flood zone and a town hall. Both builds (one pass, by partition) run on it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import SAMPLE
from geopandas.testing import assert_geodataframe_equal

from observatoire.config import load_territory
from observatoire.ingest import ingest
from observatoire.pipeline import build
from observatoire.schema import MUTABILITE_FIELDS

# Every test runs whole builds.
pytestmark = pytest.mark.slow

CRS = "EPSG:2154"
#: Gennes parcels of the friche given by its parcel list, and of the one given by its point.
FRICHE_PARCELS = ("252670000B0627", "252670000B0628")
POINT_PARCEL = "25267000ZA0071"
HALL_PARCEL = "25267000AB0184"


def _inputs(folder: Path) -> dict[str, str]:
    parcels = ingest(load_territory(SAMPLE / "territoire.toml")).parcelles.set_index("idu")
    point = parcels.loc[POINT_PARCEL, "geometry"].representative_point()
    lonlat = gpd.GeoSeries([point], crs=CRS).to_crs("EPSG:4326").iloc[0]
    first = parcels.loc[FRICHE_PARCELS[0], "geometry"].representative_point()
    lonlat_first = gpd.GeoSeries([first], crs=CRS).to_crs("EPSG:4326").iloc[0]
    rows = [
        "site_id;site_nom;site_type;comm_insee;comm_nom;unite_fonciere_refcad;bati_etat;"
        "sol_pollution_existe;bati_pollution;proprio_type;proprio_personne;urba_zone_type;"
        "geompoint",
        f"25267_1;Ancienne scierie;friche industrielle;25267;GENNES;{'|'.join(FRICHE_PARCELS)};"
        f"dégradation moyenne;pollution avérée;inconnu;P5a;personne morale;N;"
        f"POINT ({lonlat_first.x:.7f} {lonlat_first.y:.7f})",
        f"25267_2;Dépôt;friche logistique;25267;GENNES;;inconnu;inconnu;amiante;X1a;"
        f"personne physique;;POINT ({lonlat.x:.7f} {lonlat.y:.7f})",
    ]
    (folder / "friches.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    # A flood zone over the western half of the listed friche's first parcel.
    x0, y0, x1, y1 = parcels.loc[FRICHE_PARCELS[0], "geometry"].bounds
    flood = gpd.GeoDataFrame({"nom": ["PPRI du Doubs"]},
                             geometry=[shapely.box(x0, y0, (x0 + x1) / 2, y1)], crs=CRS)
    pyogrio.write_dataframe(flood, folder / "ppri.gpkg", layer="ppri")
    # A town hall (BD TOPO zone of activity « Mairie ») on a parcel of Gennes.
    hall = parcels.loc[HALL_PARCEL, "geometry"].representative_point()
    zai = gpd.GeoDataFrame({"nature": ["Mairie", "Église"], "toponyme": ["Mairie", "Église"]},
                           geometry=[hall.buffer(5), hall.buffer(5).centroid.buffer(3)],
                           crs=CRS)
    pyogrio.write_dataframe(zai, folder / "bdtopo.gpkg", layer="zone_d_activite_ou_d_interet")
    return {"hall": hall.wkt}


def _territory(folder: Path, out: str, partition: str) -> Path:
    path = folder / f"territoire-{out}.toml"
    path.write_text(f"""
[territoire]
nom = "Gennes"
communes = ["25267"]
epci_nom = "Grand Besançon Métropole"
epci_siren = "242500361"

[sources.parcelles]
chemin = "{SAMPLE / 'parcel.gpkg'}"
format = "bdparcellaire"
couche = "parcel"

[sources.zonage]
chemin = "{SAMPLE / 'zoning.gpkg'}"
couche = "zoning2"

[sources.batiments]
chemin = "{SAMPLE / 'building.gpkg'}"

[sources.routes]
chemin = "{SAMPLE / 'road.gpkg'}"

[sources.friches]
chemin = "friches.csv"

[sources.mairies]
chemin = "bdtopo.gpkg"

[[sources.contraintes]]
nom = "PPRI du Doubs"
type = "inondation"
chemin = "ppri.gpkg"

[sorties]
dossier = "{out}"

[options]
parcelles_par_partition = {1 if partition == "commune" else 40000}
date_observation = "2026-01-01"
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mutabilite")
    facts = _inputs(folder)
    whole = load_territory(_territory(folder, "entier", "aucune"))
    parts = load_territory(_territory(folder, "communes", "commune"))
    return facts, (whole, build(whole)), (parts, build(parts))


def _read(path: Path, layer: str, key: list[str]) -> pd.DataFrame:
    frame = pyogrio.read_dataframe(path, layer=layer)
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize(("layer", "key"), [
    ("friches", ["site_id"]), ("gisements", ["gisement_id"]),
    ("mutabilite_criteres", ["site_type", "site_id", "critere"])])
def test_both_builds_give_the_same_mutabilite(builds, layer, key):
    _, (_, whole), (_, parts) = builds
    a, b = _read(whole.gpkg, layer, key), _read(parts.gpkg, layer, key)
    assert len(a) > 0
    if isinstance(a, gpd.GeoDataFrame):
        assert_geodataframe_equal(a, b)
    else:
        pd.testing.assert_frame_equal(a, b)
    assert whole.checksums[layer] == parts.checksums[layer]


def test_friches_get_the_seven_usages(builds):
    _, (_, whole), _ = builds
    f = _read(whole.gpkg, "friches", ["site_id"]).set_index("site_id")
    for u in ("residentiel", "equipements", "culture", "tertiaire", "industrie",
              "renaturation", "photovoltaique"):
        assert f[f"mutabilite_{u}"].between(0, 100).all()
        assert f[f"mutabilite_{u}_rang"].between(1, 7).all()
    ranks = f[[c for c in f.columns if c.endswith("_rang")]].to_numpy()
    assert (np.sort(ranks, axis=1) == np.arange(1, 8)).all()
    assert set(f["mutabilite_version"]) == {"v1.11"}
    # The columns are those observatoire/schema.py describes, in its order, on both layers.
    g = pyogrio.read_dataframe(whole.gpkg, layer="gisements")
    for frame in (f, g):
        assert [c for c in frame.columns if c.startswith("mutabilite_")] == [
            field.name for field in MUTABILITE_FIELDS]
    # CNIG fields: the source's urba_zone_type is kept; the empty one is filled from the PLU.
    assert f.loc["25267_1", "urba_zone_type"] == "N"
    assert f.loc["25267_2", "urba_zone_type"] == "AU"
    assert f.loc["25267_2", "urba_zone_lib"] == "AU2"
    assert f.loc["25267_1", "bati_nombre"] == "1"
    assert f.loc["25267_2", "unite_fonciere_surface"] == 56729
    assert f["unite_fonciere_surface"].dtype == "float64"
    assert f["mutabilite_score_observatoire"].notna().all()
    assert set(f["mutabilite_avis_industrie"]) <= {"concordant", "divergent"}


def test_criteria_of_a_friche_by_hand(builds):
    _, (_, whole), _ = builds
    t = pyogrio.read_dataframe(whole.gpkg, layer="mutabilite_criteres")
    assert len(t) == 28 * (2 + len(pyogrio.read_dataframe(whole.gpkg, layer="gisements")))
    one = t[(t["site_type"] == "friche") & (t["site_id"] == "25267_1")].set_index("critere")
    # Parcels 0B0627 (8 622,265 m²) and 0B0628, the first half in the flood zone.
    parcels = ingest(load_territory(SAMPLE / "territoire.toml")).parcelles.set_index("idu")
    union = shapely.union_all(parcels.loc[list(FRICHE_PARCELS), "geometry"].to_numpy())
    assert one.loc["surfaceSite", "valeur"] == str(int(np.floor(union.area + 0.5)))
    assert one.loc["surfaceSite", "source"] == (
        "aire de la géométrie : parcelles de la friche (unite_fonciere_refcad)")
    assert one.loc["risqueInondation", "valeur"] == "oui"
    assert one.loc["risqueInondation", "impact_renaturation"] == 2
    assert one.loc["etatBatiInfrastructure", "valeur"] == "degradation-moyenne"
    assert one.loc["presencePollution", "valeur"] == "oui-autres-composes"
    assert one.loc["typeProprietaire", "valeur"] == "public"
    assert one.loc["zonageReglementaire", "valeur"] == "zone-urbaine-u-activite"
    assert one.loc["tauxLogementsVacants", "etat"] == "non renseigné"
    assert pd.isna(one.loc["tauxLogementsVacants", "impact_industrie"])
    assert one.loc["siteEnCentreVille", "source"].startswith("mairie à ")
    two = t[(t["site_type"] == "friche") & (t["site_id"] == "25267_2")].set_index("critere")
    assert two.loc["presencePollution", "valeur"] == "oui-amiante"
    assert two.loc["etatBatiInfrastructure", "valeur"] == "pas-de-bati"
    assert two.loc["typeProprietaire", "valeur"] == "prive"
    assert two.loc["risqueInondation", "valeur"] == "non"


def test_town_centre_from_the_town_hall(builds):
    facts, (_, whole), _ = builds
    t = pyogrio.read_dataframe(whole.gpkg, layer="mutabilite_criteres")
    hall = shapely.from_wkt(facts["hall"])
    sites = pyogrio.read_dataframe(whole.gpkg, layer="gisements").set_index("gisement_id")
    rows = t[(t["site_type"] == "gisement") & (t["critere"] == "siteEnCentreVille")]
    for _, row in rows.iterrows():
        d = sites.loc[row["site_id"], "geometry"].centroid.distance(hall)
        assert row["valeur"] == ("oui" if d < 1000 else "non"), (row["site_id"], d)
    sources = pyogrio.read_dataframe(whole.gpkg, layer="sources")
    assert "mairies" in set(sources["type_source"])


def test_map_and_report_show_mutabilite(builds):
    _, (whole_t, _), _ = builds
    page = (whole_t.output_dir / "carte.html").read_text(encoding="utf-8")
    assert "Mutafriches — industrie, logistique" in page
    assert "Score industriel de l'observatoire" in page
    report = (whole_t.output_dir / "rapport.html").read_text(encoding="utf-8")
    assert "Mutabilité des friches et des gisements (Mutafriches, ADEME)" in report
    assert re.search(r"Avis sur l&#39;industrie : \d+ sites concordants", report)
    assert "Ancienne scierie" in report or "25267_1" in report


def test_mutabilite_can_be_turned_off(tmp_path):
    _inputs(tmp_path)
    path = _territory(tmp_path, "sans", "aucune")
    path.write_text(path.read_text(encoding="utf-8") + "\n[options.mutabilite]\nactif = false\n",
                    encoding="utf-8")
    result = build(load_territory(path))
    assert "mutabilite_criteres" not in result.layer_counts
    f = pyogrio.read_dataframe(result.gpkg, layer="friches")
    assert not [c for c in f.columns if c.startswith("mutabilite_")]


@pytest.mark.browser
def test_popups_show_the_seven_usages_beside_the_score(builds):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from test_browser import chromium_paths, click_feature

    chromium, driver_path = chromium_paths()
    _, (whole_t, whole), _ = builds
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                 "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    try:
        driver.get((whole_t.output_dir / "carte.html").as_uri())
        for _ in range(600):
            if driver.execute_script("return !!(window.observatoire && "
                                     "window.observatoire.ready)"):
                break
            time.sleep(0.05)
        sites = pyogrio.read_dataframe(whole.gpkg, layer="gisements")
        lines = click_feature(driver, "gisements", 0).split("\n")
        first = sites.iloc[0]
        industry = lines.index("Mutafriches — industrie, logistique")
        assert lines[industry + 1] == f"{first['mutabilite_industrie']:.1f}".replace(".", ",")
        for label in ("Mutafriches — résidentiel", "Mutafriches — photovoltaïque au sol",
                      "Mutafriches — fiabilité (sur 10)", "Score industriel de l'observatoire"):
            assert label in lines
        agree = lines[lines.index("Industrie : Mutafriches et observatoire") + 1]
        assert agree.startswith(first["mutabilite_avis_industrie"])
        lines = click_feature(driver, "friches", 0).split("\n")
        assert "Mutafriches — meilleur usage" in lines
    finally:
        driver.quit()
