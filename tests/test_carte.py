"""The interactive map: offline assets, safe embedding, compact encoding, layers, privacy."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import gennes_parcels_and_friches
from publication_fixtures import (
    HOSTILE,
    PERSON,
    analysed,
    sample_layers,
    sample_profiles,
    without_analysis,
)
from shapely.geometry import MultiPolygon, Point, Polygon

from observatoire.analysis import analyse
from observatoire.config import load_territory
from observatoire.errors import BuildError
from observatoire.ingest import ingest
from observatoire.publish.assets import (
    ProfileTexts,
    json_for_script,
    leaflet_css,
    leaflet_js,
    profile_texts,
    scoring_profiles,
    script_block,
)
from observatoire.publish.carte import (
    DATA_ELEMENT_ID,
    encode_column,
    encode_points,
    encode_polygons,
    map_data,
    render_map,
    stage_map,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    layers, territory, _ = sample_layers(tmp_path_factory.mktemp("carte"))
    return layers, territory


@pytest.fixture(scope="module")
def page(sample):
    layers, territory = sample
    # Labels of the territory's profiles, as stage_map passes them.
    return render_map(analysed(layers), title="Carte <b>Gennes</b> {{ 6 * 7 }}",
                      subtitle="1 commune", crs="EPSG:2154", profiles=profile_texts(territory))


def embedded_data(html: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>',
                  html, flags=re.S)
    assert m, "données de la carte absentes"
    return json.loads(m.group(1))


def decode_polygons(geom: dict, n: int) -> list[list[list[list[tuple[float, float]]]]]:
    """Python twin of the page's decoder: features → polygons → rings → (lon, lat)."""
    def count(values, i):
        return values if isinstance(values, int) else values[i]

    c, scale = geom["c"], geom["s"]
    x = y = k = ri = pi = 0
    out = []
    for fi in range(n):
        polys = []
        for _ in range(count(geom["f"], fi)):
            rings = []
            for _ in range(count(geom["p"], pi)):
                ring = []
                for _ in range(geom["r"][ri]):
                    x += c[k]
                    y += c[k + 1]
                    k += 2
                    ring.append((x / scale, y / scale))
                rings.append(ring)
                ri += 1
            polys.append(rings)
            pi += 1
        out.append(polys)
    assert k == len(c)
    return out


def decode_column(col: dict, n: int) -> list:
    if col["t"] == "s":
        return [None if i < 0 else col["d"][i] for i in col["i"]]
    if col["t"] == "l":
        return col["v"]
    if col["t"] == "f":
        return [None if row == "" else "".join(col["d"][int(k)] for k in row.split("."))
                for row in col["v"].split(",")][:n]
    if col["t"] == "p":
        tails = col["v"].split(",")
        return [None if i < 0 else col["d"][i] + tails[j] for j, i in enumerate(col["i"])]
    return [None if v == "" else int(v) / 10 ** col["k"] for v in col["v"].split(",")][:n]


# --------------------------------------------------------------------------- safe embedding


@pytest.mark.parametrize("value", [*HOSTILE, "</SCRIPT >", "<!--", "a\u2028b\u2029c"])
def test_json_for_script_cannot_close_the_element(value):
    text = json_for_script({"nom": value})
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == {"nom": value}


def test_json_for_script_refuses_nan():
    with pytest.raises(ValueError):
        json_for_script({"x": float("nan")})


def test_script_block_refuses_a_closing_tag():
    with pytest.raises(BuildError, match="</script"):
        script_block("var a = '</script>';")


def test_leaflet_is_inlined_from_the_installed_package():
    css = leaflet_css()
    assert "url(images/" not in css
    assert css.count("data:image/png;base64,") == 3  # layers, layers-2x, marker icon
    assert '"1.9.3"' in leaflet_js()


# --------------------------------------------------------------------------- encoding


