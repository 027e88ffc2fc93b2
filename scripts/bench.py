"""Benchmark of the whole build against the I/O floor, on synthetic territories.

For each size (number of parcels), in one run:

1. generate the territory with ``scripts/generate_territory.py`` (cached in the work
   folder by size and seed, regenerated when the generator changes);
2. run the whole build (``observatoire.pipeline.build``, what ``observatoire build``
   calls) in its own process: total time, time of each stage, peak memory of each
   stage and of the process, read from the operating system (``VmHWM``);
3. measure the I/O floor in another process: read every input with the fastest
   correct reader measured (:mod:`observatoire.readers.etalab` for the Etalab parcel
   files, projected to the territory's CRS; pyogrio + Arrow for the other vector
   layers, pyarrow for CSV, rasterio for the DEM), then write every layer of the
   build's GeoPackage (same rows, same columns) with pyogrio + Arrow;
4. history and evolution (unless ``--sans-evolution``): the build of step 2 is the
   first vintage's observation (``date_observation`` 2024-01-01); the generator
   derives the second vintage (``--millesime-suivant``: splits, merges, renumberings,
   new buildings), built into the same output folder (2025-01-01); then
   ``evolution`` runs in its own process: its time against one build's, its peak
   memory against the 3 GB ceiling.

Results go to ``bench/results.json``; the last line printed is a one-line summary::

    bench: 1000000 parcelles — build 123.4 s = 8.1 × plancher E/S (15.2 s) ;
    100k→1M × 10.2 ; mémoire max 2.9 Go   (on one line)

Usage::

    python scripts/bench.py --sizes 100000 1000000 [--seed 42] [--workdir bench/work]
                            [--results bench/results.json] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = Path(__file__).resolve().with_name("generate_territory.py")
DRIVERS = ("_build", "_floor", "_evolution")
#: Peak memory ceiling of the build and of the evolution (issue 16: 3 GB).
PLAFOND_MEMOIRE_MO = 3000.0
MB = 1e6
GB = 1e9


# --------------------------------------------------------------------------- memory


def _status_kb(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` field in kB (0 when unavailable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    """Pids of the processes descending from ``root`` (from ``/proc/<pid>/stat``)."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                # "pid (comm) state ppid …": comm may hold spaces and parentheses.
                parent[int(entry.name)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found.extend(kids)
        todo.extend(kids)
    return found


def _reset_peak(pid: int | str) -> bool:
    """Reset the peak RSS of ``pid`` to its current RSS (Linux ≥ 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMeter:
    """Peak resident memory of this process and its workers, per interval.

    ``VmHWM`` is a process's peak RSS; writing ``5`` to ``/proc/<pid>/clear_refs``
    resets it to the current RSS (Linux ≥ 4.0), which gives the peak of each
    interval. Where the reset is refused, peaks are cumulative (``resettable`` is
    False).

    A build by partition computes in worker processes (``observatoire.executor``):
    a thread reads their ``VmHWM`` every :data:`SAMPLE_S` seconds, and the peak
    of an interval is this process's peak plus the sum of the workers' peaks. The
    peaks of different processes are added even when they came at different
    moments: the figure can only overstate the memory used at once.
    """

    #: Seconds between two readings of the workers' peaks.
    SAMPLE_S = 0.2

    def __init__(self) -> None:
        import threading

        self.resettable = True
        self.overall_kb = 0
        self.workers_kb = 0  # highest sum of the workers' peaks in one interval
        self._peaks: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.SAMPLE_S):
            for pid in _descendants(me):
                kb = _status_kb("VmHWM", pid)
                with self._lock:
                    self._peaks[pid] = max(self._peaks.get(pid, 0), kb)

    def lap(self) -> float:
        """Return the peak (MB) since the previous lap, and start a new interval."""
        with self._lock:
            for pid in list(self._peaks):  # a last reading of the living workers
                self._peaks[pid] = max(self._peaks[pid], _status_kb("VmHWM", pid))
            workers = sum(self._peaks.values())
            self._peaks = {}
            peak = _status_kb("VmHWM") + workers
            self.workers_kb = max(self.workers_kb, workers)
            self.overall_kb = max(self.overall_kb, peak)
            if self.resettable:
                self.resettable = _reset_peak("self")
                for pid in _descendants(os.getpid()):
                    _reset_peak(pid)
        return peak * 1024 / MB

    @property
    def overall_mb(self) -> float:
        """Peak of the whole build so far (MB): this process and its workers."""
        return max(self.overall_kb, _status_kb("VmHWM")) * 1024 / MB

    def close(self) -> None:
        """Stop watching the workers."""
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- children


@dataclass
class Measured:
    """A child process as the OS saw it."""

    returncode: int
    wall_s: float
    cpu_s: float
    maxrss_mb: float


def run_measured(cmd: list[str], *, log: Path | None = None) -> Measured:
    """Run ``cmd``, echoing its output, and return its time and peak memory.

    ``os.wait4`` gives the resource usage of this child alone (``RUSAGE_CHILDREN``
    would mix every child of the benchmark).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        print("    " + line.rstrip(), flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if log is not None:
        log.write_text("".join(lines), encoding="utf-8")
    return Measured(returncode=proc.returncode, wall_s=wall,
                    cpu_s=usage.ru_utime + usage.ru_stime,
                    maxrss_mb=usage.ru_maxrss * 1024 / MB)


def _generator_digest() -> str:
    return hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:16]


def ensure_territory(n: int, *, seed: int, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Generate the territory of ``n`` parcels, or reuse the one cached in ``workdir``."""
    folder = workdir / f"territoire-{n}-graine{seed}"
    marker = folder / ".bench.json"
    toml = folder / "territoire.toml"
    key = {"parcelles": n, "graine": seed, "generateur": _generator_digest()}
    if marker.is_file() and toml.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == key:
                return toml, {"cache": True}
        except json.JSONDecodeError:
            pass
    shutil.rmtree(folder, ignore_errors=True)
    print(f"  génération du territoire de {n} parcelles (graine {seed})…", flush=True)
    m = run_measured([sys.executable, str(GENERATOR), "--parcels", str(n), "--seed", str(seed),
                      "--out", str(folder)])
    if m.returncode != 0:
        raise SystemExit(f"bench : échec de la génération du territoire de {n} parcelles")
    marker.write_text(json.dumps(key), encoding="utf-8")
    return toml, {"cache": False, "duree_s": round(m.wall_s, 2),
                  "memoire_max_mo": round(m.maxrss_mb, 1)}


def _input_files(toml: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from observatoire.config import load_territory

    territory = load_territory(toml)
    paths = [p for s in territory.all_sources() for p in s.paths]
    return {"fichiers": len(paths), "octets": sum(p.stat().st_size for p in paths)}


def run_build(toml: Path, out: Path, *, workdir: Path, n: int | str, profile: bool
              ) -> dict[str, Any]:
    """Run the build driver in its own process and collect its measurements."""
    result_path = workdir / f"build-{n}.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_build", "--config", str(toml),
           "--out", str(out), "--json", str(result_path)]
    if profile:
        cmd += ["--profile", str(workdir / f"build-{n}.prof")]
    m = run_measured(cmd, log=workdir / f"build-{n}.log")
    data: dict[str, Any] = {"ok": m.returncode == 0 and result_path.is_file(),
                            "duree_processus_s": round(m.wall_s, 2),
                            "cpu_s": round(m.cpu_s, 2)}
    if result_path.is_file():
        data.update(json.loads(result_path.read_text(encoding="utf-8")))
    if not data["ok"]:
        log = (workdir / f"build-{n}.log").read_text(encoding="utf-8").strip().splitlines()
        data["erreur"] = log[-1] if log else f"code de sortie {m.returncode}"
        data.setdefault("memoire_max_mo", round(m.maxrss_mb, 1))
    return data


def _generator() -> Any:
    """The generator module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_territory", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def ensure_next_vintage(toml: Path, *, seed: int) -> tuple[Path, dict[str, Any]]:
    """Derive the second vintage of the territory of ``toml``, or reuse the cached one."""
    folder = toml.parent.with_name(toml.parent.name + "-millesime2")
    marker = folder / ".bench.json"
    key = {"source": str(toml.parent), "graine": seed, "generateur": _generator_digest()}
    if marker.is_file() and (folder / "millesime.json").is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == key:
                record = json.loads((folder / "millesime.json").read_text(encoding="utf-8"))
                return folder / "territoire.toml", {"cache": True,
                                                    "nombres": record["nombres"]}
        except json.JSONDecodeError:
            pass
    print("  dérivation du millésime 2 (divisions, fusions, renumérotations, bâtiments)…",
          flush=True)
    m = run_measured([sys.executable, str(GENERATOR), "--millesime-suivant",
                      str(toml.parent), "--seed", str(seed), "--out", str(folder)])
    if m.returncode != 0:
        raise SystemExit(f"bench : échec de la dérivation du millésime 2 de {toml.parent}")
    marker.write_text(json.dumps(key), encoding="utf-8")
    record = json.loads((folder / "millesime.json").read_text(encoding="utf-8"))
    return folder / "territoire.toml", {"cache": False, "duree_s": round(m.wall_s, 2),
                                        "memoire_max_mo": round(m.maxrss_mb, 1),
                                        "nombres": record["nombres"]}


def run_evolution(toml: Path, out: Path, *, workdir: Path, n: int) -> dict[str, Any]:
    """Run the evolution driver (the two last observations of ``out``) in its own process."""
    result_path = workdir / f"evolution-{n}.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_evolution", "--config", str(toml),
           "--out", str(out), "--json", str(result_path)]
    m = run_measured(cmd, log=workdir / f"evolution-{n}.log")
    data: dict[str, Any] = {"ok": m.returncode == 0 and result_path.is_file(),
                            "duree_processus_s": round(m.wall_s, 2),
                            "cpu_s": round(m.cpu_s, 2),
                            "memoire_max_mo": round(m.maxrss_mb, 1)}
    if result_path.is_file():
        data.update(json.loads(result_path.read_text(encoding="utf-8")))
    else:
        log = (workdir / f"evolution-{n}.log").read_text(encoding="utf-8").strip().splitlines()
        data["erreur"] = log[-1] if log else f"code de sortie {m.returncode}"
    return data


def _driver_evolution(argv: list[str]) -> int:
    """Child process: run ``evolve()`` on the two last observations and dump its figures."""
    p = argparse.ArgumentParser(prog="bench.py _evolution")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from observatoire.config import load_territory
    from observatoire.observation.run import evolve

    territory = load_territory(args.config, output_dir=args.out)
    start = time.perf_counter()
    result, _ = evolve(territory)
    total = time.perf_counter() - start
    parcelles = result.layers["evolution_parcelles"]
    data = {
        "duree_s": round(total, 3),
        "memoire_max_mo": round(_status_kb("VmHWM") * 1024 / MB, 1),
        "depuis": result.depuis.isoformat(), "jusqua": result.jusqua.isoformat(),
        "changements": {str(k): int(v) for k, v in
                        parcelles["changement"].value_counts().items()},
        "evolutions": {str(k): int(v) for k, v in
                       parcelles["evolution"].value_counts().items()},
        "couches": {k: len(v) for k, v in result.layers.items()},
    }
    args.json.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def run_floor(toml: Path, gpkg: Path | None, *, workdir: Path, n: int) -> dict[str, Any]:
    """Run the I/O floor driver in its own process and collect its measurements."""
    result_path = workdir / f"plancher-{n}.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_floor", "--config", str(toml),
           "--json", str(result_path), "--scratch", str(workdir / f"plancher-{n}.gpkg")]
    if gpkg is not None:
        cmd += ["--gpkg", str(gpkg)]
    m = run_measured(cmd, log=workdir / f"plancher-{n}.log")
    if m.returncode != 0 or not result_path.is_file():
        raise SystemExit(f"bench : échec de la mesure du plancher E/S ({n} parcelles) ; "
                         f"voir {workdir / f'plancher-{n}.log'}")
    data = json.loads(result_path.read_text(encoding="utf-8"))
    data["duree_processus_s"] = round(m.wall_s, 2)
    return data


