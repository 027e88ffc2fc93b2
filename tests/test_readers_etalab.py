"""The fast Etalab reader (observatoire.readers.etalab): identical to GDAL, or it declines.

Real file: ``../shared/data/real/etalab-cadastre/cadastre-91216-parcelles.json``
(Épinay-sur-Orge, 4,241 parcels, 30 with holes). The odd cases are built by editing
a copy of its first real features, as each test says: a MultiPolygon made of two
real polygons (one with its hole), null and missing properties, a number written as
text, an empty and a null geometry, 3D points, an unclosed ring.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import shared_file
from geopandas.testing import assert_geodataframe_equal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import corruptions
from test_readers import parcelles

import observatoire.readers.cadastre as cadastre
from observatoire.errors import ObservatoireError
from observatoire.readers.cadastre import parse_etalab_lines, read_parcelles
from observatoire.readers.etalab import gunzip, parse_etalab, read_etalab
from observatoire.readers.gdal import python_text, read_vector

ETALAB = "etalab-cadastre/cadastre-91216-parcelles.json"
HEAD = b'{"type":"FeatureCollection","features":[\n'


def gdal(data: bytes) -> gpd.GeoDataFrame:
    """GDAL's reading of the same bytes (the project's GDAL path)."""
    return python_text(pyogrio.read_dataframe(data, use_arrow=True, on_invalid="fix"))


def assert_identical(fast: gpd.GeoDataFrame, slow: gpd.GeoDataFrame) -> None:
    """Same columns, dtypes, order, values, CRS, and geometries byte for byte."""
    assert list(fast.columns) == list(slow.columns)
    assert list(fast.dtypes) == list(slow.dtypes)
    assert fast.crs == slow.crs
    assert (shapely.to_wkb(fast.geometry.values) == shapely.to_wkb(slow.geometry.values)).all()
    assert_geodataframe_equal(fast, slow, check_less_precise=False)


@pytest.fixture(scope="module")
def real() -> Path:
    return shared_file(ETALAB)


@pytest.fixture(scope="module")
def features(real) -> list[dict]:
    """The real file's first five features, as JSON objects."""
    lines = real.read_bytes().split(b"\n")[1:6]
    return [json.loads(line.rstrip(b",")) for line in lines]


def collection(features: list[dict]) -> bytes:
    """Features written as Etalab writes them (one per line)."""
    body = ",\n".join(json.dumps(f, separators=(",", ":"), ensure_ascii=False)
                      for f in features)
    return HEAD + body.encode() + b"]}"


# --- the real file ---------------------------------------------------------------------------

def test_real_file_is_read_as_gdal_reads_it(real):
    fast = read_etalab(real)
    assert fast is not None and len(fast) == 4241
    assert fast.crs == "EPSG:4326"
    assert int((shapely.get_num_interior_rings(fast.geometry.values) > 0).sum()) == 30
    assert_identical(fast, read_vector(real))
    assert_identical(fast, parse_etalab_lines(real.read_bytes()))


def test_real_file_gzipped_gives_the_same_layer(real, tmp_path):
    path = tmp_path / "cadastre-91216-parcelles.json.gz"
    path.write_bytes(gzip.compress(real.read_bytes()))
    assert_identical(read_etalab(path), read_vector(real))


def test_projection_on_flat_arrays_equals_to_crs(real):
    fast = read_etalab(real, crs="EPSG:2154")
    slow = read_vector(real).to_crs("EPSG:2154")
    assert fast.crs.to_epsg() == 2154
    assert_identical(fast, slow)
    # One parcel by hand: its first point, projected alone.
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 2154, always_xy=True).transform(2.3264631, 48.679716)
    assert shapely.get_coordinates(fast.geometry.iloc[0])[0].tolist() == [x, y]


def test_read_parcelles_gives_the_same_layer_as_the_gdal_path(real, monkeypatch):
    fast = read_parcelles(parcelles(real), crs="EPSG:2154")
    monkeypatch.setattr(cadastre, "read_etalab", lambda path, **kw: None)
    monkeypatch.setattr(cadastre, "parse_etalab_lines", lambda data: None)
    slow = read_parcelles(parcelles(real), crs="EPSG:2154")
    pd.testing.assert_frame_equal(pd.DataFrame(fast.frame.to_wkb()),
                                  pd.DataFrame(slow.frame.to_wkb()))
    assert fast.report.repairs == slow.report.repairs
    assert fast.report.features_read == slow.report.features_read == 4241


# --- odd cases, built from copies of real features --------------------------------------------

def _multipolygon(fs: list[dict]) -> list[dict]:
    """Feature 1 becomes a MultiPolygon: its own polygon (with its hole) and feature 2's."""
    assert fs[0]["geometry"]["type"] == "Polygon" and len(fs[0]["geometry"]["coordinates"]) == 2
    fs[0]["geometry"] = {"type": "MultiPolygon", "coordinates": [
        fs[0]["geometry"]["coordinates"], fs[1]["geometry"]["coordinates"]]}
    fs[3]["geometry"] = {"type": "MultiPolygon", "coordinates": [fs[3]["geometry"]["coordinates"]]}
    return fs


