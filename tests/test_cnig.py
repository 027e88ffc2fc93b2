"""CNIG Sites Économiques export: validator built from schema.json, official examples, template."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sqlite3
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import standard_file

from observatoire.analysis.zae_inventory import inventory
from observatoire.errors import ConfigError, SchemaError
from observatoire.publish import cnig, cnig_schema
from observatoire.publish.cnig import stage_cnig_export
from observatoire.publish.cnig_schema import (
    CLASSES,
    CNIG_DIR,
    LISTES_PDF,
    VALEURS_CONVENTIONNELLES,
    json_schema,
    table_schema,
    validate_csv,
    validate_geopackage,
    validate_rows,
)

CRS = "EPSG:2154"
OBS = dt.date(2025, 3, 1)
COMMUNES = {"25267": "Gennes"}
EPCI = {"epci_nom": "Grand Besançon Métropole", "epci_siren": "242500361"}


def examples() -> list[tuple[str, Path]]:
    return [(layer, CNIG_DIR / folder / "exemple-valide.csv") for layer, folder in CLASSES.items()]


# --- the shipped standard -------------------------------------------------------------------

@pytest.mark.parametrize("relative", [
    "site-eco/schema.json", "terrain-eco/schema.json", "etablissement/schema.json",
    "pole-eco/schema.json", "site-eco/exemple-valide.csv", "terrain-eco/exemple-valide.csv",
    "etablissement/exemple-valide.csv", "pole-eco/exemple-valide.csv", "sites_economiques.gpkg",
])
def test_shipped_files_are_the_official_ones(relative):
    official = standard_file(f"cnig-sites-economiques/schema/{relative}")
    assert (CNIG_DIR / relative).read_bytes() == official.read_bytes()


def test_json_schema_is_generated_from_the_shipped_table_schema():
    for layer in CLASSES:
        ts = json.loads((CNIG_DIR / CLASSES[layer] / "schema.json").read_text(encoding="utf-8"))
        js = json_schema(layer)
        assert list(js["properties"]) == [f["name"] for f in ts["fields"]]
        assert js["required"] == [f["name"] for f in ts["fields"]
                                  if f.get("constraints", {}).get("required")]
    terr = json_schema("terrain_eco")["properties"]
    assert table_schema("terrain_eco")["fields"][2]["constraints"]["pattern"] in json.dumps(
        terr["terr_refcad"]).replace("\\\\", "\\")


def test_pdf_lists_agree_with_schema_json_enums():
    # schema.json's « enum » keys sit outside « constraints »: the PDF's lists (§ 3.4) bind.
    # Where both exist they agree, but for these documented spellings.
    known = {"terr_maitrise_fonc": {"structure intercommunale",
                                    "établissement d'enseignement d'étude et de recherche"},
             "pole_vocadomi": {"mixte à dominante logistique"}}
    for layer in CLASSES:
        for field in table_schema(layer)["fields"]:
            enum = field.get("enum") or field.get("constraints", {}).get("enum")
            if field["name"] not in LISTES_PDF or not enum:
                continue
            extra = set(enum) - set(LISTES_PDF[field["name"]]) - set(VALEURS_CONVENTIONNELLES)
            assert extra == known.get(field["name"], set()), field["name"]


@pytest.mark.parametrize(("layer", "path"), examples())
def test_official_examples_are_accepted(layer, path):
    assert validate_csv(path, layer, value_lists=False) == 1


@pytest.mark.parametrize(("layer", "path"), [e for e in examples() if e[0] != "site_eco"])
def test_official_examples_follow_the_pdf_lists(layer, path):
    assert validate_csv(path, layer) == 1


def test_site_example_breaks_the_pdf_lists_where_its_csv_is_damaged():
    # « entrepôts, logistique » was split by the « ; » separator and site_etat lost its
    # value; « extension » is not in the PDF's list (« extension urbaine »).
    with pytest.raises(SchemaError) as err:
        validate_csv(CNIG_DIR / "site-eco" / "exemple-valide.csv", "site_eco")
    msg = str(err.value)
    assert "(3 problème(s))" in msg
    for field, value in (("site_vocadomi", "entrepôts"), ("site_etat", "logistique"),
                         ("site_evol_urba", "extension")):
        assert f"champ « {field} » : valeur '{value}' hors de la liste du standard" in msg
    assert "ligne 2 (site_id 80024_SITE-ECO_00001)" in msg


def terrain_row(**changes) -> dict:
    row = {
        "terr_id": "25267_TERRAIN-ECO_00001", "site_id": "25267_SITE-ECO_00001",
        "terr_refcad": "25267000AB0001|25267000AB0002", "terr_surf_brute": 0.25,
        "terr_utile": "oui", "terr_identif_date": "2025-03-01", "terr_actu_date": "2025-03-01",
        "terr_maitrise_fonc": "commune", "terr_stade_amngt": "inconnu",
        "terr_stade_comm": "inconnu", "terr_etat_occup": "vacant", "terr_usage": "inconnu",
        "terr_url_cartofriches": None,
        "terr_geomsurf": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
        "terr_cle_en_main": None, "terr_acquereur": None, "terr_cession_date": None,
        "terr_vente_montant": None, "terr_m2_prix": None,
    }
    row.update(changes)
    return row


def test_validator_accepts_a_good_row():
    validate_rows([terrain_row(), terrain_row(terr_id="25267_TERRAIN-ECO_00002",
                                              terr_refcad="25267000AB0003")], "terrain_eco")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"terr_refcad": "25267000AB001"}, "terr_refcad", "non conforme au motif"),
    ({"terr_refcad": "25267000AB0001|"}, "terr_refcad", "non conforme au motif"),
    ({"terr_surf_brute": "0,25"}, "terr_surf_brute", "un nombre est attendu"),
    ({"terr_actu_date": None}, "terr_actu_date", "valeur obligatoire manquante"),
    ({"terr_identif_date": "01/03/2025"}, "terr_identif_date", "date AAAA-MM-JJ"),
    ({"terr_utile": "peut-être"}, "terr_utile", "hors liste ; valeurs possibles : oui | non"),
    ({"terr_etat_occup": "abandonné"}, "terr_etat_occup", "hors de la liste du standard"),
    ({"terr_geomsurf": {"type": "Square"}}, "terr_geomsurf", "GeoJSON"),
    ({"terr_geomsurf": "POLYGON ((0 0, 1 0, 1 1, 0 0))"}, "terr_geomsurf", "objet GeoJSON"),
    ({"terr_url_cartofriches": "cartofriches"}, "terr_url_cartofriches", "motif"),
])
def test_validator_names_layer_row_and_field(changes, field, message):
    rows = [terrain_row(terr_id="25267_TERRAIN-ECO_00009"), terrain_row(**changes)]
    with pytest.raises(SchemaError, match=rf"couche « terrain_eco ».*ligne 2 \(terr_id "
                                          rf"25267_TERRAIN-ECO_00001\), champ « {field} » : "
                                          rf".*{message}"):
        validate_rows(rows, "terrain_eco")


def test_geojson_values_grouped_by_type_are_each_still_checked():
    """Polygons sharing a type are checked once; a broken one among them is still named."""
    good = [terrain_row(terr_id=f"25267_TERRAIN-ECO_{k:05d}", terr_geomsurf={
        "type": "Polygon", "coordinates": [[[k, 0], [k + 1, 0], [k + 1, 1], [k, 0]]]})
        for k in range(1, 4)]
    validate_rows(good, "terrain_eco")
    broken = [*good, terrain_row(terr_id="25267_TERRAIN-ECO_00004", terr_geomsurf={
        "type": "Polygon", "coordinates": "0 0, 1 0"}), terrain_row(
        terr_id="25267_TERRAIN-ECO_00005", terr_geomsurf={"type": "Feature"})]
    with pytest.raises(SchemaError, match=r"\(2 problème\(s\)\) : ligne 4 \(terr_id "
                                          r"25267_TERRAIN-ECO_00004\), champ « terr_geomsurf » "
                                          r".*ligne 5 \(terr_id 25267_TERRAIN-ECO_00005\), champ "
                                          r"« terr_geomsurf »"):
        validate_rows(broken, "terrain_eco")


def test_columns_are_validated_as_their_rows():
    """The same rows given by field: the same problems, named by row and identifier."""
    rows = [terrain_row(terr_id=f"25267_TERRAIN-ECO_{k:05d}") for k in range(1, 4)]
    rows[1]["terr_refcad"] = "25267000AB001"
    columns = {name: [row[name] for row in rows] for name in rows[0] if name != "terr_usage"}
    message = (r"\(4 problème\(s\)\) : ligne 1 \(terr_id 25267_TERRAIN-ECO_00001\), champ "
               r"« terr_usage » : champ absent ; ligne 2 \(terr_id 25267_TERRAIN-ECO_00002\), "
               r"champ « terr_refcad » : valeur '25267000AB001' non conforme")
    with pytest.raises(SchemaError, match=message):
        cnig_schema.validate_columns(columns, 3, "terrain_eco")
    for row in rows:
        del row["terr_usage"]
    with pytest.raises(SchemaError, match=message):
        validate_rows(rows, "terrain_eco")


def test_value_lists_ignore_case_as_the_standard_examples_do():
    validate_rows([terrain_row(terr_etat_occup="Occupé")], "terrain_eco")


def test_duplicate_identifiers_and_missing_fields_are_refused():
    with pytest.raises(SchemaError, match="identifiant '25267_TERRAIN-ECO_00001' déjà utilisé"):
        validate_rows([terrain_row(), terrain_row()], "terrain_eco")
    row = terrain_row()
    del row["terr_usage"]
    with pytest.raises(SchemaError, match="champ « terr_usage » : champ absent"):
        validate_rows([row], "terrain_eco")


def test_duplicate_identifiers_across_batches():
    # A layer validated batch by batch (one dictionary of identifiers across the calls).
    seen: dict = {}
    validate_rows([terrain_row()], "terrain_eco", first_row=1, seen=seen)
    validate_rows([terrain_row(terr_id="25267_TERRAIN-ECO_00002")], "terrain_eco",
                  first_row=2, seen=seen)
    with pytest.raises(SchemaError, match=r"ligne 3 .*identifiant '25267_TERRAIN-ECO_00001' "
                                          r"déjà utilisé ligne 1"):
        validate_rows([terrain_row()], "terrain_eco", first_row=3, seen=seen)


def test_geopoint_of_poles():
    row = {"pole_id": "25267_POLE-ECO_00001", "pole_nom": "ZA", "pole_vocadomi": "mixte",
           "pole_identif_date": "2025-01-01", "pole_surface": 3, "pole_geompoint": "6.1, 47.2"}
    with pytest.raises(SchemaError, match="pole_vocadomi"):  # « mixte, sans dominante » for poles
        validate_rows([row], "pole_eco")
    validate_rows([{**row, "pole_vocadomi": "mixte, sans dominante"}], "pole_eco")
    with pytest.raises(SchemaError, match="longitude, latitude"):
        validate_rows([{**row, "pole_vocadomi": "inconnu", "pole_geompoint": "936000, 6687000"}],
                      "pole_eco")


# --- the export ------------------------------------------------------------------------------

X0, Y0 = 930_000.0, 6_680_000.0


def make_fixture(x0: float = X0, y0: float = Y0, crs: str = CRS):
    def box(x1, y1, x2, y2):
        return shapely.MultiPolygon([shapely.box(x0 + x1, y0 + y1, x0 + x2, y0 + y2)])

    zae = gpd.GeoDataFrame({
        "zae_id": ["25267_SITE-ECO_00001", "ZA-Nord"], "zae_nom": ["ZA des Essarts", "ZA Nord"],
        "zae_type": ["zone d'activité économique", None], "zae_vocation": ["Artisanale", None],
        # The build gives a zone without comm_insee the commune of its parcels.
        "comm_insee": ["25267", "25267"], "zae_origine": ["couche", "couche"]},
        geometry=[box(0, 0, 100, 100), box(300, 0, 400, 100)], crs=crs)
    unites = gpd.GeoDataFrame({
        "uf_id": ["U1", "U2", "U3", "U4"],
        "idus": ["25267000AB0001", "25267000AB0002", "25267000AB0003|25267000AB0004",
                 "25267000AB0005"],
        "nb_parcelles": [1, 1, 2, 1],
        "surface_m2": [2500.0, 1500.0, 2500.0, 3500.0],
        "proprietaire_type": ["personne morale", "personne physique", "personne morale", None],
        "proprietaire_nom": ["SARL ALPHA", "DUPONT JEAN", "COMMUNE DE GENNES", None],
        "proprietaire_siren": ["123456789", None, "212502671", None],
    }, geometry=[box(0, 0, 50, 50), box(50, 0, 100, 30), box(0, 50, 50, 100),
                 box(50, 50, 120, 100)], crs=crs)
    # The sole proprietor (last) is active on U1, beside the garage.
    pts = [(10, 10), (70, 10), (10, 60), (20, 70), (30, 30)]
    etabs = gpd.GeoDataFrame({
        "siret": ["12345678900012", "22222222200011", "33333333300015", "55555555500013",
                  "66666666600016"],
        "siren": ["123456789", "222222222", "333333333", "555555555", "666666666"],
        "nom": ["GARAGE ALPHA", "ANCIENNE SCIERIE", "IMPRIMERIE", "SCI DU PARC", "DUPONT"],
        "raison_sociale": ["ALPHA SARL", "SCIERIE SA", None, "SCI DU PARC", None],
        "categorie_juridique": ["5499", "5710", "5710", "6540", "1000"],
        "type_personne": ["personne morale"] * 4 + ["personne physique"],
        "diffusible": [True] * 5,
        "naf": ["45.20A", "16.10A", "18.12Z", "68.20B", "43.32A"],
        "naf_libelle": [None] * 5,
        "etat": ["A", "F", "F", "A", "A"],
        "date_creation": ["2010-01-01", "1990-01-01", "2000-01-01", "2015-01-01", "2001-01-01"],
        "date_fermeture": [None, "2020-05-01", "2024-02-01", None, None],
        "date_maj": ["2024-05-01"] * 5,
        "siege": ["oui", "non", "oui", "oui", "oui"],
        "tranche_effectif": ["03", "NN", "11", None, "NN"],
        "annee_effectif": ["2022", None, "2022", None, None],
        "adresse": ["12 rue des Artisans"] + [None] * 4,
        "code_insee": ["25267"] * 5, "commune": ["GENNES"] * 5,
        "ban_id": [None] * 5, "geocodage": ["localisation à la plaque adresse"] * 5,
        "source": "geo_siret_25.csv",
    }, geometry=[shapely.Point(x0 + x, y0 + y) for x, y in pts], crs=crs)
    zae_out, zu = inventory(zae, unites, None, etabs, date_observation=OBS)
    return zae_out, zu, etabs


def export(tmp_path, **kw) -> Path:
    zae, zu, etabs = make_fixture(**kw)
    staged = stage_cnig_export(zae, zu, etabs, output_dir=tmp_path, communes=COMMUNES,
                               date_observation=OBS, **EPCI)
    return staged.publish()


def read(path: Path, layer: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(path, layer=layer)


def test_export_is_valid_and_filled_from_the_inventory(tmp_path):
    path = export(tmp_path)
    assert path == tmp_path / "cnig" / "sites_economiques.gpkg"
    assert validate_geopackage(path) == {"site_eco": 2, "terrain_eco": 4, "etablissement": 2,
                                         "pole_eco": 2}
    sites = read(path, "site_eco").set_index("site_nom")
    a = sites.loc["ZA des Essarts"]
    assert a["site_id"] == "25267_SITE-ECO_00001"
    assert (a["site_uf_nbre"], a["site_uf_vacant_nbre"]) == (4, 2)
    assert a["site_taux_vacance"] == 50  # a whole percentage (§ 3.3)
    assert a["site_surf_brute"] == pytest.approx(1.0)  # hectares
    # Terrains clipped to the site: 0.25 + 0.15 + 0.25 + 0.25 ha.
    assert a["site_surf_utile"] == pytest.approx(0.9)
    assert (a["site_comm_insee"], a["site_comm_nom"]) == ("25267", "Gennes")
    assert (a["site_epci_nom"], a["site_epci_siren"]) == ("Grand Besançon Métropole", "242500361")
    assert (a["site_vocadomi"], a["site_etat"], a["site_moa_type"]) == (
        "artisanale", "existant et actif", "epci")
    assert a["site_nb_etab"] == 2  # a count: the sole proprietor is counted, never named
    assert a["pole_id"] == "25267_POLE-ECO_00001"
    b = sites.loc["ZA Nord"]
    # A zone id outside the standard's pattern is renumbered; its commune comes from the
    # territory (a single commune).
    assert b["site_id"] == "25267_SITE-ECO_00002"
    assert (b["site_uf_nbre"], b["site_uf_vacant_nbre"]) == (0, 0)
    assert pd.isna(b["site_taux_vacance"])

    terr = read(path, "terrain_eco").set_index("terr_refcad")
    assert sorted(terr["terr_id"]) == [f"25267_TERRAIN-ECO_0000{i}" for i in range(1, 5)]
    assert (terr["site_id"] == "25267_SITE-ECO_00001").all()
    u3 = terr.loc["25267000AB0003|25267000AB0004"]
    assert (u3["terr_maitrise_fonc"], u3["terr_etat_occup"]) == ("commune", "vacant")
    u1 = terr.loc["25267000AB0001"]
    assert (u1["terr_maitrise_fonc"], u1["terr_etat_occup"]) == ("inconnu", "occupé")
    assert terr.loc["25267000AB0002", "terr_maitrise_fonc"] == "personne physique"
    u4 = terr.loc["25267000AB0005"]
    assert u4["terr_surf_brute"] == pytest.approx(0.25)  # clipped: 2 500 of 3 500 m²
    assert u4["terr_etat_occup"] == "inoccupé"
    assert shapely.within(u4.geometry, read(path, "site_eco").geometry.iloc[0].buffer(0.01))

    etab = read(path, "etablissement").set_index("siret")
    # Active legal entity, and the one closed less than two years ago; not the SCI, nor the
    # sole proprietor, nor the one closed in 2020.
    assert sorted(etab.index) == ["12345678900012", "33333333300015"]
    g = etab.loc["12345678900012"]
    assert (g["etab_raison_sociale"], g["etab_nom"], g["etab_nat_juridique"]) == (
        "ALPHA SARL", "GARAGE ALPHA", "5499")
    assert (g["etab_actif"], g["etab_effectif_libelle"]) == ("oui", "6 à 9 salariés")
    assert g["terr_id"] == terr.loc["25267000AB0001", "terr_id"]
    closed = etab.loc["33333333300015"]
    assert (closed["etab_actif"], closed["etab_fermeture_date"]) == ("non", "2024-02-01")
    assert closed["etab_raison_sociale"] == "IMPRIMERIE"


def test_no_natural_person_in_the_export(tmp_path):
    path = export(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as con:
        for layer in CLASSES:
            for row in con.execute(f'SELECT * FROM "{layer}"'):
                text = " ".join(str(v) for v in row if not isinstance(v, bytes))
                assert "DUPONT" not in text and "66666666600016" not in text


def layer_definitions(path: Path) -> dict:
    with contextlib.closing(sqlite3.connect(path)) as con:
        tables = dict(con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN "
            "('site_eco', 'terrain_eco', 'etablissement', 'pole_eco', 'layer_styles')"))
        geoms = con.execute("SELECT table_name, column_name, geometry_type_name, z, m "
                            "FROM gpkg_geometry_columns ORDER BY table_name").fetchall()
        styles = con.execute("SELECT f_table_name, styleName FROM layer_styles "
                             "ORDER BY id").fetchall()
    return {"tables": tables, "geoms": geoms, "styles": styles}


def test_export_has_the_layers_fields_and_types_of_the_official_template(tmp_path):
    path = export(tmp_path)
    official = standard_file("cnig-sites-economiques/schema/sites_economiques.gpkg")
    for layer in CLASSES:
        ours, theirs = pyogrio.read_info(path, layer=layer), pyogrio.read_info(official,
                                                                               layer=layer)
        assert ours["fields"].tolist() == theirs["fields"].tolist()
        assert ours["dtypes"].tolist() == theirs["dtypes"].tolist()
        assert ours["geometry_type"] == theirs["geometry_type"]
        assert ours["crs"] == theirs["crs"]
    assert layer_definitions(path) == layer_definitions(official)
    with contextlib.closing(sqlite3.connect(path)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # « GPKG »
        for layer in CLASSES:
            n = con.execute(f'SELECT count(*) FROM "{layer}"').fetchone()[0]
            assert con.execute(f'SELECT count(*) FROM "rtree_{layer}_geom"').fetchone()[0] == n
            assert con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = ?",
                               (layer,)).fetchone()[0] == n


def test_validation_reads_the_layers_by_batches(tmp_path, monkeypatch):
    # One row per batch: the same counts, and an identifier used twice is still found
    # across batches, with the row of its first use.
    path = export(tmp_path)
    counts = validate_geopackage(path)
    monkeypatch.setattr(cnig_schema, "VALIDATION_BATCH", 1)
    assert validate_geopackage(path) == counts
    with contextlib.closing(sqlite3.connect(path)) as con:
        # The R-tree triggers name these GDAL SQL functions; the fid does not change,
        # so they do not run.
        for name in ("ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):
            con.create_function(name, 1, lambda geom: pytest.fail("trigger run"))
        first = con.execute("SELECT terr_id FROM terrain_eco ORDER BY fid LIMIT 1").fetchone()[0]
        con.execute("UPDATE terrain_eco SET terr_id = ? WHERE fid = (SELECT max(fid) FROM "
                    "terrain_eco)", (first,))
        con.commit()
    with pytest.raises(SchemaError, match=rf"couche « terrain_eco ».*ligne 4 \(terr_id {first}\)"
                                          rf".*déjà utilisé ligne 1"):
        validate_geopackage(path)


def test_export_in_an_overseas_crs(tmp_path):
    # La Réunion (EPSG:2975): the template's layers are declared in the territory's CRS.
    path = export(tmp_path, x0=340_000.0, y0=7_660_000.0, crs="EPSG:2975")
    for layer in CLASSES:
        assert pyogrio.read_info(path, layer=layer)["crs"] == "EPSG:2975"
    assert validate_geopackage(path)["terrain_eco"] == 4
    poles = read(path, "pole_eco")
    point = cnig_schema.gpkg_rows(poles, "pole_eco")[0]["pole_geompoint"]
    lon, lat = (float(v) for v in point.split(","))
    assert 55 < lon < 56 and -21.5 < lat < -20.5


def test_invalid_export_leaves_nothing(tmp_path):
    zae, zu, etabs = make_fixture()
    zu = zu.copy()
    zu.loc[zu["uf_id"] == "U2", "idus"] = "B0002"
    with pytest.raises(SchemaError, match=r"couche « terrain_eco ».*champ « terr_refcad »"):
        stage_cnig_export(zae, zu, etabs, output_dir=tmp_path, communes=COMMUNES,
                          date_observation=OBS, **EPCI)
    assert list((tmp_path / "cnig").iterdir()) == []
    with pytest.raises(ConfigError, match=r"territoire\.epci_siren"):
        stage_cnig_export(zae, zu, etabs, output_dir=tmp_path, communes=COMMUNES,
                          date_observation=OBS, epci_nom="X", epci_siren=None)
    assert list((tmp_path / "cnig").iterdir()) == []


def test_a_zone_without_commune_or_name_is_left_out_with_a_warning(tmp_path, caplog):
    """One zone's missing commune never stops the export: it is named, the rest exported."""
    zae, zu, etabs = make_fixture()
    zae = zae.copy()
    # ZA Nord (no unit) loses its commune; a copy of it moved east is in a commune
    # the table of names does not hold, another one has a code of 4 digits.
    zae.loc[zae["zae_id"] == "ZA-Nord", "comm_insee"] = None
    other = zae[zae["zae_id"] == "ZA-Nord"].assign(zae_id="ZA-Est", comm_insee="25999")
    other = other.set_geometry(other.geometry.translate(500, 0))
    bad = other.assign(zae_id="ZA-Sud", comm_insee="2526")
    bad = bad.set_geometry(bad.geometry.translate(0, -500))
    zae = pd.concat([zae, other, bad], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="observatoire.publish.cnig"):
        path = stage_cnig_export(zae, zu, etabs, output_dir=tmp_path, communes=COMMUNES,
                                 date_observation=OBS, **EPCI).publish()
    warned = [r.getMessage() for r in caplog.records if "non exportée" in r.getMessage()]
    assert warned == [
        "export CNIG : zone « ZA-Est » non exportée : champ site_comm_nom manquant (commune "
        "25999 absente de la table des communes) ; ajoutez son nom dans "
        "[options.noms_communes] du fichier de territoire",
        "export CNIG : zone « ZA-Nord » non exportée : champ site_comm_insee manquant (la zone "
        "n'a pas de comm_insee et aucune parcelle du territoire) ; renseignez le code INSEE de "
        "sa commune dans la source zae",
        "export CNIG : zone « ZA-Sud » non exportée : champ site_comm_insee invalide ('2526' "
        "n'est pas un code INSEE à 5 caractères) ; corrigez comm_insee dans la source zae"]
    # The other zone is exported whole, and the file conforms to the standard.
    assert validate_geopackage(path) == {"site_eco": 1, "terrain_eco": 4, "etablissement": 2,
                                         "pole_eco": 1}
    sites = read(path, "site_eco")
    assert list(sites["site_nom"]) == ["ZA des Essarts"]
    assert list(sites["site_comm_nom"]) == ["Gennes"]