# --------------------------------------------------------------------------- drivers


def _executor_used(territory: Any) -> str:
    """How the build ran: in one pass, or by partition with which executor."""
    from observatoire.executor import default_executor
    from observatoire.pipeline.build import wants_worker

    if not wants_worker(territory):
        return "par partitions, en série"
    executor = default_executor()
    return f"par partitions, {executor.name} ({executor.workers} processus de calcul)"


def _driver_build(argv: list[str]) -> int:
    """Child process: run ``build()`` and dump its timings and per-stage peak memory."""
    p = argparse.ArgumentParser(prog="bench.py _build")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--profile", type=Path)
    args = p.parse_args(argv)
    meter = PeakMeter()
    sys.path.insert(0, str(ROOT))
    from observatoire.config import load_territory
    from observatoire.pipeline import build

    territory = load_territory(args.config, output_dir=args.out)
    startup_peak = meter.lap()
    intervals: list[dict[str, Any]] = [{"message": "(avant la première étape)", "debut_s": 0.0}]
    start = time.perf_counter()

    def close_interval() -> None:
        last = intervals[-1]
        last["duree_s"] = round(time.perf_counter() - start - last["debut_s"], 3)
        last["memoire_max_mo"] = round(meter.lap(), 1)

    def progress(message: str) -> None:
        close_interval()
        now = time.perf_counter() - start
        intervals.append({"message": message, "debut_s": round(now, 3)})
        print(f"[{now:6.1f} s] {message}", flush=True)

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(build, territory, progress=progress)
        total = time.perf_counter() - start
        prof.dump_stats(args.profile)
        with open(args.profile.with_suffix(".txt"), "w", encoding="utf-8") as f:
            stats = pstats.Stats(prof, stream=f).strip_dirs().sort_stats("cumulative")
            stats.print_stats(60)
            stats.sort_stats("tottime").print_stats(40)
    else:
        result = build(territory, progress=progress)
        total = time.perf_counter() - start
    close_interval()
    meter.close()
    if intervals[0]["duree_s"] < 0.05:
        intervals.pop(0)
    data = {
        "duree_s": round(total, 3),
        "executeur": _executor_used(territory),
        "memoire_max_mo": round(meter.overall_mb, 1),
        "memoire_processus_auxiliaires_mo": round(meter.workers_kb * 1024 / MB, 1),
        "memoire_demarrage_mo": round(startup_peak, 1),
        "memoire_par_etape": meter.resettable,
        "etapes": {k: round(v, 3) for k, v in result.timings.items()},
        "intervalles": intervals,
        "couches": dict(result.layer_counts),
        "gpkg": str(result.gpkg),
        "profil": str(args.profile) if args.profile else None,
    }
    args.json.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def _read_source(source: Any, path: Path, *, crs: str) -> tuple[Any, int, str]:
    """Read one input file with the fastest correct reader; return it, its rows, the reader.

    Etalab cadastre files are read by :func:`observatoire.readers.etalab.read_etalab`
    (msgspec, simdjson, numpy; projected to the territory's ``crs`` on flat arrays),
    3 times faster than pyogrio + ``to_crs`` (``bench/README.md``); a file it declines
    is read by pyogrio, then projected.
    """
    import pyogrio

    name = path.name.lower()
    if name.endswith((".tif", ".tiff", ".asc")):
        import rasterio

        with rasterio.open(path) as src:
            band = src.read(1)
        return band, int(band.size), "rasterio"
    if name.endswith((".csv", ".txt")):
        import pyarrow.csv as pacsv
        import shapely

        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=";"),
                               convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        for column in ("geompoint", "geomsurf"):
            if column in table.column_names:
                wkt = table.column(column).to_numpy(zero_copy_only=False)
                shapely.from_wkt(wkt, on_invalid="ignore")
        return table, table.num_rows, "pyarrow"
    etalab = source.kind == "parcelles" and name.endswith((".json", ".json.gz"))
    if etalab and source.layer is None:
        from observatoire.readers.etalab import read_etalab

        frame = read_etalab(path, crs=crs)
        if frame is not None:
            return frame, len(frame), "etalab"
    target = f"/vsigzip/{path}" if name.endswith(".gz") else str(path)
    frame = pyogrio.read_dataframe(target, layer=source.layer, use_arrow=True)
    if etalab:
        frame = frame.to_crs(crs)
    return frame, len(frame), "pyogrio"


