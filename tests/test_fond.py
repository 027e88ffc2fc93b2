"""The map's background (communes, roads, buildings), its popups' links and labels, its size."""

from __future__ import annotations

import importlib.util
import json
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import ROOT, shared_file
from publication_fixtures import analysed, sample_layers
from shapely.geometry import LineString, MultiLineString, box

from observatoire.analysis.limites import commune_outlines
from observatoire.config import Source, load_territory
from observatoire.pipeline import build
from observatoire.publish.carte import (
    CARTOFRICHES_URL,
    map_data,
    page_data,
    render_map,
)
from observatoire.publish.fond import (
    CELL_DEG,
    MAX_FEATURES,
    background_data,
    encode_lines,
    select_background,
)
from observatoire.readers.friches import read_friches

CRS = "EPSG:2154"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict[str, gpd.GeoDataFrame]:
    return sample_layers(tmp_path_factory.mktemp("fond"))[0]


def _parcels(boxes: list[tuple[str, str, tuple[float, float, float, float]]]
             ) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"idu": [b[0] for b in boxes], "code_insee": [b[1] for b in boxes]},
                            geometry=[box(*b[2]) for b in boxes], crs=CRS)


# --------------------------------------------------------------------------- outlines


def test_outline_closes_the_streets_and_fills_the_holes():
    x, y = 900_000.0, 6_700_000.0
    parcels = _parcels([
        # Commune A: two blocks of 100 m × 100 m either side of a street 10 m wide,
        # around a square of 20 m (a hole of the public domain).
        ("25001000A0001", "25001", (x, y, x + 100, y + 100)),
        ("25001000A0002", "25001", (x + 110, y, x + 210, y + 40)),
        ("25001000A0003", "25001", (x + 110, y + 60, x + 210, y + 100)),
        ("25001000A0004", "25001", (x + 110, y + 40, x + 140, y + 60)),
        ("25001000A0005", "25001", (x + 160, y + 40, x + 210, y + 60)),
        # Commune B, 200 m to the east: apart, whatever the closing.
        ("25002000A0001", "25002", (x + 410, y, x + 510, y + 100)),
    ])
    out = commune_outlines(parcels)
    assert list(out["code_insee"]) == ["25001", "25002"]
    a, b = out.geometry
    # The street (10 m × 100 m) and the square (20 m × 20 m) are inside: 210 m × 100 m.
    assert a.area == pytest.approx(210 * 100, rel=1e-9)
    assert shapely.get_num_interior_rings(shapely.get_parts(a)).tolist() == [0]
    assert b.area == pytest.approx(100 * 100, rel=1e-9)
    assert out.crs == parcels.crs
    # The rows' order does not matter (a build by partition gives its parcels in its order).
    again = commune_outlines(parcels.iloc[::-1])
    assert all(shapely.equals_exact(u, v) for u, v in zip(out.geometry, again.geometry,
                                                          strict=True))


def test_outline_keeps_a_wide_river_open():
    x, y = 900_000.0, 6_700_000.0
    parcels = _parcels([("25001000A0001", "25001", (x, y, x + 100, y + 100)),
                        ("25001000A0002", "25001", (x + 140, y, x + 240, y + 100))])
    outline = commune_outlines(parcels).geometry.iloc[0]
    # 40 m of river: more than twice the closing distance (15 m), two parts.
    assert len(shapely.get_parts(outline)) == 2
    assert outline.area == pytest.approx(2 * 100 * 100, rel=1e-9)


def test_background_does_not_depend_on_the_order_of_the_communes():
    x, y = 925_000.0, 6_690_000.0
    parcels = _parcels([("25001000A0001", "25001", (x, y, x + 900, y + 600)),
                        ("25002000A0001", "25002", (x + 900, y, x + 1500, y + 600))])
    outlines = commune_outlines(parcels)
    names = {"25001": "Amont", "25002": "Aval"}
    data = background_data({"limites_communes": outlines}, crs=CRS, names=names)
    # A build by partition gives the communes in the order of its groups.
    assert data == background_data({"limites_communes": outlines.iloc[::-1]}, crs=CRS,
                                   names=names)
    (amont, aval) = data["etiquettes"]
    assert amont[0] == "Amont" and aval[0] == "Aval"
    # A point inside each commune, and its width in degrees of longitude (900 m, 600 m;
    # Lambert-93 is a little turned from the meridians).
    assert amont[1] < aval[1]
    assert 1.4 < amont[3] / aval[3] < 1.6
    assert [level["id"] for level in data["niveaux"]] == ["communes_loin", "communes"]


