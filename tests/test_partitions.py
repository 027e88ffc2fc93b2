"""The size of the partitions changes nothing: one partition and many give the same layers.

The sample (Gennes, one commune) is cut in two communes along its sections, its
parcels written in two files with one parcel in both, and an owner table gives a
legal entity parcels on both sides of the cut: land units, candidate sites and
ZAE areas then cross a partition's edge. The territory is built as one partition
(the default for a small territory) and as one commune per partition, one parcel
file per staging group and small tiles of buildings (as on a big territory),
serially, in worker processes and on Dask: same layers, feature by feature.
"""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from conftest import sample_context_sources, zoning_without_u_zones
from geopandas.testing import assert_geodataframe_equal

from observatoire.analysis.units import contiguity_pairs
from observatoire.config import load_territory
from observatoire.errors import ConfigError
from observatoire.executor import SerialExecutor, make_executor
from observatoire.geopackage import report_columns
from observatoire.pipeline import batiments, build, staging
from observatoire.pipeline.partitions import partition_groups
from observatoire.pipeline.staging import Commune
from observatoire.publish.carte_selection import TopScores

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
#: The fictitious commune given to the sections of the cut (a test of the logic, not data).
CUT = "25999"
CUT_SECTIONS = ("0A", "0B", "0C", "ZA", "ZB")


