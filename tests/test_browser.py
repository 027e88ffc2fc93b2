"""The map in a real headless Chromium, without network: drawn, clickable, hostile values inert.

Uses Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``), installed by ``.ci/run``; skipped when absent.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from publication_fixtures import HOSTILE, PERSON, analysed, sample_layers, sample_profiles

from observatoire.publish.assets import profile_texts
from observatoire.publish.carte import render_map
from observatoire.readers.provenance import credits

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TILES = "tile.openstreetmap.org"


def chromium_paths() -> tuple[Path, Path]:
    chromium = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    driver = (CHROMEDRIVER if CHROMEDRIVER.exists()
              else Path(shutil.which("chromedriver") or CHROMEDRIVER))
    if not chromium.exists() or not driver.exists():
        pytest.skip("Chromium absent : apt-get install chromium chromium-driver "
                    "(installés par .ci/run)")
    return chromium, driver


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    layers, territory, reports = sample_layers(tmp_path_factory.mktemp("navigateur"))
    layers = analysed(layers)
    page = render_map(layers, title="Observatoire — Gennes", subtitle="1 commune",
                      crs="EPSG:2154", profiles=profile_texts(territory),
                      credits=[*credits(reports), (HOSTILE[0], "2024-01-01", "contraintes")])
    path = tmp_path_factory.mktemp("page") / "carte.html"
    path.write_text(page, encoding="utf-8")
    return path, layers


@pytest.fixture(scope="module")
def map_file(sample) -> Path:
    return sample[0]


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1280,900",
                 # No network: every request fails at once.
                 "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def opened(browser, map_file):
    browser.get(map_file.as_uri())
    deadline = time.monotonic() + 30
    while not browser.execute_script("return !!(window.observatoire && window.observatoire.ready)"):
        if time.monotonic() > deadline:
            pytest.fail(f"la carte n'a pas démarré ; console : {browser.get_log('browser')}")
        time.sleep(0.05)
    return browser


def severe_errors(driver) -> list[str]:
    """Console errors, except the basemap tiles that cannot load without network."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and TILES not in e["message"]]


_FEATURE = """
    const o = window.observatoire, id = arguments[0], i = arguments[1];
    let item = null;
    o.groups[id].eachLayer(l => { if (l.obsIndex === i) item = l; });
    const ll = item.getLatLng ? item.getLatLng() : item.getBounds().getCenter();
"""


def click_feature(driver, layer: str, index: int) -> str:
    """Click the feature on screen like a user; return the popup's text."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.execute_script(_FEATURE + """
        o.map.closePopup();
        if (!o.map.getBounds().pad(-0.1).contains(ll)) {
            o.map.setView(ll, o.map.getZoom(), {animate: false});
        }""", layer, index)
    time.sleep(0.3)  # let Leaflet redraw the canvas after a move
    x, y = driver.execute_script(_FEATURE + """
        const p = o.map.latLngToContainerPoint(ll);
        return [p.x, p.y];""", layer, index)
    container = driver.find_element(By.CSS_SELECTOR, ".folium-map")
    rect = container.rect
    ActionChains(driver).move_to_element_with_offset(
        container, int(x - rect["width"] / 2), int(y - rect["height"] / 2)).click().perform()
    return popup_text(driver, f"pas de fenêtre après un clic sur {layer}[{index}]")


def popup_text(driver, failure: str) -> str:
    """Wait for the open popup; return its text (exact characters, NBSP as spaces)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = driver.execute_script(
            "const p = document.querySelector('.leaflet-popup-content');"
            "return p ? [...p.querySelectorAll('h3, h4, th, td, p, div')]"
            ".filter(e => e.children.length === 0).map(e => e.textContent).join('\\n') : null")
        if text is not None:
            return text.replace("\u00a0", " ").replace("\u202f", " ")
        time.sleep(0.05)
    pytest.fail(failure)


def assert_inert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    assert driver.execute_script("return window.__pwned") is None
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    injected = driver.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content img, "
                                    ".leaflet-popup-content svg, .leaflet-popup-content script, "
                                    ".leaflet-tooltip img, .leaflet-tooltip svg")
    assert injected == []


