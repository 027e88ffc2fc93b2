"""Friches of the territory: membership, stale parcel ids, ZAE figures.

By hand on tiny synthetic layers built in code (Lambert-93 squares), then on real
files: the Épinay-sur-Orge Etalab cadastre with the national Cartofriches table
(a commune without any friche: the 5 km ring only), and the sample (Gennes, whose
friches are all in the ring) cut into two communes to compare both build paths.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import SAMPLE, shared_file
from geopandas.testing import assert_geodataframe_equal

from observatoire.analysis.friche_links import friche, friche_links
from observatoire.analysis.friches import (
    FRICHES_COLUMNS,
    attach_friches,
    communes_of,
    friche_counts,
    in_sorted,
    zae_friches,
)
from observatoire.config import load_territory
from observatoire.executor import SerialExecutor
from observatoire.ingest import CONTEXT_MARGIN
from observatoire.pipeline import build
from observatoire.publish.carte import map_data
from observatoire.readers.friches import parse_idu_list
from observatoire.schema import FRICHES, FRICHES_SURFACES, conform, empty_layer

CRS = "EPSG:2154"
X0, Y0 = 900_000.0, 6_700_000.0


# --------------------------------------------------------------------------- synthetic layers


def square(x: float, y: float, side: float) -> shapely.Polygon:
    """A square of ``side`` metres whose lower left corner is (X0 + x, Y0 + y)."""
    return shapely.box(X0 + x, Y0 + y, X0 + x + side, Y0 + y + side)


def point(x: float, y: float) -> shapely.Point:
    return shapely.Point(X0 + x, Y0 + y)


def parcels(rows: dict[str, shapely.Polygon]) -> gpd.GeoDataFrame:
    """Parcels by IDU; ``surface_m2`` is the area of the square."""
    frame = gpd.GeoDataFrame({"idu": list(rows), "code_insee": [i[:5] for i in rows]},
                             geometry=list(rows.values()), crs=CRS)
    frame["surface_m2"] = frame.geometry.area
    return frame


def friches(rows: list[dict], *, surfaces: bool = False) -> gpd.GeoDataFrame:
    """Friches in the canonical schema: ``geometry`` and CNIG fields by row."""
    frame = gpd.GeoDataFrame([{k: v for k, v in r.items() if k != "geometry"} for r in rows],
                             geometry=[r["geometry"] for r in rows], crs=CRS)
    frame["source"] = "test"
    return conform(frame, FRICHES_SURFACES if surfaces else FRICHES)


def zones(rows: dict[str, shapely.Polygon]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"zae_id": list(rows)}, geometry=list(rows.values()), crs=CRS)


def attach(parcelles, points, perimeters=None, zae=None, communes=("25267",)):
    perimeters = empty_layer(FRICHES_SURFACES, CRS) if perimeters is None else perimeters
    links = friche_links(parcelles, points, perimeters)
    return attach_friches(points, perimeters, links=links, idu=np.sort(parcelles["idu"].to_numpy()),
                          communes=communes, zae=zae)


def by_site(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("site_id")


#: Two parcels of commune 25267 and one of 25268, in a zone of 200 m × 200 m.
P_A, P_B, P_C = "25267000AB0001", "25267000AB0002", "25268000ZA0001"
PARCELS = {P_A: square(10, 10, 50),     # 2 500 m²
           P_B: square(100, 100, 40),   # 1 600 m²
           P_C: square(300, 0, 30)}     # 900 m², outside the zone
ZONE = {"Z1": square(0, 0, 200)}


# --------------------------------------------------------------------------- by hand


def test_two_friches_sharing_one_point_in_a_zae():
    # Two sites geocoded to the same point, on parcel A: one with its land unit's area,
    # the other without any surface (attached to the parcel under the point).
    fr = friches([
        {"site_id": "F1", "comm_insee": "25267", "unite_fonciere_surface": 1200.0,
         "geometry": point(35, 35)},
        {"site_id": "F2", "comm_insee": "25267", "geometry": point(35, 35)},
    ])
    out = attach(parcels(PARCELS), fr, zae=zones(ZONE))
    f = by_site(out.friches)
    assert f["zae_id"].tolist() == ["Z1", "Z1"]
    assert f["surface_m2"].tolist() == [1200.0, 2500.0]
    assert f["surface_origine"].tolist() == ["unité foncière", "parcelles"]
    assert f["appariement"].tolist() == ["géométrie", "géométrie"]
    z = zae_friches(zones(ZONE), out)
    assert z["nb_friches"].tolist() == [2]
    assert z["surface_friches_m2"].tolist() == [1200.0 + 2500.0]
    # The parcel indicator keeps one of them (the smallest id), the layer both.
    assert friche(parcels(PARCELS), fr, empty_layer(FRICHES_SURFACES, CRS))[
        "friche_id"].tolist() == ["F1", None, None]


def test_no_land_counted_twice():
    fr = friches([
        # Two sites at one point, no surface: parcel A once.
        {"site_id": "F1", "comm_insee": "25267", "geometry": point(35, 35)},
        {"site_id": "F2", "comm_insee": "25267", "geometry": point(35, 35)},
        # The same land unit (parcel B) listed twice: 700 m² once; the point of F4 is on
        # parcel A but its land is B.
        {"site_id": "F3", "comm_insee": "25267", "unite_fonciere_surface": 700.0,
         "unite_fonciere_refcad": P_B, "geometry": point(120, 120)},
        {"site_id": "F4", "comm_insee": "25267", "unite_fonciere_surface": 700.0,
         "unite_fonciere_refcad": P_B, "geometry": point(36, 36)},
        # Two overlapping perimeters: 30 × 30 and 30 × 30 sharing 10 × 30 → 1 500 m².
        {"site_id": "F5", "comm_insee": "25267", "unite_fonciere_surface": 99999.0,
         "geometry": point(165, 15)},
        {"site_id": "F6", "comm_insee": "25267", "geometry": point(145, 15)},
    ])
    perimeters = friches([
        {"site_id": "F5", "comm_insee": "25267", "geometry": shapely.MultiPolygon(
            [square(150, 0, 30)])},
        {"site_id": "F6", "comm_insee": "25267", "geometry": shapely.MultiPolygon(
            [square(130, 0, 30)])},
    ], surfaces=True)
    out = attach(parcels(PARCELS), fr, perimeters, zae=zones(ZONE))
    f = by_site(out.friches)
    assert f["surface_m2"].round(6).tolist() == [2500.0, 2500.0, 700.0, 700.0, 900.0, 900.0]
    assert f["surface_origine"].tolist() == ["parcelles"] * 2 + ["unité foncière"] * 2 + [
        "périmètre"] * 2
    assert f["appariement"].tolist() == ["géométrie", "géométrie", "identifiant",
                                         "identifiant", None, None]
    z = zae_friches(zones(ZONE), out)
    assert z["nb_friches"].tolist() == [6]
    assert z["surface_friches_m2"].round(6).tolist() == [2500.0 + 700.0 + 1500.0]
    # The same surfaces in the perimeters' layer.
    assert by_site(out.friches_surfaces)["surface_m2"].round(6).tolist() == [900.0, 900.0]


def test_listed_parcel_counted_once_by_its_land_unit():
    # F1 lists parcel A with its land unit's area; F2, on A without any surface, adds no
    # land (A is F1's).
    fr = friches([
        {"site_id": "F1", "comm_insee": "25267", "unite_fonciere_surface": 2400.0,
         "unite_fonciere_refcad": P_A, "geometry": point(20, 20)},
        {"site_id": "F2", "comm_insee": "25267", "geometry": point(35, 35)},
    ])
    out = attach(parcels(PARCELS), fr, zae=zones(ZONE))
    z = zae_friches(zones(ZONE), out)
    assert (z["nb_friches"].tolist(), z["surface_friches_m2"].tolist()) == ([2], [2400.0])


def test_membership_by_commune_else_by_parcel():
    fr = friches([
        {"site_id": "IN", "comm_insee": "25267", "geometry": point(1000, 1000)},  # off parcels
        {"site_id": "OUT", "comm_insee": "25056", "geometry": point(35, 35)},  # on parcel A
        {"site_id": "NOCOMM_ON", "geometry": point(115, 115)},                 # on parcel B
        {"site_id": "NOCOMM_LISTED", "unite_fonciere_refcad": P_C,
         "geometry": point(2000, 2000)},
        {"site_id": "NOCOMM_OFF", "geometry": point(2000, 2000)},
        {"site_id": "ZERO_LOST", "comm_insee": "1053", "geometry": point(35, 35)},
    ])
    out = attach(parcels(PARCELS), fr, communes=("25267", "25268", "01053"))
    assert by_site(out.friches)["dans_territoire"].to_dict() == {
        "IN": True, "OUT": False, "NOCOMM_ON": True, "NOCOMM_LISTED": True,
        "NOCOMM_OFF": False, "ZERO_LOST": True}
    counts = friche_counts(out.friches, out.friches_surfaces)
    assert (counts["dans_territoire"], counts["a_proximite"]) == (4, 2)


def test_absent_parcel_ids():
    stale_a = "25267000AB0999"   # renumbered: its commune is the territory's
    stale_c = "25268000ZA0777"   # a commune of the cadastre (parcel C)
    elsewhere = "25056000BH0468"  # a commune outside the territory and its cadastre
    fr = friches([
        # Partly stale: attached by its other ids; the other commune's id is absent too
        # since the friche is the territory's.
        {"site_id": "F1", "comm_insee": "25267",
         "unite_fonciere_refcad": f"{P_A}|{stale_a}|{elsewhere}", "geometry": point(20, 20)},
        # Only stale ids, point on parcel B: attached by geometry.
        {"site_id": "F2", "comm_insee": "25267", "unite_fonciere_refcad": stale_a,
         "geometry": point(120, 120)},
        # Only stale ids and the point off every parcel: attached to none.
        {"site_id": "F3", "comm_insee": "25267", "unite_fonciere_refcad": stale_c,
         "geometry": point(5000, 5000)},
        # Nearby (another commune): its own commune's ids are not ours to check...
        {"site_id": "F4", "comm_insee": "25056", "unite_fonciere_refcad": elsewhere,
         "geometry": point(4000, 0)},
        # ... but an id of a commune our cadastre holds is.
        {"site_id": "F5", "comm_insee": "25056", "unite_fonciere_refcad": f"{elsewhere}|"
         f"{stale_c}", "geometry": point(4000, 10)},
    ])
    out = attach(parcels(PARCELS), fr, communes=("25267",))
    f = by_site(out.friches)
    assert f["idu_absents"].to_dict() == {"F1": f"{stale_a}|{elsewhere}", "F2": stale_a,
                                          "F3": stale_c, "F4": None, "F5": stale_c}
    assert f["appariement"].to_dict() == {"F1": "identifiant", "F2": "géométrie", "F3": None,
                                          "F4": None, "F5": None}
    assert friche_counts(out.friches, out.friches_surfaces) == {
        "dans_territoire": 3, "a_proximite": 2, "idu_absents": 5, "friches_idu_absents": 4,
        "par_identifiant": 1, "par_geometrie": 1, "sans_parcelle": 2}
    # F2 still claims parcel B through its point.
    assert friche(parcels(PARCELS), fr, empty_layer(FRICHES_SURFACES, CRS))[
        "friche_id"].tolist() == ["F1", "F2", None]


def test_zae_of_a_perimeter_holding_most_of_it():
    fr = friches([
        {"site_id": "HALF_IN", "comm_insee": "25267", "geometry": point(215, 50)},
        {"site_id": "MOSTLY_OUT", "comm_insee": "25267", "geometry": point(215, 150)},
        {"site_id": "POINT_IN", "comm_insee": "25267", "geometry": point(190, 100)},
    ])
    perimeters = friches([
        # 40 × 20 from x = 180: 20 × 20 in the zone, half its area.
        {"site_id": "HALF_IN", "comm_insee": "25267", "geometry": shapely.MultiPolygon(
            [shapely.box(X0 + 180, Y0 + 40, X0 + 220, Y0 + 60)])},
        {"site_id": "MOSTLY_OUT", "comm_insee": "25267", "geometry": shapely.MultiPolygon(
            [shapely.box(X0 + 190, Y0 + 140, X0 + 230, Y0 + 160)])},
        # The point in the zone, the perimeter mostly outside: the point decides.
        {"site_id": "POINT_IN", "comm_insee": "25267", "geometry": shapely.MultiPolygon(
            [shapely.box(X0 + 185, Y0 + 90, X0 + 300, Y0 + 110)])},
    ], surfaces=True)
    out = attach(parcels(PARCELS), fr, perimeters, zae=zones(ZONE))
    assert by_site(out.friches)["zae_id"].to_dict() == {"HALF_IN": "Z1", "MOSTLY_OUT": None,
                                                        "POINT_IN": "Z1"}


def test_friches_nearby_are_not_counted_in_a_zae():
    fr = friches([
        {"site_id": "OURS", "comm_insee": "25267", "unite_fonciere_surface": 100.0,
         "geometry": point(150, 150)},
        {"site_id": "THEIRS", "comm_insee": "25056", "unite_fonciere_surface": 300.0,
         "geometry": point(160, 160)},
    ])
    zae = zones({**ZONE, "Z2": square(1000, 1000, 10)})
    out = attach(parcels(PARCELS), fr, zae=zae)
    assert by_site(out.friches)["zae_id"].tolist() == ["Z1", "Z1"]
    z = zae_friches(zae, out)
    assert z["nb_friches"].tolist() == [1, 0]
    assert z["surface_friches_m2"].tolist() == [100.0, 0.0]
    # Without any friche source, the figures are unknown.
    unknown = zae_friches(zae, None)
    assert unknown["nb_friches"].isna().all() and unknown["surface_friches_m2"].isna().all()


def test_links_of_parts_add_up_to_those_of_all():
    fr = friches([
        {"site_id": "F1", "unite_fonciere_refcad": f"{P_A}|{P_C}", "geometry": point(35, 35)},
        {"site_id": "F2", "geometry": point(310, 10)},
    ])
    perimeters = friches([{"site_id": "F3", "geometry": shapely.MultiPolygon(
        [square(95, 95, 50)])}], surfaces=True)
    p = parcels(PARCELS)
    whole = friche_links(p, fr, perimeters).drop(columns="parcelle")
    parts = pd.concat([friche_links(p.iloc[:2], fr, perimeters),
                       friche_links(p.iloc[2:], fr, perimeters)]).drop(columns="parcelle")

    def rows(frame):
        return sorted(map(tuple, frame[["site_id", "idu", "rang"]].to_numpy().tolist()))

    assert rows(whole) == rows(parts) == [("F1", P_A, 0), ("F1", P_A, 2), ("F1", P_C, 0),
                                          ("F2", P_C, 2), ("F3", P_B, 1)]


@pytest.mark.parametrize("dtype", [object, "S14", "U14"])
def test_parcel_ids_looked_up_in_the_sorted_cadastre(dtype):
    # The build holds the cadastre's IDUs as sorted bytes (S14): never copied.
    cadastre = np.sort(np.array(list(PARCELS), dtype=object)).astype(dtype)
    listed = np.array([P_B, P_B + "7", "25267000AB000", "", "2526700ÉAB0001", P_C],
                      dtype=object)
    assert in_sorted(listed, cadastre).tolist() == [True, False, False, False, False, True]
    assert communes_of(cadastre) == {"25267", "25268"}


def test_columns_without_any_friche():
    empty = empty_layer(FRICHES, CRS)
    out = attach(parcels(PARCELS), empty, zae=zones(ZONE))
    for layer in (out.friches, out.friches_surfaces):
        assert list(layer.columns[-len(FRICHES_COLUMNS) - 1:-1]) == list(FRICHES_COLUMNS)
        assert len(layer) == 0
    assert zae_friches(zones(ZONE), out)["nb_friches"].tolist() == [0]


# --------------------------------------------------------------------------- real files


def _etalab_territory(folder: Path, friches_paths: list[Path]) -> Path:
    cadastre = shared_file("etalab-cadastre/cadastre-91216-parcelles.json")
    chemins = ", ".join(f'"{p}"' for p in friches_paths)
    toml = folder / "territoire.toml"
    toml.write_text(f"""
