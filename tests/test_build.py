"""End-to-end build of the sample territory into a temporary folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyogrio
import pytest

from observatoire.config import load_territory
from observatoire.pipeline import build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("gennes")
    territory = load_territory("data/sample/territoire.toml", output_dir=out)
    return build(territory), out


@pytest.mark.slow
def test_layer_counts(built):
    result, out = built
    gpkg = out / "observatoire.gpkg"
    layers = dict(pyogrio.list_layers(gpkg))
    for name in ("parcelles", "friches", "zae", "zonage", "batiments", "routes", "sources"):
        assert name in layers
    # 851 parcels in the file, 23 of them in Montfaucon (25395), outside the territory.
    assert pyogrio.read_info(gpkg, layer="parcelles")["features"] == 828
    assert pyogrio.read_info(gpkg, layer="batiments")["features"] == 325
    assert pyogrio.read_info(gpkg, layer="routes")["features"] == 182
    # 26 zones, one of them with an empty geometry (dropped and counted).
    assert pyogrio.read_info(gpkg, layer="zonage")["features"] == 25
    # The UY activity zone becomes one derived ZAE.
    zae = pyogrio.read_dataframe(gpkg, layer="zae")
    assert zae["zae_origine"].tolist() == ["derivee_plu"]
    assert zae["zae_id"].tolist() == ["25267_SITE-ECO_00001"]
    assert result.layer_counts["parcelles"] == 828


@pytest.mark.slow
def test_crs_and_spatial_index(built):
    _, out = built
    gpkg = out / "observatoire.gpkg"
    for layer in ("parcelles", "zae", "zonage", "batiments", "routes", "friches"):
        assert pyogrio.read_info(gpkg, layer=layer)["crs"] == "EPSG:2154"
    con = sqlite3.connect(gpkg)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for layer in ("parcelles", "zae", "zonage", "batiments", "routes", "friches"):
        assert f"rtree_{layer}_geom" in tables
    assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
    assert con.execute("PRAGMA user_version").fetchone()[0] == 10200


@pytest.mark.slow
def test_sources_table(built):
    _, out = built
    sources = pyogrio.read_dataframe(out / "observatoire.gpkg", layer="sources")
    row = sources.set_index("type_source").loc["parcelles"]
    assert row["entites_lues"] == 851
    assert row["entites_gardees"] == 828
    assert len(row["sha256"]) == 64
    assert "hors des communes" in row["reparations"]


@pytest.mark.slow
def test_map_written(built):
    _, out = built
    html = (out / "carte.html").read_text(encoding="utf-8")
    assert "Parcelles" in html and "Zones d" in html


@pytest.mark.slow
def test_map_keeps_the_best_parcels_beyond_the_limit(built):
    from observatoire.publish.carte_selection import map_layers

    _, out = built
    parcels = pyogrio.read_dataframe(out / "observatoire.gpkg", layer="parcelles")
    territory = load_territory("data/sample/territoire.toml", output_dir=out)
    messages: list[str] = []
    kept = map_layers({"parcelles": parcels}, territory, messages.append, limit=100)["parcelles"]
    assert len(kept) == 100
    assert kept["score_industrie"].notna().all()
    dropped = parcels.drop(index=kept.index)
    assert kept["score_industrie"].min() >= dropped["score_industrie"].max()
    assert "100 parcelles dessinées sur 828" in messages[0]
    # Under the limit, the map draws every parcel.
    assert map_layers({"parcelles": parcels}, territory, messages.append)["parcelles"] is parcels


@pytest.mark.slow
def test_map_keeps_the_best_sites_and_the_vacant_units_beyond_the_limits(built):
    from observatoire.publish.carte_selection import map_units_and_sites

    _, out = built
    gpkg = out / "observatoire.gpkg"
    sites = pyogrio.read_dataframe(gpkg, layer="gisements")
    units = pyogrio.read_dataframe(gpkg, layer="zae_unites")
    vacant = units["statut_vacance"].isin(["vacante", "présumée vacante"])
    assert len(sites) > 5 and vacant.sum() > 3 and (~vacant).sum() > 0
    messages: list[str] = []
    drawn = map_units_and_sites({"gisements": sites, "zae_unites": units}, messages.append,
                                limits={"gisements": 5, "zae_unites": 3})
    kept = drawn["gisements"]
    assert len(kept) == 5
    # The best mean scores are kept (the largest first among equal scores), in layer order.
    expected = sites.assign(_s=-sites["score_moyen"], _a=-sites["surface_m2"]).sort_values(
        ["_s", "_a"], kind="stable").index[:5]
    assert list(kept.index) == sorted(expected)
    assert kept["score_moyen"].min() >= sites.drop(index=kept.index)["score_moyen"].max()
    # Units: the largest vacant ones.
    kept = drawn["zae_unites"]
    assert list(kept.index) == sorted(units[vacant]["surface_m2"].nlargest(3).index)
    assert messages == [
        f"Carte : 5 gisements dessinés sur {len(sites)} (les mieux notés, puis les plus grands "
        "; tous sont dans le GeoPackage)",
        f"Carte : 3 unités foncières de ZAE dessinées sur {len(units)} (les vacantes d'abord, "
        "puis les plus grandes ; toutes sont dans le GeoPackage)"]
    # Under the limits, every site and unit is drawn.
    same = map_units_and_sites({"gisements": sites, "zae_unites": units}, messages.append)
    assert same["gisements"] is sites and same["zae_unites"] is units and len(messages) == 2


@pytest.mark.slow
def test_communes_and_epci_named_from_the_table_without_noms_communes(tmp_path):
    """Names come from the shipped table; [options.noms_communes] overrides them."""
    import shutil

    from observatoire.config import load_territory as load

    folder = tmp_path / "t"
    shutil.copytree("data/sample", folder, ignore=shutil.ignore_patterns("territoire.toml"))
    text = Path("data/sample/territoire.toml").read_text(encoding="utf-8")
    # A territory named after its intercommunality, written as a new user would: codes
    # and the EPCI's SIREN only (no commune names, no EPCI name).
    text = text.replace('nom = "Gennes"', 'nom = "Grand Besançon, extrait"')
    text = text.replace('communes = ["25267"]', 'communes = ["25267", "25395"]')
    text = text.replace('epci_nom = "Grand Besançon Métropole"\n', "")
    assert "noms_communes" not in text and "epci_nom" not in text
    (folder / "territoire.toml").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    build(load(folder / "territoire.toml", output_dir=out))
    gpkg = out / "cnig" / "sites_economiques.gpkg"
    sites = pyogrio.read_dataframe(gpkg, layer="site_eco")
    assert list(sites["site_comm_nom"]) == ["Gennes"]
    assert list(sites["site_comm_insee"]) == ["25267"]
    assert list(sites["site_epci_nom"]) == ["CU Grand Besançon Métropole"]
    report = (out / "rapport.html").read_text(encoding="utf-8")
    assert "communes : Gennes (25267), Montfaucon (25395)" in report
    assert "<td>Montfaucon</td>" in report
    page = (out / "carte.html").read_text(encoding="utf-8")
    assert '"code":"25395","nom":"Montfaucon"' in page
    import openpyxl

    book = openpyxl.load_workbook(out / "consultation" / "25267_SITE-ECO_00001.xlsx")
    info = {r[0]: r[1] for r in book["Zone"].iter_rows(values_only=True)}
    assert info["Commune"] == "Gennes (25267)"

    # The option overrides the table.
    text += '\n[options.noms_communes]\n"25267" = "Gennes (Doubs)"\n'
    (folder / "territoire.toml").write_text(text, encoding="utf-8")
    build(load(folder / "territoire.toml", output_dir=out))
    sites = pyogrio.read_dataframe(gpkg, layer="site_eco")
    assert list(sites["site_comm_nom"]) == ["Gennes (Doubs)"]


def test_epci_of_the_territory_from_the_table():
    import dataclasses

    from observatoire.pipeline.publication import missing_epci, territory_epci

    sample = load_territory("data/sample/territoire.toml")
    assert territory_epci(sample) == ("Grand Besançon Métropole", "242500361")  # as written
    assert territory_epci(dataclasses.replace(sample, epci_nom=None)) == (
        "CU Grand Besançon Métropole", "242500361")
    unknown = dataclasses.replace(sample, epci_nom=None, epci_siren="242500360")
    assert territory_epci(unknown) == (None, "242500360")
    assert "SIREN 242500360 inconnu de la table des EPCI" in missing_epci(unknown)
    # Neither given: no export, and the warning gives the SIREN when the communes share one.
    bare = dataclasses.replace(sample, epci_nom=None, epci_siren=None,
                               communes=("25267", "25395"))
    assert territory_epci(bare) == (None, None)
    assert missing_epci(bare) == (
        'territoire.epci_siren absent ; les communes du territoire sont dans CU Grand Besançon '
        'Métropole (SIREN 242500361) : ajoutez epci_siren = "242500361" à [territoire]')
    # Luxiol is in the CC du Doubs Baumois: no single EPCI to suggest.
    mixed = dataclasses.replace(bare, communes=("25267", "25354"))
    assert missing_epci(mixed) == "territoire.epci_siren absent"


def test_commune_names_of_the_territory(caplog):
    import dataclasses
    import logging

    from observatoire.ingest import Layers, empty_friches
    from observatoire.pipeline.publication import commune_names
    from observatoire.schema import BATIMENTS, PARCELLES, ROUTES, ZAE, ZONAGE, empty_layer

    crs = "EPSG:2154"
    layers = Layers(parcelles=empty_layer(PARCELLES, crs), friches=empty_friches(crs),
                    friches_surfaces=empty_friches(crs, surfaces=True),
                    zae=empty_layer(ZAE, crs), zonage=empty_layer(ZONAGE, crs),
                    batiments=empty_layer(BATIMENTS, crs), routes=empty_layer(ROUTES, crs))
    sample = load_territory("data/sample/territoire.toml")
    territory = dataclasses.replace(sample, communes=("25267", "25354", "25999"),
                                    options=dataclasses.replace(sample.options, noms_communes={
                                        "25354": "Luxiol (Doubs)"}))
    with caplog.at_level(logging.WARNING, logger="observatoire.pipeline.publication"):
        names = commune_names(territory, layers)
    assert names == {"25267": "Gennes", "25354": "Luxiol (Doubs)"}
    assert ("commune 25999 absente de la table des communes : désignée par son code "
            "(nommez-la dans [options.noms_communes]) ; codes proches : ") in caplog.text