def test_features_drawn_without_network(opened):
    stats = opened.execute_script("return window.observatoire.stats")
    assert stats == {"zonage": 25, "parcelles": 828, "zae_unites": 4, "zae": 1, "gisements": 3,
                     "friches": 8}
    # Canvas renderer: the parcels' colours are painted on a canvas.
    painted = opened.execute_script("""
        const c = document.querySelector('.leaflet-overlay-pane canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;""")
    assert painted > 10_000
    visible = opened.execute_script(
        "const o = window.observatoire; return Object.keys(o.groups).filter("
        "k => o.map.hasLayer(o.groups[k])).sort()")
    assert visible == ["friches", "gisements", "parcelles", "zae"]
    assert severe_errors(opened) == []
    legend = opened.find_element("css selector", ".obs-legende").text
    assert "A — très favorable" in legend and "Exclue" in legend and "Friche sans projet" in legend


def test_popups_show_hostile_values_as_text(opened):
    opened.execute_script(
        "const o = window.observatoire;"
        "o.map.fitBounds(o.groups.friches.getBounds(), {animate: false});")
    for i, value in enumerate(HOSTILE[:3]):
        text = click_feature(opened, "friches", i)
        assert f"Friche {value}" in text.split("\n")
        assert_inert(opened)
    # The fourth friche holds the fourth value in its type.
    assert HOSTILE[3] in click_feature(opened, "friches", 3).split("\n")
    assert_inert(opened)
    assert f"Friche {HOSTILE[4]}" in click_feature(opened, "friches", 4).split("\n")
    assert severe_errors(opened) == []


def test_parcel_search_and_score_breakdown(opened, sample):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    idu = sample[1]["parcelles"]["idu"].iloc[3]
    box = opened.find_element(By.CSS_SELECTOR, ".obs-recherche input")
    box.send_keys(f"{idu[8:10]} {int(idu[10:])}", Keys.ENTER)  # "0A 4": section and number
    lines = popup_text(opened, "la recherche n'a pas ouvert la parcelle").split("\n")
    # Parcel 3 of the fixture: score (3 * 37) % 100 = 11, class E, reliability
    # 0.5 + 3 / 10 = 80 %, each criterion its share of the profile's weights; hostile reasons.
    assert lines[0] == f"Parcelle {idu}"
    industrie, logistique = sample_profiles()["industrie"], sample_profiles()["logistique"]
    profile = lines[lines.index(f"Profil « {industrie.label} »"):]
    assert profile[1:7] == ["Score", "11 / 100", "Classe", "E", "Fiabilité", "80 %"]
    assert profile[7] == "Détail du score par critère"
    rows = profile[8:8 + 2 * len(industrie.criteria)]
    assert rows[::2] == [c.label[:1].upper() + c.label[1:] for c in industrie.criteria]
    points = [float(v.removesuffix(" pts").replace(",", ".")) for v in rows[1::2]]
    expected = [11 * c.weight / industrie.total_weight for c in industrie.criteria]
    assert points == pytest.approx(expected, abs=0.06)
    assert sum(points) == pytest.approx(11, abs=0.06 * len(points))
    assert HOSTILE[1] in profile
    assert f"Profil « {logistique.label} »" in lines
    assert_inert(opened)
    result = opened.find_element(By.CSS_SELECTOR, ".obs-resultat").text
    assert result == "Parcelle trouvée."
    box.clear()
    box.send_keys("zz-introuvable", Keys.ENTER)
    assert "Aucun résultat" in opened.find_element(By.CSS_SELECTOR, ".obs-resultat").text


