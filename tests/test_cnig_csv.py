"""CNIG Sites Économiques as CSV files, checked by frictionless against the official schema.json.

frictionless (the Table Schema implementation that schema.data.gouv.fr's validator
is built on) is independent of the observatory's own validator: each CSV of the
export is validated against the official ``schema.json`` of ``../shared/standards``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import standard_file

from observatoire.analysis.zae_inventory import inventory
from observatoire.config import load_territory
from observatoire.errors import SchemaError
from observatoire.publish.cnig import stage_cnig_export
from observatoire.publish.cnig_csv import (
    CARTOFRICHES_URL,
    cartofriches_files,
    stage_cnig_csv,
    validate_csv_file,
)
from observatoire.publish.cnig_schema import CLASSES, table_schema

frictionless = pytest.importorskip("frictionless")

CRS = "EPSG:2154"
OBS = dt.date(2025, 3, 1)
X0, Y0 = 930_000.0, 6_680_000.0
EPCI = {"epci_nom": "Grand Besançon Métropole", "epci_siren": "242500361"}
#: A natural person, owner of U2 and sole proprietor active on U1: never written.
PERSON = "DUPONT"
#: Cartofriches site on U3's parcels; a friche of a CNIG CSV file on U4's.
CARTO_ID, CNIG_ID = "25267_4242", "25267_9999"


def box(x1: float, y1: float, x2: float, y2: float) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)])


def fixture() -> dict:
    zae = gpd.GeoDataFrame({
        "zae_id": ["25267_SITE-ECO_00001"], "zae_nom": ["ZA des Essarts"],
        "zae_type": ["zone d'activité économique"], "zae_vocation": ["artisanale"],
        "comm_insee": ["25267"], "zae_origine": ["couche"]},
        geometry=[box(0, 0, 100, 100)], crs=CRS)
    idus = ["25267000AB0001", "25267000AB0002", "25267000AB0003", "25267000AB0004"]
    geoms = [box(0, 0, 50, 50), box(50, 0, 100, 50), box(0, 50, 50, 100), box(50, 50, 100, 100)]
    unites = gpd.GeoDataFrame({
        "uf_id": ["U1", "U2", "U3", "U4"], "idus": idus, "nb_parcelles": 1,
        "surface_m2": 2500.0,
        "proprietaire_type": ["personne morale", "personne physique", "personne morale", None],
        "proprietaire_nom": ["SARL ALPHA", f"{PERSON} JEAN", "COMMUNE DE GENNES", None],
        "proprietaire_siren": ["123456789", None, "212502671", None],
    }, geometry=geoms, crs=CRS)
    etabs = gpd.GeoDataFrame({
        "siret": ["12345678900012", "66666666600016"], "siren": ["123456789", "666666666"],
        "nom": ["GARAGE ALPHA", PERSON], "raison_sociale": ["ALPHA SARL", None],
        "categorie_juridique": ["5499", "1000"],
        "type_personne": ["personne morale", "personne physique"], "diffusible": True,
        "naf": ["45.20A", "43.32A"], "naf_libelle": None, "etat": "A",
        "date_creation": ["2010-01-01", "2001-01-01"], "date_fermeture": None,
        "date_maj": "2024-05-01", "siege": "oui", "tranche_effectif": ["03", "NN"],
        "annee_effectif": ["2022", None], "adresse": ["12 rue des Artisans", None],
        "code_insee": "25267", "commune": "GENNES", "ban_id": None,
        "geocodage": "localisation à la plaque adresse", "source": "geo_siret_25.csv",
    }, geometry=[shapely.Point(X0 + 10, Y0 + 10), shapely.Point(X0 + 30, Y0 + 30)], crs=CRS)
    zae_out, zu = inventory(zae, unites, None, etabs, date_observation=OBS)
    parcelles = gpd.GeoDataFrame({"idu": idus, "friche_id": [None, None, CARTO_ID, CNIG_ID]},
                                 geometry=geoms, crs=CRS)
    friches = gpd.GeoDataFrame({
        "site_id": [CARTO_ID, CNIG_ID],
        "source": ["friches/cartofriches.geojson", "friches/friches_cnig.csv"]},
        geometry=[shapely.Point(X0 + 25, Y0 + 75), shapely.Point(X0 + 75, Y0 + 75)], crs=CRS)
    return {"zae": zae_out, "zu": zu, "etabs": etabs, "parcelles": parcelles,
            "friches": friches}


def export(tmp_path: Path) -> dict[str, Path]:
    f = fixture()
    gpkg = stage_cnig_export(f["zae"], f["zu"], f["etabs"], output_dir=tmp_path,
                             communes={"25267": "Gennes"}, date_observation=OBS,
                             parcelles=f["parcelles"], **EPCI)
    staged = stage_cnig_csv(gpkg.tmp, output_dir=tmp_path, parcelles=f["parcelles"],
                            friches=[f["friches"]], cartofriches={"friches/cartofriches.geojson"})
    files = {s.dest.stem: s.publish() for s in staged}
    files["gpkg"] = gpkg.publish()
    return files


def frictionless_report(path: Path, layer: str):
    """Validate ``path`` with frictionless against the official schema.json of ``layer``."""
    schema_path = standard_file(f"cnig-sites-economiques/schema/{CLASSES[layer]}/schema.json")
    schema = frictionless.Schema.from_descriptor(json.loads(schema_path.read_text("utf-8")))
    resource = frictionless.Resource(path=path.name, basepath=str(path.parent), schema=schema)
    return resource.validate()


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="utf-8")


def test_csv_files_are_valid_against_the_official_table_schemas(tmp_path):
    files = export(tmp_path)
    assert sorted(files) == sorted([*CLASSES, "gpkg"])
    for layer in CLASSES:
        assert files[layer] == tmp_path / "cnig" / f"{layer}.csv"
        report = frictionless_report(files[layer], layer)
        assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
        # Every row of the GeoPackage is in the CSV, every field of schema.json in its order.
        rows = report.tasks[0].stats["rows"]
        assert rows == len(pyogrio.read_dataframe(files["gpkg"], layer=layer))
        assert rows > 0
        assert report.tasks[0].labels == [f["name"] for f in table_schema(layer)["fields"]]
        assert validate_csv_file(files[layer], layer) == rows


def test_csv_values_and_encodings(tmp_path):
    files = export(tmp_path)
    raw = files["terrain_eco"].read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # UTF-8 without byte-order mark
    terr = read_csv(files["terrain_eco"]).set_index("terr_refcad")
    gpkg = pyogrio.read_dataframe(files["gpkg"], layer="terrain_eco").set_index("terr_refcad")
    assert sorted(terr.index) == sorted(gpkg.index)
    for idu, row in terr.iterrows():
        assert float(row["terr_surf_brute"]) == pytest.approx(gpkg.loc[idu, "terr_surf_brute"])
        # GeoJSON in WGS84 longitude/latitude: the same polygon as the GeoPackage's.
        geom = shapely.from_geojson(row["terr_geomsurf"])
        assert geom.geom_type == "Polygon"
        lon, lat = shapely.get_coordinates(geom)[0]
        assert 5 < lon < 7 and 46 < lat < 48
        back = gpd.GeoSeries([geom], crs=4326).to_crs(CRS).iloc[0]
        # 7 decimals of a degree: within a centimetre.
        assert back.hausdorff_distance(gpkg.loc[idu, "geometry"]) < 0.01
    # Whole hectares: 2 500 m² = 0.25 ha, written with a decimal point.
    assert terr.loc["25267000AB0001", "terr_surf_brute"] == "0.25"

    etab = read_csv(files["etablissement"])
    assert etab["SIRET"].tolist() == ["12345678900012"]
    point = json.loads(etab["etab_geompoint"].iloc[0])
    assert point["type"] == "MultiPoint"
    expected = gpd.GeoSeries([shapely.Point(X0 + 10, Y0 + 10)], crs=CRS).to_crs(4326).iloc[0]
    assert point["coordinates"][0] == pytest.approx([expected.x, expected.y], abs=1e-6)

    pole = read_csv(files["pole_eco"])
    lon, lat = (float(v) for v in pole["pole_geompoint"].iloc[0].split(", "))
    inside = gpd.GeoSeries([shapely.Point(lon, lat)], crs=4326).to_crs(CRS).iloc[0]
    assert box(0, 0, 100, 100).contains(inside)
    site = read_csv(files["site_eco"]).iloc[0]
    # Both establishments are on U1: U2, U3 and U4 never had one, so are vacant.
    assert (site["site_uf_nbre"], site["site_uf_vacant_nbre"]) == ("4", "3")
    assert site["site_taux_vacance"] == "75"
    assert site["site_geompoint"] and site["site_creation_date"] == ""


def test_cartofriches_url_of_a_plot_on_a_cartofriches_friche(tmp_path):
    terr = read_csv(export(tmp_path)["terrain_eco"]).set_index("terr_refcad")
    urls = terr["terr_url_cartofriches"]
    assert urls["25267000AB0003"] == f"https://cartofriches.cerema.fr/cartofriches/?site={CARTO_ID}"
    assert urls["25267000AB0003"] == CARTOFRICHES_URL.format(site_id=CARTO_ID)
    # A friche of a CNIG CSV file has no Cartofriches page; other plots are no friche.
    assert urls["25267000AB0004"] == ""
    assert (urls.drop(["25267000AB0003"]) == "").all()


def test_no_natural_person_in_the_csv_files(tmp_path):
    files = export(tmp_path)
    for layer in CLASSES:
        text = files[layer].read_text(encoding="utf-8")
        assert PERSON not in text and "66666666600016" not in text


def test_a_broken_value_is_detected(tmp_path):
    files = export(tmp_path)
    path = files["terrain_eco"]
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    col = rows[0].index("terr_surf_brute")
    rows[1][col] = "0,25"  # a French decimal comma: not a Table Schema number
    url = rows[0].index("terr_url_cartofriches")
    rows[2][url] = "cartofriches.cerema.fr/?site=1"  # no scheme: outside the pattern
    broken = tmp_path / "casse" / "terrain_eco.csv"
    broken.parent.mkdir()
    with open(broken, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter=";", lineterminator="\r\n").writerows(rows)
    report = frictionless_report(broken, "terrain_eco")
    assert not report.valid
    errors = {(row, field, kind) for row, field, kind in
              report.flatten(["rowNumber", "fieldName", "type"])}
    assert errors == {(2, "terr_surf_brute", "type-error"),
                      (3, "terr_url_cartofriches", "constraint-error")}
    with pytest.raises(SchemaError, match=r"ligne 2 .*terr_surf_brute"):
        validate_csv_file(broken, "terrain_eco")


def test_a_missing_field_is_detected(tmp_path):
    files = export(tmp_path)
    table = read_csv(files["pole_eco"]).drop(columns=["pole_surface"])
    broken = tmp_path / "pole_eco.csv"
    table.to_csv(broken, sep=";", index=False)
    report = frictionless_report(broken, "pole_eco")
    assert not report.valid
    assert "missing-label" in {e for (e,) in report.flatten(["type"])}
    with pytest.raises(SchemaError, match="en-tête différent"):
        validate_csv_file(broken, "pole_eco")


def test_cartofriches_files_of_a_territory(tmp_path):
    toml = tmp_path / "territoire.toml"
    (tmp_path / "parcelles.gpkg").write_bytes(b"")
    (tmp_path / "friches").mkdir()
    for name in ("carto.geojson", "cnig.csv", "autre.gpkg"):
        (tmp_path / "friches" / name).write_text("", encoding="utf-8")
    toml.write_text("""