def test_encode_polygons_round_trip_by_hand():
    square_with_hole = Polygon([(0, 0), (0.001, 0), (0.001, 0.001), (0, 0.001)],
                               [[(0.0004, 0.0004), (0.0006, 0.0004), (0.0006, 0.0006)]])
    two_parts = MultiPolygon([Polygon([(1, 1), (1.0001, 1), (1, 1.0001)]),
                              Polygon([(2, 2), (2.0002, 2), (2, 2.0002)])])
    geoms = gpd.GeoSeries([square_with_hole, None, two_parts, Polygon()], crs=4326)
    enc = encode_polygons(geoms)
    # 1 polygon, none, 2 polygons, none (empty); rings: 2 for the first polygon, then 1, 1.
    assert enc["f"] == [1, 0, 2, 0]
    assert enc["p"] == [2, 1, 1]
    assert enc["r"] == [4, 3, 3, 3]  # closing vertices dropped
    decoded = decode_polygons(enc, 4)
    assert decoded[1] == [] and decoded[3] == []
    assert decoded[0][0][0] == [(0, 0), (0.001, 0), (0.001, 0.001), (0, 0.001)]
    assert decoded[0][0][1] == [(0.0004, 0.0004), (0.0006, 0.0004), (0.0006, 0.0006)]
    assert decoded[2][1][0] == [(2, 2), (2.0002, 2), (2, 2.0002)]
    assert all(isinstance(v, int) for v in enc["c"])


def test_encode_polygons_drops_rings_collapsed_by_rounding():
    # A triangle smaller than the 1e-6 degree grid collapses: its polygon goes.
    tiny = Polygon([(5, 5), (5.0000001, 5), (5, 5.0000001)])
    ok = Polygon([(6, 6), (6.001, 6), (6, 6.001)])
    enc = encode_polygons(gpd.GeoSeries([MultiPolygon([tiny, ok])], crs=4326))
    assert enc["f"] == 1 and enc["p"] == 1 and enc["r"] == [3]
    assert decode_polygons(enc, 1)[0][0][0] == [(6, 6), (6.001, 6), (6, 6.001)]


def test_simple_polygons_send_counts_as_one_number():
    geoms = gpd.GeoSeries(shapely.box(np.arange(3.0), 0, np.arange(3.0) + 0.5, 0.5), crs=4326)
    enc = encode_polygons(geoms)
    assert enc["f"] == 1 and enc["p"] == 1 and enc["r"] == [4, 4, 4]


def test_encode_points():
    enc = encode_points(gpd.GeoSeries([Point(6.5, 47.25), None, Point(6.500001, 47.2)],
                                      crs=4326))
    assert enc["f"] == [1, 0, 1]
    assert enc["c"] == [6_500_000, 47_250_000, 1, -50_000]


def test_encode_column_text_numbers_and_identifiers():
    text = encode_column(pd.Series(["UY", None, "UY", "A"]), "text")
    assert text == {"t": "s", "d": ["UY", "A"], "i": [0, -1, 0, 1]}
    distinct = encode_column(pd.Series(["a", "b", None]), "text")
    assert distinct == {"t": "l", "v": ["a", "b", None]}
    numbers = encode_column(pd.Series([12.34, np.nan, 0.0, 100.0]), "score")
    assert numbers == {"t": "n", "k": 1, "v": "123,,0,1000"}
    assert decode_column(numbers, 4) == [12.3, None, 0.0, 100.0]
    flags = encode_column(pd.Series([True, None, False], dtype=object), "bool")
    assert flags["v"] == "1,,0"
    reasons = pd.Series(["Atouts : route à 210 m ; forme compacte. Faiblesses : pente.", None,
                         "Atouts : forme compacte. Faiblesses : pente."], index=[7, 3, 5])
    enc = encode_column(reasons, "phrases")
    assert enc["t"] == "f"
    # Phrases by frequency, ties in order of appearance.
    assert enc["d"] == ["Atouts : ", "forme compacte. ", "Faiblesses : ", "pente.",
                        "route à 210 m ; "]
    assert enc["v"] == "0.4.1.2.3,,0.1.2.3"
    assert decode_column(enc, 3) == [reasons.iloc[0], None, reasons.iloc[2]]
    # Empty text, breaks in a row, a break at the end, and a NUL (split in Python).
    edges = pd.Series(["a; b. c: d", "", "; ; x", ".: z; ", None, "NUL\x00 ici ; fin"])
    enc = encode_column(edges, "phrases")
    assert enc["d"][:2] == ["; ", "a; "] and enc["v"].split(",")[1:5] == ["", "0.0.5", "6.7", ""]
    assert decode_column(enc, 6) == ["a; b. c: d", None, "; ; x", ".: z; ", None,
                                     "NUL\x00 ici ; fin"]
    idus = pd.Series(["252670000A0001", "252670000A0002", None, "250560000B0010"])
    enc = encode_column(idus, "idu")
    assert enc["t"] == "p" and enc["d"] == ["25267000", "25056000"]
    assert decode_column(enc, 4) == [*idus[:2], None, idus[3]]


