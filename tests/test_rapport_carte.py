"""The report opens with a map of the territory on the map's background, and the atlas cover.

Issue « atlas » item 5: the same background as ``carte.html`` (commune outlines,
roads by class, in the same colours), the zones coloured by vacancy, candidate
sites and the territory's friches; then the atlas cover (map and table of zones,
each zone linked to its sheet). Pictures are checked by their pixels: a colour
that must be drawn covers part of the image, one that must not is absent.
"""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import matplotlib.image
import numpy as np
import pytest
import shapely
from markupsafe import escape
from publication_fixtures import sample_layers

from observatoire.analysis.limites import commune_outlines
from observatoire.publish.assets import VACANCY_CLASSES, hectares, percent
from observatoire.publish.atlas import (
    BACKGROUND_ROAD_COLOURS,
    COMMUNE_COLOUR,
    MAX_LOCAL_ROADS,
    MapDrawer,
    sheet_names,
)
from observatoire.publish.fond import STYLES
from observatoire.publish.rapport import render_report, split_friches

CRS = "EPSG:2154"
COMMUNES = {"25267": "Gennes"}


class Overview(HTMLParser):
    """Sections of the report by title (in order), images and links of each section."""

    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []
        self.images: dict[str, list[dict]] = {}
        self.links: dict[str, list[str]] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._h2 = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        a = dict(attrs)
        section = self.titles[-1] if self.titles else ""
        if tag == "h2":
            self._h2 = True
        elif tag == "img":
            self.images.setdefault(section, []).append(a)
        elif tag == "a":
            self.links.setdefault(section, []).append(a["href"])
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "h2":
            self._h2 = False
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row:
            self.rows.setdefault(self.titles[-1], []).append(self._row)
            self._row = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._h2:
            self.titles.append(data.strip())
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Overview:
    parser = Overview()
    parser.feed(html)
    return parser


def pixels(png: bytes) -> np.ndarray:
    return (matplotlib.image.imread(io.BytesIO(png))[..., :3] * 255).round().astype(int)


def share(image: np.ndarray, hex_colour: str, tolerance: int = 6) -> float:
    """Share of the image's pixels of ``hex_colour``."""
    rgb = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    return float((np.abs(image - rgb).sum(axis=2) <= tolerance).mean())


