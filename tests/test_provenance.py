"""Producer and date of the data of each source, as the Licence Ouverte 2.0 asks to credit."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import sqlite3
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from conftest import SAMPLE, sample_context_sources, shared_file
from publication_fixtures import sample_gpkg

from observatoire.config import load_territory
from observatoire.ingest import ingest
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.friches import read_friches
from observatoire.readers.layers import read_zonage
from observatoire.readers.lineage import SourceReport, merge_reports
from observatoire.readers.provenance import (
    UNKNOWN_PRODUCER,
    attribute_sources,
    credits,
    latest_date,
)

HEAD = """\
[territoire]
nom = "Essai"
communes = ["{commune}"]
epci_nom = "Grand Besançon Métropole"
epci_siren = "242500361"

[sources.parcelles]
chemin = "{parcelles}"
"""


def territory_file(folder: Path, extra: str = "", *, commune: str = "25267",
                   parcelles: Path = SAMPLE / "parcel.gpkg") -> Path:
    path = folder / "territoire.toml"
    path.write_text(HEAD.format(commune=commune, parcelles=parcelles) + extra, encoding="utf-8")
    return path


def read_only(path: Path) -> str:
    """SQLite URI reading a file without writing anything beside it."""
    return f"{path.resolve().as_uri()}?mode=ro&immutable=1"


def days(n: int) -> str:
    """The date ``n`` days after 1970-01-01 (R's dates, as Cartofriches stores them)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=n)).isoformat()


# --------------------------------------------------------------------------- the sample build


def test_sample_build_credits_every_source():
    with sqlite3.connect(sample_gpkg()) as con:
        rows = con.execute("SELECT type_source, producteur, date_donnees, date_donnees_origine "
                           "FROM sources").fetchall()
    table = {kind: (producer, date, origin) for kind, producer, date, origin in rows}
    assert set(table) == {"parcelles", "zonage", "friches", "batiments", "routes"}
    assert all(producer and date for producer, date, _ in table.values())
    assert table["parcelles"][:2] == ("IGN, DGFiP (BD PARCELLAIRE)", "2021-11-23")
    assert table["zonage"][:2] == ("Géoportail de l'Urbanisme", "2022-03-25")
    # Cartofriches: the latest site_actu_date of the file (19275 days after 1970-01-01).
    assert table["friches"] == ("Cerema (Cartofriches)", days(19275),
                                "champ « site_actu_date » de cartofriches_subset_gennes_25267_"
                                "5km.geojson (date la plus récente)")
    assert table["batiments"][:2] == ("IGN (BD TOPO)", "2020-10-02")  # fields PREC_PLANI…
    assert table["routes"][:2] == ("IGN (BD TOPO)", "2021-09-02")
    # No date field in these files: the layer's last change written in the GeoPackage.
    for kind, name, layer in (("parcelles", "parcel.gpkg", "parcel"),
                              ("routes", "road.gpkg", "roadSS")):
        assert table[kind][2] == ("dernière modification de la couche (métadonnées du "
                                  f"GeoPackage {name})")
        with sqlite3.connect(read_only(SAMPLE / name), uri=True) as con:
            change = con.execute("SELECT last_change FROM gpkg_contents WHERE table_name = ?",
                                 (layer,)).fetchone()[0]
        assert change[:10] == table[kind][1]


# --------------------------------------------------------------------------- real formats


def test_etalab_cadastre_is_dated_by_its_latest_update(tmp_path):
    path = shared_file("etalab-cadastre/cadastre-91216-parcelles.json")
    territory = load_territory(territory_file(tmp_path, commune="91216", parcelles=path))
    result = read_parcelles(territory.source("parcelles"), crs=territory.crs,
                            communes=territory.communes)
    raw = gpd.read_file(path, ignore_geometry=True)
    expected = max(str(v)[:10] for v in raw["updated"].dropna())
    assert expected == "2021-12-15"
    assert result.report.data_date == expected
    assert result.report.data_date_origin == ("champ « updated » de cadastre-91216-parcelles"
                                              ".json (date la plus récente)")
    attribute_sources([result.report], territory, {})
    assert result.report.producer == "DGFiP / Etalab (cadastre)"
    assert result.report.data_date == expected


def test_national_cartofriches_date(tmp_path):
    path = shared_file("cartofriches/cartofriches_fxy_2024-03.gpkg")
    territory = load_territory(territory_file(tmp_path, f"""
[sources.friches]
chemin = "{path}"
format = "cartofriches"
"""))
    result = read_friches(territory.source("friches"), crs=territory.crs)
    with sqlite3.connect(read_only(path), uri=True) as con:
        (latest,) = con.execute("SELECT max(site_actu_date) FROM friches").fetchone()
    assert result.report.data_date == days(int(latest)) == "2024-02-13"  # March 2024 snapshot


def write_cnig_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    fields = ["site_id", "site_nom", "site_statut", "site_identif_date", "site_actu_date",
              "source_nom", "geompoint"]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter=";")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "NA") for k in fields})
    return path


