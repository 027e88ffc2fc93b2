"""Compare the readers of Etalab parcel files, in the same run, interleaved.

Each reader turns every ``.json.gz`` (or ``.json``) file of a folder into a
GeoDataFrame in the territory's CRS (EPSG:2154 by default), in worker processes
(each file read, then dropped, as the bench's floor does):

- ``pyogrio`` — pyogrio + Arrow through ``/vsigzip/``, then ``GeoDataFrame.to_crs``;
- ``fleches`` — the project's Arrow path (:func:`observatoire.readers.cadastre.
  parse_etalab_lines`, one feature per line), then ``to_crs``;
- ``etalab`` — :func:`observatoire.readers.etalab.read_etalab` (msgspec, simdjson,
  numpy, projection on flat arrays before building the geometries).

Each worker is pinned to its own core (Arrow's threads included): 1 worker is one
core, 2 workers two. The three readers run one after the other for each number of
workers and each repetition, in a rotating order, so that the load of a shared machine weighs on
all of them alike; the ratios to the fastest are printed with the times.

``--analyseurs`` measures instead the JSON libraries that were candidates for the
reader (orjson, msgspec, simdjson, numpy), in one process, in CPU seconds per
million features.

Usage::

    python scripts/bench_etalab.py DOSSIER [--workers 1 2] [--repetitions 2]
                                   [--crs EPSG:2154] [--json resultats.json]
    python scripts/bench_etalab.py DOSSIER --analyseurs
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
READERS = ("pyogrio", "fleches", "etalab")


def read_one(task: tuple[str, str, str]) -> tuple[int, float]:
    """Read one file with one reader; return its number of features and the CPU seconds."""
    reader, name, crs = task
    path = Path(name)
    cpu = time.process_time()  # every thread of the process (Arrow's too)
    if reader == "pyogrio":
        import pyogrio

        target = f"/vsigzip/{path}" if name.endswith(".gz") else name
        frame = pyogrio.read_dataframe(target, use_arrow=True).to_crs(crs)
    elif reader == "fleches":
        from observatoire.readers import cadastre

        data = (cadastre._gunzip(path, limit=cadastre.ETALAB_IN_MEMORY_BYTES)
                if name.endswith(".gz") else path.read_bytes())
        frame = cadastre.parse_etalab_lines(data).to_crs(crs)
    else:
        from observatoire.readers.etalab import read_etalab

        frame = read_etalab(path, crs=crs)
    return len(frame), time.process_time() - cpu


def _pin(cores: list[int]) -> None:
    """Keep a worker, and the threads it starts, on ``cores`` (one per worker)."""
    os.sched_setaffinity(0, cores)


def _warm(_: int) -> None:
    import geopandas  # noqa: F401
    import pyogrio  # noqa: F401

    import observatoire.readers.cadastre  # noqa: F401
    import observatoire.readers.etalab  # noqa: F401


def run(reader: str, files: list[str], *, workers: int, crs: str
        ) -> tuple[float, float, int]:
    """Read ``files`` with ``reader`` on ``workers`` processes pinned to as many cores.

    Returns the wall seconds, the CPU seconds of the workers, and the rows read.
    """
    ctx = multiprocessing.get_context("forkserver")
    cores = sorted(os.sched_getaffinity(0))[:workers]
    with ctx.Pool(workers, initializer=_pin, initargs=(cores,)) as pool:
        pool.map(_warm, range(workers))  # imports are not timed
        t = time.perf_counter()
        done = list(pool.imap_unordered(read_one, [(reader, f, crs) for f in files],
                                        chunksize=4))
        wall = time.perf_counter() - t
    return wall, sum(c for _, c in done), sum(n for n, _ in done)


def _flatten(nested: Any) -> list[float]:
    out: list[float] = []
    stack = [nested]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def parsers(files: list[str]) -> dict[str, float]:
    """Seconds per million features of each way to parse the files (one process, CPU time).

    The candidates of the reader: the whole document to Python objects (orjson,
    msgspec), simdjson's parse alone, msgspec's typed decoding keeping coordinates and
    properties raw; then the coordinates to a flat array of doubles (orjson then a
    Python flattening, numpy's text parser, simdjson's flat buffer).
    """
    import msgspec
    import numpy as np
    import simdjson

    from observatoire.readers.etalab import _DECODER, MAX_BYTES, gunzip

    try:
        import orjson
    except ImportError:  # not a dependency: measured when installed
        orjson = None
    cpu: dict[str, float] = {}

    def timed(label: str, fn: Any) -> Any:
        t = time.process_time()
        out = fn()
        cpu[label] = cpu.get(label, 0.0) + time.process_time() - t
        return out

    n = 0
    for name in files:
        raw = Path(name).read_bytes()
        data = raw
        if name.endswith(".gz"):
            timed("gunzip (zlib de Python)", lambda raw=raw: gzip.decompress(raw))
            data = timed("gunzip (zlib-ng)", lambda raw=raw: gunzip(raw, limit=MAX_BYTES))
        if orjson is not None:
            timed("orjson : document → objets Python", lambda d=data: orjson.loads(d))
        timed("msgspec : document → objets Python", lambda d=data: msgspec.json.decode(d))
        timed("simdjson : analyse du document seule",
              lambda d=data: simdjson.Parser().parse(d) and None)
        doc = timed("msgspec : structure typée, membres bruts", lambda d=data: _DECODER.decode(d))
        text = b"[" + b",".join(f.geometry.coordinates for f in doc.features) + b"]"
        if orjson is not None:
            timed("coordonnées : orjson + aplatissement Python",
                  lambda t=text: np.array(_flatten(orjson.loads(t))))
        timed("coordonnées : numpy (fromstring)",
              lambda t=text: np.fromstring(t.replace(b"[", b" ").replace(b"]", b" "), sep=","))

        def flat(t: bytes = text) -> Any:
            parsed = simdjson.Parser().parse(t)
            return np.frombuffer(parsed.as_buffer(of_type="d"), dtype=np.float64)

        timed("coordonnées : simdjson (tampon plat)", flat)
        n += len(doc.features)
    return {k: round(v * 1e6 / n, 2) for k, v in cpu.items()}


def main(argv: list[str] | None = None) -> int:
    """Measure the readers on a folder of Etalab files."""
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser(prog="bench_etalab.py", description=(
        "Compare les lecteurs de fichiers Etalab (pyogrio, flèches Arrow, etalab) sur les "
        "fichiers d'un dossier, entrelacés dans la même exécution."))
    p.add_argument("dossier", type=Path)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repetitions", type=int, default=2)
    p.add_argument("--crs", default="EPSG:2154")
    p.add_argument("--lecteurs", nargs="+", choices=READERS, default=list(READERS))
    p.add_argument("--json", type=Path)
    p.add_argument("--analyseurs", action="store_true",
                   help="mesurer seulement les bibliothèques d'analyse JSON (un processus)")
    args = p.parse_args(argv)
    files = sorted(str(f) for f in args.dossier.iterdir()
                   if f.name.endswith((".json.gz", ".json")))
    if not files:
        p.error(f"{args.dossier} : aucun fichier .json ou .json.gz")
    print(f"{len(files)} fichiers, {sum(os.path.getsize(f) for f in files) / 1e6:.1f} Mo ; "
          f"charge {os.getloadavg()[0]:.2f}", flush=True)
    if args.analyseurs:
        figures = parsers(files)
        for label, seconds in figures.items():
            print(f"  {label:<48} {seconds:7.2f} s CPU par million d'entités")
        if args.json:
            args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n",
                                 encoding="utf-8")
        return 0
    times: dict[str, dict[int, list[float]]] = {r: {w: [] for w in args.workers}
                                                 for r in args.lecteurs}
    cpus: dict[str, dict[int, list[float]]] = {r: {w: [] for w in args.workers}
                                                for r in args.lecteurs}
    rows: dict[str, int] = {}
    for rep in range(args.repetitions):
        for workers in args.workers:
            order = args.lecteurs[rep % len(args.lecteurs):] + args.lecteurs[
                :rep % len(args.lecteurs)]
            for reader in order:
                seconds, cpu, n = run(reader, files, workers=workers, crs=args.crs)
                times[reader][workers].append(seconds)
                cpus[reader][workers].append(cpu)
                rows[reader] = n
                print(f"  répétition {rep + 1}, {workers} cœur(s), {reader:<8} "
                      f"{seconds:7.2f} s, CPU {cpu:7.2f} s ({n} entités, charge "
                      f"{os.getloadavg()[0]:.2f})", flush=True)
    if len(set(rows.values())) != 1:
        print(f"nombres d'entités différents : {rows}")
        return 1
    n = next(iter(rows.values()))
    result: dict[str, Any] = {"fichiers": len(files), "entites": n, "crs": args.crs,
                              "lecteurs": {}}
    print(f"\n{'lecteur':<8} " + " ".join(f"{w} cœur(s) : s  par M   ×   CPU"
                                         for w in args.workers))
    for workers in args.workers:
        best = min(min(times[r][workers]) for r in args.lecteurs)
        for reader in args.lecteurs:
            t = min(times[reader][workers])
            result["lecteurs"].setdefault(reader, {})[str(workers)] = {
                "min_s": round(t, 2), "toutes_s": [round(x, 2) for x in times[reader][workers]],
                "par_million_s": round(t * 1e6 / n, 2), "rapport": round(t / best, 2),
                "cpu_min_s": round(min(cpus[reader][workers]), 2)}
    for reader in args.lecteurs:
        cells = [result["lecteurs"][reader][str(w)] for w in args.workers]
        print(f"{reader:<8} " + " ".join(f"{c['min_s']:12.2f} {c['par_million_s']:6.2f} "
                                         f"{c['rapport']:4.2f} {c['cpu_min_s']:6.2f}"
                                         for c in cells))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
