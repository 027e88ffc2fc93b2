"""Fuzzing the readers: random bytes, truncations and corruptions of real files.

Whatever the bytes, a reader either returns a layer or raises one of the
project's own errors (:class:`ObservatoireError`): never a GDAL, shapely, pandas
or Python exception, never a crash.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from conftest import SAMPLE, TESTDATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_inputs import etalab_geojson
from test_readers import assert_same_as_gdal, etalab_lines, mixed_parcels

from observatoire.config import Source
from observatoire.errors import ObservatoireError
from observatoire.readers.cadastre import parse_etalab_lines, read_parcelles
from observatoire.readers.friches import read_friches
from observatoire.readers.layers import read_zonage
from observatoire.readers.zae import read_zae

#: A quick, deterministic pass in the suite; ``OBSERVATOIRE_FUZZ=2000`` runs a longer,
#: random campaign (``OBSERVATOIRE_FUZZ=2000 pytest tests/test_fuzz.py``).
_LONG = int(os.environ.get("OBSERVATOIRE_FUZZ", "0"))
FUZZ = settings(max_examples=_LONG or 40, deadline=None, derandomize=not _LONG, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def seeds(folder) -> dict[str, bytes]:
    """Small real files, one per format."""
    etalab = etalab_geojson(folder / "etalab.json", n=8).read_bytes()
    zae = folder / "zae.gpkg"
    zoning = pyogrio.read_dataframe(SAMPLE / "zoning.gpkg", layer="zoning2", max_features=5)
    gpd.GeoDataFrame({"site_id": [f"25267_SITE-ECO_{i:05d}" for i in range(len(zoning))],
                      "site_nom": zoning["LIBELLE"]},
                     geometry=zoning.geometry.values, crs=zoning.crs).to_file(
        zae, layer="site_eco")
    csv_lines = [
        "site_id;site_nom;site_type;site_statut;comm_insee;unite_fonciere_refcad;geompoint;"
        "geomsurf",
        "25056_1;Usine Lip;friche industrielle;friche sans projet;25056;"
        "25056000AB0012|25056000AB0013;POINT (6.0412 47.2247);",
        "25056_2;Gare de la Mouillère;friche ferroviaire;friche avec projet;25056;;"
        "POINT (6.0331 47.2399);POLYGON ((6.033 47.2398, 6.0333 47.2398, 6.0333 47.24, "
        "6.033 47.24, 6.033 47.2398))",
    ]
    lines = etalab_lines(pyogrio.read_dataframe(folder / "etalab.json"))
    return {
        "etalab": etalab,
        "etalab_gz": gzip.compress(etalab),
        "etalab_lines": lines,
        "etalab_lines_gz": gzip.compress(lines),
        "etalab_lines_mixed": etalab_lines(mixed_parcels()),
        "edigeo": (TESTDATA / "edigeo-25354000AB01.tar.bz2").read_bytes(),
        "friches_csv": ("\n".join(csv_lines) + "\n").encode(),
        "friches_geojson": (SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson").read_bytes(),
        "zonage_gpkg": (SAMPLE / "zoning.gpkg").read_bytes(),
        "zae_gpkg": zae.read_bytes(),
    }


def corruptions(seed: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, truncations, a changed byte, or a good start followed by junk."""
    n = len(seed)
    return st.one_of(
        st.binary(max_size=4096),
        st.integers(0, n - 1).map(lambda k: seed[:k]),
        st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
            lambda t: seed[:t[0]] + bytes([t[1]]) + seed[t[0] + 1:]),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=256)).map(
            lambda t: seed[:t[0]] + t[1]),
    )


def feed(folder: Path, name: str, data: bytes, reader: Callable[[Path], object]) -> None:
    path = folder / f"{next(_counter)}-{name}"
    path.write_bytes(data)
    try:
        reader(path)
    except ObservatoireError:
        pass
    finally:
        path.unlink(missing_ok=True)


def _parcelles(path: Path) -> object:
    return read_parcelles(Source(kind="parcelles", paths=(path,), key="sources.parcelles"),
                          crs="EPSG:2154")


def _friches(path: Path, fmt: str) -> object:
    return read_friches(Source(kind="friches", paths=(path,), format=fmt,
                               key="sources.friches"), crs="EPSG:2154")


# A strategy needs the seed bytes, known only once the fixture ran: draw inside the test.