@pytest.mark.slow
def test_sample_territory_end_to_end(tmp_path, sample_config):
    """Gennes: ZAE derived from the PLU's UY zone, no owners, no establishments."""
    from observatoire.config import load_territory
    from observatoire.pipeline import build
    from observatoire.publish.consultation import stage_consultation

    territory = load_territory(sample_config, output_dir=tmp_path / "out")
    result = build(territory)
    layers = {n: pyogrio.read_dataframe(result.gpkg, layer=n)
              for n in ("parcelles", "zae", "batiments")}
    p = layers["parcelles"]
    unites = gpd.GeoDataFrame({
        "uf_id": "UF-" + p["idu"], "idus": p["idu"], "nb_parcelles": 1, "surface_m2": p.area,
        "proprietaire_type": "inconnu", "proprietaire_nom": None, "proprietaire_siren": None,
        "methode": "parcelle"}, geometry=p.geometry.values, crs=p.crs)
    zae, zu = inventory(layers["zae"], unites, layers["batiments"], None,
                        date_observation=OBS)
    assert (layers["zae"]["zae_origine"] == "derivee_plu").all()
    assert len(zu) > 0 and set(zu["occupation"]) <= {"présumée occupée", "présumée vacante"}
    assert zae["nb_unites"].sum() == len(zu)
    staged = stage_cnig_export(zae, zu, None, output_dir=territory.output_dir,
                               epci_nom=territory.epci_nom, epci_siren=territory.epci_siren,
                               communes={territory.communes[0]: territory.name},
                               date_observation=OBS, parcelles=p)
    path = staged.publish()
    counts = validate_geopackage(path)
    assert counts["site_eco"] == len(zae) and counts["etablissement"] == 0
    sites = read(path, "site_eco")
    assert sites["site_uf_nbre"].tolist() == zae["nb_unites"].tolist()
    assert "dérivé des zones d'activité du PLU" in sites["site_description"].iloc[0]
    terr = read(path, "terrain_eco")
    assert set(terr["terr_etat_occup"]) <= {"occupé", "vacant", "inoccupé"}
    files = [s.publish() for s in stage_consultation(zae, zu, output_dir=territory.output_dir,
                                                     territory=territory.name,
                                                     date_observation=OBS)]
    assert len(files) == 2 * len(zae)