def _nulls(fs: list[dict]) -> list[dict]:
    """Null text, number, boolean and date in features 2 and 3."""
    fs[1]["properties"].update(section=None, contenance=None)
    fs[2]["properties"].update(arpente=None, created=None)
    return fs


def _missing_keys(fs: list[dict]) -> list[dict]:
    """Features 2 and 4 lack keys the first one has."""
    del fs[1]["properties"]["prefixe"], fs[1]["properties"]["contenance"]
    del fs[3]["properties"]["updated"]
    return fs


def _all_null_column(fs: list[dict]) -> list[dict]:
    for f in fs:
        f["properties"]["prefixe"] = None
    return fs


def _int64(fs: list[dict]) -> list[dict]:
    """A contenance beyond 32 bits: GDAL reads the field as a 64-bit integer."""
    fs[2]["properties"]["contenance"] = 2**31
    fs[3]["properties"]["contenance"] = -(2**31) - 1
    return fs


def _int32_bounds(fs: list[dict]) -> list[dict]:
    fs[2]["properties"]["contenance"] = 2**31 - 1
    fs[3]["properties"]["contenance"] = -(2**31)
    return fs


def _float(fs: list[dict]) -> list[dict]:
    fs[2]["properties"]["contenance"] = 1234.5
    return fs


