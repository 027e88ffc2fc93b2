"""Establishments reader: geolocated Sirene CSV, Insee Lambert coordinates, point layers."""

from __future__ import annotations

import gzip
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from observatoire.config import Source
from observatoire.errors import CRSError, SchemaError, SourceError
from observatoire.readers.etablissements import (
    ETABLISSEMENTS,
    mask_natural_persons,
    read_etablissements,
)

CRS = "EPSG:2154"
# Header of the Etalab « Base Sirene … géolocalisée » files (geo_siret_DD.csv).
GEO_HEADER = (
    "siren,nic,siret,statutDiffusionEtablissement,dateCreationEtablissement,"
    "trancheEffectifsEtablissement,anneeEffectifsEtablissement,"
    "activitePrincipaleRegistreMetiersEtablissement,dateDernierTraitementEtablissement,"
    "etablissementSiege,nombrePeriodesEtablissement,complementAdresseEtablissement,"
    "numeroVoieEtablissement,indiceRepetitionEtablissement,typeVoieEtablissement,"
    "libelleVoieEtablissement,codePostalEtablissement,libelleCommuneEtablissement,"
    "libelleCommuneEtrangerEtablissement,distributionSpecialeEtablissement,"
    "codeCommuneEtablissement,codeCedexEtablissement,libelleCedexEtablissement,"
    "codePaysEtrangerEtablissement,libellePaysEtrangerEtablissement,"
    "complementAdresse2Etablissement,numeroVoie2Etablissement,indiceRepetition2Etablissement,"
    "typeVoie2Etablissement,libelleVoie2Etablissement,codePostal2Etablissement,"
    "libelleCommune2Etablissement,libelleCommuneEtranger2Etablissement,"
    "distributionSpeciale2Etablissement,codeCommune2Etablissement,codeCedex2Etablissement,"
    "libelleCedex2Etablissement,codePaysEtranger2Etablissement,"
    "libellePaysEtranger2Etablissement,dateDebut,etatAdministratifEtablissement,"
    "enseigne1Etablissement,enseigne2Etablissement,enseigne3Etablissement,"
    "denominationUsuelleEtablissement,activitePrincipaleEtablissement,"
    "nomenclatureActivitePrincipaleEtablissement,caractereEmployeurEtablissement,"
    "longitude,latitude,geo_score,geo_type,geo_adresse,geo_id,geo_ligne,geo_l4,geo_l5"
).split(",")


def geo_row(**values: str) -> list[str]:
    return [values.get(c, "") for c in GEO_HEADER]


GEO_ROWS = [
    geo_row(siren="123456789", nic="00012", siret="12345678900012",
            statutDiffusionEtablissement="O", dateCreationEtablissement="2010-05-01",
            trancheEffectifsEtablissement="03", anneeEffectifsEtablissement="2022",
            dateDernierTraitementEtablissement="2024-01-15T10:00:00",
            etablissementSiege="true", numeroVoieEtablissement="12", typeVoieEtablissement="RUE",
            libelleVoieEtablissement="DES ARTISANS", codePostalEtablissement="25660",
            libelleCommuneEtablissement="GENNES", codeCommuneEtablissement="25267",
            dateDebut="2010-05-01", etatAdministratifEtablissement="A",
            enseigne1Etablissement="GARAGE CENTRAL", activitePrincipaleEtablissement="45.20A",
            longitude="6.1", latitude="47.2", geo_score="0.93", geo_type="housenumber",
            geo_adresse="12 Rue des Artisans 25660 Gennes", geo_id="25267_0050_00012"),
    # Closed: its closure date is the start of its current period (dateDebut).
    geo_row(siren="987654321", nic="00020", siret="98765432100020",
            statutDiffusionEtablissement="O", dateCreationEtablissement="2001-01-01",
            trancheEffectifsEtablissement="NN", dateDernierTraitementEtablissement="2021-06-01",
            etablissementSiege="false", libelleCommuneEtablissement="GENNES",
            codeCommuneEtablissement="25267", dateDebut="2020-03-31",
            etatAdministratifEtablissement="F", denominationUsuelleEtablissement="MENUISERIE",
            activitePrincipaleEtablissement="16.23Z", longitude="6.101", latitude="47.201",
            geo_type="street"),
    # Not diffusible: Insee hides its address and location.
    geo_row(siren="111222333", nic="00011", siret="11122233300011",
            statutDiffusionEtablissement="P", dateCreationEtablissement="2015-01-01",
            codeCommuneEtablissement="25267", dateDebut="2015-01-01",
            etatAdministratifEtablissement="A", enseigne1Etablissement="[ND]",
            activitePrincipaleEtablissement="47.11B", longitude="[ND]", latitude="[ND]"),
    # A SIRET mangled by a spreadsheet (leading zero lost).
    geo_row(siren="12345678", siret="1234567800019", etatAdministratifEtablissement="A",
            longitude="6.1", latitude="47.2"),
]


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, sep: str = ",") -> Path:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def source(*paths: Path, **kw) -> Source:
    return Source(kind="etablissements", paths=tuple(paths), key="sources.etablissements", **kw)


