"""The report: key figures computed by hand, charts inline, every value escaped, no person named."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
from dataclasses import replace
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from conftest import SAMPLE, gennes_parcels_and_friches, zoning_without_u_zones
from publication_fixtures import HOSTILE, PERSON, analysed, sample_layers, without_analysis

from observatoire.analysis import analyse
from observatoire.analysis.scoring import UNDETERMINED
from observatoire.config import load_territory
from observatoire.ingest import ingest
from observatoire.publish.assets import hectares, number, percent, profile_texts
from observatoire.publish.rapport import render_report, stage_report
from observatoire.readers import provenance


class Page(HTMLParser):
    """Collect text by section, images and tags of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict] = []
        self.text: list[str] = []
        self.cells: list[str] = []
        self.key_figures = 0  # index in ``cells`` where the key figures begin
        self._cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        self._cell = tag in ("td", "th", "div")

    def handle_endtag(self, tag):
        self._cell = False

    def handle_data(self, data):
        self.text.append(data)
        if data.strip() == "Chiffres clés":
            self.key_figures = len(self.cells)
        if self._cell and data.strip():
            self.cells.append(data.strip())


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    layers, territory, reports = sample_layers(tmp_path_factory.mktemp("rapport"))
    return analysed(layers), without_analysis(layers), territory, reports


@pytest.fixture(scope="module")
def html(sample):
    layers, _, territory, reports = sample
    return render_report(layers, reports,
                         territory_name="Gennes <script>alert(1)</script> {{ 6 * 7 }}",
                         communes=["25267"], date="2026-01-01", base=territory.path.parent)


@pytest.fixture(scope="module")
def page(html):
    parser = Page()
    parser.feed(html)
    return parser


def test_number_formats():
    assert number(1234567.891, 1) == "1\u202f234\u202f567,9"
    assert number(None) == "—" and number(float("nan")) == "—"
    assert hectares(125_000) == "12,5 ha"
    assert percent(0.5) == "50\u00a0%"


def test_key_figures_by_hand(sample, page):
    layers, *_ = sample
    parcelles = layers["parcelles"]
    text = " ".join(page.text)
    assert "828" in page.cells
    assert f"{hectares(parcelles['surface_m2'].sum())} au total" in text
    # Rule of the fixture: parcel i is excluded from "industrie" when i % 7 == 0: 119 of 828.
    kept = parcelles[parcelles.index % 7 != 0]
    assert f"{number(len(kept))} parcelles non exclues" in text
    assert hectares(kept["surface_m2"].sum()) in page.cells
    # ZAE: 2 of its 4 land units are vacant.
    assert "vacance : 50\u00a0% des unités foncières (2 sur 4)" in text
    friches = layers["friches"]
    no_project = int((friches["site_statut"] == "friche sans projet").sum())
    assert f"dont {no_project} sans projet" in text


def test_available_hectares_by_class(sample, page):
    layers, *_ = sample
    p = layers["parcelles"]
    ha = (p.groupby(p["classe_industrie"].fillna("Exclue"))["surface_m2"].sum() / 10_000)
    # The commune by its name, from the table of communes (no names given).
    cells = page.cells[page.key_figures:]  # after the territory map and the atlas cover
    row = cells[cells.index("Gennes"):][:8]
    assert row == ["Gennes", *(number(ha[c], 1) for c in ["A", "B", "C", "D", "E", "Exclue"]),
                   number(ha.sum(), 1)]
    assert "communes : Gennes (25267)" in " ".join(page.text)


def test_commune_names_given_and_unknown(sample):
    layers, _, territory, reports = sample
    p = layers["parcelles"].copy()
    p.loc[p.index % 2 == 0, "code_insee"] = "25999"  # not in the table of communes
    html = render_report({**layers, "parcelles": p}, reports, territory_name="Gennes",
                         communes=["25267", "25999"], date="2026-01-01",
                         names={"25267": "Gennes (Doubs)"})
    page = Page()
    page.feed(html)
    assert "communes : Gennes (Doubs) (25267), 25999" in " ".join(page.text)
    assert "Gennes (Doubs)" in page.cells and "25999" in page.cells


def test_best_sites_sorted_by_score(page):
    start = page.cells.index("Gisement")
    header = page.cells[start:start + 8]
    assert header == ["Gisement", "Surface", "Parcelles", "Propriétaires", "Score moyen",
                      "Score minimal", "Zone d'activités", "Friche"]
    rows = page.cells[start + 8:start + 8 + 3 * 8]
    # Fixture: score (i * 37) % 100, parcel excluded when i % 7 == 0.
    # G1 = parcels 10, 11, 12: mean(70, 7, 44) = 40.3, min 7; G2 = parcels 20, 21 (excluded):
    # 40; G3 = parcel 30: 10.
    assert [rows[0], rows[4], rows[5]] == ["G1", "40,3", "7,0"]
    assert [rows[8], rows[12], rows[16], rows[20]] == ["G2", "40,0", "G3", "10,0"]