# --------------------------------------------------------------------------- the page


def without_leaflet(page: str) -> str:
    """The page minus Leaflet's own code and style sheet (inlined verbatim)."""
    assert leaflet_js() in page and leaflet_css() in page
    return page.replace(leaflet_js(), "").replace(leaflet_css(), "")


def test_page_is_self_contained(page):
    # No stylesheet or script is fetched: every asset is inline.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", page)
    ours = without_leaflet(page)
    assert "@import" not in ours and "cdn" not in ours.lower()
    # The basemap template is the only web address the page's code may ask for.
    tiles = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    code = "\n".join(re.findall(r"<script>(.*?)</script>", ours, flags=re.S))
    urls = set(re.findall(r"[\"'](https?://[^\"']+)[\"']", code))
    assert urls <= {tiles, "http://www.w3.org/2000/svg", "https://leafletjs.com"}, urls


def test_page_holds_hostile_values_only_as_escaped_json(page):
    for value in HOSTILE:
        if "<" in value:
            assert value not in page
    assert not re.search(r"<(img|svg|iframe)\b", without_leaflet(page), flags=re.I)
    # Scripts open and close in pairs: no value closed one early.
    assert page.count("<script") == page.count("</script>")
    data = embedded_data(page)
    friches = next(layer for layer in data["layers"] if layer["id"] == "friches")
    names = decode_column(friches["props"]["site_nom"], friches["n"])
    assert names[:3] == list(HOSTILE[:3])
    assert names[4] == HOSTILE[4]  # not run as a Jinja template (no "49")
    assert data["meta"]["titre"] == "Carte <b>Gennes</b> {{ 6 * 7 }}"
    assert "<title>Carte &lt;b&gt;Gennes&lt;/b&gt; {{ 6 * 7 }}</title>" in page


