"""Atlas of the ZAE: one HTML and PDF sheet per zone and a cover, figures from the inventory.

The sample territory (Gennes, one ZAE derived from the PLU's UY zone) gives the
real case; a tiny inventory made with the real :func:`inventory` gives the case
with a natural person owner and establishments, whose names must never be
printed. The HTML sheets are printed by a real headless Chromium (A4 pages, read
back with ``pdfinfo`` and ``pdftotext``) when it is installed.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import shapely
from publication_fixtures import HOSTILE, sample_layers
from pyproj import Transformer

from observatoire.analysis.zae_inventory import inventory
from observatoire.config import load_territory
from observatoire.errors import ConfigError
from observatoire.publish.assets import hectares, number, percent
from observatoire.publish.atlas import (
    COVER,
    STATUTS,
    MapDrawer,
    length_label,
    nice_length,
    north_angles,
    polygon_paths,
    stage_atlas,
    units_table,
)

A4 = (595.28, 841.89)  # points
COMMUNES = {"25267": "Gennes"}
ZONE = "25267_SITE-ECO_00001"


def pdf_pages(path: Path) -> list[tuple[float, float]]:
    """Size (points) of every page of a PDF, read by pdfinfo."""
    pdfinfo = shutil.which("pdfinfo")
    if pdfinfo is None:
        pytest.skip("pdfinfo absent : apt-get install poppler-utils")
    out = subprocess.run([pdfinfo, "-f", "1", "-l", "999", str(path)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [(float(w), float(h)) for w, h in
            re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", out)]


def pdf_text(path: Path) -> str:
    """The text of a PDF (pdftotext), spaces normalised."""
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext absent : apt-get install poppler-utils")
    out = subprocess.run([pdftotext, "-layout", str(path), "-"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return re.sub(r"\s+", " ", out.replace("\u00a0", " ").replace("\u202f", " "))


def plain(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u202f", " "))


class Cards(HTMLParser):
    """The key figures of a sheet: ``data-champ`` → (``data-valeur``, value shown)."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, tuple[str, str]] = {}
        self._field: str | None = None
        self._raw = ""
        self._in_value = False
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        a = dict(attrs)
        if tag == "div" and a.get("class") == "carte":
            self._field, self._raw = a["data-champ"], a["data-valeur"]
        elif tag == "div" and a.get("class") == "valeur":
            self._in_value = True
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "div":
            self._in_value = False
        if tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._in_value and self._field:
            self.cards[self._field] = (self._raw, data.strip())
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Cards:
    parser = Cards()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def sample_atlas(tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas")
    layers, territory, reports = sample_layers(out)
    staged = stage_atlas(layers, reports, territory, communes=COMMUNES)
    files = {p.name: p for p in (s.publish() for s in staged)}
    return files, layers, out


def test_one_html_and_pdf_sheet_per_zone_and_a_cover(sample_atlas):
    files, layers, out = sample_atlas
    zones = sorted(layers["zae"]["zae_id"])
    assert zones == [ZONE]  # the PLU's UY zone
    assert sorted(files) == sorted([f"{COVER}.html", f"{COVER}.pdf", f"{ZONE}.html",
                                    f"{ZONE}.pdf"])
    assert all(p.parent == out / "atlas" for p in files.values())
    assert not [p for p in (out / "atlas").iterdir() if p.name.startswith(".")]
    for name in (f"{COVER}.pdf", f"{ZONE}.pdf"):
        pages = pdf_pages(files[name])
        assert pages and all(w == pytest.approx(A4[0], abs=0.5) and
                             h == pytest.approx(A4[1], abs=0.5) for w, h in pages)


def test_figures_on_the_sheet_are_the_zae_layer_values(sample_atlas):
    files, layers, _ = sample_atlas
    zone = layers["zae"].set_index("zae_id").loc[ZONE]
    units = layers["zae_unites"][layers["zae_unites"]["zae_id"] == ZONE]
    cards = parse(files[f"{ZONE}.html"]).cards
    for field in ("nb_unites", "nb_unites_vacantes"):
        assert int(cards[field][0]) == int(zone[field])
        assert cards[field][1] == number(zone[field])
    for field in ("taux_vacance", "taux_vacance_surface"):
        assert float(cards[field][0]) == pytest.approx(float(zone[field]), rel=1e-12)
        assert cards[field][1] == percent(zone[field])
    for field in ("surface_disponible_m2", "plus_grande_surface_dispo_m2"):
        assert float(cards[field][0]) == pytest.approx(float(zone[field]), rel=1e-12)
        assert cards[field][1] == hectares(zone[field])
    area = layers["zae"].set_index("zae_id").geometry.loc[ZONE].area
    assert float(cards["surface_zone_m2"][0]) == pytest.approx(area)
    # The sample has no establishments layer: no count, said as such.
    assert cards["nb_etablissements"] == ("", "—")
    # Candidate sites of the zone: those whose zae_id is the zone's.
    sites = layers["gisements"][layers["gisements"]["zae_id"] == ZONE]
    assert int(cards["nb_gisements"][0]) == len(sites) > 0
    # The same figures are printed in the PDF.
    text = pdf_text(files[f"{ZONE}.pdf"])
    for field in ("nb_unites", "taux_vacance", "taux_vacance_surface", "surface_disponible_m2",
                  "plus_grande_surface_dispo_m2"):
        assert plain(cards[field][1]) in text, field
    # One table row per land unit, each named with its parcels.
    html = files[f"{ZONE}.html"].read_text(encoding="utf-8")
    assert len(units) == int(zone["nb_unites"]) == 10
    for uf, idus in zip(units["uf_id"], units["idus"], strict=True):
        assert f"{uf} — {idus.replace('|', ', ')}" in html
        assert uf in text
    assert "Zone d'activité du PLU (UY)" in text and "Gennes (25267)" in text


def test_cover_lists_every_zone_with_its_figures(sample_atlas):
    files, layers, _ = sample_atlas
    zone = layers["zae"].set_index("zae_id").loc[ZONE]
    html = files[f"{COVER}.html"].read_text(encoding="utf-8")
    assert f'href="{ZONE}.html"' in html
    cells = parse(files[f"{COVER}.html"]).cells
    row = cells[:10]
    assert row[1] == "Zone d'activité du PLU (UY)" and row[2] == "Gennes"
    assert row[4:8] == [number(zone["nb_unites"]), number(zone["nb_unites_vacantes"]),
                        percent(zone["taux_vacance"]), percent(zone["taux_vacance_surface"])]
    text = pdf_text(files[f"{COVER}.pdf"])
    assert "Atlas des zones d'activité économique — Gennes" in text
    assert plain(percent(zone["taux_vacance"])) in text


def test_sources_are_listed_with_their_dates(sample_atlas):
    files, _, _ = sample_atlas
    html = files[f"{ZONE}.html"].read_text(encoding="utf-8")
    assert "cartofriches_subset_gennes_25267_5km.geojson" in html
    today = dt.date.today()
    assert f"{today.year}" in html and "Lu le" in html and "Fichier daté du" in html


def test_map_shows_the_units_coloured_by_status():
    crs = "EPSG:2154"
    zone = shapely.box(930_000, 6_680_000, 930_200, 6_680_100)
    units = gpd.GeoDataFrame({
        "zae_id": "Z", "uf_id": ["U1", "U2"], "statut_vacance": ["vacante", "non vacante"]},
        geometry=[shapely.box(930_000, 6_680_000, 930_100, 6_680_100),
                  shapely.box(930_100, 6_680_000, 930_200, 6_680_100)], crs=crs)
    zae = gpd.GeoDataFrame({"zae_id": ["Z"]}, geometry=[zone], crs=crs)
    drawer = MapDrawer({"zae": zae, "zae_unites": units}, crs=crs)
    png = drawer.zone_map(zone, "Z", labels={"U1": "1", "U2": "2"})
    image = (matplotlib.image.imread(io.BytesIO(png))[..., :3] * 255).round().astype(int)
    assert image.shape[:2] == (679, 1092)  # 185 × 115 mm at 150 dpi

    def share(hex_colour: str) -> float:
        rgb = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
        return float((np.abs(image - rgb).sum(axis=2) <= 6).mean())

    # Each unit covers about a quarter of the map (zone and margins fit its aspect ratio).
    assert share(STATUTS["vacante"][0]) > 0.15
    assert share(STATUTS["non vacante"][0]) > 0.15
    assert share(STATUTS["présumée vacante"][0]) == 0


def test_zone_image_pixels_are_the_png_and_the_pdf_map(tmp_path):
    """The PDF draws the map's pixels: those the PNG holds, written as from the PNG."""
    from PIL import Image as PILImage

    from observatoire.publish import atlas_pdf

    crs = "EPSG:2154"
    zone = shapely.box(930_000, 6_680_000, 930_200, 6_680_100)
    units = gpd.GeoDataFrame({"zae_id": "Z", "uf_id": ["U1"], "statut_vacance": ["vacante"]},
                             geometry=[zone], crs=crs)
    zae = gpd.GeoDataFrame({"zae_id": ["Z"]}, geometry=[zone], crs=crs)
    image = MapDrawer({"zae": zae, "zae_unites": units}, crs=crs).zone_image(
        zone, "Z", labels={"U1": "1"})
    decoded = np.asarray(PILImage.open(io.BytesIO(image.png)).convert("RGBA"))
    assert image.pixels.shape == (679, 1092, 4) and np.array_equal(image.pixels, decoded)
    pdfs = []
    for pixels in (None, image.pixels):
        doc = tmp_path / f"carte-{len(pdfs)}.pdf"
        atlas_pdf._document(doc, "carte", [atlas_pdf._map(image.png, 115, pixels)], "pied")
        pdfs.append(doc.read_bytes())
    assert pdfs[0] == pdfs[1]


def test_scale_bar_and_north_arrow():
    assert nice_length(1_000) == 200
    assert nice_length(7_300) == 1_000
    assert nice_length(90) == 20
    assert (length_label(200), length_label(2_000), length_label(1_500)) == (
        "200 m", "2 km", "1,5 km")
    # Meridian convergence of Lambert-93: n × (λ − 3°), n = 0.7256077650; east of the
    # central meridian the meridians lean west going north (towards the cone's apex), so
    # true north is that many degrees anticlockwise of grid north.
    to_l93 = Transformer.from_crs(4326, 2154, always_xy=True)
    points = shapely.points([to_l93.transform(3.0, 46.5), to_l93.transform(6.15, 47.25),
                             to_l93.transform(-1.5, 47.2)])
    angles = north_angles(points, "EPSG:2154")
    assert angles == pytest.approx([0.0, -0.7256077650 * 3.15, 0.7256077650 * 4.5], abs=0.01)


def test_polygon_paths_keep_holes_and_parts():
    square = shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2), (1, 2)]])
    multi = shapely.MultiPolygon([shapely.box(10, 10, 11, 11), shapely.box(12, 12, 13, 13)])
    paths = polygon_paths(np.array([square, multi], dtype=object))
    assert len(paths) == 2
    assert [len(p.vertices) for p in paths] == [10, 10]
    assert [int((p.codes == 1).sum()) for p in paths] == [2, 2]  # MOVETO: one per ring
    assert [int((p.codes == 79).sum()) for p in paths] == [2, 2]  # CLOSEPOLY
    # Drawn, the hole is left empty (rings oriented for matplotlib's non-zero rule).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4), dpi=10)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 4)
    ax.set_ylim(0, 4)
    ax.axis("off")
    ax.add_collection(PathCollection(paths[:1], facecolors="black", edgecolors="none"))
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., 0]  # 40 × 40, y downwards
    assert pixels[5, 30] == 0  # (3, 3.5): filled
    assert pixels[25, 15] == 255  # (1.5, 1.5): the hole