[territoire]
nom = "Test"
communes = ["25267"]
crs = "EPSG:2154"
[sources.parcelles]
chemin = "parcelles.gpkg"
[sources.friches]
chemin = ["friches/carto.geojson", "friches/cnig.csv", "friches/autre.gpkg"]
""", encoding="utf-8")
    territory = load_territory(toml)
    # Format « auto »: every file but the CSV is a Cartofriches export.
    assert cartofriches_files(territory) == {"friches/carto.geojson", "friches/autre.gpkg"}


def test_sample_build_writes_valid_csv_files():
    """Gennes: the build writes the four CSV files beside the CNIG GeoPackage, all valid."""
    from publication_fixtures import sample_outputs

    folder = sample_outputs() / "cnig"
    gpkg = folder / "sites_economiques.gpkg"
    for layer in CLASSES:
        path = folder / f"{layer}.csv"
        report = frictionless_report(path, layer)
        assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
        rows = report.tasks[0].stats.get("rows", 0)  # absent for a file of headers only
        assert rows == len(pyogrio.read_dataframe(gpkg, layer=layer))
    terr = read_csv(folder / "terrain_eco.csv")
    assert len(terr) >= 10 and (terr["site_id"] == "25267_SITE-ECO_00001").all()
    # The sample's Cartofriches friches all lie outside its ZAE: no terrain on a friche.
    assert (terr["terr_url_cartofriches"] == "").all()
    assert (terr["terr_etat_occup"] != "friche").all()
