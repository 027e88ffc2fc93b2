"""From zero to the observatory: ``init``, ``telecharger``, ``build`` against local publishers.

The observatory built from what ``telecharger`` fetched must equal, layer by layer
(content checksums of :class:`~observatoire.pipeline.BuildResult`), the one built from
the same files declared by hand in a territory file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import pytest
from publishers import INSEE, MILLESIMES, SAMPLE, publishers, sample_publishers_data

from observatoire.cli import main
from observatoire.config import load_territory
from observatoire.pipeline import build

__all__ = ["publishers", "sample_publishers_data"]  # fixtures used by name


def _hand_territory(folder: Path, data, today: str) -> Path:  # type: ignore[no-untyped-def]
    """The sample's files, as the publishers serve them, declared by hand.

    They are put at the paths ``telecharger`` gives them (the layers' lineage is the
    path relative to the territory file); the friches are the sample's own file.
    """
    cadastre = folder / "cache" / "cadastre" / MILLESIMES[-1] / INSEE
    cadastre.mkdir(parents=True)
    (cadastre / f"cadastre-{INSEE}-parcelles.json.gz").write_bytes(data.cadastre["parcelles"])
    (cadastre / f"cadastre-{INSEE}-batiments.geojson").write_bytes(
        gzip.decompress(data.cadastre["batiments"]))
    zonage = folder / "cache" / "zonage" / today
    zonage.mkdir(parents=True)
    zones = {"type": "FeatureCollection", "name": "zone_urba", "features": data.zone_urba}
    (zonage / "zone_urba.geojson").write_text(json.dumps(zones), encoding="utf-8")
    friches = folder / "cache" / "cartofriches" / today
    friches.mkdir(parents=True)
    shutil.copy(SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson",
                friches / "cartofriches.geojson")
    toml = folder / "territoire.toml"
    toml.write_text(f"""
[territoire]
nom = "Gennes"
communes = ["{INSEE}"]
crs = "EPSG:2154"
epci_nom = "CU Grand Besançon Métropole"
epci_siren = "242500361"

[sources.parcelles]
chemin = "cache/cadastre/{MILLESIMES[-1]}/{INSEE}/cadastre-{INSEE}-parcelles.json.gz"
format = "etalab"

[sources.batiments]
chemin = "cache/cadastre/{MILLESIMES[-1]}/{INSEE}/cadastre-{INSEE}-batiments.geojson"

[sources.zonage]
chemin = "cache/zonage/{today}/zone_urba.geojson"

[sources.friches]
chemin = "cache/cartofriches/{today}/cartofriches.geojson"
format = "cartofriches"
""", encoding="utf-8")
    return toml


@pytest.mark.slow
def test_init_telecharger_build_equals_the_build_by_hand(publishers, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.setenv("OBSERVATOIRE_MIROIR", publishers.url)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--communes", INSEE, "--dossier", "gennes"]) == 0
    assert main(["telecharger", "--config", "gennes/territoire.toml"]) == 0
    out = capsys.readouterr().out
    assert "Sources déclarées dans gennes/territoire.toml : parcelles, batiments, zonage, " \
           "friches" in out
    assert main(["validate", "--config", "gennes/territoire.toml"]) == 0

    fetched = build(load_territory(tmp_path / "gennes" / "territoire.toml"))
    today = dt.date.today().isoformat()
    by_hand = build(load_territory(_hand_territory(tmp_path / "main", publishers.data, today),
                                   output_dir=tmp_path / "main" / "sorties"))
    assert fetched.layer_counts["parcelles"] == 828  # 851 parcels, 23 in Montfaucon
    assert fetched.layer_counts["friches"] == 8  # of the 14 fetched, as validate says
    assert fetched.layer_counts["zonage"] == 25
    assert fetched.layer_counts == by_hand.layer_counts
    assert fetched.checksums == by_hand.checksums

    # Offline, the same files again: the territory file is rewritten identically.
    before = (tmp_path / "gennes" / "territoire.toml").read_text(encoding="utf-8")
    asked = len(publishers.requests)
    assert main(["telecharger", "--config", "gennes/territoire.toml", "--hors-ligne"]) == 0
    assert len(publishers.requests) == asked
    assert (tmp_path / "gennes" / "territoire.toml").read_text(encoding="utf-8") == before


@pytest.mark.slow
def test_fetched_constraints_and_town_halls_reach_the_observatory(publishers, tmp_path,
                                                                  monkeypatch):
    """The SIS served are two of the sample's parcels: those two are wholly under it."""
    import geopandas as gpd
    import pyogrio
    from publishers import MAIRIE_BUILDING

    from observatoire.acquisition.http import Client
    from observatoire.acquisition.telecharger import telecharger
    from observatoire.acquisition.territoire import init_territory

    path = init_territory(tmp_path / "g", communes=[INSEE],
                          sources=["cadastre", "zonage", "bdtopo", "georisques", "patrinat"])
    outcome = telecharger(path, client=Client(backoff=0.01), mirror=publishers.url)
    assert outcome.failed == {}
    territory = load_territory(path)
    assert len(territory.constraints) == 4 and territory.source("mairies") is not None
    result = build(territory)
    parcelles = pyogrio.read_dataframe(result.gpkg, layer="parcelles")
    sis = "part_contrainte_secteurs_d_information_sur_les_sols_georisques"
    for column in (sis, "part_contrainte_zones_inondables_du_tri_scenario_moyen_georisques",
                   "part_contrainte_znieff_de_type_i",
                   "part_contrainte_natura_2000_directive_oiseaux_zps"):
        assert parcelles[column].max() > 0.99, column
    sample = gpd.read_file(SAMPLE / "parcel.gpkg").iloc[:2]
    ids = (sample["DEPCOM"] + sample["COM_ABS"] + sample["SECTION"] + sample["NUMERO"]).tolist()
    under = parcelles.set_index("idu")[sis]
    assert under.loc[ids].tolist() == pytest.approx([1.0, 1.0], abs=1e-3)
    assert (under.drop(index=ids) < 0.05).all()  # the neighbours, by a sliver at most
    # The town hall served (a building of the sample) is the one the observatory reads.
    mairies = pyogrio.read_dataframe(territory.source("mairies").path,
                                     layer="zone_d_activite_ou_d_interet")
    building = gpd.read_file(SAMPLE / "building.gpkg").geometry.iloc[MAIRIE_BUILDING]
    assert mairies.geometry.iloc[0].area == pytest.approx(building.area)