def test_cnig_friches_credit_their_source_nom(tmp_path):
    csv_path = write_cnig_csv(tmp_path / "friches.csv", [
        {"site_id": "25056_1", "site_actu_date": "16/01/2024", "site_identif_date": "01/01/2020",
         "source_nom": "EPF Doubs BFC", "geompoint": "POINT (6.02 47.24)"},
        {"site_id": "25056_2", "site_actu_date": "03/02/2024", "source_nom": "DDT du Doubs",
         "geompoint": "POINT (6.03 47.24)"},
        {"site_id": "25056_3", "site_actu_date": "NA", "source_nom": "EPF Doubs BFC",
         "geompoint": "POINT (6.04 47.24)"},
    ])
    territory = load_territory(territory_file(tmp_path, f"""
[sources.friches]
chemin = "{csv_path}"
"""))
    result = read_friches(territory.source("friches"), crs=territory.crs)
    assert result.report.data_date == "2024-02-03"
    attribute_sources([result.report], territory, {"friches": result.frame})
    # The most frequent first.
    assert result.report.producer == "EPF Doubs BFC, DDT du Doubs"

    unnamed = write_cnig_csv(tmp_path / "sans_source.csv", [
        {"site_id": "25056_9", "site_actu_date": "2019-06-23", "geompoint": "POINT (6 47)"}])
    territory = load_territory(territory_file(tmp_path, f"""
[sources.friches]
chemin = "{unnamed}"
format = "cnig_csv"
"""))
    result = read_friches(territory.source("friches"), crs=territory.crs)
    attribute_sources([result.report], territory, {"friches": result.frame})
    assert (result.report.producer, result.report.data_date) == ("Cerema", "2019-06-23")


def zone_urba(path: Path, rows: list[dict[str, str]]) -> Path:
    square = shapely.box(932_000, 6_686_000, 933_000, 6_687_000)
    frame = gpd.GeoDataFrame(rows, geometry=[square] * len(rows), crs="EPSG:2154")
    frame.to_file(path, layer="zone_urba", driver="GPKG")
    return path


def test_zoning_names_the_authority_of_its_documents(tmp_path):
    path = zone_urba(tmp_path / "zone_urba.gpkg", [
        {"LIBELLE": "UY", "TYPEZONE": "U", "IDURBA": "25267_PLU_20170321",
         "DATAPPRO": "20170321"},
        {"LIBELLE": "N", "TYPEZONE": "N", "IDURBA": "242500361_PLUi_20200130",
         "DATAPPRO": "20200130"},
    ])
    territory = load_territory(territory_file(tmp_path, f"""
[sources.zonage]
chemin = "{path}"
"""))
    result = read_zonage(territory.source("zonage"), crs=territory.crs)
    attribute_sources([result.report], territory, {"zonage": result.frame})
    assert result.report.producer == (
        "Grand Besançon Métropole (SIREN 242500361), PLUi ; Commune 25267, PLU "
        "(via le Géoportail de l'Urbanisme)")
    assert result.report.data_date == "2020-01-30"
    assert result.report.data_date_origin == ("champ « DATAPPRO » de zone_urba.gpkg "
                                              "(date la plus récente)")