[territoire]
nom = "Épinay-sur-Orge"
communes = ["91216"]
crs = "EPSG:2154"

[sources.parcelles]
chemin = "{cadastre}"
format = "etalab"

[sources.friches]
chemin = [{chemins}]

[sorties]
dossier = "{folder / 'sortie'}"

[options]
carte = false
export_cnig = false
date_observation = "2026-01-01"
""", encoding="utf-8")
    return toml


def _stale_friches_csv(path: Path, cadastre: gpd.GeoDataFrame) -> pd.DataFrame:
    """Write friches of the CNIG standard on real parcels of Épinay, some ids renumbered.

    Derived data, made here: the sites are fictitious; their points are on real
    parcels and their parcel lists mix real ids with ids that the cadastre does not
    hold (the real numbers + 9000, as a renumbering would leave them).
    """
    ids = sorted(cadastre["id"])
    by_id = cadastre.set_index("id")

    def stale(idu: str) -> str:
        return f"{idu[:10]}{int(idu[10:]) + 9000:04d}"

    def at(idu: str) -> str:
        p = by_id.loc[idu, "geometry"].representative_point()
        return f"POINT ({p.x:.7f} {p.y:.7f})"

    rows = [
        ("EP1", "91216", "|".join([ids[10], ids[11], stale(ids[12])]), at(ids[10])),
        ("EP2", "91216", "|".join([stale(ids[100]), stale(ids[101])]), at(ids[100])),
        ("EP3", "", stale(ids[200]), at(ids[200])),  # no commune: on a parcel of Épinay
        ("EP4", "91216", "", at(ids[300])),
    ]
    text = "site_id;site_nom;site_statut;comm_insee;unite_fonciere_refcad;geompoint\n"
    text += "\n".join(f"{sid};Site {sid};friche sans projet;{c};{r};{g}"
                      for sid, c, r, g in rows)
    path.write_text(text + "\n", encoding="utf-8")
    for idu in (stale(ids[12]), stale(ids[100]), stale(ids[101]), stale(ids[200])):
        assert idu not in by_id.index
    return pd.DataFrame(rows, columns=["site_id", "comm_insee", "l_idpar", "wkt"])


@pytest.fixture(scope="module")
def epinay(tmp_path_factory):
    """The real Épinay cadastre, the national Cartofriches table and friches made on it."""
    folder = tmp_path_factory.mktemp("epinay")
    national = shared_file("cartofriches/cartofriches_fxy_2024-03.gpkg")
    cadastre = gpd.read_file(shared_file("etalab-cadastre/cadastre-91216-parcelles.json"))
    made = _stale_friches_csv(folder / "friches_epinay.csv", cadastre)
    messages: list[str] = []
    result = build(load_territory(_etalab_territory(folder, [national,
                                                            folder / "friches_epinay.csv"])),
                   progress=messages.append)
    return result, messages, cadastre, national, made


def _independent(cadastre: gpd.GeoDataFrame, national: Path, made: pd.DataFrame
                 ) -> tuple[pd.DataFrame, set[str]]:
    """The friches within 5 km and their absent ids, with geopandas and set arithmetic."""
    ids = set(cadastre["id"])
    parcels = cadastre.to_crs(CRS)
    cf = gpd.read_file(national, columns=["site_id", "comm_insee", "l_idpar"]).to_crs(CRS)
    mine = gpd.GeoDataFrame(made[["site_id", "comm_insee", "l_idpar"]],
                            geometry=gpd.GeoSeries.from_wkt(made["wkt"], crs=4326)).to_crs(CRS)
    everything = pd.concat([cf, mine], ignore_index=True)
    ring = everything[everything.distance(shapely.box(*parcels.total_bounds)) <= CONTEXT_MARGIN]
    ring = ring.assign(comm_insee=ring["comm_insee"].replace("", None))
    on_parcels = ring.intersects(parcels.union_all())
    inside = np.where(ring["comm_insee"].notna(), ring["comm_insee"] == "91216", on_parcels)
    ring = ring.assign(dans_territoire=inside)
    absent = set()
    for row in ring.itertuples():
        for idu in (parse_idu_list(row.l_idpar) or "").split("|"):
            if idu and idu not in ids and (idu.startswith("91216") or row.dans_territoire):
                absent.add((row.site_id, idu))
    return ring, absent


@pytest.mark.slow
def test_epinay_friches_of_the_territory_and_of_the_ring(epinay):
    result, messages, cadastre, national, made = epinay
    ring, absent = _independent(cadastre, national, made)
    got = pyogrio.read_dataframe(result.gpkg, layer="friches")
    assert set(got["site_id"]) == set(ring["site_id"])
    cartofriches = ring[~ring["site_id"].str.startswith("EP")]
    # A commune without any friche: the national table has none in Épinay, 36 within 5 km.
    assert len(cartofriches) == 36 and not cartofriches["dans_territoire"].any()
    expected = dict(zip(ring["site_id"], ring["dans_territoire"], strict=True))
    assert dict(zip(got["site_id"], got["dans_territoire"], strict=True)) == expected
    assert sorted(got.loc[got["dans_territoire"], "site_id"]) == ["EP1", "EP2", "EP3", "EP4"]
    listed = {(s, i) for s, ids in zip(got["site_id"], got["idu_absents"], strict=True)
              if isinstance(ids, str) for i in ids.split("|")}
    assert listed == absent and len(absent) == 4
    by = got.set_index("site_id")
    # A site without parcel list has none (pandas 3 reads the empty cell as NaN: not "NAN").
    assert pd.isna(by.loc["EP4", "unite_fonciere_refcad"])
    assert not got["unite_fonciere_refcad"].isin(["NAN", "NA"]).any()
    assert by.loc[["EP1", "EP2", "EP3", "EP4"], "appariement"].tolist() == [
        "identifiant", "géométrie", "géométrie", "géométrie"]
    n_in, n_ring = int(ring["dans_territoire"].sum()), int((~ring["dans_territoire"]).sum())
    assert f"Friches : {n_in} dans le territoire, {n_ring} à proximité (à moins de 5 km, " \
           f"hors du territoire)" in messages
    assert ("friches : 4 identifiant(s) de parcelle absent(s) du cadastre (3 friche(s)) ; "
            "2 rattachée(s) par géométrie (point ou périmètre), 1 par leurs autres "
            "identifiants") in messages
    sources = pyogrio.read_dataframe(result.gpkg, layer="sources").set_index("type_source")
    repairs = sources.loc["friches", "reparations"]
    assert "identifiants de parcelle absents du cadastre : 4" in repairs
    assert "friches listant des parcelles absentes du cadastre : 3" in repairs


@pytest.mark.slow
def test_epinay_report_counts_the_territory_only(epinay):
    result, _, cadastre, national, made = epinay
    ring, _ = _independent(cadastre, national, made)
    text = html.unescape(re.sub(r"<[^>]+>", " ", (result.gpkg.parent / "rapport.html")
                                .read_text(encoding="utf-8")))
    text = re.sub(r"\s+", " ", text)
    n_in, n_ring = int(ring["dans_territoire"].sum()), int((~ring["dans_territoire"]).sum())
    assert f"Friches recensées {n_in} dont {n_in} sans projet" in text
    assert f"Friches à proximité {n_ring} à moins de 5 km, hors du territoire" in text
    assert "4 identifiant(s) de parcelle listé(s) par 3 friche(s) n'existent pas" in text


@pytest.mark.slow
def test_sample_friches_are_all_in_the_ring(tmp_path):
    territory = load_territory(SAMPLE / "territoire.toml", output_dir=tmp_path)
    messages: list[str] = []
    result = build(territory, progress=messages.append)
    got = pyogrio.read_dataframe(result.gpkg, layer="friches")
    raw = gpd.read_file(SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson")
    # None of the Cartofriches sites near Gennes is in Gennes.
    assert (raw["comm_insee"] != "25267").all()
    assert len(got) == 8 and not got["dans_territoire"].any()
    assert "Friches : 0 dans le territoire, 8 à proximité (à moins de 5 km, hors du " \
           "territoire)" in messages
    zae = pyogrio.read_dataframe(result.gpkg, layer="zae")
    assert zae["nb_friches"].tolist() == [0] and zae["surface_friches_m2"].tolist() == [0.0]
    text = re.sub(r"\s+", " ", html.unescape(re.sub(
        r"<[^>]+>", " ", (tmp_path / "rapport.html").read_text(encoding="utf-8"))))
    assert "Friches recensées 0 dont 0 sans projet ; 0 en zone d'activités" in text
    assert "Friches à proximité 8 à moins de 5 km" in text
    assert "Aucune friche n'est recensée dans le territoire." in text
    # The map draws them apart: no layer of the territory's friches, 8 nearby.
    page = (tmp_path / "carte.html").read_text(encoding="utf-8")
    assert '"id": "friches_proximite"' in page or '"id":"friches_proximite"' in page
    assert not re.search(r'"id": ?"friches"', page)


# --------------------------------------------------------------------------- both build paths


def _two_communes(folder: Path, partition: str) -> Path:
    """The sample with Montfaucon (25395) too, and friches made in Gennes' activity zone.

    The sample's parcel file holds 23 parcels of Montfaucon; its Cartofriches site
    25395_6245 lists a parcel that is not among them (absent). The CSV's friches
    are fictitious, written here on real parcels of Gennes.
    """
    toml = folder / f"territoire-{partition}.toml"
    toml.write_text(f"""