#: Rows of an output layer read back, then written, at a time by the floor.
FLOOR_BATCH = 200_000


def _driver_floor(argv: list[str]) -> int:
    """Child process: read every input, then write every output layer (pyogrio Arrow)."""
    p = argparse.ArgumentParser(prog="bench.py _floor")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--scratch", type=Path, required=True)
    p.add_argument("--gpkg", type=Path)
    args = p.parse_args(argv)
    meter = PeakMeter()
    sys.path.insert(0, str(ROOT))
    import warnings

    import pyogrio

    from observatoire.config import load_territory

    territory = load_territory(args.config)
    meter.lap()
    per_source: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for source in territory.all_sources():
        key = source.name if source.kind == "contraintes" and source.name else source.kind
        t = time.perf_counter()
        rows = 0
        readers: set[str] = set()
        for path in source.paths:
            data, count, reader = _read_source(source, path, crs=territory.crs)
            del data  # read, then dropped: the floor's memory stays that of one file
            rows += count
            readers.add(reader)
        per_source[key] = {"duree_s": round(time.perf_counter() - t, 3), "lignes": rows,
                           "fichiers": len(source.paths), "lecteur": "+".join(sorted(readers))}
    read_s = time.perf_counter() - t0
    read_peak = meter.lap()

    # The layers to write: the build's outputs, read back in batches before each
    # timed write (so a territory of millions of parcels fits in memory).
    written: dict[str, int] = {}
    origin = "sorties de la construction"
    write_s = 0.0
    args.scratch.unlink(missing_ok=True)
    if args.gpkg is None or not args.gpkg.is_file():
        origin = "aucune (la construction a échoué)"
    else:
        for name, _ in pyogrio.list_layers(args.gpkg):
            if name in ("layer_styles", "qgis_projects"):
                continue
            info = pyogrio.read_info(args.gpkg, layer=name)
            total = int(info["features"])
            spatial = info["geometry_type"] is not None
            for start in range(0, max(total, 1), FLOOR_BATCH):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    frame = pyogrio.read_dataframe(args.gpkg, layer=name, use_arrow=True,
                                                   skip_features=start,
                                                   max_features=FLOOR_BATCH)
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pyogrio.write_dataframe(
                        frame, args.scratch, layer=name, driver="GPKG", append=start > 0,
                        use_arrow=spatial and len(frame) > 0,
                        layer_options={"SPATIAL_INDEX": "YES"} if spatial and start == 0
                        else None)
                write_s += time.perf_counter() - t
                del frame
            written[name] = total
    write_peak = meter.lap()
    meter.close()
    args.scratch.unlink(missing_ok=True)
    data = {
        "lecture_s": round(read_s, 3),
        "ecriture_s": round(write_s, 3),
        "total_s": round(read_s + write_s, 3),
        "memoire_lecture_mo": round(read_peak, 1),
        "memoire_ecriture_mo": round(write_peak, 1),
        "memoire_max_mo": round(max(read_peak, write_peak), 1),
        "lecture_par_source": per_source,
        "couches_ecrites": written,
        "couches_ecrites_depuis": origin,
    }
    args.json.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- report


