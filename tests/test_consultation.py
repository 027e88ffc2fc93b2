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


def test_workbook_cells_read_back(tmp_path):
    """Every cell of a workbook, read back with openpyxl: values, types, styles, layout."""
    from observatoire.publish.consultation import WIDTHS, write_xlsx

    rows = [
        ["Z1", "ZA du Pont", "U1", "25267000AB0001, 25267000AB0002", 2, 5000, 71.4, "non",
         "personne morale", "=SOMME(A1:A9)", "+33123", "12345678900011 – ACME", 1,
         "occupée", "occupée", "-établissement actif", None],
        ["Z1", "ZA du Pont", "U2", "", 1, 12, 100.0, "oui", "personne physique", None, None,
         "@mention", 0, "vacante", "vacante", "http://exemple.fr", None],
    ]
    table = pd.DataFrame(rows, columns=list(HEADERS), dtype=object)
    zone = {"zae_id": "Z1", "zae_nom": "ZA du Pont", "comm_insee": "25267", "comm_nom": "Gennes",
            "nb_unites": 2, "nb_unites_vacantes": 1, "taux_vacance": 0.5,
            "taux_vacance_surface": 0.0024, "surface_disponible_m2": 12.4,
            "regle_vacance": "=règle"}
    path = write_xlsx(table, tmp_path / "z1.xlsx", zone=zone, territory="Gennes",
                      date_observation=dt.date(2025, 3, 1))

    wb = load_workbook(path)
    assert wb.sheetnames == ["Unités foncières", "Zone"]
    ws = wb["Unités foncières"]
    assert [c.value for c in ws[1]] == list(HEADERS)
    # An empty text is an empty cell; the last column (observations) is empty.
    expected = [[None if v in ("", None) else v for v in row] for row in rows]
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=2)] == expected
    # Text that a spreadsheet would run stays text: no formula, number or link.
    for ref in ("J2", "K2", "L3", "P2", "P3"):
        assert ws[ref].data_type == "s" and ws[ref].hyperlink is None, ref
    assert ws["J2"].value == "=SOMME(A1:A9)" and ws["K2"].value == "+33123"
    assert [ws[ref].data_type for ref in ("E2", "F2", "G2", "M3")] == ["n"] * 4
    assert ws["G2"].value == 71.4 and ws["F3"].value == 12
    header = ws["A1"]
    assert header.font.b and header.fill.fill_type == "solid"
    assert header.fill.fgColor.rgb[-6:] == "DDEBF7"
    assert header.alignment.wrap_text and header.alignment.vertical == "top"
    assert not ws["A2"].font.b and ws["A2"].fill.fill_type is None
    assert ws.freeze_panes == "D2"
    assert ws.auto_filter.ref == "A1:Q3"
    widths = {}
    for dim in ws.column_dimensions.values():  # a run of equal widths may be one range
        for col in range(dim.min, dim.max + 1):
            widths[col] = dim.width
    assert [widths[i] for i in range(1, 18)] == list(WIDTHS)

    info = wb["Zone"]
    assert [[c.value for c in row] for row in info.iter_rows()][2:12] == [
        ["Zone", "ZA du Pont"], ["Identifiant", "Z1"], ["Commune", "Gennes (25267)"],
        ["Date d'observation", "01/03/2025"], ["Unités foncières", 2],
        ["Unités vacantes", 1], ["Taux de vacance (nombre)", "50,0 %"],
        ["Taux de vacance (surface)", "0,2 %"], ["Surface disponible (m²)", 12],
        ["Règle de vacance appliquée", "=règle"]]
    assert info["B12"].data_type == "s"
    assert info.max_row == 14
    assert all(info.cell(row=r, column=1).font.b for r in range(1, 15))
    assert all(info.cell(row=r, column=2).alignment.wrap_text for r in range(1, 15))
    assert info.column_dimensions["A"].width == 30 and info.column_dimensions["B"].width == 90


def test_workbook_without_rows_has_no_filter(tmp_path):
    from observatoire.publish.consultation import write_xlsx

    table = pd.DataFrame(columns=list(HEADERS))
    path = write_xlsx(table, tmp_path / "vide.xlsx", zone={"zae_id": "Z9"}, territory="T",
                      date_observation=OBS)
    ws = load_workbook(path)["Unités foncières"]
    assert [c.value for c in ws[1]] == list(HEADERS) and ws.max_row == 1
    assert ws.auto_filter.ref is None


