"""Merge of département observatories: two builds of the sample, merged."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import sample_context_sources
from geopandas.testing import assert_geodataframe_equal

from observatoire import fusion
from observatoire.config import load_territory
from observatoire.errors import BuildError, ConfigError, CRSError, SchemaError, SourceError
from observatoire.fusion import merge_geopackages
from observatoire.geopackage import layer_checksum
from observatoire.pipeline import build

# Every test runs whole builds.
pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
SYSTEM_PYTHON = Path("/usr/bin/python3")
STREAMED = ["batiments", "routes", "parcelles", "unites_foncieres", "friches",
            "friches_surfaces", "zae", "zonage", "gisements", "zae_unites",
            "mutabilite_criteres", "sources", "execution"]


def territory_file(folder: Path, *, nom: str, commune: str) -> Path:
    """The sample's territory file, keeping one commune, sources read from data/sample."""
    text = f"""
[territoire]
nom = "{nom}"
code = "{nom.lower()}"
communes = ["{commune}"]
crs = "EPSG:2154"

[sources.parcelles]
chemin = "{SAMPLE / 'parcel.gpkg'}"
format = "bdparcellaire"
couche = "parcel"

{sample_context_sources()}
[sorties]
dossier = "{folder / 'sortie'}"

[options]
carte = false
rapport = false
"""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "territoire.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    """Gennes (25267) and Montfaucon (25395) built apart: two 'départements'."""
    root = tmp_path_factory.mktemp("departements")
    a = build(load_territory(territory_file(root / "gennes", nom="Gennes", commune="25267")))
    b = build(load_territory(territory_file(root / "montfaucon", nom="Montfaucon",
                                            commune="25395")))
    return a.gpkg, b.gpkg


@pytest.fixture(scope="module")
def merged(builds, tmp_path_factory):
    dest = tmp_path_factory.mktemp("france") / "france.gpkg"
    messages: list[str] = []
    result = merge_geopackages(builds, dest, progress=messages.append)
    return result, messages


def read(path: Path, layer: str):
    return pyogrio.read_dataframe(path, layer=layer, use_arrow=True)


def distinct_rows(*frames) -> int:
    """Rows that differ in some value or in their geometry, counted with pandas."""
    rows = pd.concat(frames, ignore_index=True)
    wkb = shapely.to_wkb(rows.geometry.array, output_dimension=2)
    return len(pd.DataFrame(rows.drop(columns="geometry")).assign(wkb=wkb).drop_duplicates())


def copy_of(path: Path, folder: Path, name: str = "copie.gpkg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, folder / name))


def with_parcels(path: Path, folder: Path, edit) -> tuple[Path, gpd.GeoDataFrame]:
    """A copy of ``path`` whose ``parcelles`` layer is rewritten as ``edit`` returns it."""
    changed = copy_of(path, folder)
    parcels = edit(read(changed, "parcelles"))
    pyogrio.write_dataframe(parcels, changed, layer="parcelles", driver="GPKG")
    return changed, parcels


# --------------------------------------------------------------------------- content


def test_per_commune_layers_are_summed(builds, merged):
    result, _ = merged
    a, b = builds
    # 851 parcels in the sample file: 828 in Gennes, 23 in Montfaucon.
    assert result.layer_counts["parcelles"] == 828 + 23
    assert result.layer_counts["unites_foncieres"] == 828 + 23
    assert result.layer_counts["gisements"] == (pyogrio.read_info(a, layer="gisements")["features"]
                                                + pyogrio.read_info(b, layer="gisements")
                                                ["features"])
    parcels = read(result.gpkg, "parcelles")
    assert parcels["code_insee"].value_counts().to_dict() == {"25267": 828, "25395": 23}
    assert parcels["idu"].is_unique
    assert result.duplicates["parcelles"] == 0
    # The merged layer is the two layers one after the other.
    both = pd.concat([read(a, "parcelles"), read(b, "parcelles")], ignore_index=True)
    assert_geodataframe_equal(parcels, both)
    assert result.checksums["parcelles"] == layer_checksum(both)


def test_buildings_read_twice_are_kept_once(builds, merged):
    result, messages = merged
    a, b = builds
    ba, bb = read(a, "batiments"), read(b, "batiments")
    # Both builds read the whole sample building file (within 5 km of each commune).
    assert len(ba) == len(bb) == 325
    assert result.layer_counts["batiments"] == distinct_rows(ba, bb) == 325
    assert result.duplicates["batiments"] == 325
    assert_geodataframe_equal(read(result.gpkg, "batiments"), ba)
    assert "Couche « batiments » : 325 entités, 325 doublon(s) retiré(s)" in messages


def test_friches_union(builds, merged):
    result, _ = merged
    a, b = builds
    fa, fb = read(a, "friches"), read(b, "friches")
    assert (len(fa), len(fb)) == (8, 14)
    # The 8 friches within 5 km of Gennes are also within 5 km of Montfaucon. One of
    # them is in Montfaucon: nearby for Gennes' build, in the territory for
    # Montfaucon's, whose row is kept; the 7 others are the same rows in both.
    mine = fa["comm_insee"] == "25395"
    assert fa.loc[mine, "site_id"].tolist() == ["25395_6245"]
    assert not fa["dans_territoire"].any()
    assert distinct_rows(fa[~mine], fb) == 14
    assert result.layer_counts["friches"] == 14
    assert result.duplicates["friches"] == 7
    assert result.other_territory["friches"] == 1
    out = read(result.gpkg, "friches")
    assert set(out["site_id"]) == set(fb["site_id"])
    assert out.loc[out["site_id"] == "25395_6245", "dans_territoire"].tolist() == [True]


def test_a_different_building_is_kept(builds, tmp_path):
    a, b = builds
    changed = copy_of(b, tmp_path / "b")
    buildings = read(changed, "batiments")
    footprint = buildings.geometry.iloc[0]
    buildings.loc[0, "hauteur"] = 7.5  # NULL in the sample building file
    pyogrio.write_dataframe(buildings, changed, layer="batiments", driver="GPKG")
    result = merge_geopackages([a, changed], tmp_path / "fusion.gpkg", batch_rows=100)
    out = read(result.gpkg, "batiments")
    assert len(out) == distinct_rows(read(a, "batiments"), read(changed, "batiments")) == 326
    assert result.duplicates["batiments"] == 324
    same_place = shapely.equals_exact(out.geometry.array, footprint, tolerance=0)
    assert out.loc[same_place, "hauteur"].tolist() == [pytest.approx(np.nan, nan_ok=True), 7.5]
    assert result.checksums["batiments"] == layer_checksum(out)


def test_zae_counted_by_the_territory_of_its_commune(builds, merged, tmp_path):
    result, _ = merged
    a, b = builds
    # Montfaucon's build sees Gennes' activity zone in its 5 km margin, off its parcels:
    # it leaves the zone out, and says so.
    assert len(read(b, "zae")) == 0
    sources = read(b, "sources").set_index("type_source")
    assert "zones hors du territoire : 1" in sources.loc["zonage", "reparations"]
    zae = read(result.gpkg, "zae")
    assert_geodataframe_equal(zae, read(a, "zae"))
    assert zae["nb_unites"].tolist() == [10]
    assert result.other_territory["zae"] == 0
    # A build that kept a zone of another territory (an older version did): the merge
    # keeps the zone of the build whose territory holds its commune.
    changed = copy_of(b, tmp_path / "ancien")
    pyogrio.write_dataframe(read(a, "zae").assign(nb_unites=0), changed, layer="zae",
                            driver="GPKG")
    older = merge_geopackages([a, changed], tmp_path / "fusion.gpkg")
    assert_geodataframe_equal(read(older.gpkg, "zae"), read(a, "zae"))
    assert older.other_territory["zae"] == 1


def test_sources_and_execution_appended(builds, merged):
    result, _ = merged
    a, b = builds
    for table in ("sources", "execution"):
        expected = pd.concat([read(a, table), read(b, table)], ignore_index=True)
        pd.testing.assert_frame_equal(read(result.gpkg, table), expected)
    assert read(result.gpkg, "execution")["territoire"].tolist() == ["Gennes", "Montfaucon"]
    assert result.layer_counts["sources"] == 5 + 5


def test_fusion_table(builds, merged):
    result, _ = merged
    a, b = builds
    table = read(result.gpkg, "fusion")
    assert len(table) == 2 * len(STREAMED)
    assert table["couche"].tolist() == STREAMED * 2
    assert table["rang"].tolist() == [1] * len(STREAMED) + [2] * len(STREAMED)
    n = len(STREAMED)
    assert table["fichier"].tolist() == [a.as_posix()] * n + [b.as_posix()] * n
    assert table["sha256"].tolist() == ([hashlib.sha256(a.read_bytes()).hexdigest()] * n
                                        + [hashlib.sha256(b.read_bytes()).hexdigest()] * n)
    row = table[(table["rang"] == 2) & (table["couche"] == "batiments")].iloc[0]
    assert (row["entites_lues"], row["entites_gardees"], row["doublons_retires"]) == (325, 0, 325)
    row = table[(table["rang"] == 2) & (table["couche"] == "zae")].iloc[0]
    assert (row["entites_lues"], row["entites_gardees"], row["zae_autre_territoire"]) == (0, 0, 0)
    assert (table.groupby("couche")["entites_gardees"].sum().to_dict()
            == {k: v for k, v in result.layer_counts.items() if k != "fusion"})
    assert (dict(zip(table["couche"], table["empreinte_couche"], strict=True))
            == {k: v for k, v in result.checksums.items() if k != "fusion"})


def test_checksums_of_the_layers_read_back(merged):
    result, _ = merged
    layers = [n for n, _ in pyogrio.list_layers(result.gpkg)]
    assert layers == [*STREAMED, "fusion", "layer_styles"]
    for name in (*STREAMED, "fusion"):
        frame = read(result.gpkg, name)
        assert len(frame) == result.layer_counts[name], name
        assert layer_checksum(frame) == result.checksums[name], name


def test_small_batches_give_the_same_layers(builds, merged, tmp_path):
    result, _ = merged
    small = merge_geopackages(builds, tmp_path / "petits_lots.gpkg", batch_rows=37)
    for name in STREAMED:
        assert small.checksums[name] == result.checksums[name], name
    assert small.duplicates == result.duplicates


def test_styles_copied_project_not(builds, merged):
    result, _ = merged
    a, _ = builds
    query = "SELECT f_table_name, styleName, styleQML FROM layer_styles ORDER BY f_table_name"
    with sqlite3.connect(a) as con:
        expected = con.execute(query).fetchall()
        description = con.execute("SELECT description FROM gpkg_contents "
                                  "WHERE table_name = 'parcelles'").fetchone()[0]
    with sqlite3.connect(result.gpkg) as con:
        assert con.execute(query).fetchall() == expected
        assert len(expected) == 10
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        merged_description = con.execute("SELECT description FROM gpkg_contents "
                                         "WHERE table_name = 'parcelles'").fetchone()[0]
        registered = con.execute("SELECT data_type FROM gpkg_contents "
                                 "WHERE table_name = 'layer_styles'").fetchone()
    assert "qgis_projects" not in tables
    assert registered == ("attributes",)
    kept = description[:description.index(" Produit par l'observatoire")]
    assert merged_description.startswith(kept)
    assert "Gennes" in description and "Gennes" not in merged_description
    assert "table « fusion »" in merged_description


def test_output_is_a_valid_geopackage(merged):
    result, _ = merged
    for name in STREAMED:
        info = pyogrio.read_info(result.gpkg, layer=name)
        assert info["driver"] == "GPKG"
        assert info["features"] == result.layer_counts[name]
        if name not in ("sources", "execution", "mutabilite_criteres"):
            assert info["crs"] == "EPSG:2154"
    if not SYSTEM_PYTHON.exists():
        pytest.skip("/usr/bin/python3 absent")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import osgeo_utils.samples.validate_gpkg"],
                           capture_output=True, check=False)
    if probe.returncode:
        pytest.skip("module osgeo_utils absent du Python système (paquet python3-gdal)")
    run = subprocess.run([SYSTEM_PYTHON, "-m", "osgeo_utils.samples.validate_gpkg", "--extra",
                          "--warning-as-error", str(result.gpkg)], capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "" and run.stderr.strip() == ""


def test_one_input_gives_its_layers(builds, tmp_path, caplog):
    a, _ = builds
    with caplog.at_level("INFO", logger="observatoire.fusion"):
        result = merge_geopackages([a], tmp_path / "seul.gpkg")
    for name in STREAMED:
        assert result.checksums[name] == layer_checksum(read(a, name)), name
    assert "Projet QGIS des départements non copié" in caplog.text


def test_a_layer_missing_from_an_input(builds, tmp_path):
    a, b = builds
    # Gennes' observatory without its friches (layer after layer, as written by pyogrio).
    without = tmp_path / "sans_friches.gpkg"
    for name, _ in pyogrio.list_layers(a):
        if name not in ("friches", "layer_styles"):
            kind = pyogrio.read_info(a, layer=name)["geometry_type"]
            pyogrio.write_dataframe(read(a, name), without, layer=name, driver="GPKG",
                                    **({"geometry_type": kind} if kind else {}))
    result = merge_geopackages([without, b], tmp_path / "fusion.gpkg")
    assert_geodataframe_equal(read(result.gpkg, "friches"), read(b, "friches"))
    assert result.duplicates["friches"] == 0
    # Layers come in the order of their first appearance: the friches after Gennes' layers.
    with sqlite3.connect(result.gpkg) as con:
        written = [r[0] for r in con.execute("SELECT table_name FROM gpkg_contents "
                                             "ORDER BY rowid")]
    assert written.index("friches") == written.index("execution") + 1
    table = read(result.gpkg, "fusion")
    assert table.loc[table["couche"] == "friches", "rang"].tolist() == [2]
    with sqlite3.connect(result.gpkg) as con:
        styled = {r[0] for r in con.execute("SELECT f_table_name FROM layer_styles")}
    assert "friches" in styled  # from Montfaucon's observatory, the first to style it


# --------------------------------------------------------------------------- types


def test_types_guessed_from_values_are_reconciled(builds, tmp_path):
    a, b = builds

    def edit(parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        # In a département where a count has a NULL, pandas writes it as real numbers; a
        # text column NULL everywhere is written with another type.
        parcels["nb_batiments"] = parcels["nb_batiments"].astype("float64")
        parcels.loc[0, "nb_batiments"] = np.nan
        parcels["zae_id"] = np.nan
        return parcels

    changed, parcels = with_parcels(b, tmp_path / "b", edit)
    assert pyogrio.read_info(changed, layer="parcelles")["dtypes"].tolist() != \
        pyogrio.read_info(a, layer="parcelles")["dtypes"].tolist()
    result = merge_geopackages([a, changed], tmp_path / "fusion.gpkg", batch_rows=100)
    info = pyogrio.read_info(result.gpkg, layer="parcelles")
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["nb_batiments"] == "float64"
    assert types["zae_id"] == "object"
    out = read(result.gpkg, "parcelles")
    expected = pd.concat([read(a, "parcelles")["nb_batiments"].astype("float64"),
                          parcels["nb_batiments"]], ignore_index=True)
    pd.testing.assert_series_equal(out["nb_batiments"], expected)
    assert out["zae_id"].iloc[828:].isna().all()
    assert result.checksums["parcelles"] == layer_checksum(out)


def test_boolean_column_with_null(builds, tmp_path):
    a, b = builds

    def edit(parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        parcels["exclu_industrie"] = parcels["exclu_industrie"].astype("boolean")
        parcels.loc[3, "exclu_industrie"] = pd.NA
        return parcels

    changed, _ = with_parcels(b, tmp_path / "b", edit)
    assert pyogrio.read_info(changed, layer="parcelles")["dtypes"].tolist() == \
        pyogrio.read_info(a, layer="parcelles")["dtypes"].tolist()
    result = merge_geopackages([a, changed], tmp_path / "fusion.gpkg", batch_rows=100)
    out = read(result.gpkg, "parcelles")
    assert out["exclu_industrie"].isna().sum() == 1
    assert result.checksums["parcelles"] == layer_checksum(out)


def test_values_of_another_type_refused(builds, tmp_path):
    a, b = builds
    changed, _ = with_parcels(b, tmp_path / "b",
                              lambda parcels: parcels.assign(section=np.arange(len(parcels))))
    with pytest.raises(SchemaError, match=r"copie\.gpkg, couche « parcelles », champ "
                                          r"« section » : valeurs de type int64 au lieu de "
                                          r"object"):
        merge_geopackages([a, changed], tmp_path / "fusion.gpkg")


# --------------------------------------------------------------------------- refusals


def test_refuses_a_geopackage_not_made_by_the_build(builds, tmp_path):
    a, _ = builds
    with pytest.raises(SourceError, match=r"building\.gpkg : ce n'est pas un observatoire "
                                          r"produit par « observatoire build » \(table "
                                          r"« execution » absente\) ; donnez le fichier "
                                          r"observatoire\.gpkg"):
        merge_geopackages([a, SAMPLE / "building.gpkg"], tmp_path / "fusion.gpkg")
    with pytest.raises(SourceError, match=r"pas un GeoPackage"):
        merge_geopackages([a, SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson"],
                          tmp_path / "fusion.gpkg")
    with pytest.raises(SourceError, match=r"absent\.gpkg : fichier illisible"):
        merge_geopackages([a, tmp_path / "absent.gpkg"], tmp_path / "fusion.gpkg")
    with pytest.raises(SourceError, match=r"aucun GeoPackage"):
        merge_geopackages([], tmp_path / "fusion.gpkg")
    assert not (tmp_path / "fusion.gpkg").exists()


def test_refuses_other_columns(builds, tmp_path):
    a, b = builds
    changed, _ = with_parcels(b, tmp_path / "b", lambda parcels: parcels.drop(
        columns=["compacite"]).assign(nouvelle=1))
    with pytest.raises(SchemaError, match=r"copie\.gpkg, couche « parcelles » : colonnes "
                                          r"manquantes : compacite ; colonnes en trop : "
                                          r"nouvelle \(par rapport à .*observatoire\.gpkg\) ; "
                                          r".*mêmes profils et le même fichier d'options"):
        merge_geopackages([a, changed], tmp_path / "fusion.gpkg")


def test_refuses_other_crs_or_geometry_type(builds, tmp_path):
    a, b = builds
    changed = copy_of(b, tmp_path / "crs")
    roads = read(changed, "routes").to_crs("EPSG:4326")
    pyogrio.write_dataframe(roads, changed, layer="routes", driver="GPKG")
    with pytest.raises(CRSError, match=r"couche « routes » : système de coordonnées EPSG:4326 "
                                       r"au lieu de EPSG:2154"):
        merge_geopackages([a, changed], tmp_path / "fusion.gpkg")
    changed = copy_of(b, tmp_path / "geom")
    friches = read(changed, "friches")
    friches["geometry"] = friches.buffer(10)
    pyogrio.write_dataframe(friches, changed, layer="friches", driver="GPKG")
    with pytest.raises(SchemaError, match=r"couche « friches » : géométries Polygon au lieu "
                                          r"de Point"):
        merge_geopackages([a, changed], tmp_path / "fusion.gpkg")


def test_refuses_a_commune_built_twice(builds, tmp_path):
    a, _ = builds
    again = copy_of(a, tmp_path / "bis")
    with pytest.raises(ConfigError, match=r"commune 25267 construite dans .* \(Gennes\) et "
                                          r"dans .*copie\.gpkg \(Gennes\)"):
        merge_geopackages([a, again], tmp_path / "fusion.gpkg")
    with pytest.raises(SourceError, match="donné deux fois"):
        merge_geopackages([a, a], tmp_path / "fusion.gpkg")
    with pytest.raises(SourceError, match="aussi la destination"):
        merge_geopackages([a, again], again)


def test_destination_untouched_when_the_merge_fails(builds, tmp_path, monkeypatch):
    a, b = builds
    dest = tmp_path / "fusion.gpkg"
    dest.write_bytes(b"fusion precedente")
    with pytest.raises(SourceError):
        merge_geopackages([a, SAMPLE / "building.gpkg"], dest)
    assert dest.read_bytes() == b"fusion precedente"

    def fail(*args, **kwargs):
        raise BuildError("disque plein (simulé)")

    # The last step before publication fails: every layer was written to the temporary file.
    monkeypatch.setattr(fusion, "_copy_styles", fail)
    with pytest.raises(BuildError, match="simulé"):
        merge_geopackages([a, b], dest)
    assert dest.read_bytes() == b"fusion precedente"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusion.gpkg"]


def test_command_line(builds, tmp_path, capsys):
    from observatoire.cli import main

    a, b = builds
    dest = tmp_path / "france.gpkg"
    assert main(["fusion", "-o", str(dest), str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "parcelles" in out and "Terminé" in out
    assert len(read(dest, "parcelles")) == len(read(a, "parcelles")) + len(read(b, "parcelles"))
    before = dest.read_bytes()
    assert main(["fusion", "-o", str(dest), str(a), str(tmp_path / "absent.gpkg")]) == 2
    err = capsys.readouterr().err
    assert "absent.gpkg" in err and "n'a pas été modifié" in err
    assert dest.read_bytes() == before