def machine_facts() -> dict[str, Any]:
    """Facts about the machine and the software stack, for the results file."""
    import geopandas
    import numpy
    import pandas
    import pyarrow
    import pyogrio
    import rasterio
    import shapely

    cpu = platform.processor() or ""
    ram = 0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
        with open("/proc/meminfo", encoding="ascii") as f:
            ram = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "nproc": cores,
        "ram_go": round(ram / GB, 1),
        "cpu": cpu,
        "charge_moyenne": [round(x, 2) for x in os.getloadavg()],
        "systeme": platform.platform(),
        "python": platform.python_version(),
        "gdal": pyogrio.__gdal_version_string__,
        "versions": {"pyogrio": pyogrio.__version__, "shapely": shapely.__version__,
                     "geopandas": geopandas.__version__, "pandas": pandas.__version__,
                     "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
                     "rasterio": rasterio.__version__},
        "commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def short_size(n: int) -> str:
    """``100000`` → ``100k``, ``1000000`` → ``1M``, ``2500`` → ``2.5k``."""
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            value = n / div
            return f"{value:g}{unit}"
    return str(n)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def measure_evolution(toml: Path, out: Path, build: dict[str, Any], *, workdir: Path, n: int,
                      seed: int) -> dict[str, Any]:
    """Build the second vintage into ``out`` (after the first), then time the evolution."""
    toml2, derivation = ensure_next_vintage(toml, seed=seed)
    print("  construction du millésime 2 dans le même dossier…", flush=True)
    build2 = run_build(toml2, out, workdir=workdir, n=f"{n}-millesime2", profile=False)
    data: dict[str, Any] = {"millesime2": derivation,
                            "construction_millesime2": {
                                k: build2.get(k) for k in ("ok", "duree_s", "memoire_max_mo",
                                                           "erreur") if k in build2}}
    if not build2.get("ok"):
        return data
    print("  évolution entre les deux observations…", flush=True)
    evo = run_evolution(toml2, out, workdir=workdir, n=n)
    data["evolution"] = evo
    if evo.get("ok"):
        data["ratio_construction"] = _ratio(evo["duree_s"], build["duree_s"])
        data["sous_plafond_memoire"] = evo["memoire_max_mo"] <= PLAFOND_MEMOIRE_MO
        data["objectif_atteint"] = (evo["duree_s"] <= build["duree_s"]
                                    and data["sous_plafond_memoire"])
    return data