def test_units_in_pieces_give_one_terrain_per_piece(tmp_path):
    def sq(x1, y1, x2, y2):
        return shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)

    zae = gpd.GeoDataFrame({"zae_id": ["25267_SITE-ECO_00001"], "zae_nom": ["ZA"],
                            "comm_insee": ["25267"]},
                           geometry=[shapely.MultiPolygon([sq(0, 0, 100, 100)])], crs=CRS)
    parcelles = gpd.GeoDataFrame({"idu": ["25267000AB0001", "25267000AB0002", "25267000AB0003",
                                          "25267000AB0004"],
                                  "friche_id": [None, None, None, "F1"]},
                                 geometry=[sq(0, 0, 20, 20), sq(20, 0, 40, 20),
                                           sq(60, 60, 80, 80), sq(60, 0, 90, 30)], crs=CRS)
    unites = gpd.GeoDataFrame({
        "uf_id": ["U1", "U2"],
        "idus": ["25267000AB0001|25267000AB0002|25267000AB0003", "25267000AB0004"],
        "surface_m2": [1200.0, 900.0], "proprietaire_type": ["inconnu", "inconnu"],
        "proprietaire_nom": [None, None], "proprietaire_siren": [None, None],
    }, geometry=[shapely.MultiPolygon([sq(0, 0, 20, 20), sq(20, 0, 40, 20), sq(60, 60, 80, 80)]),
                 shapely.MultiPolygon([sq(60, 0, 90, 30)])], crs=CRS)
    batiments = gpd.GeoDataFrame(geometry=[sq(62, 2, 80, 20)], crs=CRS)
    z, zu = inventory(zae, unites, batiments, None, date_observation=OBS)
    path = stage_cnig_export(z, zu, None, output_dir=tmp_path, communes=COMMUNES,
                             date_observation=OBS, parcelles=parcelles, **EPCI).publish()
    terr = read(path, "terrain_eco").sort_values("terr_id")
    # U1: the two touching parcels form one terrain, the third another; U2 is a friche
    # parcel bearing a building: presumed occupied, so not « friche ».
    assert terr["terr_refcad"].tolist() == ["25267000AB0001|25267000AB0002", "25267000AB0003",
                                            "25267000AB0004"]
    assert terr["terr_surf_brute"].tolist() == pytest.approx([0.08, 0.04, 0.09])
    assert (terr.geometry.geom_type == "Polygon").all()
    assert terr["terr_etat_occup"].tolist() == ["inoccupé", "inoccupé", "occupé"]
    z2, zu2 = inventory(zae, unites, batiments.iloc[:0], None, date_observation=OBS)
    path = stage_cnig_export(z2, zu2, None, output_dir=tmp_path, communes=COMMUNES,
                             date_observation=OBS, parcelles=parcelles, **EPCI).publish()
    terr = read(path, "terrain_eco").sort_values("terr_id")
    assert terr["terr_etat_occup"].tolist() == ["inoccupé", "inoccupé", "friche"]


