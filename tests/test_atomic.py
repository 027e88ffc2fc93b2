"""Never half-written: a build killed (SIGKILL) at any moment leaves the previous outputs intact.

A real ``observatoire build`` process is killed at several points — as soon as
its temporary GeoPackage appears, in the middle of the write, and after delays
drawn at random over the length of a build. Each time the previous GeoPackage,
map and report must be byte-identical (or, when the kill came after their
publication, complete and valid), and the next build must succeed despite the
temporary files the killed ones left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyogrio
import pytest
from conftest import ROOT
from test_bad_inputs import write_territory
from test_cli import SAMPLE_SOURCES, snapshot

from observatoire.geopackage import GeoPackageWriter
from observatoire.observation import history
from observatoire.outputs import StagedFile, remove_stale

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def start_build(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "observatoire", "-q", "build", "--config",
                             str(config)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def assert_valid_gpkg(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    layers = [name for name, _ in pyogrio.list_layers(path)]
    assert "parcelles" in layers
    for name in layers:
        pyogrio.read_dataframe(path, layer=name)


def assert_intact(out: Path, before: dict[str, bytes], *, strict: bool) -> dict[str, bytes]:
    """Every previous output is unchanged, or (not ``strict``) replaced by a complete one.

    Returns the outputs now in place: the reference for the next kill (a build killed
    late may have published all or part of its outputs, each of them complete).
    """
    now = snapshot(out)
    _assert_history(out, before, now, strict=strict)
    before = {k: v for k, v in before.items() if not k.startswith(HISTORY)}
    assert set(before) <= set(now)
    for name, data in before.items():
        if now[name] == data:
            continue
        assert not strict, f"{name} modifié par une construction interrompue"
        if name.endswith(".gpkg"):
            assert_valid_gpkg(out / name)
        elif name.endswith(".html"):
            assert now[name].rstrip().endswith(b"</html>"), name
    for name in before:
        if name.endswith(".gpkg"):
            assert_valid_gpkg(out / name)
    return now


#: The history's files are named by observation and version: a build killed after its
#: commit has replaced the observation of the same date by a complete one, under new names.
HISTORY = "historique/"


def _assert_history(out: Path, before: dict[str, bytes], now: dict[str, bytes], *,
                    strict: bool) -> None:
    """The history holds the same observations, each readable whole (or, ``strict``, as it was)."""
    old = {k: v for k, v in before.items() if k.startswith(HISTORY)}
    new = {k: v for k, v in now.items() if k.startswith(HISTORY)}
    if strict or old == new:
        assert new == old, "historique modifié par une construction interrompue"
        return
    folder = out / HISTORY
    dates = json.loads(old[HISTORY + history.MANIFEST])["observations"]
    assert history.observation_dates(folder) == [dt.date.fromisoformat(d) for d in sorted(dates)]
    for date in history.observation_dates(folder):
        assert len(history.read_observation(folder, date).parcelles) > 0


@pytest.fixture(scope="module")
def territory(tmp_path_factory) -> tuple[Path, Path, dict[str, bytes], float]:
    folder = tmp_path_factory.mktemp("atomique")
    out = folder / "out"
    config = write_territory(folder, SAMPLE_SOURCES, out=out)
    start = time.perf_counter()
    proc = start_build(config)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    duration = time.perf_counter() - start
    before = snapshot(out)
    assert {"observatoire.gpkg", "carte.html"} <= set(before)
    return config, out, before, duration


def _wait_for_temporary(out: Path, proc: subprocess.Popen, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(out.glob(f".observatoire.gpkg.{proc.pid}.tmp")):
            return True
        time.sleep(0.002)
    return False


@pytest.mark.slow
def test_killed_builds_leave_the_previous_outputs_intact(territory):
    config, out, before, duration = territory
    rng = random.Random(20240327)

    # 1. After random delays spread over a whole build (reading, analysis, writing).
    for low, high in ((0.3, 0.7), (0.7, 1.0)):
        proc = start_build(config)
        time.sleep(rng.uniform(low, high) * duration)
        kill(proc)
        before = assert_intact(out, before, strict=False)

    # 2. During the write of the GeoPackage, then as soon as its temporary file appears:
    # the previous outputs must then be byte-identical.
    for pause in (rng.uniform(0.0, 0.3), 0.0):
        proc = start_build(config)
        seen = _wait_for_temporary(out, proc)
        time.sleep(pause)
        kill(proc)
        assert seen, "le GeoPackage temporaire n'est jamais apparu"
        before = assert_intact(out, before, strict=pause == 0.0)

    # The last killed build left its temporary file behind…
    assert list(out.glob(f".observatoire.gpkg.{proc.pid}.tmp"))

    # …which do not break the next build, and are cleaned up by it.
    proc = start_build(config)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert not list(out.glob(".*.tmp*"))
    assert_valid_gpkg(out / "observatoire.gpkg")
    assert (out / "carte.html").read_bytes().rstrip().endswith(b"</html>")


def test_writer_without_commit_publishes_nothing(tmp_path):
    import geopandas as gpd
    import shapely

    dest = tmp_path / "observatoire.gpkg"
    dest.write_bytes(b"ancien")
    frame = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.box(0, 0, 1, 1)], crs=2154)
    with pytest.raises(RuntimeError, match="interruption"), GeoPackageWriter(dest) as writer:
        writer.write("couche", frame)
        assert writer.tmp.exists()
        raise RuntimeError("interruption simulée")
    assert dest.read_bytes() == b"ancien"
    assert not writer.tmp.exists()


def test_stale_files_of_live_processes_are_kept(tmp_path):
    dest = tmp_path / "carte.html"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = tmp_path / f".carte.html.{os.getpid()}.tmp"
    theirs = tmp_path / f".carte.html.{dead.pid}.tmp"
    journal = tmp_path / f".carte.html.{dead.pid}.tmp-journal"
    other = tmp_path / ".autre.html.1.tmp"
    for p in (mine, theirs, journal, other):
        p.write_text("x", encoding="utf-8")
    removed = remove_stale(dest)
    assert sorted(removed) == sorted([theirs, journal])
    assert mine.exists() and other.exists()
    staged = StagedFile(dest)
    staged.tmp.write_text("<html></html>", encoding="utf-8")
    assert staged.publish() == dest and dest.read_text(encoding="utf-8") == "<html></html>"


def test_staging_folders_of_killed_builds_are_removed(tmp_path):
    """A killed build by partition leaves its staging folder (gigabytes): the next removes it."""
    from observatoire.config import load_territory
    from observatoire.outputs import remove_stale_folders
    from observatoire.pipeline.staging import STAGING_PREFIX, staging_folder

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    theirs = out / f"{STAGING_PREFIX}{dead.pid}-k2j4"
    mine = out / f"{STAGING_PREFIX}{os.getpid()}-a1b2"
    unnamed = out / f"{STAGING_PREFIX}x7wq"  # no process id (older builds): left alone
    for folder in (theirs, mine, unnamed):
        (folder / "sous-dossier").mkdir(parents=True)
        (folder / "sous-dossier" / "parcelles-000001.parquet").write_bytes(b"x" * 100)
    territory = load_territory("data/sample/territoire.toml", output_dir=out)
    with staging_folder(territory) as folder:
        assert Path(folder).name.startswith(f"{STAGING_PREFIX}{os.getpid()}-")
        assert not theirs.exists()
        assert mine.exists() and unnamed.exists()
    assert not Path(folder).exists()
    assert remove_stale_folders(out, STAGING_PREFIX) == []
