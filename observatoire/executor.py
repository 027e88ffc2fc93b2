"""Executors that run the per-partition work: serially, in worker processes, or on Dask.

The analysis hands independent partitions (the parcels of a commune and the
context around them) to :meth:`map` or :meth:`imap`; every executor returns the
results in the order of the partitions, so the output does not depend on which
one ran. :meth:`imap` keeps a few partitions running ahead while the caller
handles the results (writing them to the GeoPackage): with a worker process,
computing and writing overlap on two cores.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from observatoire.errors import ConfigError
from observatoire.memory import trim

log = logging.getLogger(__name__)


class SerialExecutor:
    """Run every partition in this process, one after the other."""

    name = "série"
    #: Partitions run at once.
    workers = 1

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None
            ) -> list[Any]:
        """Return ``[fn(item) for item in items]``, or ``fn(item, shared)`` when ``shared``.

        Parameters
        ----------
        fn
            The work of one item.
        items
            The items (partitions).
        shared
            An object every call reads (the analysis context), passed as is.

        Returns
        -------
        list
            The results, in the order of ``items``.
        """
        if shared is None:
            return [fn(item) for item in items]
        return [fn(item, shared) for item in items]

    def imap(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None,
             ahead: int = 2) -> Iterator[Any]:
        """Yield the results one by one, each computed when asked for (see :meth:`map`)."""
        for item in items:
            yield fn(item) if shared is None else fn(item, shared)

    def release(self) -> None:
        """Nothing to release (see :meth:`ProcessExecutor.release`)."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pending(Protocol):
    """A submitted task: a :class:`concurrent.futures.Future` or a Dask future."""

    def result(self) -> Any:
        """Wait for the task and return its result."""

    def cancel(self) -> Any:
        """Cancel the task if it has not run."""


def _ahead(submit: Callable[[Any], _Pending], items: Iterable[Any], ahead: int
           ) -> Iterator[Any]:
    """Yield the results of ``submit(item)`` in order, ``ahead`` items submitted at once."""
    pending: collections.deque[_Pending] = collections.deque()
    it = iter(items)
    try:
        for item in it:
            pending.append(submit(item))
            if len(pending) >= max(1, ahead):
                break
        while pending:
            done = pending.popleft()
            for item in it:
                pending.append(submit(item))
                break
            yield done.result()
    finally:
        for future in pending:
            future.cancel()


#: The object shared by every task of a worker process (see ProcessExecutor).
_SHARED: Any = None


def _install(box: list[bytes]) -> None:
    # The bytes come in a list, emptied here: the worker keeps its initializer's
    # arguments for its whole life, and the pickled context need not stay beside it.
    global _SHARED
    _SHARED = pickle.loads(box.pop())
    trim()


def _call_shared(fn: Callable[..., Any], item: bytes) -> bytes:
    task = pickle.loads(item)
    done = fn(task) if _SHARED is None else fn(task, _SHARED)
    return pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)