def test_piece_parcels_measures_own_parcels_and_friches_only():
    """Each way of measuring a piece's parcels: same polygon, covered, clipped; friches."""
    pieces = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10),
                                        shapely.box(50, 0, 70, 10)], crs=CRS)
    unit = pd.DataFrame({"idus": ["P1", "P2|P3", "P4|P5"]})
    parcelles = gpd.GeoDataFrame({
        "idu": ["P1", "P2", "P3", "P4", "P5", "F1", "F2"],
        "friche_id": [None, None, None, None, None, "A", "B"],
    }, geometry=[
        shapely.MultiPolygon([shapely.box(0, 0, 10, 10)]),  # the piece itself
        shapely.box(20, 0, 35, 10),  # clipped to the piece: 100 m² shared
        shapely.box(29.95, 0, 40, 10),  # a sliver of 0.5 m²: not listed
        shapely.box(50, 0, 60, 10), shapely.box(60, 0, 70, 10),  # covered by their piece
        shapely.box(65, 5, 80, 10),  # another unit's friche parcel, over the third piece
        shapely.box(10, 0, 15, 10),  # a friche parcel touching the first piece only
    ], crs=CRS)
    refcad, friche = cnig._piece_parcels(pieces, unit, parcelles)
    assert refcad.tolist() == ["P1", "P2", "P4|P5"]
    assert friche.tolist() == [False, False, True]