def print_table(run: dict[str, Any]) -> None:
    """Print the measurements of one size."""
    n = run["parcelles"]
    build, floor = run["construction"], run["plancher"]
    print(f"\n  {n} parcelles — {'étape':<46} {'temps (s)':>10} {'mémoire max (Mo)':>17}")
    rows: list[tuple[str, float | None, float | None]] = []
    for it in build.get("intervalles", []):
        rows.append((f"build : {it['message']}", it.get("duree_s"), it.get("memoire_max_mo")))
    rows.append(("build : total", build.get("duree_s"), build.get("memoire_max_mo")))
    for name, value in build.get("etapes", {}).items():
        rows.append((f"  (timings) {name}", value, None))
    rows.append(("plancher E/S : lecture des entrées", floor["lecture_s"],
                 floor["memoire_lecture_mo"]))
    rows.append(("plancher E/S : écriture des couches", floor["ecriture_s"],
                 floor["memoire_ecriture_mo"]))
    rows.append(("plancher E/S : total", floor["total_s"], floor["memoire_max_mo"]))
    for label, t, mem in rows:
        ts = f"{t:10.2f}" if t is not None else f"{'—':>10}"
        ms = f"{mem:17.0f}" if mem is not None else f"{'':>17}"
        print(f"  {'':>{len(str(n)) + 13}}{label[:46]:<46} {ts} {ms}")
    ratio = run.get("ratio_plancher")
    if ratio is not None:
        print(f"  → build = {ratio:.1f} × plancher E/S")
    data_ratio = run.get("ratio_plancher_donnees")
    if data_ratio is not None:
        print(f"  → lecture → GeoPackage ({run['pipeline_donnees_s']:.1f} s, sans cartes, rapport "
              f"ni exports) = {data_ratio:.1f} × plancher E/S")
    if not build.get("ok"):
        print(f"  → build en échec : {build.get('erreur')}")
    evo = run.get("evolution")
    if evo:
        b2 = evo["construction_millesime2"]
        if not b2.get("ok"):
            print(f"  → construction du millésime 2 en échec : {b2.get('erreur')}")
            return
        e = evo["evolution"]
        if not e.get("ok"):
            print(f"  → évolution en échec : {e.get('erreur')}")
            return
        print(f"  → millésime 2 : {evo['millesime2']['nombres']}")
        print(f"  → construction du millésime 2 : {b2['duree_s']:.1f} s, "
              f"{b2['memoire_max_mo']:.0f} Mo")
        print(f"  → évolution : {e['duree_s']:.1f} s = {evo['ratio_construction']:.2f} × "
              f"une construction, mémoire max {e['memoire_max_mo']:.0f} Mo "
              f"(plafond {PLAFOND_MEMOIRE_MO:.0f} Mo) — objectif "
              f"{'atteint' if evo['objectif_atteint'] else 'NON atteint'}")
        print(f"  → lignées : {e['changements']}")


