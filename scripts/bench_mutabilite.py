"""Measure the mutabilité engine (Mutafriches v1.11) on synthetic sites.

Usage::

    python scripts/bench_mutabilite.py --sites 1000000

Every one of the 28 criteria gets random values drawn from its own table (numbers
across the thresholds, every enumeration value, booleans), with about 10 % of
each column absent, "ne-sait-pas" or "searched, nothing found". Prints the time
of :func:`observatoire.analysis.mutabilite.evaluate`, of the layer columns and of
the criteria table, and the peak memory. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from observatoire.analysis.mutabilite import (
    AUCUN_RESULTAT,
    NE_SAIT_PAS,
    criteria_details,
    evaluate,
    load_algorithm,
)

TABLES = (Path(__file__).resolve().parents[1] / "observatoire" / "data" / "mutafriches" / "v1.11"
          / "algorithme.json")


def synthetic(n: int, algo, rng: np.random.Generator) -> pd.DataFrame:
    """Random criteria of ``n`` sites (see the module's docstring)."""
    cols = {}
    for c in algo.criteres:
        if c.kind == "numeric":
            highs = [p.low for p in c.paliers if p.low is not None]
            top = (max(highs) if highs else 100.0) * c.divisor * 2
            values = rng.uniform(0, top, n).astype(object)
        else:
            keys = list(c.valeurs)
            pool = np.array([k == "true" if c.kind == "boolean" else k for k in keys],
                            dtype=object)
            values = pool[rng.integers(0, len(pool), n)]
        special = rng.random(n)
        values[special < 0.04] = None
        values[(special >= 0.04) & (special < 0.07)] = NE_SAIT_PAS
        values[(special >= 0.07) & (special < 0.10)] = AUCUN_RESULTAT
        cols[c.key] = values
    return pd.DataFrame(cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--details", type=int, default=100_000,
                        help="sites whose criteria table is also built (default 100000)")
    args = parser.parse_args()
    algo = load_algorithm(json.loads(TABLES.read_text(encoding="utf-8")))
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    frame = synthetic(args.sites, algo, rng)
    print(f"données synthétiques : {args.sites} sites × {len(frame.columns)} critères en "
          f"{time.perf_counter() - t:.1f} s")
    t, c = time.perf_counter(), time.process_time()
    ev = evaluate(frame, algo)
    engine, engine_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    cols = ev.columns()
    columns, columns_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"moteur (indices, rangs, potentiels, fiabilité) : {engine:.2f} s ({engine_cpu:.2f} s "
          f"de processeur) ; colonnes des couches : {columns:.2f} s ({columns_cpu:.2f} s de "
          f"processeur, {len(cols.columns)} colonnes)")
    k = min(args.details, args.sites)
    t = time.perf_counter()
    det = criteria_details(frame.iloc[:k], algo)
    print(f"table des critères : {len(det)} lignes ({k} sites) en {time.perf_counter() - t:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mémoire maximale du processus : {peak:.0f} Mo")
    best = pd.Series(ev.meilleur_usage).value_counts()
    print("meilleur usage :", ", ".join(f"{u} {v}" for u, v in best.items()))


if __name__ == "__main__":
    main()