def test_export_by_groups_of_sites_is_the_export_made_at_once(tmp_path):
    """Terrains made site by site: same rows, same numbering per commune, same establishments."""
    def sq(x1, y1, x2, y2):
        return shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)

    # Six zones of 3 units in two communes (one zone without comm_insee: its parcels tell).
    zones, units, parcels, points, sirets = [], [], [], [], []
    for z in range(6):
        insee = "25267" if z % 2 == 0 else "25268"
        x = 200.0 * z
        zones.append({"zae_id": f"Z{z}", "zae_nom": f"ZA {z}",
                      "comm_insee": None if z == 3 else insee,
                      "geometry": shapely.MultiPolygon([sq(x, 0, x + 90, 30)])})
        for u in range(3):
            idu = f"{insee}000A{z}{u:04d}"
            # The last unit overflows the zone: its terrain is clipped.
            g = sq(x + 30 * u, 0, x + 30 * u + (40 if u == 2 else 30), 30)
            units.append({"uf_id": f"U{z}{u}", "idus": idu, "surface_m2": g.area,
                          "proprietaire_type": "personne morale",
                          "proprietaire_nom": f"SOCIETE {z}{u}",
                          "proprietaire_siren": f"{z}{u}0000000"[:9],
                          "geometry": shapely.MultiPolygon([g])})
            parcels.append({"idu": idu, "friche_id": "F1" if (z, u) == (4, 2) else None,
                             "geometry": g})
        points.append((x + 10, 10))
        points.append((x + 40, 10))
        # SIRETs out of zone order.
        sirets += [f"{9 - z}{'0' * 11}{z}1", f"{z}{'2' * 11}{z}2"]
    zae = gpd.GeoDataFrame(zones, crs=CRS)
    unites = gpd.GeoDataFrame(units, crs=CRS)
    parcelles = gpd.GeoDataFrame(parcels, crs=CRS)
    n = len(points)
    etabs = gpd.GeoDataFrame({
        "siret": sirets, "siren": [s[:9] for s in sirets], "nom": [f"ETAB {i}" for i in range(n)],
        "raison_sociale": [f"SOCIETE {i}" for i in range(n)], "categorie_juridique": "5499",
        "type_personne": "personne morale", "diffusible": True, "naf": "25.62A",
        "naf_libelle": None, "etat": "A", "date_creation": "2010-01-01", "date_fermeture": None,
        "date_maj": "2024-05-01", "siege": "oui", "tranche_effectif": "03",
        "annee_effectif": "2022", "adresse": None, "code_insee": None, "commune": None,
        "ban_id": None, "geocodage": "localisation à la plaque adresse", "source": "test.csv",
    }, geometry=[shapely.Point(X0 + x, Y0 + y) for x, y in points], crs=CRS)
    z, zu = inventory(zae, unites, None, etabs, date_observation=OBS)
    communes = {"25267": "Gennes", "25268": "Grandfontaine"}
    kw = dict(epci_nom=EPCI["epci_nom"], epci_siren=EPCI["epci_siren"], communes=communes,
              date_observation=OBS, parcelles=parcelles)
    whole = cnig.build_cnig_layers(z, zu, etabs, **kw)
    parts = list(cnig.cnig_parts(z, zu, etabs, chunk_units=4, **kw))
    # Groups of whole sites: 3 units a site, at least 4 a group → 3 groups, then the rest.
    assert [sorted(p) for p in parts] == [["terrain_eco"]] * 3 + [
        ["etablissement", "pole_eco", "site_eco"]]
    assert [len(p["terrain_eco"]) for p in parts[:3]] == [6, 6, 6]
    for name in cnig_schema.CLASSES:
        joined = pd.concat([p[name] for p in parts if name in p], ignore_index=True)
        pd.testing.assert_frame_equal(pd.DataFrame(joined), pd.DataFrame(whole[name]))
    terr = whole["terrain_eco"]
    # Numbered per commune across the groups.
    assert terr["terr_id"].tolist()[:6] == [f"25267_TERRAIN-ECO_{i:05d}" for i in (1, 2, 3)] + [
        f"25268_TERRAIN-ECO_{i:05d}" for i in (1, 2, 3)]
    assert terr["terr_id"].is_unique and len(terr) == 18
    assert terr.loc[terr["terr_refcad"] == "25267000A40002", "terr_etat_occup"].tolist() == [
        "friche"]
    # The establishments of every group, in SIRET order.
    assert whole["etablissement"]["siret"].tolist() == sorted(sirets)
    # Written by parts, the file is the standard's and holds every row.
    staged = cnig.stage_cnig_export(z, zu, etabs, output_dir=tmp_path, **kw)
    assert validate_geopackage(staged.publish()) == {
        "site_eco": 6, "terrain_eco": 18, "etablissement": 12, "pole_eco": 6}