def lambert(lon: float, lat: float) -> tuple[float, float]:
    return Transformer.from_crs(4326, 2154, always_xy=True).transform(lon, lat)


def test_geolocated_sirene_csv(tmp_path):
    path = write_csv(tmp_path / "geo_siret_25.csv", GEO_HEADER, GEO_ROWS)
    result = read_etablissements(source(path), crs=CRS, base=tmp_path)
    f = result.frame.set_index("siret")
    assert list(result.frame.columns[:-1]) == ETABLISSEMENTS.columns
    assert list(f.index) == ["12345678900012", "98765432100020"]
    a, c = f.loc["12345678900012"], f.loc["98765432100020"]
    assert (a["nom"], a["naf"], a["etat"], a["siege"]) == ("GARAGE CENTRAL", "45.20A", "A", "oui")
    assert (a["date_creation"], a["date_maj"]) == ("2010-05-01", "2024-01-15")
    assert a["date_fermeture"] is None or pd.isna(a["date_fermeture"])
    assert a["geocodage"] == "localisation à la plaque adresse"
    assert (a["tranche_effectif"], a["annee_effectif"]) == ("03", "2022")
    assert a["adresse"] == "12 Rue des Artisans 25660 Gennes"
    assert a["ban_id"] == "25267_0050_00012" and a["source"] == "geo_siret_25.csv"
    assert (c["etat"], c["date_fermeture"], c["nom"]) == ("F", "2020-03-31", "MENUISERIE")
    assert c["geocodage"] == "localisation à la rue (sans numéro)"
    assert pd.isna(a["type_personne"])  # no legal category without StockUniteLegale
    x, y = lambert(6.1, 47.2)
    assert f.geometry.loc["12345678900012"].distance(shapely.Point(x, y)) < 0.01
    assert result.frame.crs == CRS
    rep = result.report.repairs
    assert rep["établissements sans coordonnées (non géolocalisés) écartés"] == 1
    assert rep["établissements au SIRET mal formé (14 chiffres attendus) écartés"] == 1
    assert (result.report.features_read, result.report.features_kept) == (4, 2)


def test_gzip_and_semicolon(tmp_path):
    path = tmp_path / "etab.csv.gz"
    text = "\n".join([";".join(GEO_HEADER)] + [";".join(r) for r in GEO_ROWS[:2]]) + "\n"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    frame = read_etablissements(source(path), crs=CRS).frame
    assert sorted(frame["siret"]) == ["12345678900012", "98765432100020"]


def test_truncated_gzip_is_a_source_error(tmp_path):
    path = tmp_path / "etab.csv.gz"
    text = "\n".join([",".join(GEO_HEADER)] + [",".join(r) for r in GEO_ROWS] * 50)
    path.write_bytes(gzip.compress(text.encode("utf-8"))[:200])
    with pytest.raises(SourceError, match="etab.csv.gz.*illisible"):
        read_etablissements(source(path), crs=CRS)