def test_every_value_is_escaped(html, page):
    for value in (*HOSTILE, "<script>alert(1)</script>"):
        if "<" in value:
            assert value not in html
    # No markup in it: shown as is (a ZAE name, in the vacancy table).
    assert escape(HOSTILE[2]) in html
    assert "&lt;svg onload=window.__pwned=4&gt;" in html  # a friche type, in the table
    assert "Gennes &lt;script&gt;alert(1)&lt;/script&gt; {{ 6 * 7 }}" in html
    assert "script" not in [t for t in page.tags]
    assert page.tags.count("img") == len(page.images)


def test_charts_are_inline_svg(page):
    # The territory map and the atlas cover's map (PNG), then the charts: classes,
    # friches, vacancy, score histograms.
    assert len(page.images) == 6
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images[:2])
    for img in page.images[2:]:
        assert img["src"].startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(img["src"].split(",", 1)[1]).decode("utf-8")
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        assert "<script" not in svg and "<text" not in svg  # text drawn as paths
        assert img["alt"]


def test_no_external_resource_and_printable(html):
    assert not re.search(r"(src|href)=[\"']?(https?:|//)", html)
    assert "@media print" in html and "@page" in html


def test_no_natural_person(html):
    assert PERSON not in html


def test_report_without_analysis(sample):
    _, raw, _, reports = sample
    html = unescape(render_report(raw, reports, territory_name="Gennes", communes=["25267"],
                                  date="2026-01-01"))
    assert "Les parcelles ne portent pas de score" in html
    assert "Aucun gisement foncier" in html
    assert "n'a pas été calculé" in html  # ZAE vacancy
    assert "Friches par statut" in html


def test_report_of_the_real_analysis(tmp_path):
    """The sample build's own analysis: its counts and best site reach the report."""
    layers, territory, reports = sample_layers(tmp_path)
    html = unescape(render_report(layers, reports, territory_name="Gennes",
                                  communes=["25267"], date="2026-01-01"))
    parser = Page()
    parser.feed(html)
    text = " ".join(parser.text)
    parcelles, gisements, zae = layers["parcelles"], layers["gisements"], layers["zae"]
    kept = parcelles["score_industrie"].notna()
    assert 0 < kept.sum() < len(parcelles)
    assert f"{number(int(kept.sum()))} parcelles non exclues" in text
    assert f"{hectares(parcelles.loc[kept, 'surface_m2'].sum())}" in parser.cells
    assert f"sur {number(len(gisements))}." in text
    best = gisements.sort_values("score_moyen", ascending=False).iloc[0]
    start = parser.cells.index("Gisement") + 8
    assert parser.cells[start:start + 5] == [
        best["gisement_id"], hectares(best["surface_m2"]), number(best["nb_parcelles"]), "—",
        number(best["score_moyen"], 1)]  # no owner table in the sample: owners unknown
    row = zae.iloc[0]
    assert (f"vacance : {percent(row['taux_vacance'])} des unités foncières "
            f"({row['nb_unites_vacantes']} sur {row['nb_unites']})") in text
    assert "Les parcelles ne portent pas de score" not in html


def test_report_sources_table(sample, page):
    *_, reports = sample
    kinds = [r.kind for r in reports]
    assert kinds[0] == "parcelles"
    assert "parcel.gpkg" in page.cells and "bdparcellaire" in page.cells
    assert "parcelles hors des communes du territoire écartées : 23" in page.cells


def test_report_credits_producers_and_dates(sample, page, html):
    *_, reports = sample
    assert "Sources et producteurs" in page.text
    # One row per source: producer, source, file, date of the data, where it was read.
    assert ["IGN, DGFiP (BD PARCELLAIRE)", "parcelles", "parcel.gpkg", "23 novembre 2021"] == \
        page.cells[page.cells.index("IGN, DGFiP (BD PARCELLAIRE)"):][:4]
    assert "Cerema (Cartofriches)" in page.cells and "10 octobre 2022" in page.cells
    assert ("champ « site_actu_date » de cartofriches_subset_gennes_25267_5km.geojson "
            "(date la plus récente)") in page.cells
    assert page.cells.count("IGN (BD TOPO)") == 2
    text = unescape(" ".join(page.text))
    assert "Licence Ouverte / Open Licence 2.0" in text
    assert "Géoportail de l'Urbanisme — zonage, données du 25 mars 2022" in text
    assert all(r.producer and r.data_date for r in reports)


def test_report_credits_escape_the_producer(sample):
    layers, _, territory, reports = sample
    hostile = [replace(reports[0], producer=HOSTILE[0])]
    page = render_report(layers, hostile, territory_name="G", communes=["25267"], date="d")
    assert HOSTILE[0] not in page
    assert unescape(page).count(HOSTILE[0]) == 2  # shown as text: paragraph and table


def test_stage_report(sample):
    layers, _, territory, reports = sample
    staged = stage_report(layers, reports, territory)
    try:
        assert staged.dest.name == "rapport.html"
        assert "Chiffres clés" in staged.tmp.read_text(encoding="utf-8")
    finally:
        staged.discard()