# --- natural persons ----------------------------------------------------------------------

X0, Y0 = 930_000.0, 6_680_000.0
PERSON = "DUPONT"


def box(x1, y1, x2, y2):
    return shapely.MultiPolygon([shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)])


def persons_case() -> dict[str, gpd.GeoDataFrame]:
    """A zone of three units: a legal entity owner with a hostile name, a natural person
    owner, and an entrepreneur individuel active beside a company."""
    crs = "EPSG:2154"
    zae = gpd.GeoDataFrame({
        "zae_id": [ZONE], "zae_nom": ["ZA des Essarts"], "comm_insee": ["25267"],
        "zae_origine": ["couche"]}, geometry=[box(0, 0, 150, 50)], crs=crs)
    unites = gpd.GeoDataFrame({
        "uf_id": ["U1", "U2", "U3"],
        "idus": ["25267000AB0001", "25267000AB0002", "25267000AB0003"], "nb_parcelles": 1,
        "surface_m2": 2500.0,
        "proprietaire_type": ["personne morale", "personne physique", "personne morale"],
        "proprietaire_nom": [HOSTILE[0], f"{PERSON} JEAN", "SARL ALPHA"],
        "proprietaire_siren": ["123456789", None, "987654321"],
    }, geometry=[box(0, 0, 50, 50), box(50, 0, 100, 50), box(100, 0, 150, 50)], crs=crs)
    etabs = gpd.GeoDataFrame({
        "siret": ["12345678900012", "66666666600016"],
        "nom": ["GARAGE ALPHA", f"{PERSON} PLOMBERIE"], "raison_sociale": ["ALPHA SARL", None],
        "categorie_juridique": ["5499", "1000"],
        "type_personne": ["personne morale", "personne physique"], "diffusible": True,
        "etat": "A", "date_creation": "2010-01-01", "date_fermeture": None,
    }, geometry=[shapely.Point(X0 + 110, Y0 + 10), shapely.Point(X0 + 60, Y0 + 10)], crs=crs)
    zae_out, zu = inventory(zae, unites, None, etabs, date_observation="2025-03-01")
    return {"zae": zae_out, "zae_unites": zu}


