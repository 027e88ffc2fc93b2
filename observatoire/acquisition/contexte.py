"""What every publisher module receives (:class:`Context`) and returns (:class:`Fetched`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from observatoire.acquisition.cache import Cache
from observatoire.acquisition.http import Client, DownloadError
from observatoire.acquisition.urls import Urls, departement_of

T = TypeVar("T")
R = TypeVar("R")

#: Margin around the territory for context layers (friches, roads, constraints), in metres.
MARGE_M = 5000.0


@dataclass
class Context:
    """A fetch in progress.

    Attributes
    ----------
    communes
        INSEE codes of the territory.
    epci_siren
        SIREN of its EPCI, when it is one (intercommunal PLU).
    crs
        Legal CRS of the territory.
    client
        The HTTP client; ``None`` offline (``--hors-ligne``): the cache only.
    cache
        The download cache.
    urls
        The publishers' URLs (through a mirror in the tests).
    millesime
        The cadastre vintage asked: ``latest`` or ``AAAA-MM-JJ``.
    today
        Date of the fetch: the vintage of the sources without published vintages.
    bbox_wgs84
        Box of the territory plus :data:`MARGE_M`, in longitude/latitude; known once
        the cadastre's commune outlines are fetched.
    """

    communes: tuple[str, ...]
    epci_siren: str | None
    crs: str
    client: Client | None
    cache: Cache
    urls: Urls
    millesime: str = "latest"
    today: str = field(default_factory=lambda: dt.date.today().isoformat())
    bbox_wgs84: tuple[float, float, float, float] | None = None
    page_size: int | None = None

    @property
    def departements(self) -> tuple[str, ...]:
        """The départements of the territory's communes, sorted."""
        return tuple(sorted({departement_of(c) for c in self.communes}))

    @property
    def offline(self) -> bool:
        """Whether only the cache may be used."""
        return self.client is None

    def box(self, url: str) -> tuple[float, float, float, float]:
        """Return the territory's box plus :data:`MARGE_M` (:attr:`bbox_wgs84`).

        It is known once the cadastre gave the communes' outlines.

        Raises
        ------
        DownloadError
            Naming ``url``, when the box is not known (the cadastre was not fetched).
        """
        if self.bbox_wgs84 is None:
            raise DownloadError(f"{url} : emprise du territoire inconnue (le cadastre, qui "
                                f"donne le contour des communes, n'a pas été téléchargé)",
                                url=url)
        return self.bbox_wgs84

    def cached(self, source: str, names: Sequence[str], *, what: str, url: str
               ) -> dict[str, Path]:
        """Offline (``--hors-ligne``): the newest cached copy of each of ``names``.

        Raises
        ------
        DownloadError
            Naming ``url`` and ``what`` (« aucune {what} en cache »), when none of
            ``names`` is in the cache.
        """
        found = {name: path for name in names
                 if (path := self.cache.newest(source, name)) is not None}
        if not found:
            raise DownloadError(f"{url} : aucune {what} en cache ; relancez sans --hors-ligne",
                                url=url)
        return found

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Apply ``function`` to ``items`` within the client's concurrency limit."""
        if self.client is None:
            return [function(item) for item in items]
        return self.client.map(function, items)


@dataclass(frozen=True)
class Fetched:
    """A source of the territory file, fetched: what ``[sources.<kind>]`` must say.

    Attributes
    ----------
    kind
        The source kind of the territory file (``parcelles``, ``zonage``…).
    paths
        The cached files.
    format
        Its ``format``, or ``None`` (``auto``).
    producer
        Its ``producteur``.
    date
        Its ``date`` (the vintage).
    layer
        Its ``couche``, or ``None``.
    extra
        Further keys (``nom``, ``type`` of a constraint).
    fallback
        A stand-in (the cadastre's buildings): it does not replace a source of the
        same kind another producer gave, in this run or an earlier one.
    """

    kind: str
    paths: tuple[Path, ...]
    format: str | None
    producer: str
    date: str
    layer: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    fallback: bool = False
