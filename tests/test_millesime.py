"""The generator's second vintage (splits, merges, renumberings, new buildings) and the
evolution found between two generated vintages."""

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
from conftest import load_script

from observatoire.observation.history import fingerprints
from observatoire.observation.lineage import (
    DIVISEE,
    FUSIONNEE,
    INCHANGEE,
    RENUMEROTEE,
    parcel_lineage,
)

N_PARCELS = 3000


gen = load_script("generate_territory")


@pytest.fixture(scope="module")
def vintages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("millesimes")
    toml = gen.generate(N_PARCELS, seed=7, out=base / "m1", commune_blocks=6)
    record = gen.derive_next_vintage(toml.parent, base / "m2", seed=7)
    return base / "m1", base / "m2", record


def _features(folder: Path) -> dict[str, list[str]]:
    """Commune file name → its feature lines (text)."""
    out = {}
    for path in sorted((folder / "cadastre").glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out[path.name] = gen._split_features(f.read())
    return out


def _parcels(folder: Path) -> gpd.GeoDataFrame:
    frames = [pyogrio.read_dataframe(f"/vsigzip/{p}")
              for p in sorted((folder / "cadastre").glob("*.json.gz"))]
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326).to_crs(2154)
    out["idu"] = out["id"]
    out["empreinte"] = fingerprints(out.geometry)
    return out.set_index("id", drop=False)


def test_counts_follow_the_rates_per_commune(vintages) -> None:  # type: ignore[no-untyped-def]
    m1, m2, record = vintages
    per_commune = {name: len(lines) for name, lines in _features(m1).items()}
    assert len(per_commune) > 3  # several communes: rates are applied per commune
    expected_splits = sum(round(n * 0.01) for n in per_commune.values())
    expected_renum = sum(round(n * 0.003) for n in per_commune.values())
    expected_merges = sum(round(n * 0.005) for n in per_commune.values())
    counts = record["nombres"]
    assert counts["divisions"] == expected_splits == len(record["divisions"])
    assert counts["renumerotations"] == expected_renum
    assert counts["fusions"] == expected_merges
    assert counts["nouveaux_batiments"] > 0
    saved = json.loads((m2 / "millesime.json").read_text(encoding="utf-8"))
    assert saved["nombres"] == counts


def test_edits_read_back_from_the_generated_files(vintages) -> None:  # type: ignore[no-untyped-def]
    m1, m2, record = vintages
    a, b = _parcels(m1), _parcels(m2)
    splits, merges, renum = record["divisions"], record["fusions"], record["renumerotations"]
    # A split adds one parcel, a merge removes one.
    assert len(b) == len(a) + len(splits) - len(merges)
    assert b.index.is_unique
    gone = set(a.index) - set(b.index)
    born = set(b.index) - set(a.index)
    assert gone == ({s["avant"] for s in splits} | {i for m in merges for i in m["avant"]}
                    | {r["avant"] for r in renum})
    assert born == ({i for s in splits for i in s["apres"]} | {m["apres"] for m in merges}
                    | {r["apres"] for r in renum})
    for s in splits:  # two pieces tiling the parent
        parent = a.geometry[s["avant"]]
        pieces = b.geometry[s["apres"]]
        assert pieces.area.sum() == pytest.approx(parent.area, rel=1e-6)
        assert shapely.union_all(pieces.values).symmetric_difference(parent).area < 0.01
        assert pieces.area.min() > 0.2 * parent.area
    for m in merges:  # one parcel covering both parents, which shared a side
        parents = a.geometry[m["avant"]]
        assert parents.iloc[0].intersection(parents.iloc[1]).length > 10
        merged = b.geometry[m["apres"]]
        assert merged.area == pytest.approx(parents.area.sum(), rel=1e-6)
        assert merged.symmetric_difference(shapely.union_all(parents.values)).area < 0.01
    for r in renum:  # same shape, another number
        assert a.loc[r["avant"], "empreinte"] == b.loc[r["apres"], "empreinte"]
    # Every other parcel keeps its feature byte for byte.
    lines1 = {line for lines in _features(m1).values() for line in lines}
    lines2 = {line for lines in _features(m2).values() for line in lines}
    assert len(lines1 & lines2) == len(a) - len(gone)