def test_no_natural_person_is_named(tmp_path, sample_config):
    layers = persons_case()
    territory = load_territory(sample_config, output_dir=tmp_path)
    files = {p.name: p for p in (s.publish() for s in
                                 stage_atlas(layers, [], territory, communes=COMMUNES))}
    assert set(files) == {f"{COVER}.html", f"{COVER}.pdf", f"{ZONE}.html", f"{ZONE}.pdf"}
    html = files[f"{ZONE}.html"].read_text(encoding="utf-8")
    text = pdf_text(files[f"{ZONE}.pdf"])
    for page in (html, text, files[f"{COVER}.html"].read_text(encoding="utf-8"),
                 pdf_text(files[f"{COVER}.pdf"])):
        assert PERSON not in page and "66666666600016" not in page
    # Legal entities are named, with their SIREN; the sole proprietor is counted, unnamed.
    assert "SARL ALPHA (SIREN 987654321)" in html
    words = set(text.split())  # a cell of the PDF wraps its lines
    assert {"SARL", "ALPHA", "(SIREN", "987654321)"} <= words
    assert "12345678900012 – GARAGE ALPHA" in html
    assert "entrepreneur individuel (non nommé)" in html
    cards = parse(files[f"{ZONE}.html"]).cards
    assert cards["nb_etablissements"] == ("2", "2")
    assert cards["nb_unites_vacantes"][0] == "1"  # U1: no establishment ever
    # A hostile legal name is text: escaped in the page, printed as written in the PDF.
    assert HOSTILE[0] not in html and "&lt;img src=x onerror=" in html
    assert {"<img", "src=x"} <= words