def test_outline_of_the_real_sample_is_one_commune(sample):
    parcels = sample["parcelles"]
    out = commune_outlines(parcels)
    assert list(out["code_insee"]) == ["25267"]
    outline = out.geometry.iloc[0]
    # It holds the parcels (but slivers of a few m² at their sharpest corners, that the
    # mitred closing cuts), and no more than the parcels and the ways between them.
    assert parcels.union_all().difference(outline).area < 1e-5 * parcels.area.sum()
    assert parcels.area.sum() < outline.area < 1.1 * parcels.area.sum()
    assert shapely.get_num_interior_rings(shapely.get_parts(outline)).max() == 0


# --------------------------------------------------------------------------- encoding


def test_encode_lines_by_hand():
    geoms = gpd.GeoSeries([LineString([(1.0, 2.0), (1.00002, 2.0), (1.000021, 2.0)]),
                           None,
                           MultiLineString([[(1.0, 2.0), (1.0, 2.00005)],
                                            [(1.0, 2.0), (1.000001, 2.0)]])])
    out = encode_lines(geoms, scale=100_000)
    # 1e-5 degree: the third vertex rounds onto the second (dropped), and the last line
    # collapses to one vertex (dropped).
    assert out == {"type": "line", "s": 100_000, "f": [1, 0, 1], "r": [2, 2],
                   "c": [100_000, 200_000, 2, 0, -2, 0, 0, 5]}


def test_levels_simplify_to_what_each_zoom_shows():
    x, y = 925_000.0, 6_690_000.0
    # A winding main road: a vertex every metre, wiggling by 30 cm.
    xs = np.arange(0.0, 2000.0, 1.0)
    road = LineString(np.c_[x + xs, y + 0.3 * np.sin(xs)])
    routes = gpd.GeoDataFrame({"classe": ["principale", "locale"]},
                              geometry=[road, LineString([(x, y + 50), (x + 100, y + 50)])],
                              crs=CRS)
    data = background_data({"routes": routes}, crs=CRS)
    levels = {level["id"]: level for level in data["niveaux"]}
    assert list(levels) == ["routes_locales", "routes_principales_loin", "routes_principales"]
    far, near = levels["routes_principales_loin"], levels["routes_principales"]
    assert (far["zmin"], far["zmax"], near["zmin"], near["zmax"]) == (0, 12, 13, 19)
    assert far["geom"]["s"] == 10_000 and near["geom"]["s"] == 100_000
    # The wiggles are below what either zoom shows: a straight line, two vertices.
    assert far["geom"]["r"] == near["geom"]["r"] == [2]
    assert levels["routes_locales"]["cellules"]["taille"] == CELL_DEG
    assert data["styles"]["principale"]["libelle"] == "Route principale"


def test_tiled_levels_list_their_cells(sample):
    layers = sample
    data = background_data({"batiments": layers["batiments"]}, crs=CRS)
    (level,) = data["niveaux"]
    assert level["id"] == "batiments" and level["zmin"] == 16
    cells = np.asarray(level["cellules"]["c"]).reshape(-1, 3)
    assert cells[:, 2].sum() == level["n"] == len(layers["batiments"]) == 325
    # Each cell once, and each building filed in the cell of its south-west corner.
    assert len({(a, b) for a, b, _ in cells}) == len(cells)
    corners = layers["batiments"].to_crs(4326).bounds
    expected = pd.DataFrame({"ix": np.floor(corners["minx"] / CELL_DEG).astype(int),
                             "iy": np.floor(corners["miny"] / CELL_DEG).astype(int)})
    assert sorted(map(tuple, cells[:, :2])) == sorted(
        expected.value_counts().index.to_list())
    assert {tuple(r[:2]): r[2] for r in cells} == {
        k: v for k, v in expected.value_counts().items()}