def data_png(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    layers, territory, reports = sample_layers(tmp_path_factory.mktemp("rapport_carte"))
    background = {"limites_communes": commune_outlines(layers["parcelles"]),
                  "routes": layers["routes"]}
    return layers, territory, reports, background


@pytest.fixture(scope="module")
def report(sample):
    layers, territory, reports, background = sample
    return render_report(layers, reports, territory_name="Gennes", communes=["25267"],
                         date="1er janvier 2026", base=territory.path.parent, names=COMMUNES,
                         background=background, crs=CRS, atlas="atlas/")


def test_the_report_opens_with_the_territory_then_the_atlas_cover(sample, report):
    layers, _, _, background = sample
    page = parse(report)
    assert page.titles[:3] == ["Le territoire", "Atlas des zones d'activités économiques",
                               "Chiffres clés"]
    for title in page.titles[:2]:
        (image,) = page.images[title]
        assert image["alt"]
        assert len(data_png(image["src"])) > 10_000
    # The legend lists the symbols drawn, in the map's colours.
    ours, nearby = split_friches(layers["friches"])
    drawer = MapDrawer({**background, "zae": layers["zae"], "gisements": layers["gisements"],
                        "friches": ours}, crs=CRS)
    legend = drawer.territory_legend()
    for kind, colour, label in legend:
        assert f'class="symbole {kind}" style="--couleur: {colour}"></span>{escape(label)}' in \
            re.sub(r"\s*\n\s*", "", report)
    labels = [label for _, _, label in legend]
    assert "Limite de commune" in labels and "Gisement foncier (site candidat)" in labels
    assert "Autoroute" not in labels  # none in Gennes: not drawn, not in the legend
    # Gennes' friches all lie near it, outside: listed in the report, not mapped.
    assert len(ours) == 0 and len(nearby) and "Friche" not in labels


def test_the_legend_lists_only_what_is_drawn():
    outline = gpd.GeoDataFrame({"code_insee": ["91216"]},
                               geometry=[shapely.box(0, 0, 1_000, 1_000)], crs=CRS)
    drawer = MapDrawer({"limites_communes": outline}, crs=CRS)
    assert drawer.territory_legend() == [("tirets", COMMUNE_COLOUR, "Limite de commune")]
    roads = road_network(MAX_LOCAL_ROADS + 1)
    labels = [label for _, _, label in MapDrawer({"routes": roads}, crs=CRS).territory_legend()]
    assert labels == ["Route principale"]  # too many local roads: not drawn


def test_the_atlas_cover_links_each_zone_to_its_sheet(sample, report):
    layers, *_ = sample
    zae = layers["zae"].sort_values("zae_id")
    page = parse(report)
    title = "Atlas des zones d'activités économiques"
    assert page.links[title] == [f"atlas/{name}.html" for name in sheet_names(zae["zae_id"])]
    (row,) = page.rows[title]
    z = zae.iloc[0]
    assert row[:4] == ["1", z["zae_nom"], "Gennes", hectares(z.geometry.area)]
    assert percent(z["taux_vacance"]) in row
    # The vacancy section keeps what the cover does not show, not the same figures twice.
    vacancy = page.rows["Vacance des zones d'activités économiques"][0]
    assert percent(z["taux_vacance"]) not in vacancy


def test_without_atlas_the_cover_says_how_to_produce_it(sample):
    layers, territory, reports, background = sample
    html = render_report(layers, reports, territory_name="Gennes", communes=["25267"],
                         date="1er janvier 2026", names=COMMUNES, background=background,
                         crs=CRS, atlas=None)
    page = parse(html)
    assert "Atlas des zones d'activités économiques" in page.titles
    assert not page.links.get("Atlas des zones d'activités économiques")
    assert "option <code>atlas</code>" in html
    # The cover's table still gives the zones' figures, once.
    assert html.count("Plus grand lot") == 1


def test_territory_map_draws_the_background_zones_and_sites_in_their_colours(sample):
    layers, _, _, background = sample
    drawer = MapDrawer({**background, "zae": layers["zae"], "gisements": layers["gisements"]},
                       crs=CRS)
    image = pixels(drawer.territory_map(names=COMMUNES))
    assert image.shape[:2] == (930, 1092)  # 185 × 157 mm at 150 dpi
    rate = float(layers["zae"]["taux_vacance"].iloc[0])
    zone_colour = next(c for upper, c, _ in VACANCY_CLASSES if rate < upper)
    assert share(image, zone_colour) > 0.01
    assert share(image, COMMUNE_COLOUR, tolerance=30) > 0.0005
    classes = set(layers["routes"]["classe"])
    for road_class in classes & set(BACKGROUND_ROAD_COLOURS):
        assert share(image, BACKGROUND_ROAD_COLOURS[road_class], tolerance=12) > 0, road_class
    # The colours are those of the interactive map's background.
    assert BACKGROUND_ROAD_COLOURS["principale"] == STYLES["principale"]["color"]


def road_network(n: int) -> gpd.GeoDataFrame:
    """``n`` short local roads and one main road across them."""
    x = 930_000 + (np.arange(n) % 200) * 10.0
    y = 6_680_000 + (np.arange(n) // 200) * 10.0
    local = shapely.linestrings(np.stack([np.stack([x, y], 1), np.stack([x + 8, y], 1)], 1))
    main = shapely.linestrings([[930_000, 6_679_990], [932_000, 6_679_990]])
    return gpd.GeoDataFrame({"classe": ["locale"] * n + ["principale"]},
                            geometry=[*local, main], crs=CRS)


@pytest.mark.parametrize("n, local_drawn", [(2_000, True), (MAX_LOCAL_ROADS + 1, False)])
def test_local_roads_only_while_few(n, local_drawn):
    outline = gpd.GeoDataFrame({"code_insee": ["25267"]},
                               geometry=[shapely.box(929_900, 6_679_900, 932_100, 6_681_600)],
                               crs=CRS)
    drawer = MapDrawer({"routes": road_network(n), "limites_communes": outline}, crs=CRS)
    image = pixels(drawer.territory_map())
    assert (share(image, BACKGROUND_ROAD_COLOURS["locale"], tolerance=12) > 0.001) is local_drawn
    assert share(image, BACKGROUND_ROAD_COLOURS["principale"], tolerance=12) > 0


def test_nothing_to_draw_is_an_error_not_a_blank_map():
    with pytest.raises(ValueError, match="rien à dessiner"):
        MapDrawer({}, crs=CRS).territory_map()


@pytest.mark.slow
def test_the_built_report_links_to_the_sheets_written(tmp_path, sample_config):
    from observatoire.config import load_territory
    from observatoire.pipeline import build

    territory = load_territory(sample_config, output_dir=tmp_path / "out")
    build(territory)
    html = (tmp_path / "out" / "rapport.html").read_text(encoding="utf-8")
    links = parse(html).links["Atlas des zones d'activités économiques"]
    assert links
    for link in links:
        assert (tmp_path / "out" / Path(link)).is_file(), link