def test_units_table_names_legal_entities_only():
    units = pd.DataFrame({
        "uf_id": ["U1", "U2", "U3"], "idus": ["A", "B", "C"], "surface_m2": 1.0,
        "part_dans_zae": 1.0,
        # An input that names a natural person: the category decides, not the name.
        "proprietaire_type": ["personne physique", "inconnu", "personne morale"],
        "proprietaire_nom": [f"{PERSON} JEAN", f"{PERSON} MARIE", "SCI DU PARC"],
        "proprietaire_siren": [None, "111111111", "222222222"],
        "occupants": None, "statut_vacance": ["vacante", "inconnue", "autre chose"],
        "raison_vacance": "…"})
    table = units_table(units)
    text = " ".join(" ".join(r) for r in table.rows)
    assert PERSON not in text and "111111111" not in text
    assert [r[3] for r in table.rows] == ["personne physique", "inconnu",
                                          "personne morale : SCI DU PARC (SIREN 222222222)"]
    assert [r[5] for r in table.rows] == ["Vacante", "Statut inconnu", "autre chose"]
    assert table.swatches == [STATUTS["vacante"][0], STATUTS["inconnue"][0],
                              STATUTS["inconnue"][0]]


def test_parallel_atlas_is_the_serial_one(tmp_path, sample_config):
    layers = persons_case()
    out = {}
    for workers in (1, 2):
        territory = load_territory(sample_config, output_dir=tmp_path / str(workers))
        out[workers] = {p.name: p.read_bytes() for p in
                        (s.publish() for s in stage_atlas(layers, [], territory,
                                                          communes=COMMUNES,
                                                          workers=workers))}
    assert sorted(out[1]) == sorted(out[2])
    for name in out[1]:
        if name.endswith(".html"):
            assert out[1][name] == out[2][name], name