def test_zoning_without_date_field_is_dated_by_its_idurba(tmp_path):
    path = zone_urba(tmp_path / "zone_urba.gpkg", [
        {"LIBELLE": "UY", "TYPEZONE": "U", "IDURBA": "DU_25267_PLU_20170321"}])
    territory = load_territory(territory_file(tmp_path, f"""
[sources.zonage]
chemin = "{path}"

[options.noms_communes]
25267 = "Gennes"
"""))
    result = read_zonage(territory.source("zonage"), crs=territory.crs)
    attribute_sources([result.report], territory, {"zonage": result.frame})
    assert result.report.producer == ("Commune de Gennes (25267), PLU (via le Géoportail de "
                                      "l'Urbanisme)")
    assert result.report.data_date == "2017-03-21"
    assert result.report.data_date_origin == ("date d'approbation du document d'urbanisme "
                                              "(idurba)")


def test_sirene_is_credited_to_insee_with_its_latest_processing_date(tmp_path):
    from test_readers_etablissements import GEO_HEADER, GEO_ROWS, write_csv

    from observatoire.readers.etablissements import read_etablissements

    path = write_csv(tmp_path / "geo_siret_25.csv", GEO_HEADER, GEO_ROWS)
    territory = load_territory(territory_file(tmp_path, f"""
[sources.etablissements]
chemin = "{path}"
"""))
    result = read_etablissements(territory.source("etablissements"), crs=territory.crs)
    attribute_sources([result.report], territory, {"etablissements": result.frame})
    # dateDernierTraitementEtablissement of the two establishments kept: 2024-01-15, 2021-06-01.
    assert (result.report.producer, result.report.data_date) == ("INSEE (Sirene)", "2024-01-15")
    assert result.report.data_date_origin == ("champ « date_maj » de geo_siret_25.csv "
                                              "(date la plus récente)")


# --------------------------------------------------------------------------- territory file


def test_the_territory_file_overrides_producer_and_date(tmp_path):
    text = sample_context_sources().replace(
        'couche = "zoning2"', 'couche = "zoning2"\nproducteur = "Commune de Gennes"\n'
                              'date = 2019-07-01')
    territory = load_territory(territory_file(tmp_path, text))
    layers = ingest(territory)
    attribute_sources(layers.reports, territory, {"zonage": layers.zonage})
    zonage = next(r for r in layers.reports if r.kind == "zonage")
    assert (zonage.producer, zonage.data_date, zonage.data_date_origin) == (
        "Commune de Gennes", "2019-07-01", "fichier de territoire (sources.zonage.date)")
    routes = next(r for r in layers.reports if r.kind == "routes")
    assert routes.producer == "IGN (BD TOPO)"