_POPUP_BOX = """
    const content = document.querySelector('.leaflet-popup-content');
    const body = content.querySelector('.obs-popup');
    const popup = document.querySelector('.leaflet-popup').getBoundingClientRect();
    const map = document.querySelector('.folium-map').getBoundingClientRect();
    return {sideways: [content.scrollWidth - content.clientWidth,
                       body.scrollWidth - body.clientWidth],
            // Width taken by a scrollbar from the box whose width Leaflet measured.
            lost: content.offsetWidth - content.clientWidth,
            scrolls: body.scrollHeight > body.clientHeight,
            inside: popup.top >= map.top && popup.bottom <= map.bottom
                    && popup.left >= map.left && popup.right <= map.right};"""


def test_popups_fit_in_view_without_sideways_scroll(opened):
    """A tall popup scrolls down only, and opens wholly in view after a jump to it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    box = opened.find_element(By.CSS_SELECTOR, ".obs-recherche input")
    box.send_keys("0A 4", Keys.ENTER)  # parcel 3: both profiles, every criterion
    popup_text(opened, "la recherche n'a pas ouvert la parcelle")
    time.sleep(0.5)  # automatic pan of the popup
    assert opened.execute_script(_POPUP_BOX) == {"sideways": [0, 0], "lost": 0,
                                                 "scrolls": True, "inside": True}
    Select(opened.find_element("css selector", "select.obs-vue")).select_by_index(1)
    popup_text(opened, "pas de fenêtre pour la ZAE")
    time.sleep(0.5)
    found = opened.execute_script(_POPUP_BOX)
    assert (found["sideways"], found["lost"], found["inside"]) == ([0, 0], 0, True), found


def test_zae_view_and_privacy(opened):
    from selenium.webdriver.support.ui import Select

    select = Select(opened.find_element("css selector", "select.obs-vue"))
    assert [o.text for o in select.options] == ["Vue d'ensemble du territoire",
                                                f"ZAE {HOSTILE[2]}"]
    select.select_by_index(1)
    assert opened.execute_script(
        "const o = window.observatoire; return o.map.hasLayer(o.groups.zae_unites)")
    text = opened.find_element("css selector", ".leaflet-popup-content").text
    assert HOSTILE[2] in text and "50 %" in text.replace("\u00a0", " ")
    assert "#zae=" in opened.current_url
    # Land units: the natural person who owns one is never shown.
    for i in range(4):
        unit = click_feature(opened, "zae_unites", i)
        assert PERSON not in unit
    assert PERSON not in opened.execute_script("return document.body.innerText")
    assert_inert(opened)
    assert severe_errors(opened) == []


def test_print_view_hides_tools_and_keeps_legend(opened, tmp_path):
    opened.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        shown = opened.execute_script("""return ['.obs-recherche', '.obs-outils',
            '.leaflet-control-layers', '.obs-legende', '.obs-entete'].map(
            s => getComputedStyle(document.querySelector(s)).display !== 'none')""")
        assert shown == [False, False, False, True, True]
    finally:
        opened.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    opened.save_screenshot(str(tmp_path / "carte.png"))


def test_commune_search(opened):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    opened.execute_script("window.observatoire.map.setView([47.0, 5.0], 8, {animate: false})")
    box = opened.find_element(By.CSS_SELECTOR, ".obs-recherche input")
    box.send_keys("25267", Keys.ENTER)
    assert opened.find_element(By.CSS_SELECTOR, ".obs-resultat").text == "Commune Gennes"
    centre = opened.execute_script("const c = window.observatoire.map.getCenter();"
                                   "return [c.lat, c.lng]")
    assert 47.2 < centre[0] < 47.3 and 6.0 < centre[1] < 6.2  # Gennes
    # By its name too (from the table of communes), accents and case ignored.
    box.clear()
    box.send_keys("gennes", Keys.ENTER)
    assert opened.find_element(By.CSS_SELECTOR, ".obs-resultat").text == "Commune Gennes"


def test_link_to_a_zae_view_and_broken_links(browser, map_file, sample):
    zae_id = sample[1]["zae"]["zae_id"].iloc[0]
    for fragment, expected in ((f"#zae={zae_id}", True), ("#zae=%E0%A4%A", False)):
        browser.get("about:blank")  # a new fragment alone would not reload the page
        browser.get(map_file.as_uri() + fragment)
        deadline = time.monotonic() + 30
        while not browser.execute_script(
                "return !!(window.observatoire && window.observatoire.ready)"):
            assert time.monotonic() < deadline, browser.get_log("browser")
            time.sleep(0.05)
        shown = browser.execute_script(
            "const o = window.observatoire; return o.map.hasLayer(o.groups.zae_unites)")
        assert shown is expected
        assert severe_errors(browser) == []


def test_attribution_credits_producers_and_dates(opened):
    """Licence Ouverte 2.0: each producer and the date of its data, on the map itself."""
    from selenium.webdriver.common.by import By

    box = opened.find_element(By.CSS_SELECTOR, ".leaflet-control-attribution")
    assert box.is_displayed()
    # One line over the map (whole on hover and in its title): the text, clipped or not.
    text = opened.execute_script("return arguments[0].textContent", box)
    title = box.get_attribute("title")
    assert title.startswith("Sources : ") and title in text
    assert "Sources : IGN, DGFiP (BD PARCELLAIRE), données du 23/11/2021" in text
    assert "Cerema (Cartofriches), données du 10/10/2022" in text
    assert "IGN (BD TOPO), données du 02/09/2021" in text
    assert "Géoportail de l'Urbanisme, données du 25/03/2022" in text
    # A producer named in a territory file is text, never markup.
    assert HOSTILE[0] in text
    assert not box.find_elements(By.CSS_SELECTOR, "img")
    assert opened.execute_script("return window.__pwned") is None


def test_friches_nearby_drawn_apart(browser, tmp_path):
    """The sample's own build: its 8 friches are all within 5 km, none in Gennes."""
    layers, territory, _ = sample_layers(tmp_path)
    assert not layers["friches"]["dans_territoire"].any()
    path = tmp_path / "carte.html"
    path.write_text(render_map(layers, title="Gennes", crs="EPSG:2154",
                               profiles=profile_texts(territory)), encoding="utf-8")
    browser.get(path.as_uri())
    deadline = time.monotonic() + 30
    while not browser.execute_script("return !!(window.observatoire && window.observatoire.ready)"):
        assert time.monotonic() < deadline, browser.get_log("browser")
        time.sleep(0.05)
    stats = browser.execute_script("return window.observatoire.stats")
    assert stats["friches_proximite"] == 8 and "friches" not in stats
    control = browser.find_element("css selector", ".leaflet-control-layers").get_attribute(
        "textContent")
    assert "Friches à proximité, hors territoire (5 km) (8)" in control
    assert "Friches du territoire" not in control
    legend = browser.find_element("css selector", ".obs-legende").text
    assert "Friches à proximité, hors territoire (5 km)" in legend
    assert "Friche sans projet" in legend
    name = layers["friches"]["site_nom"].iloc[0]
    browser.execute_script(
        "const o = window.observatoire;"
        "o.map.fitBounds(o.groups.friches_proximite.getBounds(), {animate: false});")
    lines = click_feature(browser, "friches_proximite", 0).split("\n")
    assert f"Friche hors territoire {name}" in lines
    assert severe_errors(browser) == []


