"""Executors: results in order, errors raised, the shared object sent once.

Serially, in worker processes and on Dask.

That the build gives the same layers whatever the executor and the partitions is
tested on whole builds in ``tests/test_partitions.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from observatoire.errors import ConfigError, SourceError
from observatoire.executor import ProcessExecutor, SerialExecutor, make_executor


@pytest.fixture(scope="module")
def dask_executor():
    pytest.importorskip("distributed", reason="dask.distributed n'est pas installé")
    with make_executor("dask") as executor:
        yield executor


class Shared:
    """A big shared object that counts how often it is pickled in this process."""

    pickled = 0

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __reduce__(self):
        # Unpickled as its array: the workers need not import this test module.
        Shared.pickled += 1
        return (np.array, (self.values,))


def test_serial_map_passes_the_shared_object_itself():
    shared = {"offset": 10}
    seen = []

    def work(item, ctx):
        seen.append(ctx)
        return item + ctx["offset"]

    assert SerialExecutor().map(work, [3, 1, 2], shared=shared) == [13, 11, 12]
    assert all(ctx is shared for ctx in seen) and len(seen) == 3
    assert SerialExecutor().map(lambda item: -item, iter([3, 1])) == [-3, -1]


def test_dask_map_sends_the_shared_object_once_and_keeps_the_order(dask_executor):
    values = np.arange(200_000, dtype=np.float64)

    def work(item, ctx):
        # The worker's process and its copy of the shared object.
        return item, float(ctx[item]), float(ctx.sum()), os.getpid(), id(ctx)

    Shared.pickled = 0
    items = [37, 5, 199_999, 0, *range(100, 140)]
    shared = Shared(values)
    out = dask_executor.map(work, items, shared=shared)
    assert [r[0] for r in out] == items
    assert [r[1] for r in out] == [float(i) for i in items]
    assert {r[2] for r in out} == {float(values.sum())}
    workers = len(dask_executor.client.nthreads())
    # Pickled once for the cluster (at most once per worker), not once per task…
    assert 1 <= Shared.pickled <= workers < len(items)
    # … and each worker unpickled one copy that all its tasks read.
    copies = {(r[3], r[4]) for r in out}
    assert len(copies) == len({r[3] for r in out})
    # The same object in the next batch is not sent again: the workers keep their copy.
    pickled = Shared.pickled
    again = dask_executor.map(work, items[::-1], shared=shared)
    assert [r[0] for r in again] == items[::-1]
    assert Shared.pickled == pickled
    assert {(r[3], r[4]) for r in again} <= copies
    # A list is shared whole, not scattered element by element.
    assert dask_executor.map(lambda item, ctx: ctx[item], [2, 0], shared=[5, 6, 7]) == [7, 5]
    assert dask_executor.map(lambda item: item * 2, (i for i in range(4))) == [0, 2, 4, 6]


def _lookup(item, ctx):
    # Module level: the worker processes import it by name.
    if item < 0:
        raise SourceError(f"partition {item} : illisible")
    return item, float(ctx[item]), float(ctx.sum()), os.getpid(), id(ctx)


def test_processes_send_the_shared_object_once_per_worker_and_keep_the_order():
    values = np.arange(50_000, dtype=np.float64)
    items = [37, 5, 49_999, 0, *range(100, 130)]
    Shared.pickled = 0
    shared = Shared(values)
    with ProcessExecutor(2) as executor:
        out = executor.map(_lookup, items, shared=shared)
        assert [r[0] for r in out] == items
        assert [r[1] for r in out] == [float(i) for i in items]
        assert {r[2] for r in out} == {float(values.sum())}
        # Pickled once when the pool starts, not with every task; one copy per worker.
        assert Shared.pickled == 1
        assert len({(r[3], r[4]) for r in out}) == len({r[3] for r in out}) <= 2
        assert os.getpid() not in {r[3] for r in out}
        assert not executor._box  # both workers have their copy: the bytes are let go
        again = executor.map(_lookup, items[::-1], shared=shared)
        assert [r[0] for r in again] == items[::-1] and Shared.pickled == 1


def test_imap_runs_a_few_items_ahead_and_passes_errors_on():
    values = np.arange(20, dtype=np.float64)
    asked: list[int] = []

    def items():
        for i in range(20):
            asked.append(i)
            yield i

    serial = SerialExecutor().imap(_lookup, items(), shared=values)
    assert next(serial)[0] == 0 and asked == [0]  # serial: computed when asked for
    asked.clear()
    with ProcessExecutor(1) as executor:
        results = executor.imap(_lookup, items(), shared=values, ahead=3)
        assert next(results)[0] == 0
        assert len(asked) <= 4  # the first three, and the one replacing the first
        assert [r[0] for r in results] == list(range(1, 20))
        with pytest.raises(SourceError, match="partition -1 : illisible"):
            list(executor.imap(_lookup, [3, -1, 4], shared=values))
        # The pool still works after a failed task.
        assert [r[0] for r in executor.imap(_lookup, [2, 1], shared=values)] == [2, 1]
        # Without a shared object, as SerialExecutor: fn(item).
        assert executor.map(abs, [-3, 2, -1]) == [3, 2, 1]


def test_unknown_executor_and_stray_scheduler_are_refused():
    with pytest.raises(ConfigError, match="exécuteur inconnu"):
        make_executor("spark")
    with pytest.raises(ConfigError, match="--scheduler"):
        make_executor("serie", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="--scheduler"):
        make_executor("processus", scheduler="tcp://127.0.0.1:8786")
