"""A ZAE layer wider than the territory: only its zones are kept, the others counted.

The layer stands for a métropole's ZAE layer without attributes (geometry only),
used with a territory of one commune, as a new user writes it from the README. It
is derived from the sample's real files (``data/sample``) as follows:

- « UY »: the UY activity zone of Gennes' PLU (``zoning.gpkg``), as drawn;
- « Montfaucon »: the union of the 23 parcels of Montfaucon (25395) that the
  sample's parcel file holds: a zone of the neighbouring commune, which overlaps
  Gennes' parcels by a digitising sliver (441 m² of 138 ha);
- « À cheval »: a Gennes parcel and its largest Montfaucon neighbour, joined: a
  zone across the communes' limit, mostly in Montfaucon;
- « Extension »: a box in the middle of Gennes' largest parcel, a third of it: a
  planned zone drawn on part of a field;
- « Ailleurs »: the UY zone moved 20 km east, a zone elsewhere in the métropole.

A second layer gives the « Extension » zone the INSEE code 25999 (no commune has
it): its name is unknown, so the CNIG export leaves it out with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import sample_context_sources
from geopandas.testing import assert_geodataframe_equal

from observatoire.config import load_territory
from observatoire.executor import SerialExecutor
from observatoire.pipeline import build
from observatoire.publish.cnig_schema import validate_geopackage

# Every test runs whole builds.
pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
NAMES = ["Montfaucon", "UY", "Ailleurs", "À cheval", "Extension"]


def _zones() -> gpd.GeoDataFrame:
    parcels = pyogrio.read_dataframe(SAMPLE / "parcel.gpkg", layer="parcel")
    gennes = parcels[parcels["DEPCOM"] == "25267"].reset_index(drop=True)
    montfaucon = parcels[parcels["DEPCOM"] == "25395"].reset_index(drop=True)
    zoning = pyogrio.read_dataframe(SAMPLE / "zoning.gpkg", layer="zoning2")
    uy = shapely.union_all(zoning.loc[zoning["LIBELLE"] == "UY"].geometry.values)
    # The Gennes parcel sharing the longest edge with a Montfaucon parcel, and that parcel.
    gi, mi = shapely.STRtree(np.asarray(montfaucon.geometry.values)).query(
        np.asarray(gennes.geometry.values), predicate="touches")
    edge = shapely.length(shapely.intersection(
        np.asarray(gennes.geometry.values)[gi], np.asarray(montfaucon.geometry.values)[mi]))
    k = int(np.argmax(edge))
    pair = shapely.union_all([gennes.geometry.iloc[gi[k]], montfaucon.geometry.iloc[mi[k]]])
    field = gennes.geometry.iloc[int(np.argmax(gennes.area))]
    c = field.representative_point()
    half = (field.area / 3) ** 0.5 / 2
    extension = shapely.box(c.x - half, c.y - half, c.x + half, c.y + half)
    assert field.contains(extension)
    geoms = [shapely.union_all(montfaucon.geometry.values), uy,
             shapely.affinity.translate(uy, 20_000, 0), pair, extension]
    return gpd.GeoDataFrame(geometry=[shapely.MultiPolygon(shapely.get_parts(g)) for g in geoms],
                            crs="EPSG:2154")


def _territory(folder: Path, *, communes: list[str], zae: str, partition: str,
               out: str) -> Path:
    path = folder / f"territoire-{out}.toml"
    codes = ", ".join(f'"{c}"' for c in communes)
    path.write_text(f"""
[territoire]
nom = "Gennes"
communes = [{codes}]
crs = "EPSG:2154"
epci_nom = "Grand Besançon Métropole"
epci_siren = "242500361"

[sources.parcelles]
chemin = "{SAMPLE / 'parcel.gpkg'}"
format = "bdparcellaire"
couche = "parcel"
{sample_context_sources()}
[sources.zae]
chemin = "{zae}"

[sorties]
dossier = "{out}"

[options]
parcelles_par_partition = {1 if partition == "commune" else 40000}
date_observation = "2026-01-01"
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zae-metropole")
    zones = _zones()
    pyogrio.write_dataframe(zones, folder / "zae_metropole.gpkg", layer="zones")
    coded = zones.assign(insee=[None, None, None, None, "25999"])
    pyogrio.write_dataframe(coded, folder / "zae_code.gpkg", layer="zones")
    return folder


