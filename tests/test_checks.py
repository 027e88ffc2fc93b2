"""What ``validate`` and ``build`` both say: key sources missing, sources empty for the territory.

The sources "of another commune" are real: the Épinay-sur-Orge (91216) Etalab
cadastre of ``../shared`` with the files of the Gennes (25267) sample, 300 km away,
as a user who copied the wrong file would give them. The DEM covering part of the
parcels is synthetic (a plane, written here): no real DEM of Épinay is at hand.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from html import unescape
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from conftest import SAMPLE, shared_file
from test_bad_inputs import write_territory
from test_readers_etablissements import GEO_HEADER, GEO_ROWS
from test_readers_extra import DGFIP_HEADER, DGFIP_ROWS, write_csv, write_tif

from observatoire.checks import missing_source_warnings, source_warnings
from observatoire.config import load_territory
from observatoire.pipeline import build
from observatoire.validate import check_territory

EPINAY = "etalab-cadastre/cadastre-91216-parcelles.json"

#: What the results lose without each key source (the shipped profiles' points).
MISSING = {
    "zonage": "source zonage absente : les zones A et N du PLU ne sont pas exclues et le "
              "critère zonage n'est pas noté (fiabilité des scores : −25 points pour industrie, "
              "−20 points pour logistique)",
    "batiments": "source batiments absente : les parcelles déjà bâties ne sont pas exclues, le "
                 "bâti existant n'est pas noté et les gisements ne testent pas la part bâtie "
                 "(fiabilité des scores : −10 points pour industrie, −5 points pour logistique)",
    "routes": "source routes absente : la desserte routière (routes principales, autoroutes) "
              "n'est pas notée (fiabilité des scores : −10 points pour industrie, −20 points "
              "pour logistique)",
    "mnt": "source mnt absente : la pente n'est pas notée (fiabilité des scores : −10 points "
           "pour industrie, −15 points pour logistique)",
    "contraintes": "source contraintes absente : aucune contrainte réglementaire (zone "
                   "inondable, espace protégé…) n'exclut ni ne pénalise de parcelle (fiabilité "
                   "des scores : −5 points pour industrie, −5 points pour logistique)",
}


def test_missing_key_sources_parcels_and_friches_alone(tmp_path):
    config = write_territory(tmp_path, {"friches": {
        "chemin": str(SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson")}})
    warnings = missing_source_warnings(load_territory(config))
    assert warnings == [*MISSING.values(),
                        "profil industrie : avec ces sources, la fiabilité ne dépasse pas 35 % "
                        "(seuil de classe : 75 %) ; toutes les parcelles auront une classe non "
                        "déterminée ; ajoutez les sources batiments, contraintes, mnt, "
                        "postes_electriques, routes, zonage",
                        "profil logistique : avec ces sources, la fiabilité ne dépasse pas 30 % "
                        "(seuil de classe : 75 %) ; toutes les parcelles auront une classe non "
                        "déterminée ; ajoutez les sources batiments, contraintes, mnt, routes, "
                        "voies_ferrees, zonage"]


def test_missing_key_sources_of_the_sample(sample_config):
    # Zoning, buildings, roads and friches: 80 and 75 points, at or above the threshold.
    assert missing_source_warnings(load_territory(sample_config)) == [
        MISSING["mnt"], MISSING["contraintes"]]


# --------------------------------------------------------------------------- empty sources


def _sources_of_gennes(folder: Path) -> dict:
    """Every optional source kind, from real files of Gennes (and a plane DEM)."""
    zoning = {"chemin": str(SAMPLE / "zoning.gpkg"), "couche": "zoning2"}
    with (folder / "sirene.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([GEO_HEADER, *GEO_ROWS[:2]])  # two establishments of Gennes
    write_csv(folder / "pm.csv", DGFIP_HEADER, DGFIP_ROWS[:1], encoding="latin-1")
    return {
        "zonage": zoning,
        "friches": {"chemin": str(SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson")},
        "zae": zoning,  # any polygon layer
        "batiments": {"chemin": str(SAMPLE / "building.gpkg")},
        "routes": {"chemin": str(SAMPLE / "road.gpkg")},
        "voies_ferrees": {"chemin": str(SAMPLE / "road.gpkg")},  # any line layer
        "postes_electriques": {"chemin": str(SAMPLE / "building.gpkg")},  # reduced to points
        "etablissements": {"chemin": "sirene.csv"},
        "proprietaires": {"chemin": "pm.csv"},
        "contraintes": [zoning | {"nom": "PPRI", "type": "inondation"}],
    }


#: The warning of each source of Gennes given to Épinay-sur-Orge: where nothing lies.
EMPTY = {
    "zonage": "« zoning.gpkg », couche « zoning2 » : aucune entité ne recoupe l'emprise des "
              "parcelles ; le zonage ne s'applique à aucune parcelle",
    "friches": "« cartofriches_subset_gennes_25267_5km.geojson » : aucune entité à moins de 5 km "
               "des parcelles (14 lues) ; aucune parcelle n'est reconnue comme friche",
    "zae": "« zoning.gpkg », couche « zoning2 » : aucune entité ne recoupe l'emprise des "
           "parcelles (26 lues) ; aucune zone d'activités n'est inventoriée",
    # The layer is named when the file's name does not say it.
    "batiments": "« building.gpkg » : aucune entité à moins de 5 km des parcelles ; aucun "
                 "bâtiment n'est compté",
    "routes": "« road.gpkg », couche « roadSS » : aucune entité à moins de 5 km des parcelles ; "
              "toutes les parcelles sont notées loin des routes",
    "voies_ferrees": "« road.gpkg », couche « roadSS » : aucune entité à moins de 5 km des "
                     "parcelles (182 lues) ; toutes les parcelles sont notées loin d'une voie",
    "postes_electriques": "« building.gpkg » : aucune entité à moins de 5 km des parcelles "
                          "(325 lues) ; toutes les parcelles sont notées loin d'un poste "
                          "électrique",
    "etablissements": "« sirene.csv » : aucune entité à moins de 5 km des parcelles (2 lues) ; "
                      "aucun établissement n'occupe les zones d'activités",
    "proprietaires": "« pm.csv » : aucune entité ne porte sur les communes du territoire "
                     "(1 lues) ; aucune parcelle n'a de propriétaire connu",
    "contraintes": "« zoning.gpkg », couche « zoning2 » : aucune entité ne recoupe l'emprise "
                   "des parcelles (26 lues) ; cette contrainte n'exclut ni ne pénalise aucune "
                   "parcelle",
}


def _plane_dem(folder: Path, parcels: Path) -> Path:
    """A plane (z = 0.05·x) over the western third of the parcels' box, 25 m cells."""
    xmin, ymin, xmax, ymax = gpd.read_file(parcels).to_crs(2154).total_bounds
    width = int((xmax - xmin) / 3 / 25)
    height = int((ymax - ymin) / 25) + 1
    x = xmin + 25 * (np.arange(width) + 0.5)
    data = np.tile(0.05 * (x - xmin), (height, 1)).astype("float32")
    return write_tif(folder / "mnt.tif", data, Affine(25, 0, xmin, 0, -25, ymax), "EPSG:2154")