# --------------------------------------------------------------------------- background


@pytest.fixture(scope="module")
def background_map(tmp_path_factory) -> tuple[Path, dict]:
    """The sample with its commune's outline, roads and buildings, and real Cartofriches
    sites around Genlis (21) as friches; the page's data compressed."""
    from conftest import shared_file

    from observatoire.analysis.limites import commune_outlines
    from observatoire.config import Source
    from observatoire.readers.friches import read_friches

    layers, territory, reports = sample_layers(tmp_path_factory.mktemp("fond"))
    layers = analysed(layers)
    national = shared_file("cartofriches/cartofriches_fxy_2024-03.gpkg")
    genlis = gpd.GeoSeries([shapely.Point(5.21939, 47.24258)], crs=4326).to_crs(2154)
    friches = read_friches(Source(kind="friches", paths=(national,)), crs="EPSG:2154",
                           bbox=tuple(genlis.buffer(2000).total_bounds)).frame
    layers["friches"] = friches
    page = render_map(layers, title="Observatoire — Gennes", crs="EPSG:2154",
                      profiles=profile_texts(territory), credits=credits(reports),
                      background={"limites_communes": commune_outlines(layers["parcelles"])},
                      compress=True)
    assert 'data-encodage="deflate-base64"' in page
    path = tmp_path_factory.mktemp("page_fond") / "carte.html"
    path.write_text(page, encoding="utf-8")
    return path, layers