def test_null_zone_values_are_empty_cells(tmp_path):
    """A zone without a name (NaN in the layer) is named by its id; NULLs are empty cells."""
    from observatoire.publish.consultation import write_xlsx

    table = pd.DataFrame({h: [float("nan")] if i == 5 else ["x"] for i, h in enumerate(HEADERS)})
    zone = {"zae_id": "Z9", "zae_nom": float("nan"), "regle_vacance": pd.NA,
            "nb_unites": float("nan"), "taux_vacance": None}
    path = write_xlsx(table, tmp_path / "z.xlsx", zone=zone, territory="T",
                      date_observation=OBS)
    wb = load_workbook(path)
    info = {r[0].value: r[1].value for r in wb["Zone"].iter_rows()}
    assert info["Zone"] == "Z9"
    assert info["Règle de vacance appliquée"] is None and info["Unités foncières"] is None
    assert wb["Unités foncières"].cell(row=2, column=6).value is None


def test_large_zone_is_streamed_with_the_same_cells(tmp_path, monkeypatch):
    """A zone beyond STREAM_ROWS is written row by row: same cells, text stays text."""
    from observatoire.publish import consultation

    rows = [["Z", "Zone", f"U{i}", "=1+1", i, i * 10, 0.5, "non", "inconnu", None, None,
             None, 0, "vacante", "vacante", "-", None] for i in range(5)]
    table = pd.DataFrame(rows, columns=list(HEADERS), dtype=object)
    monkeypatch.setattr(consultation, "STREAM_ROWS", 2)
    path = consultation.write_xlsx(table, tmp_path / "z.xlsx", zone={"zae_id": "Z"},
                                   territory="T", date_observation=OBS)
    ws = load_workbook(path)["Unités foncières"]
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=2)] == rows
    assert ws["D6"].data_type == "s" and ws.freeze_panes == "D2"


def test_worker_processes_write_the_same_files(inventaire, tmp_path, monkeypatch):
    """Zones written by two worker processes, a task per zone: the files of one process."""
    from observatoire.publish import consultation

    zae, zu = inventaire
    # A third zone, without units, between the two others.
    extra = zae.iloc[[1]].assign(zae_id="Z1 vide", zae_nom="Vide")
    zae = pd.concat([zae, extra], ignore_index=True)
    monkeypatch.setattr(consultation, "CHUNK_ZONES", 1)
    for out, workers in ((tmp_path / "un", 1), (tmp_path / "deux", 2)):
        for s in stage_consultation(zae, zu, output_dir=out, territory="Gennes",
                                    date_observation=OBS, workers=workers):
            s.publish()
    one, two = tmp_path / "un" / "consultation", tmp_path / "deux" / "consultation"
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir())
    assert len(names) == 6
    for name in names:
        if name.endswith(".csv"):
            assert (one / name).read_bytes() == (two / name).read_bytes(), name
        else:
            a, b = load_workbook(one / name), load_workbook(two / name)
            for sheet in ("Unités foncières", "Zone"):
                assert ([[c.value for c in r] for r in a[sheet].iter_rows()]
                        == [[c.value for c in r] for r in b[sheet].iter_rows()]), name
    empty = load_workbook(two / "Z1_vide.xlsx")["Unités foncières"]
    assert empty.max_row == 1


def test_workbook_text_is_escaped_and_read_back_unchanged(tmp_path):
    """Markup, edge spaces, tabs, line breaks and any script come back as written."""
    from observatoire.publish.consultation import write_xlsx

    values = ["SCI A & B <Nord> \"Le Pré\"", "  espace ", "tab\tligne\nfin", "é€😀", True, 3.25,
              10**17]
    row = (values + [None] * len(HEADERS))[:len(HEADERS)]
    table = pd.DataFrame([row], columns=list(HEADERS), dtype=object)
    path = write_xlsx(table, tmp_path / "z.xlsx", zone={"zae_id": "Z & <1>"}, territory="T",
                      date_observation=OBS)
    wb = load_workbook(path)
    ws = wb["Unités foncières"]
    assert [c.value for c in ws[2]][:len(values)] == values
    assert [ws.cell(row=2, column=k).data_type for k in (5, 6, 7)] == ["b", "n", "n"]
    assert {r[0].value: r[1].value for r in wb["Zone"].iter_rows()}["Identifiant"] == "Z & <1>"