def test_new_buildings_stand_on_empty_parcels(vintages) -> None:  # type: ignore[no-untyped-def]
    m1, m2, record = vintages
    before = pyogrio.read_dataframe(m1 / "bdtopo" / "batiment.gpkg")
    after = pyogrio.read_dataframe(m2 / "bdtopo" / "batiment.gpkg")
    added = after[~after["ID"].isin(before["ID"])]
    assert len(after) == len(before) + len(added)
    assert len(added) == record["nombres"]["nouveaux_batiments"]
    parcels = _parcels(m2)
    owners = parcels.iloc[shapely.STRtree(parcels.geometry.values).query(
        added.geometry.values, predicate="within")[1]]
    assert sorted(owners.index) == sorted(record["nouveaux_batiments"])
    # None of those parcels held a building in the first vintage.
    hit = shapely.STRtree(parcels.loc[record["nouveaux_batiments"]].geometry.values).query(
        before.geometry.values, predicate="intersects")
    assert hit.size == 0


def test_same_seed_same_vintage(vintages, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m1, _, record = vintages
    again = gen.derive_next_vintage(m1, tmp_path / "m2", seed=7)
    assert again["nombres"] == record["nombres"]
    assert again["divisions"] == record["divisions"]
    other = gen.derive_next_vintage(m1, tmp_path / "autre", seed=8)
    assert other["divisions"] != record["divisions"]


def test_friche_parcels_are_left_alone(vintages) -> None:  # type: ignore[no-untyped-def]
    m1, m2, _ = vintages
    friches = pd.read_csv(m1 / "friches" / "friches_cnig.csv", sep=";", dtype=str)
    named = set(friches["unite_fonciere_refcad"].dropna().str.split("|").explode())
    assert named and named <= set(_parcels(m2).index)


def test_lineage_finds_the_generated_edits(vintages) -> None:  # type: ignore[no-untyped-def]
    m1, m2, record = vintages
    a, b = _parcels(m1), _parcels(m2)
    lineage = parcel_lineage(a.reset_index(drop=True), b.reset_index(drop=True))
    kinds = lineage["changement"].value_counts().to_dict()
    counts = record["nombres"]
    assert kinds == {INCHANGEE: len(a) - counts["divisions"] - 2 * counts["fusions"]
                     - counts["renumerotations"],
                     DIVISEE: 2 * counts["divisions"], FUSIONNEE: counts["fusions"],
                     RENUMEROTEE: counts["renumerotations"]}
    merged = lineage[lineage["changement"] == FUSIONNEE].set_index("idu")["idu_precedents"]
    for m in record["fusions"]:
        assert merged[m["apres"]] == ",".join(sorted(m["avant"]))


@pytest.mark.slow
def test_evolution_between_two_built_vintages(vintages, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from observatoire.config import load_territory
    from observatoire.observation.run import evolve
    from observatoire.pipeline import build

    m1, m2, record = vintages
    out = tmp_path / "out"
    first = gen.with_observation_date(m1 / "territoire.toml", gen.DATE_MILLESIME_1)
    build(load_territory(first, output_dir=out))
    build(load_territory(m2 / "territoire.toml", output_dir=out))
    result, _ = evolve(load_territory(m2 / "territoire.toml", output_dir=out))
    parcelles = result.layers["evolution_parcelles"]
    counts = record["nombres"]
    kinds = parcelles["changement"].value_counts().to_dict()
    assert kinds.get(DIVISEE) == 2 * counts["divisions"]
    assert kinds.get(FUSIONNEE) == counts["fusions"]
    assert kinds.get(RENUMEROTEE) == counts["renumerotations"]
    assert set(kinds) <= {INCHANGEE, DIVISEE, FUSIONNEE, RENUMEROTEE}
    gained = parcelles[(parcelles["changement"] == INCHANGEE)
                       & (parcelles["nouveaux_batiments"] > 0)]
    assert sorted(gained["idu"]) == sorted(record["nouveaux_batiments"])
    assert (gained["part_batie"] > gained["part_batie_avant"].fillna(0)).all()
    assert np.isclose(gained["part_batie_avant"].fillna(0), 0).all()


def _observation(parcels: gpd.GeoDataFrame, built: set[str]) -> dict:
    """Attributes of an observation: a built share, a class, sites in sections A and B.

    A site gathers the unbuilt parcels of sections A and B numbered by the same tens.
    """
    frame = parcels[["idu", "geometry"]].reset_index(drop=True)
    frame["code_insee"] = frame["idu"].str[:5]
    frame["surface_m2"] = frame.area.round(2)
    frame["part_batie"] = np.where(frame["idu"].isin(built), 0.16, 0.0)
    frame["nb_batiments"] = frame["idu"].isin(built).astype(int)
    frame["classe_industrie"] = np.where(frame["surface_m2"] > 3000, "A", "C")
    in_site = frame["idu"].str[8:10].isin(["0A", "0B"]) & ~frame["idu"].isin(built)
    frame["gisement_id"] = np.where(in_site, "G-" + frame["idu"].str[:13], None)
    sites = (frame.dropna(subset=["gisement_id"]).groupby("gisement_id")["surface_m2"].sum()
             .reset_index())
    sites["zae_id"] = None
    return {"parcelles": frame, "zae": pd.DataFrame({"zae_id": pd.Series([], dtype=object)}),
            "friches": pd.DataFrame({"site_id": pd.Series([], dtype=object)}),
            "gisements": sites}


def test_changes_alone_give_the_whole_evolution(vintages, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from observatoire.observation import evolution, history
    from observatoire.observation.run import _site_shapes

    m1, m2, record = vintages
    d1, d2 = dt.date(2024, 1, 1), dt.date(2025, 1, 1)
    folder = tmp_path / "historique"
    history.append_observation(folder, d1, **_observation(_parcels(m1), set()))
    history.append_observation(folder, d2, **_observation(_parcels(m2),
                                                          set(record["nouveaux_batiments"])))
    results = []
    for old, new in ((history.read_observation(folder, d1), history.read_observation(folder, d2)),
                     history.read_changes(folder, d1, d2)):
        parcelles = evolution.evolution_parcelles(old, new, seuil_bati=0.1)
        sites = evolution.evolution_gisements(old, new, parcelles)
        results.append((old, parcelles, sites, _site_shapes(sites, old, new)))
    (whole, p1, g1, s1), (lean, p2, g2, s2) = results
    counts = record["nombres"]
    # Only the parcels that differ are read: the edited ones and the newly built ones.
    assert len(lean.parcelles) == (counts["divisions"] + 2 * counts["fusions"]
                                   + counts["renumerotations"] + counts["nouveaux_batiments"])
    assert len(whole.parcelles) > 10 * len(lean.parcelles)
    assert (lean.inchangees["gisement_id"].notna()).all() and len(lean.inchangees) > 0
    key = ["idu", "idu_precedents"]
    p1 = p1.sort_values(key).reset_index(drop=True)
    p2 = p2.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.DataFrame(p1.drop(columns="geometry")),
                                  pd.DataFrame(p2.drop(columns="geometry")))
    assert p1.geometry.geom_equals_exact(p2.geometry, tolerance=0).all()
    assert (p1["evolution"] == "nouvellement bâtie").sum() == counts["nouveaux_batiments"]
    # Sites that lost a newly built parcel are reduced, with the same outline either way.
    assert (g1["statut"] == "réduit").sum() > 0
    pd.testing.assert_frame_equal(g1.sort_values("gisement_id").reset_index(drop=True),
                                  g2.sort_values("gisement_id").reset_index(drop=True))
    s1 = s1.sort_values("gisement_id").reset_index(drop=True)
    s2 = s2.sort_values("gisement_id").reset_index(drop=True)
    assert (s1.geometry.symmetric_difference(s2.geometry).area < 1e-6).all()


def test_two_identical_observations_read_no_parcel(vintages, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from observatoire.observation import evolution, history

    m1, _, _ = vintages
    d1, d2 = dt.date(2024, 1, 1), dt.date(2025, 1, 1)
    folder = tmp_path / "historique"
    same = _observation(_parcels(m1), set())
    history.append_observation(folder, d1, **same)
    history.append_observation(folder, d2, **same)
    old, new = history.read_changes(folder, d1, d2)
    assert len(old.parcelles) == len(new.parcelles) == 0
    assert {"idu", "empreinte", "surface_m2"} <= set(new.parcelles.columns)
    assert len(new.inchangees) == same["parcelles"]["gisement_id"].notna().sum()
    parcelles = evolution.evolution_parcelles(old, new, seuil_bati=0.1)
    assert len(parcelles) == 0
    assert len(evolution.evolution_gisements(old, new, parcelles)) == 0
