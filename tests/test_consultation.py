"""Consultation files per ZAE: XLSX round trip, French CSV, natural persons never named."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from openpyxl import load_workbook

from observatoire.analysis.zae_inventory import inventory
from observatoire.publish.consultation import (
    HEADERS,
    consultation_table,
    safe_file_name,
    stage_consultation,
)

CRS = "EPSG:2154"
X0, Y0 = 930_000.0, 6_680_000.0
OBS = dt.date(2025, 3, 1)


def box(x1: float, y1: float, x2: float, y2: float) -> shapely.Geometry:
    return shapely.MultiPolygon([shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)])


@pytest.fixture
def inventaire() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    zae = gpd.GeoDataFrame({"zae_id": ["ZA/1 des Prés", "Z2"], "zae_nom": ["ZA des Prés", "ZA 2"]},
                           geometry=[box(0, 0, 100, 100), box(200, 0, 300, 100)], crs=CRS)
    unites = gpd.GeoDataFrame({
        "uf_id": ["U1", "U2", "U3"],
        "idus": ["25267000AB0001|25267000AB0002", "25267000AB0003", "25267000AB0004"],
        "nb_parcelles": [2, 1, 1],
        "surface_m2": [5000.4, 3500.0, 10000.0],
        "proprietaire_type": ["personne morale", "personne physique", "inconnu"],
        # A hostile legal name (spreadsheet formula) and a natural person's name in the input.
        "proprietaire_nom": ["=HYPERLINK(\"http://x\";\"SA\")", "MARTIN PAUL", None],
        "proprietaire_siren": ["123456789", "987654321", None],
    }, geometry=[box(0, 0, 100, 50), box(50, 50, 120, 100), box(200, 0, 300, 100)], crs=CRS)
    batiments = gpd.GeoDataFrame(geometry=[box(10, 10, 40, 40)], crs=CRS)
    return inventory(zae, unites, batiments, None, date_observation=OBS)


def test_table_has_french_headers_and_hides_natural_persons(inventaire):
    zae, zu = inventaire
    table = consultation_table(zae, zu)
    assert list(table.columns) == list(HEADERS)
    assert len(table) == 3
    by = table.set_index("Unité foncière")
    assert by.loc["U1", "Parcelles cadastrales"] == "25267000AB0001, 25267000AB0002"
    assert by.loc["U1", "Surface de l'unité (m²)"] == 5000
    assert by.loc["U2", "Propriétaire (catégorie)"] == "personne physique"
    assert by.loc["U2", "Propriétaire (dénomination, personnes morales)"] is None
    assert by.loc["U2", "SIREN du propriétaire"] is None
    assert by.loc["U2", "Part dans la zone (%)"] == pytest.approx(71.4)
    assert by.loc["U2", "Coupée par la limite de la zone"] == "oui"
    assert by.loc["U1", "Occupation"] == "présumée occupée"
    assert "MARTIN" not in table.to_string()


def test_xlsx_round_trip(inventaire, tmp_path):
    zae, zu = inventaire
    staged = stage_consultation(zae, zu, output_dir=tmp_path, territory="Gennes",
                                date_observation=OBS)
    paths = [s.publish() for s in staged]
    assert sorted(p.name for p in paths) == ["Z2.csv", "Z2.xlsx", "ZA_1_des_Pr_s.csv",
                                             "ZA_1_des_Pr_s.xlsx"]
    assert all(p.parent == tmp_path / "consultation" for p in paths)
    wb = load_workbook(tmp_path / "consultation" / "ZA_1_des_Pr_s.xlsx")
    ws = wb["Unités foncières"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == list(HEADERS)
    expected = consultation_table(zae, zu)
    expected = expected[expected["Identifiant de la zone"] == "ZA/1 des Prés"]
    assert [list(r) for r in rows[1:]] == expected.to_numpy().tolist()
    # The hostile name is kept as text, never as a formula.
    cell = ws.cell(row=2, column=HEADERS.index(
        "Propriétaire (dénomination, personnes morales)") + 1)
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")
    info = {r[0]: r[1] for r in wb["Zone"].iter_rows(values_only=True)}
    assert info["Unités foncières"] == 2
    assert info["Unités vacantes"] == 1
    assert info["Taux de vacance (nombre)"] == "50,0 %"
    assert info["Date d'observation"] == "01/03/2025"
    assert "Présomption par le bâti" in info["Règle de vacance appliquée"]


def test_csv_for_french_spreadsheets(inventaire, tmp_path):
    zae, zu = inventaire
    for s in stage_consultation(zae, zu, output_dir=tmp_path, territory="Gennes",
                                date_observation=OBS):
        s.publish()
    raw = (tmp_path / "consultation" / "ZA_1_des_Pr_s.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark for Excel
    text = raw.decode("utf-8-sig")
    lines = text.split("\r\n")
    assert lines[0].split(";")[:3] == ["Identifiant de la zone", "Nom de la zone",
                                       "Unité foncière"]
    df = pd.read_csv(tmp_path / "consultation" / "ZA_1_des_Pr_s.csv", sep=";",
                     encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert len(df) == 2
    u2 = df.set_index("Unité foncière").loc["U2"]
    assert u2["Part dans la zone (%)"] == "71,4"  # decimal comma
    assert u2["Propriétaire (dénomination, personnes morales)"] == ""
    u1 = df.set_index("Unité foncière").loc["U1"]
    assert u1["Propriétaire (dénomination, personnes morales)"].startswith("'=HYPERLINK")
    assert "MARTIN" not in text


def test_staged_files_leave_nothing_before_publication(inventaire, tmp_path):
    zae, zu = inventaire
    staged = stage_consultation(zae, zu, output_dir=tmp_path, territory="Gennes",
                                date_observation=OBS)
    assert not any(s.dest.exists() for s in staged)
    for s in staged:
        s.discard()
    assert list((tmp_path / "consultation").iterdir()) == []


def test_safe_file_name():
    assert safe_file_name("25267_SITE-ECO_00001") == "25267_SITE-ECO_00001"
    assert safe_file_name("../../etc/passwd") == "etc_passwd"
    assert safe_file_name("///") == "zone"