@FUZZ
@given(data=st.data())
def test_fuzz_etalab_geojson(folder, seeds, data):
    feed(folder, "cadastre-25267.json", data.draw(corruptions(seeds["etalab"])), _parcelles)


@FUZZ
@given(data=st.data())
def test_fuzz_etalab_gzip(folder, seeds, data):
    feed(folder, "cadastre-25267.json.gz", data.draw(corruptions(seeds["etalab_gz"])),
         _parcelles)


@FUZZ
@given(data=st.data())
def test_fuzz_etalab_lines(folder, seeds, data):
    """Etalab's one-feature-per-line layout, which Arrow parses."""
    feed(folder, "cadastre-25267.json", data.draw(corruptions(seeds["etalab_lines"])),
         _parcelles)


@FUZZ
@given(data=st.data())
def test_fuzz_etalab_lines_gzip(folder, seeds, data):
    feed(folder, "cadastre-25267.json.gz", data.draw(corruptions(seeds["etalab_lines_gz"])),
         _parcelles)


@FUZZ
@given(data=st.data(), seed=st.sampled_from(["etalab_lines", "etalab_lines_mixed"]))
def test_fuzz_arrow_parsing_agrees_with_gdal(seeds, data, seed):
    """Whatever Arrow accepts, GDAL reads the same way (else Arrow must decline)."""
    raw = data.draw(corruptions(seeds[seed]))
    fast = parse_etalab_lines(raw)
    if fast is not None:
        assert_same_as_gdal(fast, raw)


@FUZZ
@given(data=st.data())
def test_fuzz_gzip_of_corrupt_json(folder, seeds, data):
    inner = data.draw(corruptions(seeds["etalab"]))
    feed(folder, "cadastre-25267.json.gz", gzip.compress(inner), _parcelles)


@FUZZ
@given(data=st.data())
def test_fuzz_edigeo_tar_bz2(folder, seeds, data):
    feed(folder, "edigeo-25354000AB01.tar.bz2", data.draw(corruptions(seeds["edigeo"])),
         _parcelles)


@FUZZ
@given(data=st.data())
def test_fuzz_edigeo_inside_the_archive(folder, seeds, data):
    """A valid bzip2 stream around a corrupted tar (CRC checks pass, the content is bad)."""
    tar = bz2.decompress(seeds["edigeo"])
    feed(folder, "edigeo-25354000AB01.tar.bz2", bz2.compress(data.draw(corruptions(tar))),
         _parcelles)


@FUZZ
@given(data=st.data())
def test_fuzz_friches_csv(folder, seeds, data):
    feed(folder, "friches.csv", data.draw(corruptions(seeds["friches_csv"])),
         lambda p: _friches(p, "cnig_csv"))


@FUZZ
@given(data=st.data())
def test_fuzz_friches_geojson(folder, seeds, data):
    feed(folder, "friches.geojson", data.draw(corruptions(seeds["friches_geojson"])),
         lambda p: _friches(p, "cartofriches"))


@FUZZ
@given(data=st.data())
def test_fuzz_zonage_geopackage(folder, seeds, data):
    feed(folder, "zonage.gpkg", data.draw(corruptions(seeds["zonage_gpkg"])),
         lambda p: read_zonage(Source(kind="zonage", paths=(p,), key="sources.zonage"),
                               crs="EPSG:2154"))


@FUZZ
@given(data=st.data())
def test_fuzz_zae_geopackage(folder, seeds, data):
    feed(folder, "zae.gpkg", data.draw(corruptions(seeds["zae_gpkg"])),
         lambda p: read_zae(Source(kind="zae", paths=(p,), key="sources.zae"),
                            crs="EPSG:2154"))


def test_seeds_are_readable(folder, seeds):
    """The uncorrupted seeds read fine: the fuzzing starts from valid files."""
    for name, reader, fname in (
        ("etalab", _parcelles, "cadastre-25267.json"),
        ("etalab_gz", _parcelles, "cadastre-25267.json.gz"),
        ("etalab_lines", _parcelles, "cadastre-25267.json"),
        ("etalab_lines_gz", _parcelles, "cadastre-25267.json.gz"),
        ("edigeo", _parcelles, "edigeo-25354000AB01.tar.bz2"),
        ("friches_csv", lambda p: _friches(p, "cnig_csv"), "friches.csv"),
        ("friches_geojson", lambda p: _friches(p, "cartofriches"), "friches.geojson"),
    ):
        path = folder / f"seed-{fname}"
        path.write_bytes(seeds[name])
        assert len(reader(path).frame) > 0, name