def test_caps_keep_the_largest_buildings_whatever_the_order():
    x, y = 925_000.0, 6_690_000.0
    sides = np.array([5.0, 30.0, 12.0, 30.0, 8.0, 50.0])
    frame = gpd.GeoDataFrame({"i": np.arange(6)}, crs=CRS, geometry=[
        box(x + 100 * i, y, x + 100 * i + s, y + s) for i, s in enumerate(sides)])
    kept = select_background({"batiments": frame}, limits={"batiments": 3})["batiments"]
    # 50 m, then the two of 30 m (the western one first among equals).
    assert kept["i"].tolist() == [1, 3, 5]
    shuffled = select_background({"batiments": frame.iloc[[4, 3, 0, 5, 1, 2]]},
                                 limits={"batiments": 3})["batiments"]
    assert sorted(shuffled["i"]) == [1, 3, 5]
    assert MAX_FEATURES["batiments"] >= 100_000


def test_read_back_in_batches_keeps_what_the_one_pass_keeps(sample, tmp_path, monkeypatch):
    """A build by partition reads roads and buildings back by batches: the same features."""
    import pyogrio

    from observatoire.publish import fond

    gpkg = tmp_path / "observatoire.gpkg"
    # Written in another order than the one-pass build holds them.
    pyogrio.write_dataframe(sample["batiments"].iloc[::-1], gpkg, layer="batiments")
    pyogrio.write_dataframe(sample["routes"], gpkg, layer="routes")
    limits = {"batiments": 40, "routes": 25}
    monkeypatch.setattr(fond, "MAX_FEATURES", limits)
    monkeypatch.setattr(fond, "BATCH_ROWS", 30)  # 11 batches of buildings, 7 of roads
    outlines = commune_outlines(sample["parcelles"])
    read = fond.read_background(gpkg, limites=outlines)
    assert read["limites_communes"] is outlines
    whole = select_background({"batiments": sample["batiments"], "routes": sample["routes"]})
    for name, limit in limits.items():
        assert len(read[name]) == len(whole[name]) == limit
        a = sorted(shapely.to_wkb(read[name].geometry.values))
        b = sorted(shapely.to_wkb(whole[name].geometry.values))
        assert a == b, name
    assert set(read["routes"]["classe"]) <= {"autoroute", "principale", "secondaire", "locale"}
    # The roads kept are the most important: no local road while a main one is left out.
    ranks = {c: i for i, c in enumerate(fond.ROAD_ORDER)}
    kept = read["routes"]["classe"].map(ranks)
    left = sample["routes"]["classe"].map(ranks).sort_values().iloc[limits["routes"]:]
    assert kept.max() <= left.min()
    # The same background on the page, whichever way the layers came.
    assert background_data(read, crs=CRS) == background_data({**whole, "limites_communes":
                                                               outlines}, crs=CRS)


# --------------------------------------------------------------------------- popups


def test_popups_name_coded_values_and_link_cartofriches_sites(sample):
    layers = sample
    national = shared_file("cartofriches/cartofriches_fxy_2024-03.gpkg")
    # Genlis (21): a site of the national table with its address.
    genlis = shapely.Point(5.21939, 47.24258)
    centre = gpd.GeoSeries([genlis], crs=4326).to_crs(CRS).iloc[0]
    read = read_friches(Source(kind="friches", paths=(national,)), crs=CRS,
                        bbox=tuple(centre.buffer(2000).bounds))
    friches = read.frame
    local = friches.iloc[:1].assign(site_id="21292_22-12.0017")  # a local inventory's id
    data = map_data({**analysed(layers), "friches": pd.concat([friches, local])},
                    title="t", crs=CRS)
    entry = next(layer for layer in data["layers"] if layer["id"] == "friches")
    ids = decoded(entry, "site_id")
    links = decoded(entry, "lien_cartofriches")
    row = ids.index("21292_23082")
    assert links[row] == CARTOFRICHES_URL.format("21292_23082") == (
        "https://cartofriches.cerema.fr/cartofriches/?site=21292_23082")
    assert decoded(entry, "site_adresse")[row] == (
        "15 Cours Martyrs de la Resistance 21110 Genlis")
    assert links[ids.index("21292_22-12.0017")] is None
    assert ["site_adresse", "Adresse", "text"] in entry["champs"]
    assert entry["valeurs"]["site_statut"]["friche sans projet"] == "Friche sans projet"
    zae = next(layer for layer in data["layers"] if layer["id"] == "zae")
    assert zae["valeurs"]["zae_origine"]["derivee_plu"] == "Dérivée des zones d'activités du PLU"
    units = next(layer for layer in data["layers"] if layer["id"] == "zae_unites")
    assert units["valeurs"]["statut_vacance"]["présumée vacante"] == "Présumée vacante"