def test_report_is_deterministic_apart_from_dates(sample):
    layers, _, territory, reports = sample
    a = render_report(layers, reports, territory_name="G", communes=["25267"], date="d")
    b = render_report(layers, reports, territory_name="G", communes=["25267"], date="d")
    assert a == b


def test_french_dates():
    from observatoire.publish.assets import french_date

    assert french_date("2026-12-03") == "3 décembre 2026"
    assert french_date("2026-01-01") == "1er janvier 2026"
    assert french_date("2026-08-15T23:10:00+00:00") == "15 août 2026"
    assert french_date(dt.date(2025, 2, 28)) == "28 février 2025"
    with pytest.raises(ValueError):
        french_date("03/12/2026")


def test_every_date_of_the_report_is_french(sample):
    """The header and the sources table: « 1er janvier 2026 », never 2026-01-01."""
    from observatoire.publish.assets import french_date

    layers, _, territory, reports = sample
    territory = dataclasses.replace(
        territory, options=dataclasses.replace(territory.options,
                                               date_observation=dt.date(2026, 1, 1)))
    staged = stage_report(layers, reports, territory)
    try:
        page = Page()
        page.feed(staged.tmp.read_text(encoding="utf-8"))
    finally:
        staged.discard()
    text = unescape(" ".join(page.text))
    today = french_date(dt.date.today())
    assert f"Données au 1er janvier 2026 — rapport produit le {today} " in text
    read = {french_date(r.read_at) for r in reports}
    assert read and read <= set(page.cells)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    months = "|".join(("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                       "septembre", "octobre", "novembre", "décembre"))
    long_form = re.findall(rf"\b(?:1er|\d{{1,2}}) (?:{months}) \d{{4}}\b", text)
    # Header (2), the date each source was read, the date of its data, and the credits.
    assert len(long_form) == 2 + 2 * len(reports) + len(provenance.credits(reports))


# --------------------------------------------------------------------------- reliability


def _real_report(folder: Path, sources: str) -> tuple[gpd.GeoDataFrame, str]:
    """Analyse a territory of the sample's real files; its parcels and its report's text."""
    toml = gennes_parcels_and_friches(folder, sources)
    territory = load_territory(toml)
    layers = ingest(territory)
    result = analyse(layers, profiles=territory.profiles, options=territory.options.analysis)
    frames = {**layers.spatial(), **result.layers()}
    html = unescape(render_report(frames, layers.reports, territory_name="Gennes",
                                  communes=["25267"], date="2026-01-01",
                                  profiles=profile_texts(territory)))
    parser = Page()
    parser.feed(html)
    return result.parcelles, re.sub(r"[ \t\n]+", " ", " ".join(parser.text))


def test_headline_counts_determined_classes_only(tmp_path):
    zoning = zoning_without_u_zones(tmp_path)
    p, text = _real_report(tmp_path, f"""
[sources.zonage]
chemin = "{zoning}"

[sources.batiments]
chemin = "{SAMPLE / 'building.gpkg'}"

[sources.routes]
chemin = "{SAMPLE / 'road.gpkg'}"
""")
    scored = p[~p["exclu_industrie"]]
    unsure = scored["classe_industrie"] == UNDETERMINED
    # Exactly the parcels left without a zone: zoning, 25 of the 80 points, unknown.
    assert unsure.sum() > 50
    assert (unsure == scored["zone_typezone"].isna()).all()
    np.testing.assert_allclose(scored.loc[unsure, "fiabilite_industrie"], 0.55)
    np.testing.assert_allclose(scored.loc[~unsure, "fiabilite_industrie"], 0.80)
    good = scored["classe_industrie"].isin(["A", "B"])
    assert good.sum() > 0
    # Undetermined parcels with a high score are not counted as A or B.
    assert (scored.loc[unsure, "score_industrie"] >= 60).any()
    assert (f"{number(len(scored))} parcelles non exclues, dont "
            f"{hectares(scored.loc[good, 'surface_m2'].sum())} en classes A ou B ; "
            f"{hectares(scored.loc[unsure, 'surface_m2'].sum())} de classe non déterminée "
            f"(fiabilité sous 75\u00a0% ; critères sans donnée : pente, contraintes, réseau "
            f"électrique ; parcelles hors de l'emprise d'une source fournie (zonage, MNT…)), "
            f"comptés dans aucune classe") in text
    # The reliability table: minimal reliability, threshold, parcels undetermined.
    assert f"0,55 75\u00a0% {number(int(unsure.sum()))} Logistique" in text


def test_headline_of_parcels_and_friches_alone(tmp_path):
    p, text = _real_report(tmp_path, "")
    scored = p[~p["exclu_industrie"]]
    assert (scored["classe_industrie"] == UNDETERMINED).all()
    assert (f"dont 0,0 ha en classes A ou B ; {hectares(scored['surface_m2'].sum())} de classe "
            f"non déterminée (fiabilité sous 75\u00a0% ; critères sans donnée : zonage, pente, "
            f"bâti existant, desserte routière, contraintes, réseau électrique), comptés dans "
            f"aucune classe") in text
    assert "Aucun gisement foncier" in text