def test_insee_stock_with_lambert_coordinates(tmp_path):
    x, y = lambert(6.1, 47.2)
    header = ["siren", "nic", "siret", "dateDebut", "etatAdministratifEtablissement",
              "activitePrincipaleEtablissement", "coordonneeLambertAbscisseEtablissement",
              "coordonneeLambertOrdonneeEtablissement"]
    rows = [["123456789", "00012", "12345678900012", "2019-01-01", "F", "45.20A", f"{x:.2f}",
             f"{y:.2f}"]]
    path = write_csv(tmp_path / "StockEtablissement_utf8.csv", header, rows)
    frame = read_etablissements(source(path), crs=CRS).frame
    assert frame.geometry.iloc[0].distance(shapely.Point(x, y)) < 0.01
    assert frame["date_fermeture"].iloc[0] == "2019-01-01"
    # Generic x/y columns say nothing of their CRS.
    generic = write_csv(tmp_path / "xy.csv", ["siret", "x", "y"],
                        [["12345678900012", f"{x:.2f}", f"{y:.2f}"]])
    with pytest.raises(CRSError, match=r"sources\.etablissements\.crs"):
        read_etablissements(source(generic), crs=CRS)
    declared = read_etablissements(source(generic, crs="EPSG:2154"), crs=CRS).frame
    assert declared.geometry.iloc[0].distance(shapely.Point(x, y)) < 0.01


def test_unites_legales_give_legal_name_and_natural_persons(tmp_path):
    path = write_csv(tmp_path / "geo.csv", GEO_HEADER, GEO_ROWS[:2])
    ul = write_csv(
        tmp_path / "StockUniteLegale_extrait.csv",
        ["siren", "nomUniteLegale", "prenom1UniteLegale", "denominationUniteLegale",
         "categorieJuridiqueUniteLegale"],
        [["123456789", "", "", "GARAGE CENTRAL SARL", "5499"],
         ["987654321", "DURAND", "PIERRE", "", "1000"]])
    result = read_etablissements(source(path, ul), crs=CRS)
    f = result.frame.set_index("siret")
    assert f.loc["12345678900012", "raison_sociale"] == "GARAGE CENTRAL SARL"
    assert f.loc["12345678900012", "type_personne"] == "personne morale"
    assert f.loc["98765432100020", "categorie_juridique"] == "1000"
    assert f.loc["98765432100020", "type_personne"] == "personne physique"
    # The names of natural persons are never read.
    assert "DURAND" not in result.frame.to_string() and "PIERRE" not in result.frame.to_string()
    assert result.report.features_read == 2


def test_cnig_point_layer(tmp_path):
    x, y = lambert(6.1, 47.2)
    layer = gpd.GeoDataFrame({
        "SIRET": ["34749951900010"], "SIREN": ["347499519"], "etab_nom": ["MAN TRUCK"],
        "etab_raison_sociale": ["Picardie service véhicules industriels"],
        "etab_nat_juridique": ["5710"], "etab_actif": ["non"],
        "etab_creation_date": ["2015-06-04"], "etab_fermeture_date": ["2021-02-08"],
        "etab_activite_code": ["4520B"], "geocodage_qualite": ["Localisation au bâtiment"],
    }, geometry=[shapely.MultiPoint([(x, y)])], crs=CRS)
    path = tmp_path / "sites.gpkg"
    layer.to_file(path, layer="etablissement")
    f = read_etablissements(source(path), crs=CRS).frame.iloc[0]
    assert (f["siret"], f["nom"], f["categorie_juridique"]) == ("34749951900010", "MAN TRUCK",
                                                                 "5710")
    assert (f["etat"], f["date_fermeture"]) == ("F", "2021-02-08")
    assert f["type_personne"] == "personne morale"
    assert f["geocodage"] == "localisation au bâtiment"
    assert f.geometry.geom_type == "Point"


