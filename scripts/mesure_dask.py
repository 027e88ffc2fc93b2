"""Measure a build in series and on a Dask cluster over TCP (two workers), in one run.

Usage::

    PYTHONPATH=. python scripts/mesure_dask.py TERRITOIRE.toml [--parcelles-par-partition N]

Starts a ``distributed.LocalCluster`` on 127.0.0.1 (TCP, two worker processes of one
thread), builds the territory in series then on the cluster, and prints the wall
times, the analysis time, the checksums' agreement and the largest task the
scheduler received (pickled size of its spec, read by a scheduler plugin). With
``--avec-graphes`` the cluster also runs the partitions sent inside the graph
(as before the workers read the staging store), for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import pickle
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import distributed
from distributed.diagnostics.plugin import SchedulerPlugin

from observatoire.config import load_territory
from observatoire.executor import SerialExecutor, make_executor
from observatoire.pipeline import build


class GraphSizes(SchedulerPlugin):
    """Record the pickled size of every task's spec as the scheduler receives it."""

    name = "tailles-des-graphes"

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def update_graph(self, scheduler, *, tasks, **kwargs):  # type: ignore[no-untyped-def]
        for key in tasks:
            ts = scheduler.tasks.get(key)
            if ts is not None and ts.run_spec is not None:
                self.sizes.append(len(pickle.dumps(ts.run_spec, protocol=5)))


def _take(dask_scheduler):  # type: ignore[no-untyped-def]
    plugin = dask_scheduler.plugins[GraphSizes.name]
    sizes, plugin.sizes = plugin.sizes, []
    return sizes


def graph_sizes(client: distributed.Client) -> list[int]:
    """Sizes (bytes) of the tasks the scheduler received since the last call."""
    return list(client.run_on_scheduler(_take))


@contextlib.contextmanager
def local_tcp_cluster(workers: int = 2) -> Iterator[tuple[str, distributed.Client]]:
    """A local cluster over TCP on 127.0.0.1 (worker processes of one thread).

    Yields the scheduler's address and a client; :class:`GraphSizes` is registered
    on the scheduler (read with :func:`graph_sizes`). Also used by the tests.
    """
    with distributed.LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", protocol="tcp",
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.register_plugin(GraphSizes())
        yield cluster.scheduler_address, client


def main() -> None:
    """Build in series, then on the cluster; print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("territoire", type=Path)
    parser.add_argument("--parcelles-par-partition", type=int, default=None)
    parser.add_argument("--avec-graphes", action="store_true")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="mesure-dask-"))

    def territory(name: str):  # type: ignore[no-untyped-def]
        t = load_territory(args.territoire, output_dir=out / name)
        if args.parcelles_par_partition:
            t = dataclasses.replace(t, options=dataclasses.replace(
                t.options, parcelles_par_partition=args.parcelles_par_partition))
        return t

    figures: dict[str, object] = {}
    with local_tcp_cluster() as (scheduler, client):
        runs = [("serie", None, True)]
        runs.append(("dask", scheduler, True))
        if args.avec_graphes:
            runs.append(("dask-graphes", scheduler, False))
        checksums = {}
        for name, address, reads in runs:
            executor = (SerialExecutor() if address is None
                        else make_executor("dask", scheduler=address))
            if address is not None and not reads:
                executor.reads_staging = False  # type: ignore[union-attr]
            graph_sizes(client)
            t = time.perf_counter()
            stream = distributed.get_task_stream(client) if address else None
            with executor, (stream or contextlib.nullcontext()):
                result = build(territory(name), executor=executor)
            wall = time.perf_counter() - t
            sizes = graph_sizes(client)
            checksums[name] = result.checksums
            figures[name] = {
                "total_s": round(wall, 2),
                "analyse_s": round(result.timings.get("analyse", 0.0), 2),
                "analyse.communes_s": round(result.timings.get("analyse.communes", 0.0), 2),
                "lecture_parcelles_s": round(result.timings.get("lecture_parcelles", 0.0), 2),
                "parcelles": result.layer_counts.get("parcelles"),
                "taches": len(sizes),
                "plus_grande_tache_octets": max(sizes, default=0),
            }
            if stream is not None:
                # The workers' own time: computing (reading their partition included),
                # and moving the results and the context between processes.
                spans: dict[str, float] = {}
                for record in stream.data:
                    for s in record.get("startstops", ()):
                        spans[s["action"]] = spans.get(s["action"], 0.0) + s["stop"] - s["start"]
                figures[name]["travailleurs_s"] = {k: round(v, 2) for k, v in spans.items()}
        figures["memes_empreintes"] = all(c == checksums["serie"] for c in checksums.values())
    print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