ACCEPTED = {
    "entier 64 bits": _int64,
    "entier 32 bits aux bornes": _int32_bounds,
    "nombre décimal parmi des entiers": _float,
    "multipolygones et trou": _multipolygon,
    "valeurs nulles": _nulls,
    "clés absentes": _missing_keys,
    "colonne toute nulle": _all_null_column,
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_odd_but_regular_files_are_read_as_gdal_reads_them(case, features):
    data = collection(ACCEPTED[case](json.loads(json.dumps(features))))
    fast = parse_etalab(data)
    assert fast is not None, "le lecteur rapide devrait lire ce fichier"
    assert_identical(fast, gdal(data))


def test_multipolygons_keep_their_order_and_holes(features):
    data = collection(_multipolygon(json.loads(json.dumps(features))))
    fast = parse_etalab(data)
    assert fast.geom_type.tolist() == ["MultiPolygon", "Polygon", "Polygon", "MultiPolygon",
                                       "Polygon"]
    assert shapely.get_num_geometries(fast.geometry.values).tolist() == [2, 1, 1, 1, 1]
    assert shapely.get_num_interior_rings(fast.geometry.iloc[0].geoms[0]) == 1
    assert fast["id"].tolist() == [f["properties"]["id"] for f in features]


def _edit(fs: list[dict], n: int, **geometry_or_properties) -> list[dict]:
    for key, value in geometry_or_properties.items():
        if key == "geometry":
            fs[n]["geometry"] = value
        else:
            fs[n]["properties"][key] = value
    return fs


def _first_point(fs: list[dict], value: list) -> list[dict]:
    fs[1]["geometry"]["coordinates"][0][0] = value
    return fs


def _unclosed(fs: list[dict]) -> list[dict]:
    fs[1]["geometry"]["coordinates"][0].pop()
    return fs


DECLINED = {
    # Type changes: GDAL promotes or warns; the fast reader leaves them to it.
    "nombre écrit en texte": lambda fs: _edit(fs, 2, contenance="1234"),
    "texte écrit en nombre": lambda fs: _edit(fs, 2, numero=37),
    "géométrie vide": lambda fs: _edit(fs, 1, geometry={"type": "Polygon", "coordinates": []}),
    "géométrie nulle": lambda fs: _edit(fs, 1, geometry=None),
    "point": lambda fs: _edit(fs, 1, geometry={"type": "Point", "coordinates": [2.3, 48.6]}),
    "coordonnées 3D": lambda fs: _first_point(fs, [2.3264631, 48.679716, 80.0]),
    "coordonnée seule": lambda fs: _first_point(fs, [2.3264631]),
    "anneau non fermé": _unclosed,
    "propriété objet": lambda fs: _edit(fs, 1, section={"a": 1}),
    "date impossible": lambda fs: _edit(fs, 2, created="2019-02-30"),
    "sans propriétés": lambda fs: [dict(f, properties={}) for f in fs],
    "propriétés sans objet": lambda fs: [dict(f, properties=None) for f in fs],
}


def _duplicate_key(data: bytes) -> bytes:
    """The second feature's section written twice (JSON allows it; GDAL keeps the last)."""
    head, first, second, rest = data.split(b"\n", 3)
    assert b'"section":"AB"' in second
    second = second.replace(b'"section":"AB"', b'"section":"AB","section":"ZZ"', 1)
    return b"\n".join([head, first, second, rest])


def test_duplicate_property_is_declined_and_read_by_gdal(features, tmp_path):
    data = _duplicate_key(collection(features))
    assert parse_etalab(data) is None
    assert gdal(data)["section"].tolist()[:3] == ["AB", "ZZ", "AB"]


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_unusual_files_are_declined_and_read_as_before(case, features, tmp_path, monkeypatch):
    data = collection(DECLINED[case](json.loads(json.dumps(features))))
    assert parse_etalab(data) is None
    path = tmp_path / "cadastre-91216-parcelles.json.gz"
    path.write_bytes(gzip.compress(data))
    outcomes = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(cadastre, "read_etalab", lambda path, **kw: None)
        try:
            result = read_parcelles(parcelles(path), crs="EPSG:2154")
            outcomes.append(pd.DataFrame(result.frame.to_wkb()))
        except ObservatoireError as exc:
            outcomes.append((type(exc), str(exc)))
    if isinstance(outcomes[0], pd.DataFrame):
        pd.testing.assert_frame_equal(outcomes[0], outcomes[1])
    else:
        assert outcomes[0] == outcomes[1]


# --- files it does not handle: the same messages as before ------------------------------------

def _messages(path: Path, monkeypatch) -> list[str]:
    messages = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(cadastre, "read_etalab", lambda path, **kw: None)
        with pytest.raises(ObservatoireError) as exc:
            read_parcelles(parcelles(path), crs="EPSG:2154")
        messages.append(str(exc.value))
    return messages


def test_truncated_archive_keeps_its_message(real, tmp_path, monkeypatch):
    path = tmp_path / "cadastre-91216-parcelles.json.gz"
    packed = gzip.compress(real.read_bytes())
    path.write_bytes(packed[: len(packed) // 2])
    assert read_etalab(path) is None
    fast, before = _messages(path, monkeypatch)
    assert fast == before
    assert fast.startswith(f"{path} : archive gzip corrompue ou tronquée")


def test_not_geojson_keeps_its_message(tmp_path, monkeypatch):
    path = tmp_path / "cadastre-91216-parcelles.json"
    path.write_text("commune;section;numero\n91216;AB;37\n", encoding="utf-8")
    assert read_etalab(path) is None
    fast, before = _messages(path, monkeypatch)
    assert fast == before
    assert str(path) in fast


def test_gunzip_checks_size_crc_and_members():
    packed = gzip.compress(b"0123456789" * 10)
    assert gunzip(packed, limit=100) == b"0123456789" * 10
    assert gunzip(packed, limit=99) is None  # too large: the streaming path
    assert gunzip(packed[:-8] + b"\0\0\0\0" + packed[-4:], limit=100) is None  # CRC
    assert gunzip(packed + packed, limit=1000) is None  # two members
    assert gunzip(b"not gzip", limit=100) is None


def test_beyond_the_memory_limit_declines(real, tmp_path):
    assert read_etalab(real, max_bytes=real.stat().st_size - 1) is None
    assert len(read_etalab(real, max_bytes=real.stat().st_size)) == 4241


def test_bare_numbers_as_coordinates_are_declined(features):
    fs = json.loads(json.dumps(features))
    fs[1]["geometry"]["coordinates"] = 5
    assert parse_etalab(collection(fs)) is None
    fs[1]["geometry"]["coordinates"] = [[5, 6]]
    assert parse_etalab(collection(fs)) is None
    assert np.isfinite(shapely.get_coordinates(parse_etalab(collection(features)).geometry)).all()


# --- fuzzing: whatever the fast reader accepts, GDAL reads the same way -------------------------

@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), seed=st.sampled_from(["réel", "multipolygones"]))
def test_fuzz_fast_reader_agrees_with_gdal(features, data, seed):
    fs = json.loads(json.dumps(features))
    raw = data.draw(corruptions(collection(fs if seed == "réel" else _multipolygon(fs))))
    fast = parse_etalab(raw)
    if fast is not None:
        assert_identical(fast, gdal(raw))


# --- the bench's floor reads Etalab files with this reader ------------------------------------

def test_bench_floor_reads_etalab_with_the_fast_reader(real, features, tmp_path):
    from test_generator import bench

    frame, rows, reader = bench._read_source(parcelles(real), real, crs="EPSG:2154")
    assert (rows, reader) == (4241, "etalab")
    assert_identical(frame, read_vector(real).to_crs("EPSG:2154"))
    # A file it declines (a "crs" member) is read by pyogrio, then projected as well.
    declined = tmp_path / "cadastre-91216-parcelles.json"
    declined.write_bytes(collection(features)[:-2] + b'],"crs":{"type":"name","properties":'
                         b'{"name":"urn:ogc:def:crs:OGC:1.3:CRS84"}}}')
    assert read_etalab(declined) is None
    frame, rows, reader = bench._read_source(parcelles(declined), declined, crs="EPSG:2154")
    assert (rows, reader) == (5, "pyogrio")
    assert frame.crs.to_epsg() == 2154