def test_duplicates_keep_the_latest_whatever_the_file_order(tmp_path):
    old = GEO_ROWS[0].copy()
    old[GEO_HEADER.index("dateDernierTraitementEtablissement")] = "2020-01-01"
    old[GEO_HEADER.index("enseigne1Etablissement")] = "ANCIEN NOM"
    a = write_csv(tmp_path / "a.csv", GEO_HEADER, [old])
    b = write_csv(tmp_path / "b.csv", GEO_HEADER, GEO_ROWS[:1])
    r1 = read_etablissements(source(a, b), crs=CRS)
    r2 = read_etablissements(source(b, a), crs=CRS)
    assert r1.frame["nom"].tolist() == ["GARAGE CENTRAL"]
    pd.testing.assert_frame_equal(pd.DataFrame(r1.frame), pd.DataFrame(r2.frame))
    assert r1.report.repairs["établissements en double (même SIRET) écartés"] == 1


def test_errors_name_the_file_and_the_fix(tmp_path):
    no_siret = write_csv(tmp_path / "nosiret.csv", ["siren", "longitude", "latitude"],
                         [["123456789", "6.1", "47.2"]])
    with pytest.raises(SchemaError, match=r"nosiret\.csv.*siret.*champs\.siret"):
        read_etablissements(source(no_siret), crs=CRS)
    no_coords = write_csv(tmp_path / "nocoords.csv", ["siret", "etat"],
                          [["12345678900012", "A"]])
    with pytest.raises(SchemaError, match=r"nocoords\.csv.*coordonnée"):
        read_etablissements(source(no_coords), crs=CRS)
    empty = tmp_path / "vide.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="vide"):
        read_etablissements(source(empty), crs=CRS)
    header_only = write_csv(tmp_path / "entete.csv", GEO_HEADER, [])
    with pytest.raises(SourceError, match="sans aucune ligne"):
        read_etablissements(source(header_only), crs=CRS)
    ul = write_csv(tmp_path / "ul.csv", ["siren", "categorieJuridiqueUniteLegale"],
                   [["123456789", "5499"]])
    with pytest.raises(SourceError, match="aucun fichier d'établissements"):
        read_etablissements(source(ul), crs=CRS)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(",".join(GEO_HEADER).encode() + b"\n" + ",".join(GEO_ROWS[0]).replace(
        "GENNES", "G\xc9NNES").encode("latin-1").replace(b"G\xc3\x89", b"G\xc9") + b"\n")
    with pytest.raises(SourceError, match=r"latin\.csv.*UTF-8.*encodage"):
        read_etablissements(source(latin), crs=CRS)
    assert read_etablissements(source(latin, encoding="latin-1"), crs=CRS).frame[
        "commune"].iloc[0] == "GÉNNES"


def test_parquet(tmp_path):
    df = pd.DataFrame([GEO_ROWS[0]], columns=GEO_HEADER)
    path = tmp_path / "StockEtablissement.parquet"
    df.to_parquet(path)
    frame = read_etablissements(source(path), crs=CRS).frame
    assert frame["siret"].tolist() == ["12345678900012"]


def test_mask_natural_persons(tmp_path):
    path = write_csv(tmp_path / "geo.csv", GEO_HEADER, GEO_ROWS[:2])
    ul = write_csv(tmp_path / "ul.csv", ["siren", "denominationUniteLegale",
                                         "categorieJuridiqueUniteLegale"],
                   [["123456789", "GARAGE CENTRAL SARL", "5499"], ["987654321", "", "1000"]])
    frame = read_etablissements(source(path, ul), crs=CRS).frame
    masked = mask_natural_persons(frame).set_index("siret")
    assert masked.loc["12345678900012", "nom"] == "GARAGE CENTRAL"
    assert masked.loc["98765432100020", "nom"] is None
    assert frame.set_index("siret").loc["98765432100020", "nom"] == "MENUISERIE"  # input kept