def _cut_sample(folder: Path) -> dict[str, str]:
    """Write the sample's parcels in two files, some sections moved to commune CUT.

    Returns the IDUs of a legal entity's parcels chosen on both sides of the cut.
    """
    parcels = gpd.read_file(SAMPLE / "parcel.gpkg", layer="parcel")
    gennes = parcels["DEPCOM"] == "25267"
    moved = gennes & parcels["SECTION"].isin(CUT_SECTIONS)
    assert 0 < moved.sum() < gennes.sum()
    parcels.loc[moved, "CODE_COM"] = CUT[2:]
    parcels.loc[moved, "DEPCOM"] = CUT
    first, second = parcels[~moved], parcels[moved]
    # One parcel in both files: the duplicate is merged in either build.
    second = pd.concat([second, first[first["DEPCOM"] == "25267"].head(1)])
    pyogrio.write_dataframe(first, folder / "parcel-1.gpkg", layer="parcel")
    pyogrio.write_dataframe(second, folder / "parcel-2.gpkg", layer="parcel")

    # A chain of contiguous parcels across the cut, owned by one company.
    g = parcels[gennes].reset_index(drop=True)
    idu = ("25" + g["CODE_COM"].str.zfill(3) + g["COM_ABS"] + g["SECTION"].str.zfill(2)
           + g["NUMERO"].str.zfill(4)).to_numpy()
    pairs = contiguity_pairs(np.asarray(g.geometry.values))
    side = g["DEPCOM"].to_numpy() == CUT
    across = np.flatnonzero(side[pairs[0]] != side[pairs[1]])
    assert len(across) > 3
    a, b = pairs[:, across[0]]
    chain = {idu[a], idu[b]}
    for k in np.flatnonzero((pairs[0] == b) | (pairs[1] == b))[:2]:
        chain |= {idu[pairs[0, k]], idu[pairs[1, k]]}
    rows = [f"{i};SCI DU PONT;personne morale;444444444;C1" for i in sorted(chain)]
    rows.append(f"{idu[-1]};MARTIN;personne physique;;C2")
    (folder / "proprietaires.csv").write_text(
        "idu;proprietaire;type;siren;compte\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return {i: "SCI DU PONT" for i in chain}


def _territory(folder: Path, out: str, per_partition: int) -> Path:
    toml = folder / f"territoire-{out}.toml"
    toml.write_text(f"""
[territoire]
nom = "Gennes coupée en deux"
communes = ["25267", "{CUT}"]
crs = "EPSG:2154"
epci_nom = "Grand Besançon Métropole"
epci_siren = "242500361"

[sources.parcelles]
chemin = "parcel-*.gpkg"
format = "bdparcellaire"
couche = "parcel"

{sample_context_sources()}
[sources.proprietaires]
chemin = "proprietaires.csv"
format = "table"

[sources.proprietaires.champs]
proprietaire_nom = "proprietaire"
proprietaire_type = "type"
proprietaire_siren = "siren"
proprietaire_cle = "compte"

[sorties]
dossier = "{out}"

[options]
parcelles_par_partition = {per_partition}
date_observation = "2026-01-01"
noms_communes = {{ "25267" = "Gennes", "{CUT}" = "Commune fictive" }}
""", encoding="utf-8")
    return toml


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("coupe")
    owned = _cut_sample(folder)
    whole = load_territory(_territory(folder, "entier", 40_000))
    parts = load_territory(_territory(folder, "communes", 1))
    with pytest.MonkeyPatch.context() as mp:
        # Small tiles of buildings, one parcel file and one commune at a time: as on a
        # big territory, where a partition is a group of communes.
        mp.setattr(batiments, "TILE_SIZE", 2500.0)
        mp.setattr(staging, "STAGE_BYTES", 1)
        built = build(parts, executor=SerialExecutor())
    return owned, (whole, build(whole)), (parts, built)


def _layer(path: Path, name: str, key: list[str]) -> gpd.GeoDataFrame:
    frame = gpd.read_file(path, layer=name)
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize(("layer", "key"), [
    ("parcelles", ["idu"]), ("unites_foncieres", ["uf_id"]), ("gisements", ["gisement_id"]),
    ("zae", ["zae_id"]), ("zae_unites", ["zae_id", "uf_id"]), ("batiments", ["bati_id"]),
])
@pytest.mark.slow
def test_same_features_in_one_partition_and_many(builds, layer, key):
    _, (_, whole), (_, parts) = builds
    a, b = _layer(whole.gpkg, layer, key), _layer(parts.gpkg, layer, key)
    assert len(a) > 0
    assert_geodataframe_equal(a, b, check_like=False)


@pytest.mark.slow
def test_same_checksums_counts_and_tables(builds):
    _, (wt, whole), (pt, parts) = builds
    assert whole.checksums == parts.checksums
    assert whole.layer_counts == parts.layer_counts
    a = pd.read_csv(wt.output_dir / "meilleurs_sites.csv", sep=";")
    b = pd.read_csv(pt.output_dir / "meilleurs_sites.csv", sep=";")
    pd.testing.assert_frame_equal(a, b)
    sources = [pyogrio.read_dataframe(r.gpkg, layer="sources").drop(columns="date_lecture")
               for r in (whole, parts)]
    pd.testing.assert_frame_equal(*sources)
    for layer in pyogrio.list_layers(wt.output_dir / "cnig" / "sites_economiques.gpkg")[:, 0]:
        a, b = (pyogrio.read_dataframe(t.output_dir / "cnig" / "sites_economiques.gpkg",
                                       layer=layer) for t in (wt, pt))
        pd.testing.assert_frame_equal(a, b)
    # The same map, but for folium's random element ids.
    maps = [re.sub(r"[0-9a-f]{32}", "…", (t.output_dir / "carte.html").read_text())
            for t in (wt, pt)]
    assert maps[0] == maps[1]


@pytest.mark.slow
def test_units_and_sites_cross_the_commune_edge(builds):
    owned, (_, whole), (_, parts) = builds
    units = _layer(parts.gpkg, "unites_foncieres", ["uf_id"])
    company = units[units["proprietaire_nom"] == "SCI DU PONT"]
    assert len(company) == 1
    assert set(company.iloc[0]["idus"].split("|")) == set(owned)
    assert {i[:5] for i in owned} == {"25267", CUT}
    sites = _layer(parts.gpkg, "gisements", ["gisement_id"])
    assert sites["communes"].str.contains(",").any(), "aucun gisement à cheval sur la coupe"
    parcels = _layer(parts.gpkg, "parcelles", ["idu"])
    assert (parcels.loc[parcels["idu"].isin(owned), "uf_id"] == company.iloc[0]["uf_id"]).all()
    # The duplicate parcel of the two files is counted once, and said.
    report = pyogrio.read_dataframe(parts.gpkg, layer="sources").set_index("type_source")
    assert "double" in report.loc["parcelles", "reparations"]


@pytest.mark.slow
def test_report_reads_the_parcels_back_from_the_geopackage(builds, monkeypatch):
    # The build holds no table of every parcel: the report reads its columns back
    # from the GeoPackage, the same values whatever the partitions.
    from observatoire import geopackage

    _, (_, whole), (_, parts) = builds
    a = report_columns(whole.gpkg)
    monkeypatch.setattr(geopackage, "REPORT_BATCH", 97)  # by batches: the same table
    b = report_columns(parts.gpkg)
    assert b["classe_industrie"].dtype == "category"
    monkeypatch.setattr(geopackage, "REPORT_BATCH", 100_000)  # one batch
    pd.testing.assert_frame_equal(b.astype(object), report_columns(
        parts.gpkg).astype(object))
    assert list(a.columns) == list(b.columns)
    assert {"code_insee", "surface_m2", "score_industrie", "classe_industrie",
            "fiabilite_industrie"} <= set(a.columns)
    assert len(a) == whole.layer_counts["parcelles"]
    for column in a.columns:
        key = a[column].astype(object).where(a[column].notna(), None)
        other = b[column].astype(object).where(b[column].notna(), None)
        assert sorted(key, key=repr) == sorted(other, key=repr), column


def test_partition_options(tmp_path, caplog):
    (tmp_path / "parcel-1.gpkg").write_bytes((SAMPLE / "parcel.gpkg").read_bytes())
    (tmp_path / "proprietaires.csv").write_text("idu;compte\n", encoding="utf-8")
    toml = _territory(tmp_path, "x", 1)
    assert load_territory(toml).options.parcelles_par_partition == 1
    for bad in ("0", "-3", '"commune"', "true"):
        toml.write_text(re.sub(r"parcelles_par_partition = \S+",
                               f"parcelles_par_partition = {bad}", toml.read_text()))
        with pytest.raises(ConfigError, match=r"options\.parcelles_par_partition"):
            load_territory(toml)
    # The mode of earlier versions is still read, without effect, and said.
    toml.write_text(re.sub(r"parcelles_par_partition = \S+", 'partition = "aucune"',
                           toml.read_text()))
    with caplog.at_level("INFO", logger="observatoire.config"):
        assert load_territory(toml).options.parcelles_par_partition == 40_000
    assert "sans effet" in caplog.text
    toml.write_text(toml.read_text().replace('partition = "aucune"', 'partition = "oui"'))
    with pytest.raises(ConfigError, match=r"options\.partition.*commune"):
        load_territory(toml)


@pytest.mark.parametrize("kind", ["processus", "dask"])
@pytest.mark.slow
def test_workers_give_the_serial_build(builds, tmp_path, kind):
    if kind == "dask":
        pytest.importorskip("distributed", reason="dask.distributed n'est pas installé")
    _, _, (pt, serial) = builds
    territory = load_territory(pt.path, output_dir=tmp_path / kind)
    with pytest.MonkeyPatch.context() as mp, make_executor(kind) as executor:
        # One file per staging group and one commune per analysis group: the groups
        # run ahead of the writing, in order.
        mp.setattr(staging, "STAGE_BYTES", 1)
        distributed = build(territory, executor=executor)
    assert distributed.checksums == serial.checksums
    a = _layer(serial.gpkg, "parcelles", ["idu"])
    b = _layer(distributed.gpkg, "parcelles", ["idu"])
    assert_geodataframe_equal(a, b)


def test_map_keeps_the_best_scores_in_idu_order():
    frame = gpd.GeoDataFrame({"idu": [f"P{i:03d}" for i in range(12)],
                              "score_x": [5, np.nan, 7, 7, 1, 9, 7, np.nan, 3, 7, 8, 2.0]},
                             geometry=gpd.points_from_xy(range(12), range(12)))
    top = TopScores("score_x", 4)
    for rows in (slice(0, 3), slice(3, 7), slice(7, 12)):
        top.add(frame.iloc[rows], np.arange(12)[rows])
    # 9, 8 then the first two 7 by IDU (P002, P003), in IDU order.
    assert top.result()["idu"].tolist() == ["P002", "P003", "P005", "P010"]
    unscored = TopScores("score_y", 4)  # no such score beyond the limit: none
    unscored.add(frame, np.arange(12))
    assert len(unscored.ids()) == 0
    few = TopScores("score_x", 20)
    few.add(frame, np.arange(12))
    assert len(few.result()) == 12  # under the limit: every parcel, scored or not


def test_groups_of_neighbouring_communes():
    # 36 communes on a 6 × 6 grid whose codes run in a random order, 100 parcels each.
    rng = np.random.default_rng(0)
    communes = []
    for k, cell in enumerate(rng.permutation(36)):
        x, y = divmod(int(cell), 6)
        c = Commune(f"{k:05d}", bounds=np.array([x, y, x + 1, y + 1]) * 1000.0)
        c.count = 100
        communes.append(c)
    groups = partition_groups(communes, target=400)
    assert sorted(c.code for g in groups for c in g) == sorted(c.code for c in communes)
    assert [len(g) for g in groups] == [4] * 9
    # Z-order: groups are compact (the first and last are 2 km × 2 km blocks), whereas
    # four communes taken in code order are scattered over the 6 km × 6 km territory.
    def span(group: list) -> float:
        box = np.array([c.bounds for c in group])
        return max(box[:, 2].max() - box[:, 0].min(), box[:, 3].max() - box[:, 1].min())

    assert span(groups[0]) == span(groups[-1]) == 2000.0
    by_code = [communes[k:k + 4] for k in range(0, 36, 4)]
    assert np.mean([span(g) for g in groups]) < 0.7 * np.mean([span(g) for g in by_code])


@pytest.mark.slow
def test_command_line_partition_size(tmp_path, capsys, builds):
    from observatoire.cli import main

    _, _, (pt, parts) = builds
    assert main(["build", "--config", str(pt.path), "--out", str(tmp_path),
                 "--parcelles-par-partition", "1"]) == 0
    out = capsys.readouterr().out
    assert "commune par commune" in out and "Contiguïté des parcelles entre communes" in out
    # One commune per partition, as the territory file says: the same parcels.
    assert parts.checksums["parcelles"] in out
    for bad in ("0", "toutes"):
        with pytest.raises(SystemExit) as exit_:
            main(["build", "--config", str(pt.path), "--out", str(tmp_path / "x"),
                  "--parcelles-par-partition", bad])
        assert exit_.value.code == 2
        assert "--parcelles-par-partition" in capsys.readouterr().err


@pytest.mark.slow
def test_a_failed_write_in_the_writing_thread_stops_the_build(tmp_path, monkeypatch):
    from observatoire.errors import BuildError
    from observatoire.geopackage import GeoPackageWriter

    territory = load_territory(SAMPLE / "territoire.toml", output_dir=tmp_path)
    first = build(territory)
    before = first.gpkg.read_bytes()
    write = GeoPackageWriter.write

    def failing(self, name, frame, **kw):  # type: ignore[no-untyped-def]
        if name == "unites_foncieres":
            raise BuildError(f"{self.dest} : disque plein (simulé)")
        return write(self, name, frame, **kw)

    monkeypatch.setattr(GeoPackageWriter, "write", failing)
    with pytest.raises(BuildError, match="disque plein"):
        build(territory)
    assert first.gpkg.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_undetermined_classes_are_the_same_whatever_the_partitions(tmp_path):
    """Parcels off a partial zoning (no class) in two communes: same classes, sites, report."""
    _cut_sample(tmp_path)
    zoning = zoning_without_u_zones(tmp_path)
    texts = {}
    for partition in ("1", "40000"):
        toml = tmp_path / f"territoire-{partition}.toml"
        toml.write_text(f"""
[territoire]
nom = "Gennes coupée en deux"
communes = ["25267", "{CUT}"]

[sources.parcelles]
chemin = "parcel-*.gpkg"
format = "bdparcellaire"
couche = "parcel"

[sources.zonage]
chemin = "{zoning}"

[sources.batiments]
chemin = "{SAMPLE / 'building.gpkg'}"

[sources.routes]
chemin = "{SAMPLE / 'road.gpkg'}"

[sorties]
dossier = "{partition}"

[options]
parcelles_par_partition = {partition}
date_observation = "2026-01-01"
rapport = true
carte = false
""", encoding="utf-8")
        territory = load_territory(toml)
        built = build(territory)
        texts[partition] = (built, territory)
    (whole, wt), (parts, pt) = texts["40000"], texts["1"]
    cols = ["idu", "score_industrie", "classe_industrie", "fiabilite_industrie",
            "classe_logistique", "fiabilite_logistique"]
    a = _layer(whole.gpkg, "parcelles", ["idu"])[cols]
    b = _layer(parts.gpkg, "parcelles", ["idu"])[cols]
    pd.testing.assert_frame_equal(a, b)
    unsure = a["classe_industrie"] == "non déterminée"
    # No friches here: surface, width, shape, buildings and roads, 50 of the 100 points.
    assert unsure.sum() > 50 and (a.loc[unsure, "fiabilite_industrie"] == 0.5).all()
    assert a["classe_industrie"].isin(["A", "B"]).any()
    assert whole.checksums["gisements"] == parts.checksums["gisements"]
    # The report's key figures, undetermined hectares included, read the same.
    pages = [re.sub(r"\d{4}-\d{2}-\d{2}", "…", (t.output_dir / "rapport.html").read_text())
             for t in (wt, pt)]
    assert "de classe non déterminée" in pages[0]
    assert pages[0] == pages[1]