def available_cores() -> int:
    """Return the number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ProcessExecutor:
    """Run partitions in worker processes of this machine (no dependency).

    With :meth:`imap`, this process handles the results of a partition (writing the
    GeoPackage) while the workers compute the next ones.

    Parameters
    ----------
    n_workers
        Worker processes (default: the cores available, minus the one of this
        process, at least one).
    """

    name = "processus"

    def __init__(self, n_workers: int | None = None) -> None:
        self.workers = max(1, n_workers if n_workers is not None else available_cores() - 1)
        self._pool: ProcessPoolExecutor | None = None
        self._shared: int | None = None  # id() of the object the workers hold
        self._box: list[bytes] = []  # that object pickled, until every worker has it

    def _pool_for(self, shared: Any) -> ProcessPoolExecutor:
        # The shared object (the analysis context) is pickled once, when the pool
        # starts, and unpickled once by each worker; the pool keeps the bytes only, so
        # the caller may let the object go. Another object starts another pool.
        if self._pool is None or self._shared != id(shared):
            self.close()
            # spawn: a fresh interpreter, safe whatever threads GDAL or pyogrio started.
            self._box = [pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)]
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_install, initargs=(self._box,))
            self._shared = id(shared)
        return self._pool

    def _submit(self, pool: ProcessPoolExecutor, fn: Callable[..., Any], item: Any
                ) -> Future[Any]:
        future = pool.submit(_call_shared, fn,
                             pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        # Workers start at the first tasks; once all have their copy of the shared
        # object, its bytes are let go here too (a worker that dies breaks the pool:
        # none is started again).
        if self._box and len(getattr(pool, "_processes", None) or ()) >= self.workers:
            self._box.clear()
        return future

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None
            ) -> list[Any]:
        """Return the results of every item, in order (see :meth:`SerialExecutor.map`)."""
        return list(self.imap(fn, items, shared=shared, ahead=2 * self.workers))

    def imap(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None,
             ahead: int | None = None) -> Iterator[Any]:
        """Yield the results in order, up to ``ahead`` items running or queued.

        ``ahead`` defaults to one more than the workers, so that every worker
        has a partition to compute while this process handles a result.
        """
        pool = self._pool_for(shared)
        n = ahead if ahead is not None else self.workers + 1
        # Tasks and results are pickled and unpickled here, in the calling thread (not
        # in the pool's threads): their memory is then reused by this thread's
        # allocations instead of staying in the threads' own malloc arenas.
        return (pickle.loads(done) for done in _ahead(
            lambda item: self._submit(pool, fn, item), items, n))

    def release(self) -> None:
        """Stop the worker processes and free their memory (started again when needed).

        The build calls it once the partitions are analysed: the workers' copies of
        the context would otherwise stay in memory during the publication.
        """
        self.close()

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._shared, self._box = None, None, []

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskExecutor:
    """Run partitions on a ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); ``None`` starts a
        local cluster of worker processes on this machine.
    n_workers
        Workers of the local cluster (default: one per core).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, n_workers: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "l'exécution distribuée demande dask : installez-la avec "
                "pip install 'observatoire[dask]'"
            ) from None
        self._cluster = None
        # The last shared object and its future on the cluster (see ``map``).
        self._shared: tuple[Any, Any] | None = None
        if scheduler is None:
            self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                         processes=True, dashboard_address=":0")
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise ConfigError(
                    f"ordonnanceur Dask injoignable à {scheduler} ({exc}) ; vérifiez l'adresse "
                    f"(--scheduler tcp://hôte:8786)"
                ) from None
        log.info("Dask : %s", self.client)

    @property
    def workers(self) -> int:
        """Workers of the cluster (partitions run at once)."""
        # Asked of the scheduler: scheduler_info() may return the client's periodic
        # summary, whose worker list is empty.
        return max(1, len(self.client.nthreads()))

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None
            ) -> list[Any]:
        """Run ``fn`` on every item on the cluster; results in the order of ``items``.

        Parameters
        ----------
        fn
            The work of one item, called as ``fn(item)``, or ``fn(item, shared)``.
        items
            The items (partitions), each sent with its task.
        shared
            An object every call reads (the analysis context): sent once to every
            worker, which unpickles it once and hands the same object to each of its
            calls, instead of being pickled into every task. The same object passed
            again (batches of partitions) is not sent again, so it must not be
            modified between calls.

        Returns
        -------
        list
            The results, in the order of ``items``.
        """
        items = list(items)
        if shared is None:
            futures = self.client.map(fn, items, pure=False)
        else:
            ref = self._scattered(shared)
            futures = self.client.map(fn, items, [ref] * len(items), pure=False)
        return list(self.client.gather(futures))

    def imap(self, fn: Callable[..., Any], items: Iterable[Any], *, shared: Any = None,
             ahead: int | None = None) -> Iterator[Any]:
        """Yield the results in order, up to ``ahead`` items on the cluster at once.

        ``ahead`` defaults to twice the workers.
        """
        n = ahead if ahead is not None else 2 * self.workers
        if shared is None:
            return _ahead(lambda item: self.client.submit(fn, item, pure=False), items, n)
        ref = self._scattered(shared)
        return _ahead(lambda item: self.client.submit(fn, item, ref, pure=False), items, n)

    def _scattered(self, shared: Any) -> Any:
        """Return the future of ``shared`` on every worker, sending it once."""
        if self._shared is None or self._shared[0] is not shared:
            # In a list, so that a list or dict is sent whole, not item by item.
            [ref] = self.client.scatter([shared], broadcast=True, hash=False)
            self._shared = (shared, ref)
        return self._shared[1]

    def release(self) -> None:
        """Forget the shared object sent to the workers (they free their copy)."""
        if self._shared is not None:
            self._shared[1].release()
            self._shared = None

    def close(self) -> None:
        """Close the client and the local cluster, if this executor started one."""
        self._shared = None
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Executor = SerialExecutor | ProcessExecutor | DaskExecutor


def make_executor(kind: str = "serie", *, scheduler: str | None = None) -> Executor:
    """Return the executor named ``kind`` (``serie``, ``processus`` or ``dask``).

    Raises
    ------
    ConfigError
        Unknown kind, or dask missing.
    """
    if kind in ("serie", "processus"):
        if scheduler is not None:
            raise ConfigError("--scheduler ne sert qu'avec --executeur dask")
        return SerialExecutor() if kind == "serie" else ProcessExecutor()
    if kind == "dask":
        return DaskExecutor(scheduler)
    raise ConfigError(f"exécuteur inconnu « {kind} » ; choisissez serie, processus ou dask")


def default_executor() -> Executor:
    """Return the executor of a build by partition when none is chosen.

    One worker process beside this one when two cores or more are available: the
    worker computes a partition's indicators, scores and land units while this
    process writes the previous one. Serial otherwise.
    """
    return ProcessExecutor(1) if available_cores() >= 2 else SerialExecutor()
