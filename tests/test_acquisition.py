"""Acquisition: downloads, cache, publishers, ``init`` and ``telecharger``, against a local server.

No test touches the internet: :mod:`tests.publishers` serves the publishers' layouts
on 127.0.0.1 with the repository's sample, and injects faults.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import os
import re
import tomllib
from pathlib import Path

import pytest
from conftest import SAMPLE
from publishers import INSEE, MILLESIMES, SIREN, Publishers, publishers, sample_publishers_data

from observatoire.acquisition import cadastre, friches, zonage
from observatoire.acquisition.cache import Cache, Manifest
from observatoire.acquisition.contexte import Context
from observatoire.acquisition.http import Client, DownloadError, sha256_of
from observatoire.acquisition.telecharger import EXIT_FAILED, telecharger, verifier
from observatoire.acquisition.territoire import BEGIN, END, init_territory, write_sources
from observatoire.acquisition.urls import Urls, departement_of, ign_zone
from observatoire.config import load_territory
from observatoire.errors import ConfigError

__all__ = ["publishers", "sample_publishers_data"]  # fixtures used by name

PARCELLES = f"cadastre-{INSEE}-parcelles.json.gz"
SAMPLE_ZONING = Path(__file__).resolve().parents[1] / "data" / "sample" / "zoning.gpkg"


def client(**kw: float) -> Client:
    """A client that retries fast (the backoff is not what is tested)."""
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return Client(**kw)  # type: ignore[arg-type]


def context(pub: Publishers, tmp_path: Path, *, offline: bool = False,
            millesime: str = "latest", **kw: float) -> Context:
    return Context(communes=(INSEE,), epci_siren=SIREN, crs="EPSG:2154",
                   client=None if offline else client(**kw), cache=Cache(tmp_path / "cache"),
                   urls=Urls(pub.url), millesime=millesime)


def parcel_url(pub: Publishers, millesime: str = MILLESIMES[-1]) -> str:
    return Urls(pub.url).cadastre_commune(millesime, INSEE, "parcelles")


# --- urls --------------------------------------------------------------------------------

def test_urls_follow_the_publishers_layouts():
    urls = Urls()
    assert urls.cadastre_commune("2025-09-01", "25267", "parcelles") == (
        "https://cadastre.data.gouv.fr/data/etalab-cadastre/2025-09-01/geojson/communes/25/"
        "25267/cadastre-25267-parcelles.json.gz")
    # Vintages before July 2022 are only on files.data.gouv.fr (lib/cadastre-etalab.mjs).
    assert urls.cadastre_commune("2022-04-01", "97411", "batiments") == (
        "https://files.data.gouv.fr/cadastre/etalab-cadastre/2022-04-01/geojson/communes/974/"
        "97411/cadastre-97411-batiments.json.gz")
    assert urls.bdtopo("2A", "2025-12-15").endswith(
        "/download/BDTOPO/BDTOPO_3-5_TOUSTHEMES_GPKG_LAMB93_D02A_2025-12-15/"
        "BDTOPO_3-5_TOUSTHEMES_GPKG_LAMB93_D02A_2025-12-15.7z")
    assert (departement_of("2B033"), departement_of("97411"), ign_zone("25")) == (
        "2B", "974", "D025")
    url, params = urls.gpu_zone_urba(["DU_25267", "DU_242500361"], start=5000, count=5000)
    assert url == "https://data.geopf.fr/wfs/ows"
    assert params["CQL_FILTER"] == "partition IN ('DU_25267','DU_242500361')"
    assert (params["STARTINDEX"], params["COUNT"]) == ("5000", "5000")


def test_urls_of_the_terrain_and_constraint_publishers():
    from observatoire.acquisition.bdalti import _crs, _meets
    from observatoire.acquisition.urls import BDALTI_NAME, BDALTI_TILES

    urls = Urls()
    # BD ALTI: the listing by zone only; the projection read in it (Corsica: IGN78C).
    assert urls.ign_resource("BDALTI", "2A") == (
        "https://data.geopf.fr/telechargement/resource/BDALTI?zone=D02A")
    assert urls.ign_resource("BDTOPO", "25").endswith("?zone=D025&format=GPKG")
    listing = ("<title>BDALTIV2_2-0_25M_ASC_LAMB93-IGN78C_D02A_2021-06-22</title>"
               "<title>BDALTIV2_2-0_75M_ASC_LAMB93-IGN78C_D02A_2024-01-01</title>")
    [m] = re.finditer(BDALTI_NAME.format(zone="D02A"), listing)
    assert (m["projection"], m["date"]) == ("LAMB93-IGN78C", "2021-06-22")
    assert urls.bdalti("2A", "2021-06-22", projection="LAMB93-IGN78C") == (
        "https://data.geopf.fr/telechargement/download/BDALTI/"
        "BDALTIV2_2-0_25M_ASC_LAMB93-IGN78C_D02A_2021-06-22/"
        "BDALTIV2_2-0_25M_ASC_LAMB93-IGN78C_D02A_2021-06-22.7z")
    assert (_crs("LAMB93-IGN78C", "EPSG:2154"), _crs("RGR92UTM40S-REUN89", "EPSG:2975")) == (
        "EPSG:2154", "EPSG:2975")
    # The elevation tiles only (public code reads …/1_DONNEES_LIVRAISON_2021-10-00008/
    # BDALTIV2_MNT_25M_ASC_LAMB93_IGN69_D085/*.asc), and only those meeting the box.
    tile = ("BDALTIV2_2-0_25M_ASC_LAMB93-IGN69_D031_2016-11-17/BDALTIV2/1_DONNEES_LIVRAISON_"
            "2017-02-00098/BDALTIV2_MNT_25M_ASC_LAMB93_IGN69_D031/"
            "BDALTIV2_25M_FXX_0475_6200_MNT_LAMB93_IGN69.asc")
    assert re.search(BDALTI_TILES, tile)
    assert not re.search(BDALTI_TILES, tile.replace("1_DONNEES", "3_SUPPLEMENTS"))
    # That tile covers x 475–500 km, y 6175–6200 km.
    assert _meets(tile, (480_000, 6_180_000, 481_000, 6_181_000))
    assert not _meets(tile, (501_000, 6_180_000, 502_000, 6_181_000))
    assert not _meets(tile, (480_000, 6_200_100, 481_000, 6_201_000))
    # Géorisques: API v1 per commune, and the WFS in Lambert-93.
    assert urls.georisques("ssp/conclusions_sis", "25267", page=2) == (
        "https://www.georisques.gouv.fr/api/v1/ssp/conclusions_sis",
        {"code_insee": "25267", "page": "2", "page_size": "100"})
    url, params = urls.georisques_wfs("ms:ALEA_SYNT_02_01FOR_FXX", (1.0, 2.0, 3.0, 4.0),
                                      start=0, count=1000)
    assert url == "https://www.georisques.gouv.fr/services"
    assert params["BBOX"] == "1.0,2.0,3.0,4.0,urn:ogc:def:crs:EPSG::2154"
    # PatriNat: the box latitude first (URN form), the answer longitude first.
    _, params = urls.wfs_bbox("patrinat_zps:zps", (6.0, 47.0, 6.1, 47.1), start=0, count=10)
    assert params["BBOX"] == "47.000000,6.000000,47.100000,6.100000,urn:ogc:def:crs:EPSG::4326"
    assert params["SRSNAME"] == "EPSG:4326"


def test_a_mirror_keeps_the_host_in_the_path(monkeypatch):
    monkeypatch.setenv("OBSERVATOIRE_MIROIR", "http://127.0.0.1:9/")
    assert Urls.from_env().cadastre_listing() == (
        "http://127.0.0.1:9/cadastre.data.gouv.fr/data/etalab-cadastre/")
    assert Urls.from_env("http://h").base("cartofriches") == (
        "http://h/apidf-preprod.cerema.fr/cartofriches")


# --- http + cache -------------------------------------------------------------------------

def test_download_is_cached_with_its_manifest_and_not_fetched_again(publishers, tmp_path):
    cache = Cache(tmp_path)
    url = parcel_url(publishers)
    path = cache.fetch(client(), url, source="cadastre", millesime="2025-09-01",
                       name=f"{INSEE}/{PARCELLES}", expect="gzip", producer="DGFiP")
    served = publishers.data.cadastre["parcelles"]
    assert path.read_bytes() == served
    manifest = json.loads(Cache.manifest_path(path).read_text(encoding="utf-8"))
    assert manifest["url"] == url and manifest["millesime"] == "2025-09-01"
    assert manifest["taille"] == len(served) and manifest["sha256"] == sha256_of(path)
    assert manifest["etag"] and manifest["last_modified"] == "Mon, 01 Sep 2025 06:00:00 GMT"
    assert manifest["licence"].startswith("Licence Ouverte")
    # The second time the request is conditional and the server answers 304.
    cache.fetch(client(), url, source="cadastre", millesime="2025-09-01",
                name=f"{INSEE}/{PARCELLES}", expect="gzip", producer="DGFiP")
    second = publishers.seen(PARCELLES)[-1]
    assert second["If-None-Match"] == manifest["etag"]
    assert json.loads(Cache.manifest_path(path).read_text())["telecharge_le"] == (
        manifest["telecharge_le"])


def test_a_cached_file_changed_on_disk_is_not_trusted(publishers, tmp_path):
    cache = Cache(tmp_path)
    args = {"source": "cadastre", "millesime": "2025-09-01", "name": PARCELLES,
            "expect": "gzip", "producer": "DGFiP"}
    path = cache.fetch(client(), parcel_url(publishers), **args)
    path.write_bytes(path.read_bytes()[:-10])
    assert cache.manifest(path) is None
    cache.fetch(client(), parcel_url(publishers), **args)
    assert "If-None-Match" not in publishers.seen(PARCELLES)[-1]
    assert path.read_bytes() == publishers.data.cadastre["parcelles"]


def test_404_names_the_url_and_status_and_caches_nothing(publishers, tmp_path):
    url = Urls(publishers.url).cadastre_commune("2025-09-01", "25999", "parcelles")
    with pytest.raises(DownloadError, match=r"cadastre-25999-parcelles\.json\.gz : HTTP 404"
                       ) as err:
        Cache(tmp_path).fetch(client(), url, source="cadastre", millesime="2025-09-01",
                              name="x.json.gz", expect="gzip", producer="DGFiP")
    assert err.value.status == 404 and err.value.url == url
    assert len(publishers.seen("25999")) == 1  # a 404 is not retried
    assert not any(tmp_path.rglob("*.json.gz*"))


def test_500_then_success_is_retried(publishers, tmp_path):
    publishers.inject(PARCELLES, ("statut", 500))
    got = client().download(parcel_url(publishers), tmp_path / "p.json.gz", expect="gzip")
    assert got.changed and got.path.read_bytes() == publishers.data.cadastre["parcelles"]
    assert len(publishers.seen(PARCELLES)) == 2


def test_500_every_time_fails_after_the_retries(publishers, tmp_path):
    publishers.inject(PARCELLES, *[("statut", 503)] * 3)
    with pytest.raises(DownloadError, match="HTTP 503") as err:
        client(retries=2).download(parcel_url(publishers), tmp_path / "p.json.gz",
                                   expect="gzip")
    assert err.value.status == 503
    assert len(publishers.seen(PARCELLES)) == 3
    assert not (tmp_path / "p.json.gz").exists()


def test_a_cut_transfer_resumes_with_range(publishers, tmp_path):
    # Cut after 100,000 of its 131,768 bytes: the whole 64 KiB chunks read are kept.
    publishers.inject(PARCELLES, ("coupure", 100_000))
    dest = tmp_path / "p.json.gz"
    got = client().download(parcel_url(publishers), dest, expect="gzip")
    first, second = publishers.seen(PARCELLES)
    assert "Range" not in first
    assert second["Range"] == "bytes=65536-" and second["If-Range"].startswith('"')
    assert dest.read_bytes() == publishers.data.cadastre["parcelles"]
    assert got.sha256 == sha256_of(dest)
    assert not list(tmp_path.glob("*.part*"))


def test_a_slow_answer_times_out_then_is_retried(publishers, tmp_path):
    dest = tmp_path / "p.json.gz"
    publishers.inject(PARCELLES, ("lent", 1.5))
    with pytest.raises(DownloadError, match=r"pas de réponse en 0\.3 s") as err:
        client(timeout=0.3, retries=0).download(parcel_url(publishers), dest, expect="gzip")
    assert err.value.status is None and not dest.exists()
    publishers.inject(PARCELLES, ("lent", 1.5))
    client(timeout=0.3, retries=1).download(parcel_url(publishers), dest, expect="gzip")
    assert dest.read_bytes() == publishers.data.cadastre["parcelles"]


def test_an_html_page_with_status_200_is_refused_and_not_cached(publishers, tmp_path):
    publishers.inject(PARCELLES, ("html",))
    with pytest.raises(DownloadError, match=r"page HTML reçue \(statut 200\).*rien n'a été "
                                            r"mis en cache"):
        Cache(tmp_path).fetch(client(), parcel_url(publishers), source="cadastre",
                              millesime="2025-09-01", name=PARCELLES, expect="gzip",
                              producer="DGFiP")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_a_truncated_archive_is_refused_and_not_cached(publishers, tmp_path):
    publishers.inject(PARCELLES, ("corrompu",))
    with pytest.raises(DownloadError, match=r"corrompu ou tronqué \(gzip"):
        Cache(tmp_path).fetch(client(), parcel_url(publishers), source="cadastre",
                              millesime="2025-09-01", name=PARCELLES, expect="gzip",
                              producer="DGFiP")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_a_corrupt_7z_archive_is_refused(tmp_path):
    import py7zr

    from observatoire.acquisition.http import _check_content

    good = tmp_path / "a.7z"
    with py7zr.SevenZipFile(good, "w") as archive:
        archive.writestr(b"x" * 100_000, "data.bin")
    _check_content(good, "7z", "http://x/a.7z")
    bad = tmp_path / "b.7z"
    bad.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DownloadError, match=r"corrompu ou tronqué \(7z"):
        _check_content(bad, "7z", "http://x/b.7z")


def test_concurrent_requests_stay_within_the_limit(publishers, tmp_path):
    # Each of the 3 layers answers after 1 s: with 2 workers, at most 2 at once.
    for layer in cadastre.LAYERS:
        publishers.inject(f"-{layer}.json.gz", ("lent", 1.0))
    ctx = context(publishers, tmp_path, workers=2)
    cadastre.fetch(ctx)
    assert publishers.max_inflight == 2
    assert len(publishers.seen(".json.gz")) == 3


# --- publishers ---------------------------------------------------------------------------

def test_cadastre_latest_is_the_newest_published_vintage(publishers, tmp_path):
    ctx = context(publishers, tmp_path)
    fetched = cadastre.fetch(ctx)
    assert [f.kind for f in fetched] == ["parcelles", "batiments"]
    assert fetched[0].date == MILLESIMES[-1]
    assert fetched[0].paths[0] == (tmp_path / "cache" / "cadastre" / MILLESIMES[-1] / INSEE
                                   / PARCELLES)
    # The box: Gennes plus 5 km, in lon/lat (Gennes lies near 6.1°E, 47.2°N).
    lon0, lat0, lon1, lat1 = ctx.bbox_wgs84
    assert 5.9 < lon0 < 6.1 < lon1 < 6.3 and 47.1 < lat0 < 47.25 < lat1 < 47.4
    # 5 km of margin on each side: the box is at least 10 km wider than the commune.
    assert (lon1 - lon0) * 111.32 * 0.68 > 10


def test_zonage_pages_through_the_wfs(publishers, tmp_path):
    ctx = context(publishers, tmp_path)
    ctx.page_size = 10
    [fetched] = zonage.fetch(ctx)
    doc = json.loads(fetched.paths[0].read_text(encoding="utf-8"))
    assert len(doc["features"]) == 26  # the sample's 26 zones, in 3 pages
    assert len(publishers.seen("ows")) == 3
    assert {f["properties"]["partition"] for f in doc["features"]} == {f"DU_{INSEE}"}
    # The PLUi partition of the EPCI is asked with the commune's.
    assert all(f"DU_{SIREN}" in target for target, _ in publishers.requests)


def test_zonage_second_page_failing_fails_the_source(publishers, tmp_path):
    ctx = context(publishers, tmp_path, retries=1)
    ctx.page_size = 10
    publishers.inject("STARTINDEX=10", ("statut", 500), ("statut", 500))
    with pytest.raises(DownloadError, match=r"STARTINDEX=10.*HTTP 500") as err:
        zonage.fetch(ctx)
    assert err.value.status == 500
    assert not (tmp_path / "cache" / "zonage").exists()  # no partial zoning cached


def test_cartofriches_follows_next_links(publishers, tmp_path):
    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    ctx.page_size = 5
    [fetched] = friches.fetch(ctx)
    doc = json.loads(fetched.paths[0].read_text(encoding="utf-8"))
    # The 14 sites of the sample lie within 5 km of Gennes: all inside the box.
    assert len(doc["features"]) == 14
    assert len({f["properties"]["site_id"] for f in doc["features"]}) == 14
    assert len(publishers.seen("geofriches")) == 3  # pages of 5, 5 and 4


def test_cartofriches_tiles_never_exceed_one_degree():
    tiles = friches.tiles((5.0, 47.0, 7.5, 47.4))
    assert len(tiles) == 3
    assert all(t[2] - t[0] <= 1.0 and t[3] - t[1] <= 1.0 for t in tiles)
    assert (tiles[0][0], tiles[-1][2]) == (5.0, 7.5)


def test_offline_uses_the_cache_only(publishers, tmp_path):
    online = context(publishers, tmp_path)
    cadastre.fetch(online)
    asked = len(publishers.requests)
    offline = context(publishers, tmp_path, offline=True)
    fetched = cadastre.fetch(offline)
    assert len(publishers.requests) == asked
    assert fetched[0].date == MILLESIMES[-1] and fetched[0].paths[0].is_file()
    with pytest.raises(DownloadError, match="aucun zonage en cache.*sans --hors-ligne"):
        zonage.fetch(offline)


def test_sirene_unchanged_is_not_downloaded_again(publishers, tmp_path):
    from observatoire.acquisition import sirene

    first = context(publishers, tmp_path)
    first.today = "2026-11-02"
    [fetched] = sirene.fetch(first)
    path = tmp_path / "cache" / "sirene" / "2026-11-02" / "geo_siret_25.csv.gz"
    assert fetched.paths == (path,) and fetched.format == "sirene"
    assert path.read_bytes() == publishers.data.sirene
    # A month later the same URL answers 304: the November copy is kept, nothing written.
    later = context(publishers, tmp_path)
    later.today = "2026-12-04"
    [again] = sirene.fetch(later)
    assert again.paths == (path,) and again.date == "2026-11-02"
    assert publishers.seen("geo_siret_25")[-1]["If-None-Match"].startswith('"')
    assert not (tmp_path / "cache" / "sirene" / "2026-12-04").exists()


def test_bdtopo_newest_edition_cut_to_the_territory(publishers, tmp_path):
    import pyogrio

    from observatoire.acquisition import bdtopo

    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    fetched = bdtopo.fetch(ctx)
    assert [(f.kind, f.layer, f.date) for f in fetched] == [
        ("batiments", "batiment", "2025-09-15"), ("routes", "troncon_de_route", "2025-09-15"),
        ("mairies", "zone_d_activite_ou_d_interet", "2025-09-15")]
    out = fetched[0].paths[0]
    # The sample's 325 buildings and 182 road sections all lie within Gennes plus 5 km.
    assert pyogrio.read_info(out, layer="batiment")["features"] == 325
    assert pyogrio.read_info(out, layer="troncon_de_route")["features"] == 182
    # Of the three zones of interest: the school is not a town hall, the third town hall
    # lies 60 km east, beyond the 5 km margin.
    mairies = pyogrio.read_dataframe(out, layer="zone_d_activite_ou_d_interet")
    assert mairies["cleabs"].tolist() == ["SURFACTI0000000000000001"]
    archive = out.parent / f"{bdtopo_name()}.7z"
    assert Cache(tmp_path / "cache").manifest(archive) is not None
    # Offline: the cached edition, no request.
    asked = len(publishers.requests)
    offline = context(publishers, tmp_path, offline=True)
    offline.bbox_wgs84 = ctx.bbox_wgs84
    assert [f.date for f in bdtopo.fetch(offline)] == ["2025-09-15"] * 3
    assert len(publishers.requests) == asked


def bdtopo_name() -> str:
    from publishers import BDTOPO_NAME

    return BDTOPO_NAME


# --- init and telecharger -----------------------------------------------------------------

def test_init_writes_the_epci_and_its_communes(tmp_path):
    path = init_territory(tmp_path / "gbm", epci=SIREN)
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    terr = doc["territoire"]
    assert terr["epci_siren"] == SIREN and terr["epci_nom"] == "CU Grand Besançon Métropole"
    assert len(terr["communes"]) == 67 and INSEE in terr["communes"]
    assert terr["crs"] == "EPSG:2154"
    assert doc["telechargement"]["sources"] == ["cadastre", "zonage", "friches"]
    # The comment above it names every source telecharger knows.
    from observatoire.config import ACQUISITION_SOURCES

    text = path.read_text(encoding="utf-8")
    comment = text[text.index("[telechargement]"):text.index("sources = ")]
    assert all(f" {name} " in comment or f" {name}," in comment for name in ACQUISITION_SOURCES)
    with pytest.raises(ConfigError, match="existe déjà"):
        init_territory(tmp_path / "gbm", epci=SIREN)


def test_init_template_explains_date_observation(tmp_path):
    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    text = path.read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    # Commented out: the file parses and the date is left to the vintage.
    assert "date_observation" not in doc["territoire"]
    assert "\n# date_observation = 2025-01-01\n" in text
    assert "# Date de l'observation (AAAA-MM-JJ)" in text
    # Uncommented, it is the territory's date of observation (in [territoire]).
    enabled = text.replace("# date_observation = ", "date_observation = ")
    assert tomllib.loads(enabled)["territoire"]["date_observation"] == dt.date(2025, 1, 1)
    # With a source (as telecharger adds them), the territory loads with that date.
    parcelles = SAMPLE / "parcel.gpkg"
    path.write_text(enabled + f'\n[sources.parcelles]\nchemin = "{parcelles}"\n'
                              'format = "bdparcellaire"\ncouche = "parcel"\n', encoding="utf-8")
    assert load_territory(path).options.date_observation == dt.date(2025, 1, 1)


def test_init_overseas_takes_the_legal_crs(tmp_path):
    path = init_territory(tmp_path / "re", communes=["97411"])
    terr = tomllib.loads(path.read_text(encoding="utf-8"))["territoire"]
    assert (terr["nom"], terr["crs"]) == ("Saint-Denis", "EPSG:2975")


def test_init_unknown_codes_name_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"SIREN d'EPCI inconnu : '242500362'.*Grand "
                                          r"Besançon Métropole \(SIREN 242500361\)"):
        init_territory(tmp_path / "x", epci="242500362")
    with pytest.raises(ConfigError, match=r"code INSEE inconnu : '25999'.*les plus proches"):
        init_territory(tmp_path / "x", communes=["25999"])
    assert not (tmp_path / "x").exists()


def test_telecharger_declares_the_sources_so_the_territory_loads(publishers, tmp_path):
    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    outcome = telecharger(path, client=client(), mirror=publishers.url, page_size=10)
    assert outcome.failed == {} and outcome.exit_status == 0
    assert outcome.written == ["parcelles", "batiments", "zonage", "friches"]
    text = path.read_text(encoding="utf-8")
    assert text.index(BEGIN) < text.index("[sources.parcelles]") < text.index(END)
    territory = load_territory(path)
    assert territory.source("parcelles").paths == (
        (tmp_path / "gennes" / "cache" / "cadastre" / MILLESIMES[-1] / INSEE
         / PARCELLES).resolve(),)
    assert territory.source("parcelles").format == "etalab"
    assert territory.source("friches").format == "cartofriches"
    assert territory.source("zonage").producer == "Géoportail de l'Urbanisme (IGN)"
    # A second run rewrites the block, never duplicates it.
    telecharger(path, client=client(), mirror=publishers.url, offline=True)
    assert path.read_text(encoding="utf-8").count("[sources.parcelles]") == 1


def test_a_source_declared_by_hand_is_left_to_the_user(publishers, tmp_path):
    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    own = tmp_path / "mes_friches.geojson"
    own.write_bytes((Path(__file__).parents[1] / "data" / "sample"
                     / "cartofriches_subset_gennes_25267_5km.geojson").read_bytes())
    path.write_text(path.read_text(encoding="utf-8").replace(
        "[sorties]", f'[sources.friches]\nchemin = "{own}"\n\n[sorties]'), encoding="utf-8")
    outcome = telecharger(path, client=client(), mirror=publishers.url)
    assert "friches" not in outcome.written
    assert load_territory(path).source("friches").paths == (own,)


def test_telecharger_keeps_the_others_when_one_fails(publishers, tmp_path):
    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    publishers.inject("geofriches", ("statut", 404))
    outcome = telecharger(path, client=client(), mirror=publishers.url)
    assert set(outcome.failed) == {"friches"} and outcome.failed["friches"].status == 404
    assert outcome.exit_status == EXIT_FAILED + 4
    territory = load_territory(path)
    assert territory.source("friches") is None and territory.source("zonage") is not None


def test_telecharger_without_the_cadastre_leaves_the_file_unchanged(publishers, tmp_path):
    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    before = path.read_text(encoding="utf-8")
    publishers.inject(PARCELLES, ("statut", 404))
    outcome = telecharger(path, client=client(), mirror=publishers.url)
    # No parcels: no box for Cartofriches either; the zoning stays in the cache.
    assert set(outcome.failed) == {"cadastre", "friches"}
    assert outcome.exit_status == EXIT_FAILED + 1 + 4
    assert "emprise du territoire inconnue" in str(outcome.failed["friches"])
    assert path.read_text(encoding="utf-8") == before
    assert list((tmp_path / "gennes" / "cache" / "zonage").rglob("zone_urba.geojson"))


def test_verifier_tells_a_newer_vintage_without_downloading(publishers, tmp_path):
    path = init_territory(tmp_path / "gennes", communes=[INSEE], sources=["cadastre"])
    telecharger(path, client=client(), mirror=publishers.url, millesime=MILLESIMES[0])
    files = publishers.seen(".json.gz")
    [line] = verifier(path, client=client(), mirror=publishers.url)
    assert (line.cached, line.published, line.newer) == (MILLESIMES[0], MILLESIMES[1], True)
    assert publishers.seen(".json.gz") == files  # nothing downloaded
    telecharger(path, client=client(), mirror=publishers.url)
    [line] = verifier(path, client=client(), mirror=publishers.url)
    assert (line.cached, line.newer) == (MILLESIMES[1], False)


def test_telecharger_table_is_checked_with_the_territory(tmp_path):
    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    path.write_text(path.read_text(encoding="utf-8").replace(
        'millesime = "latest"', 'millesime = "2025-13-01"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"telechargement\.millesime.*2025-13-01"):
        telecharger(path, client=client(), mirror="http://127.0.0.1:9")


def test_write_sources_refuses_a_file_build_would_refuse(tmp_path):
    from observatoire.acquisition.contexte import Fetched

    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    before = path.read_text(encoding="utf-8")
    missing = Fetched("parcelles", (tmp_path / "absent.json.gz",), "format-inconnu", "DGFiP",
                      "2025-09-01")
    with pytest.raises(ConfigError, match=r"sources\.parcelles\.format.*fichier non modifié"):
        write_sources(path, [missing])
    assert path.read_text(encoding="utf-8") == before


def test_manifest_round_trip(tmp_path):
    cache = Cache(tmp_path)
    data = b'{"type":"FeatureCollection","features":[]}'
    path = cache.store(data, url="http://x/y", source="zonage", millesime="2026-01-02",
                       name="zone_urba.geojson", producer="GPU")
    manifest = cache.manifest(path)
    assert isinstance(manifest, Manifest)
    assert (manifest.taille, manifest.millesime, manifest.producteur) == (42, "2026-01-02",
                                                                          "GPU")
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert cache.millesimes("zonage") == ["2026-01-02"]
    assert cache.newest("zonage", "zone_urba.geojson") == path


@pytest.mark.skipif(os.environ.get("OBSERVATOIRE_RESEAU") != "1",
                    reason="test contre les vrais producteurs : OBSERVATOIRE_RESEAU=1 pour le "
                           "lancer (accès Internet requis)")
def test_real_publishers(tmp_path, monkeypatch):
    monkeypatch.delenv("OBSERVATOIRE_MIROIR", raising=False)
    path = init_territory(tmp_path / "gennes", communes=[INSEE])
    outcome = telecharger(path, client=Client(timeout=60))
    assert outcome.failed == {}, {k: str(v) for k, v in outcome.failed.items()}
    territory = load_territory(path)
    with gzip.open(territory.source("parcelles").path) as f:
        assert json.load(f)["features"]


@pytest.mark.skipif(os.environ.get("OBSERVATOIRE_RESEAU") != "1",
                    reason="test contre les vrais producteurs : OBSERVATOIRE_RESEAU=1 pour le "
                           "lancer (accès Internet requis)")
def test_real_publishers_terrain_and_constraints(tmp_path, monkeypatch):
    monkeypatch.delenv("OBSERVATOIRE_MIROIR", raising=False)
    path = init_territory(tmp_path / "gennes", communes=[INSEE],
                          sources=["cadastre", "bdalti", "georisques", "patrinat"])
    outcome = telecharger(path, client=Client(timeout=120))
    assert outcome.failed == {}, {k: str(v) for k, v in outcome.failed.items()}
    assert load_territory(path).source("mnt") is not None


# --- command line -------------------------------------------------------------------------

def test_cli_init_unknown_siren_is_one_french_line(tmp_path, capsys):
    from observatoire.cli import main

    assert main(["init", "--epci", "24250036", "--dossier", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("erreur : SIREN d'EPCI inconnu : '24250036' ; les plus proches : "
                          "CU Grand Besançon Métropole (SIREN 242500361)")


def test_cli_telecharger_names_the_failed_source_in_its_exit_status(publishers, tmp_path,
                                                                    monkeypatch, capsys):
    from observatoire.cli import main

    monkeypatch.setenv("OBSERVATOIRE_MIROIR", publishers.url)
    assert main(["-q", "init", "--communes", INSEE, "--dossier", str(tmp_path / "g")]) == 0
    publishers.inject("geofriches", ("statut", 404))
    status = main(["telecharger", "--config", str(tmp_path / "g" / "territoire.toml")])
    assert status == EXIT_FAILED + 4
    err = capsys.readouterr().err
    assert re.search(r"échec : friches \(HTTP 404\) : http://127\.0\.0\.1:\d+/apidf-preprod"
                     r"\.cerema\.fr/cartofriches/geofriches/\?in_bbox=", err)
    assert "sources en échec : friches ; les autres sont gardées (code de sortie 68)" in err


def test_cli_verifier_and_help(publishers, tmp_path, monkeypatch, capsys):
    from observatoire.cli import main

    monkeypatch.setenv("OBSERVATOIRE_MIROIR", publishers.url)
    path = init_territory(tmp_path / "g", communes=[INSEE], sources=["cadastre"])
    telecharger(path, client=client(), millesime=MILLESIMES[0])
    capsys.readouterr()
    assert main(["telecharger", "--config", str(path), "--verifier"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cadastre\s+en cache : 2025-04-01\s+publié : 2025-09-01\s+plus récent "
                     r"publié", out)
    with pytest.raises(SystemExit):
        main(["telecharger", "--aide"])
    help_text = capsys.readouterr().out
    assert "--hors-ligne" in help_text and "exemples" in help_text
    assert "observatoire telecharger --config t.toml --verifier" in help_text


def test_bdtopo_layers_replace_the_cadastre_buildings_and_validate(publishers, tmp_path):
    from observatoire.validate import validate_territory

    path = init_territory(tmp_path / "g", communes=[INSEE],
                          sources=["cadastre", "zonage", "bdtopo"])
    outcome = telecharger(path, client=client(), mirror=publishers.url)
    assert outcome.failed == {}
    territory = load_territory(path)
    assert (territory.source("batiments").layer, territory.source("routes").layer) == (
        "batiment", "troncon_de_route")
    assert territory.source("batiments").producer == "IGN, BD TOPO"
    assert territory.source("mairies").layer == "zone_d_activite_ou_d_interet"
    ok, lines = validate_territory(path)
    assert ok, lines
    assert any("sources.routes : 182 entités gardées" in line for line in lines)
    assert any("sources.mairies : 1 entités gardées sur 1 lues" in line for line in lines)
    veille = {line.source: line for line in verifier(path, client=client(),
                                                     mirror=publishers.url)}
    assert (veille["bdtopo"].cached, veille["bdtopo"].published) == ("2025-09-15", "2025-09-15")
    assert not veille["bdtopo"].newer and veille["zonage"].published is None
    # The cadastre alone, again: the BD TOPO's buildings stay (the cadastre's are a fallback).
    telecharger(path, sources=["cadastre"], client=client(), mirror=publishers.url)
    assert load_territory(path).source("batiments").layer == "batiment"


# --- BD ALTI --------------------------------------------------------------------------------

def strasbourg(pub: Publishers, tmp_path: Path, box_l93: tuple[float, float, float, float], *,
               offline: bool = False) -> Context:
    """A fetch for Strasbourg (D067, where the BD ALTI fixture is), its box given."""
    from publishers import STRASBOURG
    from pyproj import Transformer

    ctx = Context(communes=(STRASBOURG,), epci_siren=None, crs="EPSG:2154",
                  client=None if offline else client(), cache=Cache(tmp_path / "cache"),
                  urls=Urls(pub.url))
    ctx.bbox_wgs84 = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True
                                          ).transform_bounds(*box_l93)
    return ctx


def test_bdalti_newest_25m_edition_mosaicked_and_cut(publishers, tmp_path):
    import numpy as np
    import rasterio
    from publishers import BDALTI_EDITION, BDALTI_NAME, BDALTI_SPLIT, bdalti_grid

    from observatoire.acquisition import bdalti
    from observatoire.config import Source
    from observatoire.readers.mnt import read_mnt

    box = (1_049_500.0, 6_839_000.0, 1_053_000.0, 6_841_500.0)
    ctx = strasbourg(publishers, tmp_path, box)
    assert bdalti.edition(ctx, "67") == (BDALTI_EDITION, "LAMB93-IGN69")  # not the 75 m one
    [got] = bdalti.fetch(ctx)
    assert (got.kind, got.format, got.date, got.producer) == (
        "mnt", "geotiff", BDALTI_EDITION, "IGN, BD ALTI 25 m")
    grid, transform = bdalti_grid()
    with rasterio.open(got.paths[0]) as tif:
        assert tif.crs.to_epsg() == 2154 and tif.res == (25.0, 25.0)
        left, bottom, right, top = tif.bounds
        data = tif.read(1)
    # The box in lon/lat, back in Lambert-93 (a little larger): the cut is that box snapped
    # outwards to the 25 m grid (edges at 12.5 m past a multiple of 25), and spans both tiles.
    from pyproj import Transformer

    wide = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform_bounds(
        *ctx.bbox_wgs84)
    assert box[0] - 500 < wide[0] < box[0] and box[2] < wide[2] < box[2] + 500
    snap = [math.floor((wide[0] - 12.5) / 25) * 25 + 12.5,
            math.floor((wide[1] - 12.5) / 25) * 25 + 12.5,
            math.ceil((wide[2] - 12.5) / 25) * 25 + 12.5,
            math.ceil((wide[3] - 12.5) / 25) * 25 + 12.5]
    assert [left, bottom, right, top] == pytest.approx(snap, abs=1e-6)
    assert left < BDALTI_SPLIT < right
    assert (left - transform.c) % 25 == 0 and (transform.f - top) % 25 == 0
    # Cell for cell, the fixture's grid: nothing resampled.
    r0, c0 = round((transform.f - top) / 25), round((left - transform.c) / 25)
    assert np.array_equal(data, grid[r0:r0 + data.shape[0], c0:c0 + data.shape[1]]
                          .astype(np.float32))
    archive = tmp_path / "cache" / "bdalti" / BDALTI_EDITION / f"{BDALTI_NAME}.7z"
    assert Cache(tmp_path / "cache").manifest(archive).producteur == "IGN, BD ALTI 25 m"
    manifest = Cache(tmp_path / "cache").manifest(got.paths[0])
    assert manifest.url.endswith(f"{BDALTI_NAME}.7z") and manifest.licence.startswith("Licence")
    # The build's reader takes it as it is (EPSG:2154 declared, nodata as NaN).
    mnt = read_mnt(Source(kind="mnt", paths=got.paths), crs="EPSG:2154")
    assert mnt.array.shape == data.shape
    assert np.isnan(mnt.array).sum() == (data == -99999).sum()
    # Offline: the cached edition, the same GeoTIFF, no request.
    asked = len(publishers.requests)
    [again] = bdalti.fetch(strasbourg(publishers, tmp_path, box, offline=True))
    assert again.paths == got.paths and again.date == BDALTI_EDITION
    assert len(publishers.requests) == asked


def test_bdalti_outside_its_tiles_is_refused(publishers, tmp_path):
    from observatoire.acquisition import bdalti

    ctx = strasbourg(publishers, tmp_path, (1_000_000.0, 6_700_000.0, 1_001_000.0, 6_701_000.0))
    with pytest.raises(DownloadError, match="ne couvrent pas l'emprise du territoire"):
        bdalti.fetch(ctx)
    assert not list((tmp_path / "cache" / "bdalti").rglob("*.tif"))


def test_bdalti_corrupt_archive_is_not_cached(publishers, tmp_path):
    from publishers import BDALTI_NAME

    from observatoire.acquisition import bdalti

    publishers.inject(f"{BDALTI_NAME}.7z", ("corrompu",))
    ctx = strasbourg(publishers, tmp_path, (1_050_000.0, 6_839_000.0, 1_051_000.0, 6_840_000.0))
    with pytest.raises(DownloadError, match="corrompu ou tronqué"):
        bdalti.fetch(ctx)
    assert not list((tmp_path / "cache").rglob("*.7z"))
    [got] = bdalti.fetch(ctx)  # served whole the next time
    assert got.kind == "mnt"


def test_bdalti_is_declared_as_the_mnt_and_watched(publishers, tmp_path):
    from publishers import BDALTI_EDITION, STRASBOURG

    path = init_territory(tmp_path / "s", communes=[STRASBOURG], sources=["bdalti"])
    # Without the cadastre (not served for Strasbourg) the box is unknown: named, bit 16.
    outcome = telecharger(path, client=client(), mirror=publishers.url)
    assert "emprise du territoire inconnue" in str(outcome.failed["bdalti"])
    assert outcome.exit_status == EXIT_FAILED + 16
    [line] = verifier(path, client=client(), mirror=publishers.url)
    assert (line.source, line.cached, line.published, line.newer) == (
        "bdalti", None, BDALTI_EDITION, True)
    # Fetched, it is written as the mnt source of the territory file.
    from observatoire.acquisition import bdalti

    [got] = bdalti.fetch(strasbourg(publishers, tmp_path / "s",
                                    (1_050_000.0, 6_839_000.0, 1_051_000.0, 6_840_000.0)))
    parcels = tmp_path / "s" / "parcelles.json.gz"
    parcels.write_bytes(publishers.data.cadastre["parcelles"])
    from observatoire.acquisition.contexte import Fetched

    write_sources(path, [Fetched("parcelles", (parcels,), "etalab", "DGFiP", "2025-09-01"), got])
    mnt = load_territory(path).source("mnt")
    assert (mnt.paths, mnt.format, mnt.producer) == (got.paths, "geotiff", "IGN, BD ALTI 25 m")
    [line] = verifier(path, client=client(), mirror=publishers.url)
    assert (line.cached, line.newer) == (BDALTI_EDITION, False)


# --- PatriNat -------------------------------------------------------------------------------

def test_patrinat_layers_in_the_box_become_nature_constraints(publishers, tmp_path):
    from observatoire.acquisition import patrinat

    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    publishers.inject("patrinat_znieff1", ("statut", 500))  # retried
    got = patrinat.fetch(ctx)
    # The empty layers (ZNIEFF II, Habitats directive) are not declared.
    assert [(f.kind, dict(f.extra)) for f in got] == [
        ("contraintes", {"nom": "ZNIEFF de type I", "type": "nature"}),
        ("contraintes", {"nom": "Natura 2000, directive Oiseaux (ZPS)", "type": "nature"})]
    [seen] = [q for q in publishers.requests if "patrinat_zps" in q[0]]
    assert "SRSNAME=EPSG%3A4326" in seen[0] and "urn%3Aogc%3Adef%3Acrs%3AEPSG%3A%3A4326" in seen[0]
    doc = json.loads(got[0].paths[0].read_text(encoding="utf-8"))
    assert [f["properties"]["nom_site"] for f in doc["features"]] == [
        "Vallon de Gennes", "Bois de Gennes"]
    manifest = Cache(tmp_path / "cache").manifest(got[0].paths[0])
    assert manifest.producteur == "PatriNat (OFB, MNHN)" and "patrinat_znieff1" in manifest.url


def test_patrinat_failing_second_page_fails_the_source(publishers, tmp_path):
    from observatoire.acquisition import patrinat

    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    ctx.page_size = 1  # the two ZNIEFF of type I on two pages
    publishers.inject("patrinat_znieff1%3Aznieff1&OUTPUTFORMAT=application%2Fjson&SRSNAME="
                      "EPSG%3A4326&COUNT=1&STARTINDEX=1", ("statut", 503), ("statut", 503),
                      ("statut", 503), ("statut", 503), ("statut", 503))
    with pytest.raises(DownloadError, match="503"):
        patrinat.fetch(ctx)
    assert not (tmp_path / "cache" / "patrinat").exists()


def test_patrinat_html_page_fails_the_source_and_caches_nothing(publishers, tmp_path):
    from observatoire.acquisition import patrinat

    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    publishers.inject("patrinat_zps", ("html",))
    with pytest.raises(DownloadError, match="page HTML reçue"):
        patrinat.fetch(ctx)
    assert not list((tmp_path / "cache" / "patrinat").rglob("zps*.geojson"))


def test_patrinat_constraints_are_written_and_read_by_validate(publishers, tmp_path):
    from observatoire.validate import validate_territory

    path = init_territory(tmp_path / "g", communes=[INSEE], sources=["cadastre", "patrinat"])
    # A constraint of the same name declared by hand is the user's.
    with path.open("a", encoding="utf-8") as f:
        f.write('\n[[sources.contraintes]]\nnom = "ZNIEFF de type I"\ntype = "nature"\n'
                'chemin = "../znieff_a_la_main.gpkg"\n')
    (tmp_path / "znieff_a_la_main.gpkg").write_bytes(b"")
    outcome = telecharger(path, client=client(), mirror=publishers.url)
    assert outcome.failed == {} and "contraintes" in outcome.written
    text = path.read_text(encoding="utf-8")
    block = text[text.index(BEGIN):text.index(END)]
    assert block.count("[[sources.contraintes]]") == 1
    assert 'nom = "Natura 2000, directive Oiseaux (ZPS)"\ntype = "nature"\nchemin = "cache/' \
        in block
    territory = load_territory(path)
    assert sorted(c.name for c in territory.constraints) == [
        "Natura 2000, directive Oiseaux (ZPS)", "ZNIEFF de type I"]
    assert [c.paths[0].name for c in territory.constraints
            if c.name == "ZNIEFF de type I"] == ["znieff_a_la_main.gpkg"]
    # Without the hand-made file, validate reads the fetched layer.
    path.write_text(text.replace('\n[[sources.contraintes]]\nnom = "ZNIEFF de type I"\n'
                                 'type = "nature"\nchemin = "../znieff_a_la_main.gpkg"\n', ""),
                    encoding="utf-8")
    telecharger(path, client=client(), mirror=publishers.url)
    ok, lines = validate_territory(path)
    assert ok, lines
    assert sum("sources.contraintes[" in line and "2 entités gardées sur 2 lues" in line
               for line in lines) == 1  # the ZNIEFF I
    assert sum("sources.contraintes[" in line and "1 entités gardées sur 1 lues" in line
               for line in lines) == 1  # the ZPS
    [line] = [v for v in verifier(path, client=client(), mirror=publishers.url)
              if v.source == "patrinat"]
    assert line.published is None and "sans millésime publié" in line.note


# --- Géorisques -----------------------------------------------------------------------------

def test_georisques_tri_sis_and_icpe_page_by_page(publishers, tmp_path):
    import geopandas as gpd
    import pyogrio

    from observatoire.acquisition import georisques

    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    ctx.page_size = 1  # two SIS on two pages; the first TRI layer asks for a second page
    publishers.inject("ALEA_SYNT_02_02MOY", ("statut", 500))  # retried
    got = georisques.fetch(ctx)
    assert [(f.kind, f.layer, dict(f.extra)) for f in got] == [
        ("contraintes", "zones_inondables_tri",
         {"nom": "Zones inondables du TRI, scénario moyen (Géorisques)", "type": "inondation"}),
        ("contraintes", None, {"nom": "Secteurs d'information sur les sols (Géorisques)",
                               "type": "risque_technologique"})]
    assert [q for q, _ in publishers.requests if "conclusions_sis" in q] == [
        f"/www.georisques.gouv.fr/api/v1/ssp/conclusions_sis?code_insee={INSEE}&page={n}"
        f"&page_size=1" for n in (1, 2)]
    assert len(publishers.seen("ALEA_SYNT_02_01FOR_FXX&SRSNAME")) == 2  # STARTINDEX 0, 1
    zones = pyogrio.read_dataframe(got[0].paths[0], layer="zones_inondables_tri")
    sample = gpd.read_file(SAMPLE_ZONING, layer="zoning2")
    natural = sample.geometry[sample["TYPEZONE"] == "N"]
    assert zones["couche"].tolist() == ["ALEA_SYNT_02_01FOR_FXX", "ALEA_SYNT_02_02MOY_FXX"]
    assert zones.crs.to_epsg() == 2154
    assert zones.area.tolist() == pytest.approx([natural.iloc[0].area, natural.iloc[1].area],
                                                rel=1e-5)  # GML in cm
    sis = json.loads(got[1].paths[0].read_text(encoding="utf-8"))
    assert [f["properties"]["id_sis"] for f in sis["features"]] == ["25SIS00001", "25SIS00002"]
    # Their perimeters are the sample's first two parcels, back in Lambert-93.
    parcels = gpd.read_file(SAMPLE_ZONING.with_name("parcel.gpkg")).geometry
    perimeters = gpd.read_file(got[1].paths[0]).to_crs(2154).geometry
    assert perimeters.area.tolist() == pytest.approx(parcels.area.iloc[:2].tolist(), rel=1e-6)
    # The ICPE are cached, as points, but not declared: a constraint is an area.
    icpe = tmp_path / "cache" / "georisques" / ctx.today / "icpe.geojson"
    [plant] = json.loads(icpe.read_text(encoding="utf-8"))["features"]
    assert plant["geometry"]["type"] == "Point" and plant["properties"]["codeAIOT"] == \
        "0006500001"
    manifest = Cache(tmp_path / "cache").manifest(icpe)
    assert manifest.producteur.startswith("Géorisques") and manifest.licence.startswith("Licence")


def test_georisques_failing_second_page_fails_the_source(publishers, tmp_path):
    from observatoire.acquisition import georisques

    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    ctx.page_size = 1
    publishers.inject(f"conclusions_sis?code_insee={INSEE}&page=2", ("statut", 404))
    with pytest.raises(DownloadError, match="404"):
        georisques.fetch(ctx)
    assert not (tmp_path / "cache" / "georisques").exists()


@pytest.mark.parametrize("fault, message", [(("html",), "page HTML reçue au lieu de GML"),
                                            (("corrompu",), "GML illisible")])
def test_georisques_wfs_bad_answers_are_refused(publishers, tmp_path, fault, message):
    from observatoire.acquisition import georisques

    ctx = context(publishers, tmp_path)
    cadastre.fetch(ctx)
    publishers.inject("ALEA_SYNT_02_01FOR", fault)
    with pytest.raises(DownloadError, match=message):
        georisques.fetch(ctx)
    assert not (tmp_path / "cache" / "georisques").exists()


def test_georisques_wfs_exception_report_is_named(publishers, tmp_path):
    from observatoire.acquisition import georisques
    from observatoire.acquisition.http import Client

    url_box = (936000.0, 6687000.0, 937000.0, 6688000.0)
    with pytest.raises(DownloadError, match="exception.*InvalidParameterValue"):
        georisques.wfs_gml(Client(timeout=5.0), Urls(publishers.url), "ms:INCONNUE", url_box)


def test_georisques_constraints_are_written_and_validate(publishers, tmp_path):
    from observatoire.validate import validate_territory

    path = init_territory(tmp_path / "g", communes=[INSEE], sources=["cadastre", "georisques"])
    outcome = telecharger(path, client=client(), mirror=publishers.url)
    assert outcome.failed == {}
    territory = load_territory(path)
    assert [(c.name, c.constraint_type, c.strict, c.layer) for c in territory.constraints] == [
        ("Zones inondables du TRI, scénario moyen (Géorisques)", "inondation", False,
         "zones_inondables_tri"),
        ("Secteurs d'information sur les sols (Géorisques)", "risque_technologique", False,
         None)]
    ok, lines = validate_territory(path)
    assert ok, lines
    assert any("sources.contraintes[0] : 2 entités gardées sur 2 lues" in line for line in lines)
    assert any("sources.contraintes[1] : 2 entités gardées sur 2 lues" in line for line in lines)
    # Offline: the same files, no request.
    asked = len(publishers.requests)
    before = path.read_text(encoding="utf-8")
    assert telecharger(path, offline=True).failed == {}
    assert len(publishers.requests) == asked and path.read_text(encoding="utf-8") == before


def test_a_run_of_some_sources_keeps_what_the_others_declared(publishers, tmp_path):
    path = init_territory(tmp_path / "g", communes=[INSEE],
                          sources=["cadastre", "zonage", "georisques"])
    assert telecharger(path, client=client(), mirror=publishers.url).failed == {}
    first = path.read_text(encoding="utf-8")
    # The cadastre alone, again: the zoning and the constraints stay declared, unchanged.
    outcome = telecharger(path, sources=["cadastre"], client=client(), mirror=publishers.url)
    assert outcome.written == ["parcelles", "batiments", "zonage", "contraintes"]
    assert path.read_text(encoding="utf-8") == first
    # A declared file that is gone is dropped (rather than the file refused).
    zoning = load_territory(path).source("zonage").path
    zoning.unlink()
    telecharger(path, sources=["cadastre"], client=client(), mirror=publishers.url)
    territory = load_territory(path)
    assert territory.source("zonage") is None and len(territory.constraints) == 2


def test_georisques_sis_geometry_in_its_declared_crs():
    from observatoire.acquisition.georisques import _geometry

    square = {"type": "Polygon", "coordinates": [[[936000, 6687000], [936100, 6687000],
                                                  [936100, 6687100], [936000, 6687000]]]}
    # Declared in Lambert-93: brought back to longitude/latitude (Gennes is at 6.1° E, 47.2° N).
    got = _geometry({**square, "crs": {"type": "name", "properties": {"name": "EPSG:2154"}}},
                    "u", "SIS1")
    lon, lat = got["coordinates"][0][0]
    assert (round(lon, 1), round(lat, 1)) == (6.1, 47.2)
    # Undeclared and not longitude/latitude: refused, not guessed.
    with pytest.raises(DownloadError, match="SIS SIS1 : « geom » sans CRS déclaré"):
        _geometry(square, "u", "SIS1")
    # A feature whose geometry is a JSON string (the API's « geom » type allows it).
    feature = {"type": "Feature", "geometry": json.dumps(
        {"type": "Point", "coordinates": [6.1, 47.2]})}
    assert _geometry(feature, "u", "SIS1") == {"type": "Point", "coordinates": [6.1, 47.2]}


@pytest.mark.parametrize("fragment, fault, message", [
    ("resource/BDALTI", ("html",), "aucune édition de la BD ALTI 25 m"),
    ("resource/BDALTI", ("statut", 404), "404"),
    ("download/BDALTI", ("statut", 404), "404"),
    ("download/BDALTI", ("html",), "page HTML"),
])
def test_bdalti_faults_name_the_url_and_cache_nothing(publishers, tmp_path, fragment, fault,
                                                      message):
    from observatoire.acquisition import bdalti

    publishers.inject(fragment, fault)
    ctx = strasbourg(publishers, tmp_path, (1_050_000.0, 6_839_000.0, 1_051_000.0, 6_840_000.0))
    with pytest.raises(DownloadError, match=message) as err:
        bdalti.fetch(ctx)
    assert "BDALTI" in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.7z")) and not list(
        (tmp_path / "cache").rglob("*.tif"))


def test_bdalti_500_then_success_is_retried(publishers, tmp_path):
    from observatoire.acquisition import bdalti

    publishers.inject("download/BDALTI", ("statut", 500))
    ctx = strasbourg(publishers, tmp_path, (1_050_000.0, 6_839_000.0, 1_051_000.0, 6_840_000.0))
    [got] = bdalti.fetch(ctx)
    assert got.kind == "mnt" and len(publishers.seen("download/BDALTI")) == 2


def test_georisques_and_patrinat_offline_use_the_newest_cache_or_say_none(publishers, tmp_path):
    from observatoire.acquisition import georisques, patrinat

    offline = context(publishers, tmp_path, offline=True)
    with pytest.raises(DownloadError, match=r"aucune donnée Géorisques en cache ; relancez sans "
                                            r"--hors-ligne"):
        georisques.fetch(offline)
    with pytest.raises(DownloadError, match=r"aucune couche PatriNat en cache ; relancez sans "
                                            r"--hors-ligne"):
        patrinat.fetch(offline)
    online = context(publishers, tmp_path)
    cadastre.fetch(online)
    fetched = {"georisques": georisques.fetch(online), "patrinat": patrinat.fetch(online)}
    assert len(fetched["georisques"]) == 2 and len(fetched["patrinat"]) >= 1
    asked = len(publishers.requests)
    offline = context(publishers, tmp_path, offline=True)
    for name, module in (("georisques", georisques), ("patrinat", patrinat)):
        again = module.fetch(offline)
        # The same declarations from the cache, dated by the folder of the copy used.
        assert [(f.paths, f.extra, f.date) for f in again] == [
            (f.paths, f.extra, f.date) for f in fetched[name]], name
    assert len(publishers.requests) == asked  # nothing asked offline
    # Only the ICPE in the cache: no error, and nothing declared (points are not areas).
    folder = tmp_path / "cache" / "georisques" / online.today
    for name in (georisques.TRI_NAME, georisques.SIS_NAME):
        (folder / name).unlink()
    assert georisques.fetch(context(publishers, tmp_path, offline=True)) == []


def test_publishers_without_the_territory_box_name_the_cadastre(publishers, tmp_path):
    from observatoire.acquisition import georisques, patrinat

    ctx = context(publishers, tmp_path)  # the cadastre not fetched: no box
    for module in (georisques, patrinat, friches):
        with pytest.raises(DownloadError, match=r"emprise du territoire inconnue \(le cadastre, "
                                                r"qui donne le contour des communes, n'a pas "
                                                r"été téléchargé\)"):
            module.fetch(ctx)