def decoded(entry: dict, column: str) -> list:
    col = entry["props"][column]
    if col["t"] == "l":
        return col["v"]
    return [None if i < 0 else col["d"][i] for i in col["i"]]


# --------------------------------------------------------------------------- size


def test_compressed_page_holds_the_same_data(sample):
    layers = sample
    plain = render_map(analysed(layers), title="Gennes", crs=CRS, compress=False)
    packed = render_map(analysed(layers), title="Gennes", crs=CRS, compress=True)
    assert page_data(plain) == page_data(packed)
    assert 'data-encodage="deflate-base64"' in packed and "observatoire-donnees" in packed
    text = json.dumps(page_data(plain), ensure_ascii=False, separators=(",", ":"))
    assert len(plain) - len(packed) > len(text) / 2  # the data shrink by more than half


def _generator():
    spec = importlib.util.spec_from_file_location(
        "generate_territory", ROOT / "scripts" / "generate_territory.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated territory of 20,000 parcels, one commune per partition: its map."""
    folder = tmp_path_factory.mktemp("fond20k")
    toml = _generator().generate(20_000, seed=3, out=folder / "territoire")
    # One commune per partition (as on a big territory).
    toml.write_text(toml.read_text(encoding="utf-8")
                    + '\n[options]\nparcelles_par_partition = 1\n', encoding="utf-8")
    build(load_territory(toml, output_dir=folder / "out"))
    html = (folder / "out" / "carte.html").read_text(encoding="utf-8")
    gpkg = folder / "out" / "observatoire.gpkg"
    return html, gpkg


@pytest.mark.slow
def test_generated_map_background_is_simplified(generated):
    import pyogrio

    html, gpkg = generated
    data = page_data(html)
    levels = {level["id"]: level for level in data["fond"]["niveaux"]}
    counts = {name: int(pyogrio.read_info(gpkg, layer=name)["features"])
              for name in ("batiments", "routes")}
    communes = len(data["meta"]["communes"])
    assert len(data["fond"]["etiquettes"]) == communes > 1
    # Every building and road of the GeoPackage is drawn (fewer than the caps).
    assert levels["batiments"]["n"] == counts["batiments"] > 1000
    assert sum(level["n"] for name, level in levels.items()
               if name.startswith(("routes", "autoroutes")) and not name.endswith("_loin")
               ) == counts["routes"]

    def size(level: dict) -> int:
        return len(json.dumps(level["geom"], separators=(",", ":")))

    # A building is a few vertices rounded to 1e-5 degree: at most 40 bytes.
    assert size(levels["batiments"]) / levels["batiments"]["n"] < 40
    # The far outline of a commune (zoom ≤ 12) is coarse: at most 2 kB; the near one
    # (2 m) holds more vertices, still under 10 kB.
    assert size(levels["communes_loin"]) / communes < 2_000
    assert size(levels["communes_loin"]) < size(levels["communes"]) < 10_000 * communes
    # Main roads far away: rounded to 1e-4 degree, shorter numbers than close up (1e-5).
    far, near = levels["routes_principales_loin"], levels["routes_principales"]
    assert (far["geom"]["s"], near["geom"]["s"]) == (10_000, 100_000)
    assert size(far) < size(near)
    # The GeoPackage keeps every building; the page is compressed beyond 2 MB of data.
    total = len(json.dumps(data, separators=(",", ":")).encode())
    assert len(html.encode()) < (total if total > 2_000_000 else 1.1 * total + 500_000)

