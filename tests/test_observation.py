"""History store, parcel lineage and evolution between observations."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from observatoire.observation import history, lineage

D1, D2 = dt.date(2024, 1, 1), dt.date(2025, 1, 1)


def _parcels(rows: list[tuple[str, tuple[float, float, float, float]]], **cols) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame({"idu": [r[0] for r in rows], **cols},
                             geometry=[box(*r[1]) for r in rows], crs="EPSG:2154")
    frame["empreinte"] = history.fingerprints(frame.geometry)
    return frame


# Vintage 1: A (0..100), B (100..200), C and D side by side (200..300), E (300..400).
V1 = [("A", (0, 0, 100, 100)), ("B", (100, 0, 200, 100)), ("C", (200, 0, 250, 100)),
      ("D", (250, 0, 300, 100)), ("E", (300, 0, 400, 100)), ("F", (400, 0, 500, 100))]
# Vintage 2: A unchanged, B split into B1/B2, C+D merged into G, E renumbered as H,
# F redrawn (same IDU, 10 m shorter), a new parcel N where there was none.
V2 = [("A", (0, 0, 100, 100)), ("B1", (100, 0, 150, 100)), ("B2", (150, 0, 200, 100)),
      ("G", (200, 0, 300, 100)), ("H", (300, 0, 400, 100)), ("F", (400, 0, 490, 100)),
      ("N", (0, 200, 100, 300))]


def test_lineage_kinds_computed_by_hand():
    old = _parcels(V1 + [("Z", (0, 500, 10, 510))])
    out = lineage.parcel_lineage(old, _parcels(V2)).set_index("idu", drop=False)
    assert out.loc["A", "changement"] == "inchangée"
    assert out.loc["B1", "changement"] == "divisée" and out.loc["B1", "idu_precedents"] == "B"
    assert out.loc["B2", "changement"] == "divisée"
    assert out.loc["G", "changement"] == "fusionnée" and out.loc["G", "idu_precedents"] == "C,D"
    assert out.loc["H", "changement"] == "renumérotée" and out.loc["H", "idu_precedents"] == "E"
    assert out.loc["F", "changement"] == "géométrie modifiée"
    assert out.loc["N", "changement"] == "créée" and out.loc["N", "nb_precedents"] == 0
    deleted = out[out["changement"] == "supprimée"]
    assert deleted["idu_precedents"].tolist() == ["Z"]


def test_lineage_ignores_slivers_along_redrawn_limits():
    # A moved 0.5 m into B: the 50 m² sliver is 0.5 % of B, no link.
    old = _parcels([("A", (0, 0, 100, 100)), ("B", (100, 0, 200, 100))])
    new = _parcels([("A", (0, 0, 100.5, 100)), ("B", (100.5, 0, 200, 100))])
    out = lineage.parcel_lineage(old, new)
    assert out["changement"].tolist() == ["géométrie modifiée", "géométrie modifiée"]


def test_fingerprint_ignores_vertex_order_and_sub_centimetre_noise():
    a = gpd.GeoSeries([box(0, 0, 10, 10), box(0, 0, 10, 10).reverse(),
                       box(0.001, 0, 10, 10), box(0, 0, 11, 10)])
    fp = history.fingerprints(a)
    assert fp[0] == fp[1] == fp[2] != fp[3]


def test_fingerprint_drops_the_vertices_rounding_repeats_only_where_there_are():
    square = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    # A vertex 3 mm from the corner before it: the same point at 1 cm, so dropped; the
    # same square starting elsewhere; a second part whose ring repeats no vertex.
    noisy = Polygon([(0, 0), (10, 0), (10.003, 0.002), (10, 10), (0, 10)])
    shifted = Polygon([(10, 10), (0, 10), (0, 0), (10, 0)])
    two = MultiPolygon([noisy, box(20, 0, 30, 10)])
    fp = history.fingerprints(np.array([square, noisy, shifted, two,
                                        MultiPolygon([square, box(20, 0, 30, 10)])]))
    assert fp[0] == fp[1] == fp[2] and fp[3] == fp[4] != fp[0]
    # Only the copies are rounded: the shapes given are untouched.
    assert list(noisy.exterior.coords)[2] == (10.003, 0.002)


def _append(folder: Path, date: dt.date, rows, batie: list[float]) -> None:
    parcelles = _parcels(rows, part_batie=batie).drop(columns="empreinte")
    history.append_observation(
        folder, date, parcelles=parcelles,
        zae=pd.DataFrame({"zae_id": ["Z1"], "taux_vacance": [0.25]}),
        friches=pd.DataFrame({"site_id": ["F1"], "site_statut": ["friche sans projet"]}))


def test_history_stores_each_shape_once_and_replaces_a_date(tmp_path):
    folder = tmp_path / "historique"
    _append(folder, D1, V1, [0.0] * 6)
    _append(folder, D2, V2, [0.5] * 7)
    # V2 brings 5 new shapes (B1, B2, G, F redrawn, N); A and H=E are stored once.
    shapes = pd.concat(gpd.read_parquet(p) for p in (folder / "geometries").glob("*.parquet"))
    assert len(shapes) == 6 + 5
    before = history.read_observation(folder, D2)
    _append(folder, D2, V2, [0.5] * 7)
    again = history.read_observation(folder, D2)
    pd.testing.assert_frame_equal(pd.DataFrame(before.parcelles), pd.DataFrame(again.parcelles))
    assert history.observation_dates(folder) == [D1, D2]
    first = history.read_observation(folder, D1)
    assert first.parcelles["idu"].tolist() == [r[0] for r in V1]
    assert first.parcelles.geometry.area.sum() == pytest.approx(50_000)
    assert len(list((folder / "parcelles").glob("*.parquet"))) == 2


def test_history_missing_date_is_a_french_error(tmp_path):
    folder = tmp_path / "historique"
    _append(folder, D1, V1, [0.0] * 6)
    with pytest.raises(Exception, match="pas d'observation du 2025-01-01.*2024-01-01"):
        history.read_observation(folder, D2)


_KILLED = """
import datetime as dt, os, signal, sys
import geopandas as gpd, pandas as pd
from shapely.geometry import MultiPolygon, Polygon, box
from observatoire.observation import history
folder = sys.argv[1]
real = history._write_manifest
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
history._write_manifest = die
p = gpd.GeoDataFrame({"idu": ["X"], "part_batie": [1.0]}, geometry=[box(0, 0, 5, 5)],
                     crs="EPSG:2154")
