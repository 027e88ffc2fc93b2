"""Executors that run the per-partition work: serially, or on a Dask cluster.

The analysis hands independent partitions (the parcels of a commune and the
context around them) to :meth:`map`; both executors return the results in the
order of the partitions, so the output does not depend on which one ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from observatoire.errors import ConfigError

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

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> SerialExecutor:
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
        return max(1, len(self.client.scheduler_info().get("workers", {})))

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
            if self._shared is None or self._shared[0] is not shared:
                # In a list, so that a list or dict is sent whole, not item by item.
                [ref] = self.client.scatter([shared], broadcast=True, hash=False)
                self._shared = (shared, ref)
            ref = self._shared[1]
            futures = self.client.map(fn, items, [ref] * len(items), pure=False)
        return list(self.client.gather(futures))

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


Executor = SerialExecutor | DaskExecutor


def make_executor(kind: str = "serie", *, scheduler: str | None = None) -> Executor:
    """Return the executor named ``kind`` (``serie`` or ``dask``).

    Raises
    ------
    ConfigError
        Unknown kind, or dask missing.
    """
    if kind == "serie":
        if scheduler is not None:
            raise ConfigError("--scheduler ne sert qu'avec --executeur dask")
        return SerialExecutor()
    if kind == "dask":
        return DaskExecutor(scheduler)
    raise ConfigError(f"exécuteur inconnu « {kind} » ; choisissez serie ou dask")