def test_layers_and_popup_columns(page):
    data = embedded_data(page)
    ids = [layer["id"] for layer in data["layers"]]
    # Bottom to top; friches_surfaces is empty in the sample and left out.
    assert ids == ["zonage", "parcelles", "zae_unites", "zae", "gisements", "friches"]
    counts = {layer["id"]: layer["n"] for layer in data["layers"]}
    assert counts == {"zonage": 25, "parcelles": 828, "zae_unites": 4, "zae": 1,
                      "gisements": 3, "friches": 8}
    parcelles = next(layer for layer in data["layers"] if layer["id"] == "parcelles")
    props = parcelles["props"]
    assert "exclu_industrie" not in props  # implied by a NULL score
    scores = decode_column(props["score_industrie"], 828)
    # Rule of the fixture: parcel i excluded when i % 7 == 0, else score (i * 37) % 100.
    assert scores[0] is None and scores[1] == 37.0 and scores[3] == 11.0
    assert decode_column(props["fiabilite_industrie"], 828)[1] == pytest.approx(0.6)
    # Classes by the thresholds of the real profile (shipped: D from 30, B from 60).
    industrie = sample_profiles()["industrie"]
    expected = [next((k for k, t in industrie.classes if s >= t), "E") for s in (37, 74)]
    assert decode_column(props["classe_industrie"], 828)[:3] == [None, *expected]
    # Each criterion gives its share of the weights (the map keeps 0.1 point); they add
    # up to the score.
    points = {c.name: decode_column(props[f"contrib_industrie_{c.name}"], 828)[1]
              for c in industrie.criteria}
    for c in industrie.criteria:
        assert points[c.name] == pytest.approx(37 * c.weight / industrie.total_weight, abs=0.06)
    assert sum(points.values()) == pytest.approx(37, abs=0.06 * len(points))
    assert decode_column(props["contrib_industrie_zonage"], 828)[0] is None  # excluded
    # Profiles and criteria as observatoire/data/profils.toml defines them, in its order.
    profils = data["meta"]["profils"]
    assert [p["nom"] for p in profils] == list(sample_profiles()) == ["industrie", "logistique"]
    for meta, profile in zip(profils, sample_profiles().values(), strict=True):
        assert meta["libelle"] == profile.label
        assert [c["colonne"] for c in meta["criteres"]] == [
            f"contrib_{profile.name}_{c.name}" for c in profile.criteria]
        assert [c["libelle"] for c in meta["criteres"]] == [
            c.label[:1].upper() + c.label[1:] for c in profile.criteria]
        assert set(profile.columns()) - {f"exclu_{profile.name}"} <= set(props)
    assert "Réseau électrique" in [c["libelle"] for c in profils[0]["criteres"]]
    zae = data["meta"]["zae"]
    assert len(zae) == 1 and zae[0]["nom"] == HOSTILE[2] and zae[0]["index"] == 0
    west, south, east, north = zae[0]["bbox"]
    assert 6.0 < west < east < 6.2 and 47.2 < south < north < 47.3
    assert data["meta"]["communes"][0]["code"] == "25267"


def test_natural_persons_are_never_in_the_page(page):
    assert PERSON not in page
    data = embedded_data(page)
    units = next(layer for layer in data["layers"] if layer["id"] == "zae_unites")
    assert "occupants" not in units["props"]
    proprietaires = decode_column(units["props"]["proprietaire_nom"], units["n"])
    kinds = decode_column(units["props"]["proprietaire_type"], units["n"])
    assert proprietaires == [HOSTILE[0], None, None, "SCI DU PARC"]
    assert kinds[1] == "personne physique"


def test_map_without_analysis_columns(sample):
    layers, territory = sample
    data = map_data(without_analysis(layers), title="Gennes", crs="EPSG:2154",
                    profiles=profile_texts(territory))
    assert data["meta"]["profils"] == []
    assert [layer["id"] for layer in data["layers"]] == ["zonage", "parcelles", "zae",
                                                        "friches"]
    parcelles = next(layer for layer in data["layers"] if layer["id"] == "parcelles")
    assert parcelles["n"] == 828
    assert not [c for c in parcelles["props"] if c.startswith(("score_", "classe_", "contrib_"))]
    assert data["meta"]["zae"][0]["nom"] == "Zone d'activité du PLU (UY)"


def test_map_of_the_real_analysis(sample):
    """The sample build's own analysis reaches the page whole: layers, profiles, scores."""
    layers, territory = sample
    data = map_data(layers, title="Gennes", crs="EPSG:2154", profiles=profile_texts(territory))
    counts = {layer["id"]: layer["n"] for layer in data["layers"]}
    assert counts["parcelles"] == 828
    assert counts["gisements"] == len(layers["gisements"]) > 0
    assert counts["zae_unites"] == len(layers["zae_unites"]) > 0
    profils = data["meta"]["profils"]
    assert [p["nom"] for p in profils] == list(sample_profiles())
    for meta, profile in zip(profils, sample_profiles().values(), strict=True):
        assert [c["colonne"] for c in meta["criteres"]] == [
            f"contrib_{profile.name}_{c.name}" for c in profile.criteria]
    props = next(layer for layer in data["layers"] if layer["id"] == "parcelles")["props"]
    shown = decode_column(props["score_industrie"], 828)
    built = layers["parcelles"]["score_industrie"]
    assert [v is None for v in shown] == built.isna().tolist()
    assert built.notna().any() and built.isna().any()  # some scored, some excluded
    assert np.allclose([v for v in shown if v is not None], built.dropna(), atol=0.051)
    classes = layers["parcelles"]["classe_industrie"]
    assert decode_column(props["classe_industrie"], 828) == [
        None if pd.isna(k) else k for k in classes]