@pytest.mark.slow
def test_atlas_option(tmp_path, sample_config):
    text = sample_config.read_text(encoding="utf-8").replace(
        "[sorties]", "[options]\natlas = false\ncarte = false\nrapport = false\n\n[sorties]")
    config = tmp_path / "territoire.toml"
    config.write_text(text.replace('chemin = "', f'chemin = "{sample_config.parent}/'),
                      encoding="utf-8")
    territory = load_territory(config, output_dir=tmp_path / "out")
    assert territory.options.atlas is False
    from observatoire.pipeline import build

    result = build(territory)
    assert not (tmp_path / "out" / "atlas").exists()
    assert (tmp_path / "out" / "consultation").exists()
    assert not [p for p in result.outputs if "atlas" in p.parts]
    config.write_text(text.replace("atlas = false", "atlas = 1"), encoding="utf-8")
    with pytest.raises(ConfigError, match="options.atlas"):
        load_territory(config)


# --- printed by Chromium ------------------------------------------------------------------

@pytest.mark.slow
def test_chromium_prints_every_sheet_on_a4(sample_atlas, tmp_path):
    from test_rapport_impression import print_pdf, tools

    chromium, _ = tools()
    files, layers, _ = sample_atlas
    zone = layers["zae"].set_index("zae_id").loc[ZONE]
    for name in (f"{ZONE}.html", f"{COVER}.html"):
        pdf = tmp_path / name.replace(".html", ".pdf")
        print_pdf(files[name], pdf, chromium)
        pages = pdf_pages(pdf)
        assert pages, name
        for w, h in pages:
            assert (w, h) == (pytest.approx(A4[0], abs=1), pytest.approx(A4[1], abs=1)), name
        text = pdf_text(pdf)
        assert "Zone d'activité du PLU (UY)" in text
        assert plain(percent(zone["taux_vacance"])) in text