def _expect_every_warning(warnings: list[str]) -> None:
    for kind, text in EMPTY.items():
        found = [w for w in warnings if w.startswith(f"source {kind} ")]
        assert len(found) == 1, (kind, warnings)
        assert text in found[0], (kind, found[0])
        assert "vérifiez que le fichier porte sur les communes 91216" in found[0]
    (dem,) = [w for w in warnings if w.startswith("source mnt ")]
    assert dem.startswith("source mnt « mnt.tif » : une altitude sur ")
    share = int(dem.split("une altitude sur ")[1].split(" %")[0])
    assert 25 <= share <= 40  # a third of the box, and the margin of two cells
    assert "les parcelles sans altitude n'ont pas de pente" in dem


@pytest.fixture(scope="module")
def epinay_with_gennes_sources(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("epinay")
    parcels = shared_file(EPINAY)
    sources = _sources_of_gennes(folder)
    sources["parcelles"] = {"chemin": str(parcels)}
    sources["mnt"] = {"chemin": str(_plane_dem(folder, parcels))}
    return write_territory(folder, sources, communes=("91216",), out=folder / "sorties")


def test_validate_warns_of_every_source_empty_for_the_territory(epinay_with_gennes_sources):
    result = check_territory(epinay_with_gennes_sources)
    assert result.ok  # a warning, not a refusal: the build runs
    _expect_every_warning(result.warnings)
    lines = result.lines()
    assert sum(ln.startswith("ATTENTION source ") for ln in lines) == len(EMPTY) + 1
    # The zoning of Gennes is read through the box of Épinay, as the build reads it.
    assert "LU      sources.zonage : 0 entités gardées sur 0 lues" in "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("partition", [1, 40_000])
def test_build_warns_of_every_source_empty_for_the_territory(epinay_with_gennes_sources,
                                                             partition, caplog, tmp_path):
    territory = load_territory(epinay_with_gennes_sources, output_dir=tmp_path / str(partition))
    options = dataclasses.replace(territory.options, parcelles_par_partition=partition)
    territory = dataclasses.replace(territory, options=options)
    with caplog.at_level(logging.WARNING, logger="observatoire"):
        result = build(territory)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.getMessage().startswith("source ")]
    _expect_every_warning(warnings)
    # The same warnings as validate's.
    assert sorted(warnings) == sorted(check_territory(epinay_with_gennes_sources).warnings[
        -len(EMPTY) - 1:])
    zonage = next(r for r in result.reports if r.kind == "zonage")
    assert (zonage.features_read, zonage.features_kept) == (0, 0)