[territoire]
nom = "Gennes et Montfaucon"
communes = ["25267", "25395"]
crs = "EPSG:2154"

[sources.parcelles]
chemin = "{SAMPLE / 'parcel.gpkg'}"
format = "bdparcellaire"
couche = "parcel"

[sources.zonage]
chemin = "{SAMPLE / 'zoning.gpkg'}"
couche = "zoning2"

[sources.batiments]
chemin = "{SAMPLE / 'building.gpkg'}"

[sources.friches]
chemin = ["{SAMPLE / 'cartofriches_subset_gennes_25267_5km.geojson'}", "friches.csv"]

[sorties]
dossier = "sortie-{partition}"

[options]
parcelles_par_partition = {1 if partition == "commune" else 40000}
carte = false
export_cnig = false
date_observation = "2026-01-01"
""", encoding="utf-8")
    return toml


def _gennes_friches(folder: Path) -> None:
    parcels = gpd.read_file(SAMPLE / "parcel.gpkg", layer="parcel")
    parcels = parcels[parcels["DEPCOM"] == "25267"].reset_index(drop=True)
    zoning = gpd.read_file(SAMPLE / "zoning.gpkg", layer="zoning2")
    uy = zoning[zoning["LIBELLE"] == "UY"].union_all()
    inside = parcels[parcels.geometry.within(uy)].sort_values(["SECTION", "NUMERO"])
    a, b = inside.iloc[0], inside.iloc[1]

    def idu(p) -> str:
        return f"25{p['CODE_COM']}{p['COM_ABS']}{p['SECTION']:0>2}{p['NUMERO']:0>4}"

    pt = gpd.GeoSeries([a.geometry.representative_point()], crs=parcels.crs).to_crs(4326)[0]
    wkt = f"POINT ({pt.x:.8f} {pt.y:.8f})"
    rows = [  # two sites at one point in the zone, one with stale ids, one without surface
        f"G1;25267;{idu(a)}|{idu(a)[:10]}9999;1500;{wkt}",
        f"G2;25267;;;{wkt}",
        f"G3;25267;{idu(b)};;{wkt}",
    ]
    (folder / "friches.csv").write_text(
        "site_id;comm_insee;unite_fonciere_refcad;unite_fonciere_surface;geompoint\n"
        + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def two_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deux_chemins")
    _gennes_friches(folder)
    whole = build(load_territory(_two_communes(folder, "aucune")))
    # One commune per partition.
    parts = build(load_territory(_two_communes(folder, "commune")), executor=SerialExecutor())
    return whole, parts


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["friches", "friches_surfaces", "zae"])
def test_both_build_paths_give_the_same_friches(two_paths, layer):
    whole, parts = two_paths
    a = pyogrio.read_dataframe(whole.gpkg, layer=layer)
    b = pyogrio.read_dataframe(parts.gpkg, layer=layer)
    assert_geodataframe_equal(a, b)
    assert whole.checksums[layer] == parts.checksums[layer]


@pytest.mark.slow
def test_two_communes_by_hand(two_paths):
    whole, parts = two_paths
    for result in (whole, parts):
        f = pyogrio.read_dataframe(result.gpkg, layer="friches").set_index("site_id")
        assert f.loc["25395_6245", "dans_territoire"]
        assert f.loc["25395_6245", "idu_absents"] == "25395000AC0008"
        assert sorted(f.index[f["dans_territoire"]]) == ["25395_6245", "G1", "G2", "G3"]
        zae = pyogrio.read_dataframe(result.gpkg, layer="zae")
        assert f.loc[["G1", "G2", "G3"], "zae_id"].tolist() == [zae["zae_id"][0]] * 3
        assert f.loc[["G1", "G2", "G3"], "appariement"].tolist() == ["identifiant",
                                                                     "géométrie",
                                                                     "identifiant"]
        parcels = pyogrio.read_dataframe(result.gpkg, layer="parcelles").set_index("idu")
        g1 = f.loc["G1", "unite_fonciere_refcad"].split("|")[0]
        g3 = f.loc["G3", "unite_fonciere_refcad"]
        assert f.loc["G1", "idu_absents"] == f"{g1[:10]}9999"
        # G1: its land unit (1 500 m²); G2, without surface, on G1's listed parcel: none
        # more; G3: its parcel.
        assert f.loc["G3", "surface_m2"] == pytest.approx(parcels.loc[g3, "surface_m2"])
        assert zae["nb_friches"].tolist() == [3]
        assert zae["surface_friches_m2"].tolist() == pytest.approx(
            [1500.0 + parcels.loc[g3, "surface_m2"]])
        sources = pyogrio.read_dataframe(result.gpkg, layer="sources").set_index(
            "type_source")
        assert "identifiants de parcelle absents du cadastre : 2" in sources.loc[
            "friches", "reparations"]



@pytest.mark.slow
def test_map_draws_the_territory_s_friches_apart_and_shows_them_in_the_zae(two_paths):
    whole, _ = two_paths
    layers = {name: pyogrio.read_dataframe(whole.gpkg, layer=name)
              for name in ("zae", "friches", "friches_surfaces")}
    data = map_data(layers, title="Gennes et Montfaucon", crs=CRS)
    shown = {layer["id"]: layer for layer in data["layers"]}
    inside = int(layers["friches"]["dans_territoire"].sum())
    assert (shown["friches"]["n"], shown["friches_proximite"]["n"]) == (
        inside, len(layers["friches"]) - inside) == (4, 13)
    assert shown["friches"]["libelle"] == "Friches du territoire"
    assert ["nb_friches", "Friches du territoire", "int"] in shown["zae"]["champs"]
    assert ["surface_friches_m2", "Surface des friches", "m2"] in shown["zae"]["champs"]
    assert ["idu_absents", "Parcelles absentes du cadastre", "list"] in shown["friches"]["champs"]