@pytest.fixture
def background_opened(browser, background_map):
    browser.get(background_map[0].as_uri())
    deadline = time.monotonic() + 30
    while not browser.execute_script("return !!(window.observatoire && window.observatoire.ready)"):
        if time.monotonic() > deadline:
            pytest.fail(f"la carte n'a pas démarré ; console : {browser.get_log('browser')}")
        time.sleep(0.05)
    return browser


_PAINTED = """
    const c = document.querySelector('.leaflet-' + arguments[0] + '-pane canvas');
    if (!c) return 0;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;"""

_DRAWN = """
    const o = window.observatoire, out = {};
    o.fondNiveaux.forEach(e => {
        let n = 0;
        Object.values(e.groups).forEach(g => {
            if (o.fond.hasLayer(g)) n += g.getLayers().length;
        });
        out[e.level.id] = n;
    });
    return out;"""


def test_background_drawn_offline(background_opened, tmp_path):
    """Without network, the commune's outline, its roads and (close up) buildings are drawn."""
    page = background_opened
    assert page.execute_script("const o = window.observatoire; return o.map.hasLayer(o.fond)")
    assert page.execute_script("return window.observatoire.map.getZoom()") == 14
    drawn = page.execute_script(_DRAWN)
    # Zoom 14: the near outline (one commune), main and local roads; no buildings yet.
    assert drawn["communes"] == 1 and drawn["communes_loin"] == 0
    assert drawn["routes_principales"] > 0 and drawn["routes_locales"] > 0
    assert drawn["batiments"] == 0
    assert page.execute_script(_PAINTED, "obs-fond-communes") > 1000
    assert page.execute_script(_PAINTED, "obs-fond-routes") > 1000
    names = page.execute_script(
        "return [...document.querySelectorAll('.obs-commune-nom')].map(e => e.textContent)")
    assert names == ["Gennes"]
    legend = page.find_element("css selector", ".obs-legende [data-couche='fond']")
    assert legend.get_attribute("textContent").startswith("Fond de carte")
    entries = page.execute_script(
        "return [...arguments[0].querySelectorAll('li')].map(e => e.textContent)", legend)
    assert entries == ["Limite de commune", "Route principale", "Route secondaire",
                       "Route locale", "Bâtiment (à partir du zoom 16)"]
    page.save_screenshot(str(tmp_path / "fond_z14.png"))
    # Close up: the buildings of the cells around the view, and the outline still there.
    page.execute_script("window.observatoire.map.setView([47.2495, 6.128], 17, "
                        "{animate: false})")
    time.sleep(0.3)
    drawn = page.execute_script(_DRAWN)
    assert 0 < drawn["batiments"] <= 325 and drawn["communes"] == 1
    assert page.execute_script(_PAINTED, "obs-fond-batiments") > 1000
    page.save_screenshot(str(tmp_path / "fond_z17.png"))
    # Far: the coarse outline and main roads only.
    page.execute_script("window.observatoire.map.setZoom(11, {animate: false})")
    time.sleep(0.3)
    drawn = page.execute_script(_DRAWN)
    assert drawn["communes_loin"] == 1 and drawn["communes"] == 0
    assert drawn["routes_locales"] == drawn["batiments"] == drawn["routes_secondaires"] == 0
    # Its name hides when the commune is small on screen (about 60 px wide here).
    assert page.execute_script("return document.querySelectorAll('.obs-commune-nom').length") == 0
    # No address was asked for: no basemap tile, no error.
    assert severe_errors(page) == []
    assert not [e for e in page.get_log("browser") if TILES in e["message"]]