@pytest.mark.slow
def test_the_zoning_of_another_commune(tmp_path, caplog):
    """The case of issue #13: validate said « 25 kept », build « 0 kept / 0 read », silently."""
    parcels = shared_file(EPINAY)
    config = write_territory(tmp_path, {
        "parcelles": {"chemin": str(parcels)},
        "zonage": {"chemin": str(SAMPLE / "zoning.gpkg"), "couche": "zoning2"}},
        communes=("91216",))
    result = check_territory(config)
    (line,) = [ln for ln in result.lines() if " sources.zonage :" in ln]
    assert line.startswith("LU      sources.zonage : 0 entités gardées sur 0 lues")
    expected = ("source zonage « zoning.gpkg », couche « zoning2 » : aucune entité ne recoupe "
                "l'emprise des parcelles ; le zonage ne s'applique à aucune parcelle (zones A "
                "et N non exclues, critère zonage non noté) ; vérifiez que le fichier porte sur "
                "les communes 91216 et son système de coordonnées")
    assert f"ATTENTION {expected}" in result.lines()
    with caplog.at_level(logging.WARNING, logger="observatoire"):
        built = build(load_territory(config))
    assert expected in [r.getMessage() for r in caplog.records]
    # The report's reader, who never saw the command line, reads it too.
    page = unescape((built.gpkg.parent / "rapport.html").read_text(encoding="utf-8"))
    assert f"Avertissement : {expected}." in page
    parcelles = gpd.read_file(built.gpkg, layer="parcelles")
    # Zoning known nowhere: 30 points of 100 for industrie, no class.
    scored = parcelles[~parcelles["exclu_industrie"].astype(bool)]
    assert scored["zone_typezone"].isna().all()
    assert (scored["classe_industrie"] == "non déterminée").all()


def test_no_warning_for_the_sample(sample_config):
    territory = load_territory(sample_config)
    result = check_territory(sample_config)
    assert source_warnings([c.report for c in result.checks if c.report], territory) == []
