"""The synthetic territory generator (scripts/generate_territory.py) and the benchmark."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from conftest import ROOT, load_script

from observatoire.config import load_territory
from observatoire.ingest import ingest
from observatoire.readers.crs import CRS_BOUNDS

N_PARCELS = 1500


gen = load_script("generate_territory")
bench = load_script("bench")


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def territory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Communes of 6 × 6 blocks (about 600 parcels) so that a small territory spans several.
    out = tmp_path_factory.mktemp("synthetique")
    return gen.generate(N_PARCELS, seed=7, out=out, commune_blocks=6)


@pytest.fixture(scope="module")
def layers(territory: Path):  # type: ignore[no-untyped-def]
    return ingest(load_territory(territory))


def test_same_seed_gives_identical_files(territory: Path, tmp_path: Path) -> None:
    again = gen.generate(N_PARCELS, seed=7, out=tmp_path / "again", commune_blocks=6)
    first, second = _digests(territory.parent), _digests(again.parent)
    assert len(first) >= 14
    assert first == second
    other = gen.generate(N_PARCELS, seed=8, out=tmp_path / "other", commune_blocks=6)
    changed = _digests(other.parent)
    assert changed["cadastre/cadastre-25001-parcelles.json.gz"] != \
        first["cadastre/cadastre-25001-parcelles.json.gz"]


def test_gzip_members_carry_no_timestamp(territory: Path) -> None:
    for path in (territory.parent / "cadastre").glob("*.json.gz"):
        header = path.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b"
        assert header[4:8] == b"\x00\x00\x00\x00"  # MTIME = 0


def test_territory_file_declares_every_source(territory: Path) -> None:
    terr = load_territory(territory)
    assert len(terr.communes) >= 2
    assert all(c.startswith("25") and len(c) == 5 for c in terr.communes)
    for kind in ("parcelles", "zonage", "friches", "zae", "batiments", "routes",
                 "voies_ferrees", "postes_electriques", "mnt"):
        source = terr.source(kind)
        assert source is not None, kind
        assert all(p.is_file() for p in source.paths)
    assert len(terr.source("parcelles").paths) == len(terr.communes)  # one file per commune
    assert [(c.name, c.constraint_type, c.strict) for c in terr.constraints] == [
        ("inondation", "inondation", True), ("natura2000", "nature", False),
        ("monuments", "patrimoine", False)]


def test_readers_read_everything(territory: Path, layers) -> None:  # type: ignore[no-untyped-def]
    folder = territory.parent
    parcels = layers.parcelles
    assert len(parcels) == N_PARCELS
    assert set(parcels["code_insee"]) == set(load_territory(territory).communes)
    zonage = pyogrio.read_dataframe(folder / "plu" / "zone_urba.gpkg")
    # Two PLU zones per commune side (6 blocks / 3): four zones per commune.
    assert len(layers.zonage) == len(zonage) == 4 * parcels["code_insee"].nunique()
    activity = zonage["libelle"].isin(["UX", "UY", "1AUx"])
    zones = pyogrio.read_dataframe(folder / "zae" / "sites_economiques.gpkg", layer="site_eco")
    assert len(zones) == int(activity.sum())
    # The PLU and the ZAE layer cover the last commune whole, but its parcels stop at
    # N_PARCELS: a zone beyond them is left out, and counted.
    on_parcels = gpd.sjoin(zones, parcels[["geometry"]], predicate="intersects")
    kept = on_parcels.index.nunique()
    assert 0 < len(layers.zae) == kept
    zae_report = next(r for r in layers.reports if r.kind == "zae")
    assert zae_report.repairs == ({"zones hors du territoire": len(zones) - kept}
                                  if kept < len(zones) else {})
    assert set(layers.zae["zae_origine"]) <= {"cnig"}
    assert layers.zonage["zone_activite"].sum() == int(activity.sum())
    csv = pd.read_csv(folder / "friches" / "friches_cnig.csv", sep=";", dtype=str,
                      keep_default_na=False)
    assert len(layers.friches) == len(csv)
    assert len(layers.friches_surfaces) == int((csv["geomsurf"] != "NA").sum())
    assert len(layers.batiments) == pyogrio.read_info(
        folder / "bdtopo" / "batiment.gpkg")["features"] > 0
    assert len(layers.routes) == pyogrio.read_info(
        folder / "bdtopo" / "troncon_de_route.gpkg")["features"] > 0
    assert set(layers.routes["classe"]) >= {"autoroute", "secondaire", "locale"}
    for report in layers.reports:  # clean synthetic inputs: nothing to repair or drop
        assert report.kind == "zae" or report.repairs == {}, (report.kind, report.repairs)


def test_friches_refer_to_existing_parcels(layers) -> None:  # type: ignore[no-untyped-def]
    idus = set(layers.parcelles["idu"])
    refs = layers.friches["unite_fonciere_refcad"].str.split("|").explode()
    assert len(refs) >= len(layers.friches) > 0
    assert set(refs) <= idus
    inside = gpd.sjoin(layers.friches, layers.parcelles, predicate="within", how="left")
    assert inside["idu"].notna().all()


def test_parcels_are_a_valid_tessellation(layers) -> None:  # type: ignore[no-untyped-def]
    geoms = layers.parcelles.geometry.values
    assert shapely.is_valid(geoms).all()
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]])).sum()
    # Neighbours share their edges exactly; only the 7-decimal rounding of Etalab's
    # lon/lat coordinates leaves slivers (≈ 1 cm wide) at T-junctions.
    assert overlap < 1e-5 * shapely.area(geoms).sum()
    median = float(np.median(shapely.area(geoms)))
    assert 1000 < median < 3000
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    bx0, by0, bx1, by1 = CRS_BOUNDS[2154]
    assert bx0 < xmin < xmax < bx1 and by0 < ymin < ymax < by1


def test_roads_run_between_parcels(layers) -> None:  # type: ignore[no-untyped-def]
    parcels = layers.parcelles.geometry.values
    roads = layers.routes.geometry.values
    hits = shapely.STRtree(parcels).query(roads, predicate="intersects")
    assert hits.shape[1] == 0
    gap = shapely.distance(roads[:200], shapely.union_all(parcels)).min()
    assert gap > 2.0  # half of the narrowest road (6 m), minus the jitter of rounding


def test_buildings_stand_inside_parcels(layers) -> None:  # type: ignore[no-untyped-def]
    joined = gpd.sjoin(layers.batiments, layers.parcelles, predicate="within", how="left")
    assert joined["idu"].notna().all()
    assert not joined.index.duplicated().any()


def test_idu_and_etalab_fields(territory: Path, layers) -> None:  # type: ignore[no-untyped-def]
    idu = layers.parcelles["idu"]
    assert idu.str.len().eq(14).all()
    assert idu.is_unique
    path = sorted((territory.parent / "cadastre").glob("*.json.gz"))[0]
    doc = json.loads(gzip.decompress(path.read_bytes()))
    props = [f["properties"] for f in doc["features"]]
    assert [f["id"] for f in doc["features"]] == [p["id"] for p in props]
    for p in props:
        assert set(p) == {"id", "commune", "prefixe", "section", "numero", "contenance",
                          "arpente", "created", "updated"}
        # Etalab drops the leading zeros of section and numero, but not of the id.
        assert not p["section"].startswith("0") and not p["numero"].startswith("0")
        assert p["id"] == (p["commune"] + p["prefixe"] + p["section"].zfill(2)
                           + p["numero"].zfill(4))
    assert any(len(p["section"]) == 1 for p in props)
    assert doc["features"][0]["geometry"]["type"] == "Polygon"


def test_dem_covers_the_territory(territory: Path, layers) -> None:  # type: ignore[no-untyped-def]
    with rasterio.open(territory.parent / "mnt" / "mnt_25m.tif") as src:
        assert src.crs.to_epsg() == 2154
        assert src.res == (25.0, 25.0)
        assert src.nodata == -99999.0
        band = src.read(1, masked=True)
        left, bottom, right, top = src.bounds
    xmin, ymin, xmax, ymax = layers.parcelles.total_bounds
    assert left < xmin and bottom < ymin and right > xmax and top > ymax
    assert band.mask.any() and not band.mask.all()
    assert 200 < float(band.min()) < float(band.max()) < 1000


def test_plan_gives_communes_of_2000_to_5000_parcels() -> None:
    plan = gen.plan_territory(60_000, seed=3)
    per_commune = np.bincount(plan.block_commune, weights=plan.block_k)
    assert per_commune.sum() == 60_000
    assert ((per_commune[:-1] >= 1900) & (per_commune[:-1] <= 5100)).all()


def test_summary_line() -> None:
    def run(n: int, build_s: float, floor_s: float, mem: float) -> dict:
        return {"parcelles": n, "ratio_plancher": build_s / floor_s,
                "construction": {"ok": True, "duree_s": build_s, "memoire_max_mo": mem},
                "plancher": {"total_s": floor_s}}

    runs = [run(100_000, 12.0, 1.5, 700.0), run(1_000_000, 123.4, 15.2, 2900.0)]
    growth = [{"de": 100_000, "a": 1_000_000, "ratio_temps": 10.28}]
    assert bench.summary_line(runs, growth) == (
        "bench: 1000000 parcelles — build 123.4 s = 8.1 × plancher E/S (15.2 s) ; "
        "100k→1M × 10.3 ; mémoire max 2.9 Go")
    assert bench.short_size(2500) == "2.5k"


@pytest.mark.slow
def test_bench_runs_end_to_end(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--sizes", "1000",
         "--workdir", str(tmp_path / "work"), "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("bench: 1000 parcelles — build ")
    assert "plancher E/S" in last and "mémoire max" in last
    data = json.loads(results.read_text(encoding="utf-8"))
    assert data["resume"] == last
    assert {"date", "nproc", "ram_go", "cpu", "python", "gdal"} <= set(data["machine"])
    (run,) = data["tailles"]
    assert run["parcelles"] == 1000
    build, floor = run["construction"], run["plancher"]
    assert build["ok"] and build["duree_s"] > 0 and build["memoire_max_mo"] > 0
    assert build["etapes"] and all(v >= 0 for v in build["etapes"].values())
    assert all({"message", "duree_s", "memoire_max_mo"} <= set(i) for i in build["intervalles"])
    assert build["couches"]["parcelles"] == 1000
    assert {"lecture_s", "ecriture_s", "total_s", "memoire_max_mo"} <= set(floor)
    # The floor writes the very layers the build wrote, with as many rows.
    assert floor["couches_ecrites"].items() >= build["couches"].items()
    assert floor["lecture_par_source"]["parcelles"]["lignes"] == 1000
    assert floor["lecture_par_source"]["parcelles"]["lecteur"] == "etalab"
    assert run["ratio_plancher"] == pytest.approx(build["duree_s"] / floor["total_s"], rel=0.01)
    assert run["generation"]["cache"] is False
    # History and evolution: the second vintage built into the same folder, then compared.
    evo = run["evolution"]
    edits = evo["millesime2"]["nombres"]
    assert edits == {"divisions": 10, "fusions": 5, "renumerotations": 3,
                     "nouveaux_batiments": edits["nouveaux_batiments"]}
    assert evo["construction_millesime2"]["ok"]
    found = evo["evolution"]
    assert found["ok"] and (found["depuis"], found["jusqua"]) == ("2024-01-01", "2025-01-01")
    assert {k: v for k, v in found["changements"].items() if k != "inchangée"} == {
        "divisée": 20, "fusionnée": 5, "renumérotée": 3}
    assert found["changements"]["inchangée"] >= edits["nouveaux_batiments"]
    # Rounded to two decimals.
    assert evo["ratio_construction"] == pytest.approx(found["duree_s"] / build["duree_s"],
                                                      abs=0.006)
    assert evo["sous_plafond_memoire"] is (found["memoire_max_mo"] <= 3000)
    assert "évolution" in last
    # The generated territory is cached by size and seed.
    toml, generation = bench.ensure_territory(1000, seed=42, workdir=tmp_path / "work")
    assert generation == {"cache": True}
    assert toml == Path(run["territoire"])