_SWATCHES = """
    return [...document.querySelectorAll(
        ".obs-legende [data-couche='" + arguments[0] + "'] li svg > *")].map(s => ({
            color: s.getAttribute('stroke'), weight: Number(s.getAttribute('stroke-width')),
            dashArray: s.getAttribute('stroke-dasharray'), fillColor: s.getAttribute('fill'),
            fillOpacity: Number(s.getAttribute('fill-opacity'))}));"""

_SYMBOLS = """
    const out = [];
    window.observatoire.groups[arguments[0]].eachLayer(l => out.push({
        color: l.options.color, weight: l.options.weight, dashArray: l.options.dashArray || null,
        fillColor: l.options.fillColor || l.options.color, fillOpacity: l.options.fillOpacity}));
    return out;"""


def _styles(items: list[dict]) -> set[tuple]:
    return {tuple(sorted(item.items())) for item in items}


def test_legend_shows_the_symbols_drawn(background_opened):
    """Candidate sites and ZAE: each drawn symbol is one of the legend's, stroke and fill."""
    page = background_opened
    sites = _styles(page.execute_script(_SYMBOLS, "gisements"))
    assert sites == _styles(page.execute_script(_SWATCHES, "gisements"))
    assert sites == {(("color", "#0050b4"), ("dashArray", "6 4"), ("fillColor", "#0050b4"),
                      ("fillOpacity", 0.08), ("weight", 3))}
    zae = _styles(page.execute_script(_SYMBOLS, "zae"))
    legend = page.execute_script(_SWATCHES, "zae")
    assert zae and zae <= _styles(legend)
    # The ZAE of the sample: 50 % vacant, the last class: its outline and veil.
    assert zae == {(("color", "#d7301f"), ("dashArray", None), ("fillColor", "#d7301f"),
                    ("fillOpacity", 0.12), ("weight", 4))}
    assert len(legend) == 5  # four classes and « non calculée »


def test_friche_popup_links_to_cartofriches(background_opened, background_map):
    page = background_opened
    ids = list(background_map[1]["friches"]["site_id"])
    i = ids.index("21292_23082")  # Genlis: the national table gives its address
    assert page.execute_script("return window.observatoire.openFeature('friches', arguments[0])",
                               i)
    lines = popup_text(page, "pas de fenêtre pour la friche").split("\n")
    assert lines[lines.index("Adresse") + 1] == "15 Cours Martyrs de la Resistance 21110 Genlis"
    assert lines[lines.index("Statut") + 1] == "Friche sans projet"
    link = page.find_element("css selector", ".leaflet-popup-content a")
    assert link.get_attribute("href") == (
        "https://cartofriches.cerema.fr/cartofriches/?site=21292_23082")
    assert link.text == "Voir la fiche du site"
    assert link.get_attribute("target") == "_blank"
    assert "noopener" in link.get_attribute("rel")
    assert severe_errors(page) == []


def test_zae_popup_names_its_origin(background_opened):
    page = background_opened
    assert page.execute_script("return window.observatoire.openFeature('zae', 0)")
    lines = popup_text(page, "pas de fenêtre pour la ZAE").split("\n")
    assert lines[lines.index("Origine") + 1] == "Dérivée des zones d'activités du PLU"
    assert "derivee_plu" not in "\n".join(lines)


def test_a_browser_that_cannot_inflate_the_data_says_so(browser, background_map):
    """Without DecompressionStream (Firefox before 113…), a French message, not a blank map."""
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": "delete window.DecompressionStream;"})
    try:
        browser.get(background_map[0].as_uri())
        deadline = time.monotonic() + 10
        while not browser.find_elements("css selector", ".obs-erreur"):
            assert time.monotonic() < deadline, browser.get_log("browser")
            time.sleep(0.05)
        text = browser.find_element("css selector", ".obs-erreur").text
        assert text.startswith("Ce navigateur ne sait pas lire cette carte")
        assert "Firefox 113" in text
        assert browser.execute_script("return window.observatoire") is None
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                {"identifier": added["identifier"]})