def test_map_of_an_empty_territory_keeps_a_view():
    empty = gpd.GeoDataFrame({"idu": []}, geometry=gpd.GeoSeries([], crs=2154))
    data = map_data({"parcelles": empty}, title="Vide")
    assert data["layers"] == [] and len(data["meta"]["emprise"]) == 4


def test_scoring_profiles_follow_the_territory_order():
    cols = ["idu", "score_logistique", "classe_logistique", "score_industrie",
            "contrib_industrie_pente", "score_zz"]
    assert [p.name for p in scoring_profiles(cols)] == ["industrie", "logistique", "zz"]
    texts = ProfileTexts(("zz",), {"zz": "Zone Z", "contrib_industrie_pente": "pente moyenne"})
    profiles = scoring_profiles(cols, texts)
    assert [p.name for p in profiles] == ["zz", "industrie", "logistique"]
    assert profiles[0].label == "Zone Z"
    industrie = profiles[1]
    assert industrie.classe is None and industrie.criteria == (("contrib_industrie_pente",
                                                                "Pente moyenne"),)


def test_profile_texts_of_the_sample(sample):
    _, territory = sample
    texts = profile_texts(territory)
    assert texts.order[:2] == ("industrie", "logistique")
    assert texts.labels["industrie"] == "Industrie"
    assert texts.labels["contrib_industrie_desserte"] == "desserte routière"


def test_map_credits_the_producers_and_dates_of_the_sources(tmp_path):
    layers, territory, reports = sample_layers(tmp_path)
    staged = stage_map(layers, territory, reports=reports)
    try:
        html = staged.tmp.read_text(encoding="utf-8")
    finally:
        staged.discard()
    sources = embedded_data(html)["meta"]["sources"]
    # One entry per producer and date of the sample build's sources.
    assert {"producteur": "IGN, DGFiP (BD PARCELLAIRE)", "date": "2021-11-23",
            "donnees": "parcelles"} in sources
    assert {"producteur": "Cerema (Cartofriches)", "date": "2022-10-10",
            "donnees": "friches"} in sources
    assert [s["producteur"] for s in sources].count("IGN (BD TOPO)") == 2  # two dates
    assert len(sources) == len(reports) == 5
    assert "Sources : " in html  # the page's script writes them in the attribution
    assert embedded_data(render_map(layers, title="t"))["meta"]["sources"] == []


def test_stage_map_writes_a_staged_file(sample):
    layers, territory = sample
    staged = stage_map(analysed(layers), territory)
    try:
        assert staged.tmp.exists() and staged.dest.name == "carte.html"
        html = staged.tmp.read_text(encoding="utf-8")
        assert "Gennes" in embedded_data(html)["meta"]["titre"]
        # The sample map (828 parcels, all layers) stays small.
        assert len(html.encode()) < 1_000_000
    finally:
        staged.discard()


def test_map_of_parcels_scored_on_too_few_criteria(tmp_path):
    """Parcels and friches alone: scored parcels drawn « non déterminée », in the legend."""
    toml = gennes_parcels_and_friches(tmp_path)
    territory = load_territory(toml)
    layers = ingest(territory)
    result = analyse(layers, profiles=territory.profiles)
    data = map_data({**layers.spatial(), **result.layers()}, title="Gennes", crs="EPSG:2154",
                    profiles=profile_texts(territory))
    palette = data["meta"]["palettes"]["classes"]
    assert list(palette) == ["A", "B", "C", "D", "E", "non déterminée"]
    assert palette["non déterminée"] == ["#9ecae1", "Non déterminée — données insuffisantes"]
    props = next(layer for layer in data["layers"] if layer["id"] == "parcelles")["props"]
    shown = decode_column(props["classe_industrie"], len(result.parcelles))
    assert {c for c in shown if c is not None} == {"non déterminée"}
    scores = decode_column(props["score_industrie"], len(result.parcelles))
    assert max(s for s in scores if s is not None) > 75  # the score is still shown