#: Build stages from reading the sources to the published GeoPackage (no maps, report, exports):
#: those of the one-pass build and of the build by partition.
DATA_STAGES = ("lecture_parcelles", "lecture", "lecture_batiments", "lecture_analyse",
               "analyse", "inventaire_zae", "ecriture")


def data_pipeline_seconds(stages: dict[str, float]) -> float | None:
    """Seconds of the data pipeline: reading → analysis → ZAE inventory → GeoPackage."""
    found = [stages[k] for k in DATA_STAGES if k in stages]
    return round(sum(found), 3) if found else None


def summary_line(runs: list[dict[str, Any]], growth: list[dict[str, Any]]) -> str:
    """The one-line summary printed last."""
    big = max(runs, key=lambda r: r["parcelles"])
    build, floor = big["construction"], big["plancher"]
    peak = max((r["construction"].get("memoire_max_mo") or 0) for r in runs)
    if build.get("ok"):
        head = (f"bench: {big['parcelles']} parcelles — build {build['duree_s']:.1f} s = "
                f"{big['ratio_plancher']:.1f} × plancher E/S ({floor['total_s']:.1f} s)")
        if big.get("ratio_plancher_donnees") is not None:
            head += (f", dont lecture → GeoPackage {big['pipeline_donnees_s']:.1f} s = "
                     f"{big['ratio_plancher_donnees']:.1f} ×")
    else:
        head = (f"bench: {big['parcelles']} parcelles — build en échec "
                f"(plancher E/S {floor['total_s']:.1f} s)")
    parts = [head]
    if growth:
        g = growth[-1]
        if g["ratio_temps"] is not None:
            parts.append(f"{short_size(g['de'])}→{short_size(g['a'])} × {g['ratio_temps']:.1f}")
    parts.append(f"mémoire max {peak * MB / GB:.1f} Go")
    evo = (big.get("evolution") or {}).get("evolution") or {}
    if evo.get("ok"):
        parts.append(f"évolution {evo['duree_s']:.1f} s, {evo['memoire_max_mo'] * MB / GB:.1f} Go")
    return " ; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with a leading ``_build``/``_floor``, one of its drivers)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DRIVERS:
        return {"_build": _driver_build, "_floor": _driver_floor,
                "_evolution": _driver_evolution}[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="Mesure le temps et la mémoire de la construction sur des territoires "
                    "synthétiques, comparés au plancher d'entrées-sorties.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="nombres de parcelles (défaut : 100000 1000000)")
    parser.add_argument("--seed", type=int, default=42, help="graine du générateur (42)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "work",
                        help="dossier des territoires générés et des sorties (bench/work)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json",
                        help="fichier de résultats JSON (bench/results.json)")
    parser.add_argument("--profile", action="store_true",
                        help="profiler la construction (cProfile) : build-<n>.prof et .txt "
                             "dans le dossier de travail")
    parser.add_argument("--sans-evolution", action="store_true",
                        help="ne pas mesurer l'historique et l'évolution (millésime 2, "
                             "seconde construction, évolution)")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.sizes):
        parser.error("--sizes : des nombres de parcelles positifs")
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    machine = machine_facts()
    print(f"bench : {machine['nproc']} cœurs, {machine['ram_go']} Go, {machine['cpu']}, "
          f"Python {machine['python']}, GDAL {machine['gdal']}, charge "
          f"{machine['charge_moyenne'][0]}", flush=True)

    runs: list[dict[str, Any]] = []
    for n in sorted(set(args.sizes)):
        print(f"\n== {n} parcelles ==", flush=True)
        toml, generation = ensure_territory(n, seed=args.seed, workdir=workdir)
        config = toml
        if not args.sans_evolution:
            # The reference build is the first vintage's observation (dated).
            gen = _generator()
            config = gen.with_observation_date(toml, gen.DATE_MILLESIME_1)
        out = toml.parent / "out"
        shutil.rmtree(out, ignore_errors=True)
        print("  construction (observatoire.pipeline.build)…", flush=True)
        build = run_build(config, out, workdir=workdir, n=n, profile=args.profile)
        print("  plancher E/S (lecteurs les plus rapides, pyogrio Arrow en écriture)…", flush=True)
        gpkg = Path(build["gpkg"]) if build.get("ok") else None
        floor = run_floor(toml, gpkg, workdir=workdir, n=n)
        run = {
            "parcelles": n,
            "territoire": str(toml),
            "generation": generation,
            "entrees": _input_files(toml),
            "construction": build,
            "plancher": floor,
            "ratio_plancher": _ratio(build.get("duree_s"), floor["total_s"])
            if build.get("ok") else None,
        }
        # The target covers ingest → indicators → scores → units and sites →
        # GeoPackage; maps, report and exports come after and are reported apart.
        data = data_pipeline_seconds(build.get("etapes", {}))
        run["pipeline_donnees_s"] = data
        run["ratio_plancher_donnees"] = (_ratio(data, floor["total_s"])
                                         if build.get("ok") and data else None)
        if not args.sans_evolution and build.get("ok"):
            run["evolution"] = measure_evolution(toml, out, build, workdir=workdir, n=n,
                                                 seed=args.seed)
        runs.append(run)
        print_table(run)

    growth = []
    for a, b in zip(runs, runs[1:], strict=False):
        ok = a["construction"].get("ok") and b["construction"].get("ok")
        growth.append({
            "de": a["parcelles"], "a": b["parcelles"],
            "ratio_parcelles": round(b["parcelles"] / a["parcelles"], 2),
            "ratio_temps": _ratio(b["construction"].get("duree_s"),
                                  a["construction"].get("duree_s")) if ok else None,
            "ratio_plancher": _ratio(b["plancher"]["total_s"], a["plancher"]["total_s"]),
        })
    if len(runs) > 2:
        first, last = runs[0], runs[-1]
        ok = first["construction"].get("ok") and last["construction"].get("ok")
        growth.append({
            "de": first["parcelles"], "a": last["parcelles"],
            "ratio_parcelles": round(last["parcelles"] / first["parcelles"], 2),
            "ratio_temps": _ratio(last["construction"].get("duree_s"),
                                  first["construction"].get("duree_s")) if ok else None,
            "ratio_plancher": _ratio(last["plancher"]["total_s"], first["plancher"]["total_s"]),
        })
    summary = summary_line(runs, growth)
    results = {
        "commande": "scripts/bench.py " + " ".join(argv),
        "graine": args.seed,
        "machine": machine,
        "tailles": runs,
        "croissance": growth,
        "resume": summary,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    print(f"\nrésultats : {args.results}")
    print(summary, flush=True)
    return 0 if all(r["construction"].get("ok") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