def test_no_date_and_no_producer_fall_back_to_the_file_and_warn(tmp_path, caplog):
    layer = tmp_path / "ppri.geojson"
    gpd.GeoDataFrame({"zone": ["rouge"]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:2154").to_file(layer, driver="GeoJSON")
    stamp = dt.datetime(2023, 5, 17, 12, 0).timestamp()
    os.utime(layer, (stamp, stamp))
    territory = load_territory(territory_file(tmp_path, f"""
[[sources.contraintes]]
chemin = "{layer}"
nom = "PPRI"
type = "inondation"
"""))
    report = SourceReport("contraintes", [layer], "auto")
    with caplog.at_level(logging.WARNING, logger="observatoire.readers.provenance"):
        attribute_sources([report], territory, {})
    assert report.producer == UNKNOWN_PRODUCER
    assert "« sources.contraintes[0].producteur = \"…\" »" in caplog.text
    assert "ppri.geojson" in caplog.text
    assert report.data_date == "2023-05-17"
    assert report.data_date_origin == ("date de modification du fichier ppri.geojson (aucune "
                                       "date dans les données)")


def test_geopackage_metadata_date_leaves_no_file_beside_the_source(tmp_path):
    layer = tmp_path / "ppri.gpkg"
    gpd.GeoDataFrame({"zone": ["rouge"]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:2154").to_file(layer, layer="ppri", driver="GPKG")
    with sqlite3.connect(layer) as con:  # a GeoPackage in WAL mode, as some tools write them
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("UPDATE gpkg_contents SET last_change = '2022-03-25T08:00:00.000Z'")
    con.close()
    territory = load_territory(territory_file(tmp_path, f"""
[[sources.contraintes]]
chemin = "{layer}"
nom = "PPRI"
type = "inondation"
producteur = "DDT du Doubs"
"""))
    before = sorted(p.name for p in tmp_path.iterdir())
    report = SourceReport("contraintes", [layer], "auto", layer="ppri")
    attribute_sources([report], territory, {})
    assert (report.producer, report.data_date) == ("DDT du Doubs", "2022-03-25")
    assert report.data_date_origin == ("dernière modification de la couche (métadonnées du "
                                       "GeoPackage ppri.gpkg)")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no -wal, no -shm


def test_two_constraints_each_get_their_own_credit(tmp_path):
    a, b = tmp_path / "a.geojson", tmp_path / "b.geojson"
    for path in (a, b):
        gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:2154").to_file(path)
    territory = load_territory(territory_file(tmp_path, f"""
[[sources.contraintes]]
chemin = "{a}"
nom = "A"
type = "nature"
producteur = "DREAL"
date = "2021-02-03"

[[sources.contraintes]]
chemin = "{b}"
nom = "B"
type = "inondation"
producteur = "DDT"
"""))
    reports = [SourceReport("contraintes", [b], "auto"), SourceReport("contraintes", [a], "auto")]
    attribute_sources(reports, territory, {})
    assert [(r.producer, r.data_date) for r in reports][1] == ("DREAL", "2021-02-03")
    assert reports[0].producer == "DDT" and reports[0].data_date  # its file's date
    assert credits(reports)[1] == ("DREAL", "2021-02-03", "contraintes")


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(("values", "expected"), [
    (pd.Series(pd.to_datetime(["2021-10-21", "2021-12-15", None])), "2021-12-15"),
    (pd.Series(["19/01/2023", "16/01/2024", None, "NA"]), "2024-01-16"),
    (pd.Series(["20170321", "20200130"]), "2020-01-30"),
    (pd.Series(["2021-12-15T10:00:00Z", "2020-01-01"]), "2021-12-15"),
    (pd.Series(["2019/06/23"]), "2019-06-23"),
    (pd.Series([18757.0, 19275.0, -718798.0, None]), days(19275)),  # R dates; a typing error
    (pd.Series(pd.to_datetime(["2021-01-01T00:30:00+01:00"])), "2021-01-01"),
    (pd.Series(["2019-06-23", "2999-01-01", "1850-01-01"]), "2019-06-23"),  # absurd years
    (pd.Series([2015, 2016]), None),  # years only
    (pd.Series(["inconnu", None]), None),
    (pd.Series([True, False]), None),
    (pd.Series([], dtype=object), None),
])
def test_latest_date(values, expected):
    assert latest_date(values) == expected


def test_merged_reports_keep_the_latest_date():
    a = SourceReport("batiments", [Path("a")], "auto", data_date="2020-10-02",
                     data_date_origin="champ « date_maj » de a")
    b = SourceReport("batiments", [Path("a")], "auto", producer="IGN (BD TOPO)",
                     data_date="2021-09-02", data_date_origin="champ « date_maj » de a (tuile)")
    c = SourceReport("batiments", [Path("a")], "auto")
    merged = merge_reports([a, b, c])
    assert (merged.producer, merged.data_date, merged.data_date_origin) == (
        "IGN (BD TOPO)", "2021-09-02", "champ « date_maj » de a (tuile)")