def _read(path: Path, layer: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(path, layer=layer)


def _sources(gpkg: Path) -> pd.DataFrame:
    return _read(gpkg, "sources").set_index("type_source")


def _zone_of(zae: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> list[str]:
    """Name (see NAMES) of each kept zone, by its geometry."""
    return [NAMES[int(np.argmax(zones.intersection(g).area))] for g in zae.geometry]


@pytest.fixture(scope="module")
def gennes(folder: Path):
    territory = load_territory(_territory(folder, communes=["25267"], zae="zae_metropole.gpkg",
                                          partition="aucune", out="gennes"))
    return territory, build(territory)


def test_only_the_zones_on_the_territory_are_kept(gennes, folder):
    territory, result = gennes
    zae = _read(result.gpkg, "zae")
    zones = _read(folder / "zae_metropole.gpkg", "zones")
    assert sorted(_zone_of(zae, zones)) == sorted(["UY", "À cheval", "Extension"])
    # Without attributes: the commune from the parcels, ids numbered west to east.
    assert (zae["comm_insee"] == "25267").all()
    order = zae.sort_values("zae_id")
    assert list(order["zae_id"]) == [f"25267_SITE-ECO_{i:05d}" for i in (1, 2, 3)]
    assert list(order.geometry.centroid.x) == sorted(order.geometry.centroid.x)
    assert set(zae["zae_origine"]) == {"couche"}
    # The two others are counted in the sources table, and said.
    row = _sources(result.gpkg).loc["zae"]
    assert (row["entites_lues"], row["entites_gardees"]) == (5, 3)
    assert row["reparations"] == ("communes des zones déduites des parcelles : 3; "
                                  "zones hors du territoire : 2")
    report = next(r for r in result.reports if r.kind == "zae")
    assert report.repairs["zones hors du territoire"] == 2
    # The planned extension holds no land unit (a third of a field), but is a zone of Gennes.
    ext = zae.iloc[_zone_of(zae, zones).index("Extension")]
    assert ext["nb_unites"] == 0


def test_the_cnig_export_and_consultation_name_the_commune(gennes):
    territory, result = gennes
    gpkg = territory.output_dir / "cnig" / "sites_economiques.gpkg"
    assert validate_geopackage(gpkg)["site_eco"] == 3
    sites = _read(gpkg, "site_eco")
    assert set(sites["site_comm_insee"]) == {"25267"}
    assert set(sites["site_comm_nom"]) == {"Gennes"}
    files = sorted(p.name for p in (territory.output_dir / "consultation").iterdir())
    assert files == [f"25267_SITE-ECO_{i:05d}.{ext}" for i in (1, 2, 3) for ext in ("csv", "xlsx")]
    assert "carte.html" in [p.name for p in result.outputs]


@pytest.fixture(scope="module")
def two_communes(folder: Path):
    builds = {}
    for partition in ("aucune", "commune"):
        territory = load_territory(_territory(
            folder, communes=["25267", "25395"], zae="zae_metropole.gpkg", partition=partition,
            out=f"deux-{partition}"))
        builds[partition] = (territory, build(territory, executor=SerialExecutor()))
    return builds


def test_commune_of_a_zone_is_the_one_holding_most_of_it(two_communes, folder):
    territory, result = two_communes["aucune"]
    zae = _read(result.gpkg, "zae")
    zones = _read(folder / "zae_metropole.gpkg", "zones")
    commune = dict(zip(_zone_of(zae, zones), zae["comm_insee"], strict=True))
    assert commune == {"Montfaucon": "25395", "UY": "25267", "À cheval": "25395",
                       "Extension": "25267"}
    assert _sources(result.gpkg).loc["zae", "reparations"] == (
        "communes des zones déduites des parcelles : 4; zones hors du territoire : 1")
    sites = _read(territory.output_dir / "cnig" / "sites_economiques.gpkg", "site_eco")
    names = dict(zip(sites["site_comm_insee"], sites["site_comm_nom"], strict=False))
    assert names == {"25267": "Gennes", "25395": "Montfaucon"}


def test_both_builds_keep_the_same_zones(two_communes):
    (_, whole), (_, parts) = two_communes["aucune"], two_communes["commune"]
    a, b = (_read(r.gpkg, "zae").sort_values("zae_id").reset_index(drop=True)
            for r in (whole, parts))
    assert len(a) == 4
    assert_geodataframe_equal(a, b)
    pd.testing.assert_series_equal(_sources(whole.gpkg)["reparations"],
                                   _sources(parts.gpkg)["reparations"])


def test_a_zone_the_export_cannot_name_is_left_out_with_a_warning(folder, caplog):
    territory = load_territory(_territory(folder, communes=["25267"], zae="zae_code.gpkg",
                                          partition="aucune", out="code"))
    with caplog.at_level(logging.WARNING):
        result = build(territory)
    zae = _read(result.gpkg, "zae")
    assert sorted(zae["comm_insee"]) == ["25267", "25267", "25999"]
    assert "25999_SITE-ECO_00001" in set(zae["zae_id"])
    warned = [r.getMessage() for r in caplog.records if "non exportée" in r.getMessage()]
    assert warned == [
        "export CNIG : zone « 25999_SITE-ECO_00001 » non exportée : champ site_comm_nom "
        "manquant (commune 25999 absente de la table des communes) ; ajoutez son nom dans "
        "[options.noms_communes] du fichier de territoire"]
    gpkg = territory.output_dir / "cnig" / "sites_economiques.gpkg"
    assert validate_geopackage(gpkg)["site_eco"] == 2
    assert set(_read(gpkg, "site_eco")["site_comm_nom"]) == {"Gennes"}
    assert (territory.output_dir / "carte.html").exists()