history.append_observation(__import__("pathlib").Path(folder), dt.date(2025, 1, 1),
                           parcelles=p, zae=pd.DataFrame({"zae_id": ["Z1"]}),
                           friches=pd.DataFrame({"site_id": ["F1"]}))
"""


def test_sigkill_during_append_keeps_previous_observations(tmp_path):
    folder = tmp_path / "historique"
    _append(folder, D1, V1, [0.0] * 6)
    _append(folder, D2, V2, [0.5] * 7)
    before = history.read_observation(folder, D2).parcelles
    # The child writes its parquet files for 2025-01-01 (a replacement), then is
    # killed by SIGKILL just before committing the manifest.
    proc = subprocess.run([sys.executable, "-c", _KILLED, str(folder)], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert history.observation_dates(folder) == [D1, D2]
    after = history.read_observation(folder, D2).parcelles
    pd.testing.assert_frame_equal(pd.DataFrame(before), pd.DataFrame(after))
    assert len(history.read_observation(folder, D1).parcelles) == 6
    # The next append clears the dead one's files.
    _append(folder, D2, V2, [0.5] * 7)
    assert len(list((folder / "parcelles").glob("*.parquet"))) == 2


def test_history_stores_each_row_once(tmp_path):
    import pyarrow.parquet as pq

    folder = tmp_path / "historique"
    _append(folder, D1, V1, [0.0] * 6)
    # Same parcels, one built (F): one new row; the others point at D1's rows.
    _append(folder, D2, V1, [0.0] * 5 + [0.8])

    def rows(date: dt.date) -> int:
        return sum(pq.read_metadata(p).num_rows
                   for p in (folder / "lignes").glob(f"{date.isoformat()}.*.parquet"))

    assert (rows(D1), rows(D2)) == (6, 1)
    second = history.read_observation(folder, D2).parcelles
    assert second["idu"].tolist() == [r[0] for r in V1]
    assert second["part_batie"].tolist() == [0.0] * 5 + [0.8]
    # A third observation back to D1's values stores nothing new.
    _append(folder, dt.date(2026, 1, 1), V1, [0.0] * 6)
    assert rows(dt.date(2026, 1, 1)) == 0
    series = history.read_table(folder, "parcelles", columns=["idu", "part_batie"])
    assert series.groupby("date_observation")["part_batie"].sum().tolist() == [0.0, 0.8, 0.0]
