"""Reproducible builds: same inputs, same features — whatever the order of the input files.

Run dates and input checksums live only in the ``execution`` and ``sources``
tables; every other layer must be identical from one build to the next.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import SAMPLE, shared_file
from test_bad_inputs import write_territory
from test_cli import SAMPLE_SOURCES

from observatoire.cli import main
from observatoire.config import Source
from observatoire.geopackage import combine_checksum, layer_checksum, row_hashes
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.friches import read_friches

#: Tables that record the run itself (dates, checksums of inputs).
RUN_TABLES = {"sources", "execution"}


def build(capsys, config: Path) -> dict[str, str]:
    """Run ``observatoire build`` and return the per-layer checksums it printed."""
    assert main(["build", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    section = out.split("Couches (entités, empreinte du contenu) :")[1].split("Sorties :")[0]
    printed = {}
    for line in section.strip().splitlines():
        name, _count, checksum = line.split()
        printed[name] = checksum
    assert printed
    return printed


def data_layers(gpkg: Path) -> dict[str, pd.DataFrame]:
    layers = {}
    for name, _ in pyogrio.list_layers(gpkg):
        if name in RUN_TABLES or name in ("layer_styles", "qgis_projects"):
            continue
        layers[name] = pyogrio.read_dataframe(gpkg, layer=name)
    return layers


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """A layer as sorted rows of text (geometry as normalised WKB), for comparison."""
    df = pd.DataFrame(frame).copy()
    if isinstance(frame, gpd.GeoDataFrame):
        df[frame.geometry.name] = shapely.to_wkb(shapely.normalize(frame.geometry.values),
                                                 hex=True)
    df = df.astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def assert_same_layers(a: Path, b: Path) -> None:
    la, lb = data_layers(a), data_layers(b)
    assert la.keys() == lb.keys()
    for name in la:
        pd.testing.assert_frame_equal(canonical(la[name]), canonical(lb[name]), obj=name)
        assert layer_checksum(la[name]) == layer_checksum(lb[name]), name


@pytest.mark.slow
def test_two_builds_of_the_sample_are_identical(tmp_path, capsys):
    # The map is not a data layer (and test_cli checks it): skip it to stay fast.
    first = write_territory(tmp_path, SAMPLE_SOURCES, out=tmp_path / "un", name="un.toml",
                            options={"carte": False})
    second = write_territory(tmp_path, SAMPLE_SOURCES, out=tmp_path / "deux",
                             name="deux.toml", options={"carte": False})
    printed = [build(capsys, first), build(capsys, second)]
    assert printed[0] == printed[1]
    assert all(re.fullmatch(r"[0-9a-f]{16}", c) for c in printed[0].values())
    assert_same_layers(tmp_path / "un" / "observatoire.gpkg",
                       tmp_path / "deux" / "observatoire.gpkg")

    sources = pyogrio.read_dataframe(tmp_path / "un" / "observatoire.gpkg", layer="sources")
    by_kind = sources.set_index("type_source")
    for kind, table in SAMPLE_SOURCES.items():
        expected = hashlib.sha256(Path(table["chemin"]).read_bytes()).hexdigest()
        assert by_kind.loc[kind, "sha256"] == expected, kind
    parcel = hashlib.sha256((SAMPLE / "parcel.gpkg").read_bytes()).hexdigest()
    assert by_kind.loc["parcelles", "sha256"] == parcel


@pytest.fixture(scope="module")
def cadastre_files(tmp_path_factory) -> list[Path]:
    """The real Etalab file split in two (one gzipped) and three EDIGEO sheets of Luxiol."""
    etalab = shared_file("etalab-cadastre/cadastre-91216-parcelles.json")
    luxiol = shared_file("edigeo-luxiol")
    folder = tmp_path_factory.mktemp("cadastre")
    doc = json.loads(etalab.read_text(encoding="utf-8"))
    half = len(doc["features"]) // 2
    a = folder / "cadastre-91216-a.json"
    b = folder / "cadastre-91216-b.json.gz"
    a.write_text(json.dumps({**doc, "features": doc["features"][:half]}), encoding="utf-8")
    b.write_bytes(gzip.compress(json.dumps({**doc, "features": doc["features"][half:]})
                                .encode()))
    sheets = [luxiol / f"edigeo-25354000{s}01.tar.bz2" for s in ("ZD", "AB", "ZB")]
    return [a, b, *sheets]


@pytest.mark.slow
def test_file_order_does_not_change_the_build(cadastre_files, tmp_path, capsys):
    orders = [cadastre_files, list(reversed(cadastre_files))]
    printed = []
    for i, files in enumerate(orders):
        config = write_territory(
            tmp_path, {"parcelles": {"chemin": [str(p) for p in files]}},
            communes=("91216", "25354"), out=tmp_path / f"out{i}", name=f"t{i}.toml",
            options={"carte": False})
        assert config.read_text(encoding="utf-8").index(files[0].name) < \
            config.read_text(encoding="utf-8").index(files[-1].name)
        printed.append(build(capsys, config))
    assert printed[0] == printed[1]
    assert_same_layers(tmp_path / "out0" / "observatoire.gpkg",
                       tmp_path / "out1" / "observatoire.gpkg")
    parcels = pyogrio.read_dataframe(tmp_path / "out0" / "observatoire.gpkg", layer="parcelles")
    assert parcels["code_insee"].value_counts().to_dict()["91216"] == 4241
    sources = pyogrio.read_dataframe(tmp_path / "out0" / "observatoire.gpkg", layer="sources")
    h = hashlib.sha256()
    for p in sorted(cadastre_files):
        h.update(p.read_bytes())
    assert sources.set_index("type_source").loc["parcelles", "sha256"] == h.hexdigest()


def test_reader_is_order_independent_even_without_the_config(cadastre_files):
    """The readers themselves do not depend on the order they are given the files in."""
    frames = []
    for files in (cadastre_files, cadastre_files[::-1]):
        source = Source(kind="parcelles", paths=tuple(files), key="sources.parcelles")
        frames.append(read_parcelles(source, crs="EPSG:2154").frame)
    for other in frames[1:]:
        pd.testing.assert_frame_equal(pd.DataFrame(frames[0].to_wkb()),
                                      pd.DataFrame(other.to_wkb()))


def test_friches_duplicates_are_order_independent(tmp_path):
    header = "site_id;site_nom;site_statut;geompoint;geomsurf\n"
    (tmp_path / "a.csv").write_text(header + "F1;Scierie;friche sans projet;POINT (6.2 47.2);\n"
                                    "F2;Usine;friche avec projet;POINT (6.3 47.2);\n",
                                    encoding="utf-8")
    (tmp_path / "b.csv").write_text(header + "F1;Scierie (doublon);friche reconvertie;"
                                    "POINT (6.2 47.2);\nF3;Dépôt;;POINT (6.4 47.2);\n",
                                    encoding="utf-8")
    frames = []
    for names in (("a.csv", "b.csv"), ("b.csv", "a.csv")):
        source = Source(kind="friches", paths=tuple(tmp_path / n for n in names))
        result = read_friches(source, crs="EPSG:2154")
        frames.append(result.frame)
        assert result.report.repairs == {"friches en double (même site_id) écartées": 1}
    pd.testing.assert_frame_equal(pd.DataFrame(frames[0].to_wkb()),
                                  pd.DataFrame(frames[1].to_wkb()))
    kept = frames[0].set_index("site_id")
    assert kept.loc["F1", "source"] == "a.csv" and kept.loc["F1", "site_nom"] == "Scierie"


def test_layer_checksum_survives_the_geopackage_round_trip(tmp_path):
    from observatoire.geopackage import GeoPackageWriter

    frame = gpd.GeoDataFrame({
        "idu": ["25267000ZA0001", "25267000ZA0002", None],
        "n": pd.array([1, None, 3], dtype="Int64"),
        "x": [1.0, 2.5, float("nan")],
        "ok": [True, False, True],
    }, geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), None], crs=2154)
    dest = tmp_path / "o.gpkg"
    with GeoPackageWriter(dest) as writer:
        writer.write("couche", frame, geometry_type="Polygon")
        writer.commit()
    back = pyogrio.read_dataframe(dest, layer="couche")
    assert layer_checksum(back) == layer_checksum(frame)
    # Row order does not matter; content does.
    assert layer_checksum(frame.iloc[::-1]) == layer_checksum(frame)
    changed = frame.copy()
    changed.loc[1, "x"] = 2.6
    assert layer_checksum(changed) != layer_checksum(frame)
    moved = frame.copy()
    moved.loc[0, "geometry"] = shapely.box(0, 0, 1, 1.001)
    assert layer_checksum(moved) != layer_checksum(frame)


def test_booleans_with_nulls_are_a_boolean_field_hashed_as_booleans(tmp_path):
    # A partition whose flags have a NULL holds them as objects, another as bool: the
    # same rows hash the same, and the GeoPackage gets one boolean field, not text.
    from observatoire.geopackage import GeoPackageWriter, row_hashes

    with_null = gpd.GeoDataFrame({"ok": [True, False, None]},
                                 geometry=[shapely.Point(0, 0)] * 3, crs=2154)
    without = gpd.GeoDataFrame({"ok": [True, False]}, geometry=[shapely.Point(0, 0)] * 2,
                               crs=2154)
    assert with_null["ok"].dtype == object and without["ok"].dtype == bool
    assert (row_hashes(with_null)[:2] == row_hashes(without)).all()
    dest = tmp_path / "b.gpkg"
    with GeoPackageWriter(dest) as writer:
        writer.write("couche", without, geometry_type="Point")
        writer.write("couche", with_null, geometry_type="Point", append=True)
        writer.commit()
    info = pyogrio.read_info(dest, layer="couche")
    assert dict(zip(info["fields"], info["dtypes"], strict=True))["ok"] == "bool"
    back = pyogrio.read_dataframe(dest, layer="couche")
    assert back["ok"].tolist()[:4] == [True, False, True, False]
    assert pd.isna(back["ok"].iloc[4])
    assert layer_checksum(back) == layer_checksum(pd.concat([without, with_null]))


# --- the checksum, partition by partition ----------------------------------------------------

def _layer() -> gpd.GeoDataFrame:
    """A few real parcels of the sample, as the reader gives them (canonical layer)."""
    source = Source(kind="parcelles", paths=(SAMPLE / "parcel.gpkg",), format="bdparcellaire",
                    layer="parcel", key="sources.parcelles")
    return read_parcelles(source, crs="EPSG:2154", communes=("25267",)).frame


def test_checksum_is_the_combination_of_row_hashes_for_any_split():
    frame = _layer()
    expected = layer_checksum(frame)
    rng = np.random.default_rng(7)
    for n_parts in (1, 2, 7, len(frame)):
        order = rng.permutation(len(frame))
        total = 0
        for part in np.array_split(order, n_parts):
            total += int(row_hashes(frame.iloc[part]).sum(dtype=np.uint64))
        assert combine_checksum(total % 2**64, len(frame), list(frame.columns)) == expected
    # Large enough for the chunked hashing to matter.
    big = pd.concat([frame] * 3, ignore_index=True)
    hashes = row_hashes(big)
    assert hashes.dtype == np.uint64 and len(hashes) == len(big)
    assert (hashes[: len(frame)] == row_hashes(frame)).all()


def test_checksum_of_a_canonical_layer_read_back_from_the_geopackage(tmp_path):
    from observatoire.geopackage import GeoPackageWriter

    frame = _layer()
    frame.loc[0, "contenance"] = np.nan
    dest = tmp_path / "o.gpkg"
    with GeoPackageWriter(dest) as writer:
        writer.write("parcelles", frame, geometry_type="MultiPolygon")
        writer.commit()
    for arrow in (False, True):
        back = pyogrio.read_dataframe(dest, layer="parcelles", use_arrow=arrow)
        assert layer_checksum(back) == layer_checksum(frame)


def test_checksum_compares_values_by_kind():
    base = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    same = [
        pd.DataFrame({"b": ["x", np.nan], "a": [1.0, 2.0]}),                  # column order
        pd.DataFrame({"a": pd.array([1, 2], dtype="Int64"), "b": pd.Series(["x", None],
                                                                             dtype="str")}),
    ]
    for other in same:
        assert layer_checksum(other) == layer_checksum(base)
    different = [
        pd.DataFrame({"a": [2, 1], "b": ["x", None]}),                        # values moved
        pd.DataFrame({"a": [1, 2], "b": ["x", ""]}),                          # "" is not NULL
        pd.DataFrame({"a": [1, 2], "c": ["x", None]}),                        # column name
        pd.DataFrame({"a": [1, 2, 2], "b": ["x", None, None]}),               # a duplicate row
        pd.DataFrame({"a": ["1", "2"], "b": ["x", None]}),                    # text, not numbers
    ]
    for other in different:
        assert layer_checksum(other) != layer_checksum(base)
    # -0.0 is 0.0; booleans are 0/1; a text column holding numbers is checked as written.
    assert layer_checksum(pd.DataFrame({"x": [0.0]})) == layer_checksum(
        pd.DataFrame({"x": [-0.0]}))
    assert layer_checksum(pd.DataFrame({"x": [True, False]})) == layer_checksum(
        pd.DataFrame({"x": [1, 0]}))
    assert layer_checksum(pd.DataFrame({"x": pd.Series([3, "a"], dtype=object)})) == \
        layer_checksum(pd.DataFrame({"x": ["3", "a"]}))
    # Text that is not valid UTF-8 (lone surrogates) is hashed too.
    assert layer_checksum(pd.DataFrame({"x": pd.Series(["\udcff", "a"], dtype=object)})) != \
        layer_checksum(pd.DataFrame({"x": pd.Series(["\udcfe", "a"], dtype=object)}))
    assert re.fullmatch(r"[0-9a-f]{16}", layer_checksum(pd.DataFrame({"x": []})))


def test_checksum_geometry_is_its_2d_wkb():
    square = shapely.box(0, 0, 1, 1)
    flat = gpd.GeoDataFrame({"n": [1]}, geometry=[square], crs=2154)
    raised = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.force_3d(square, 5.0)], crs=2154)
    assert layer_checksum(raised) == layer_checksum(flat)
    other_start = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Polygon(
        [(0, 0), (1, 0), (1, 1), (0, 1)])], crs=2154)
    assert layer_checksum(other_start) != layer_checksum(flat)
    null = gpd.GeoDataFrame({"n": [1]}, geometry=[None], crs=2154)
    assert layer_checksum(null) != layer_checksum(flat)