def test_zone_without_units_and_with_a_hostile_name(tmp_path, sample_config):
    crs = "EPSG:2154"
    zae = gpd.GeoDataFrame({
        "zae_id": ["A", "B"], "zae_nom": [HOSTILE[1], "ZA vide"], "comm_insee": "25267",
        "zae_origine": "couche"}, geometry=[box(0, 0, 100, 100), box(300, 0, 400, 100)],
        crs=crs)
    unites = gpd.GeoDataFrame({
        "uf_id": ["U1"], "idus": ["25267000AB0001"], "nb_parcelles": 1, "surface_m2": 10_000.0,
        "proprietaire_type": "inconnu", "proprietaire_nom": None, "proprietaire_siren": None,
    }, geometry=[box(0, 0, 100, 100)], crs=crs)
    zae_out, zu = inventory(zae, unites, None, None, date_observation="2025-03-01")
    territory = load_territory(sample_config, output_dir=tmp_path)
    files = {p.name: p for p in (s.publish() for s in stage_atlas(
        {"zae": zae_out, "zae_unites": zu}, [], territory, communes=COMMUNES))}
    assert sorted(files) == sorted(["A.html", "A.pdf", "B.html", "B.pdf", f"{COVER}.html",
                                    f"{COVER}.pdf"])
    empty = files["B.html"].read_text(encoding="utf-8")
    assert "Aucune unité foncière n'est rattachée à cette zone." in empty
    assert parse(files["B.html"]).cards["nb_unites"] == ("0", "0")
    assert "Aucune unité foncière" in pdf_text(files["B.pdf"])
    hostile = files["A.html"].read_text(encoding="utf-8")
    assert HOSTILE[1] not in hostile and "&lt;/script&gt;&lt;script&gt;" in hostile
    assert "</script><script>window.__pwned=2</script>" in pdf_text(files["A.pdf"])
    # Unknown occupancy (neither establishments nor buildings): said, not guessed.
    assert parse(files["A.html"]).cards["taux_vacance"] == ("", "—")


def test_sources_of_many_files_are_counted(tmp_path):
    """A source of a file per commune names five of them and counts the others."""
    from observatoire.publish.atlas import sources_table
    from observatoire.readers.lineage import SourceReport

    paths = [tmp_path / f"cadastre-25{i:03d}-parcelles.json.gz" for i in range(1, 290)]
    table = sources_table([SourceReport(kind="parcelles", paths=paths, format="etalab"),
                           SourceReport(kind="zae", paths=paths[:2], format="cnig")], tmp_path)
    assert table.rows[0][1] == ("cadastre-25001-parcelles.json.gz ; "
                                "cadastre-25002-parcelles.json.gz ; "
                                "cadastre-25003-parcelles.json.gz ; "
                                "cadastre-25004-parcelles.json.gz ; "
                                "cadastre-25005-parcelles.json.gz ; … (289 fichiers)")
    assert table.rows[1][1] == ("cadastre-25001-parcelles.json.gz ; "
                                "cadastre-25002-parcelles.json.gz")


def test_polygon_paths_are_the_paths_matplotlib_makes():
    """Each geometry's path: its rings, holes clockwise, as ``MplPath(vertices, codes)`` is."""
    from matplotlib.path import Path as MplPath

    square = shapely.box(0, 0, 10, 10)
    holed = shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (1, 2), (2, 2), (2, 1)]])
    two = shapely.MultiPolygon([shapely.box(20, 0, 21, 1), shapely.box(30, 0, 31, 1)])
    paths = polygon_paths(np.array([square, holed, two, shapely.Polygon()], dtype=object))
    assert [len(p.vertices) for p in paths] == [5, 10, 10, 0]
    move, line, close = MplPath.MOVETO, MplPath.LINETO, MplPath.CLOSEPOLY
    assert paths[1].codes.tolist() == [move, line, line, line, close] * 2
    # The hole turns clockwise (negative area): filled by the non-zero rule, it stays empty.
    x, y = paths[1].vertices[5:, 0], paths[1].vertices[5:, 1]
    assert 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) == -1.0
    for path in paths:
        made = MplPath(path.vertices, path.codes)
        assert vars(made).keys() == vars(path).keys()
        for key, value in vars(made).items():
            assert np.array_equal(value, vars(path)[key]), key
    assert paths[2].contains_point((30.5, 0.5)) and not paths[2].contains_point((25, 0.5))
