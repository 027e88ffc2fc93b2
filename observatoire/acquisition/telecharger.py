"""``observatoire telecharger``: fetch a territory's sources, then write them in its file.

The publishers are fetched in the order of
:data:`observatoire.config.ACQUISITION_SOURCES` (the cadastre first: its commune
outlines give the others their box). A publisher that fails is reported with its
URL and HTTP status and the others go on; what was fetched is written in the
territory file. The exit status of the CLI adds one bit per failed publisher
(:data:`EXIT_BITS`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from observatoire.acquisition import (
    bdalti,
    bdtopo,
    cadastre,
    friches,
    georisques,
    patrinat,
    sirene,
    zonage,
)
from observatoire.acquisition.cache import Cache
from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import Client, DownloadError
from observatoire.acquisition.territoire import write_sources
from observatoire.acquisition.urls import Urls
from observatoire.config import (
    ACQUISITION_SOURCES,
    Telechargement,
    declared_sources,
    read_territory,
)
from observatoire.errors import ConfigError

logger = logging.getLogger(__name__)

#: The publisher modules done so far, by source name: each has ``SOURCE`` (its cache
#: folder) and ``fetch(ctx) -> list[Fetched]``.
PUBLISHERS: dict[str, ModuleType] = {"cadastre": cadastre, "zonage": zonage,
                                     "friches": friches, "bdtopo": bdtopo, "bdalti": bdalti,
                                     "sirene": sirene, "georisques": georisques,
                                     "patrinat": patrinat}
#: Exit status of ``telecharger`` when publishers fail: 64 plus these bits.
EXIT_FAILED = 64
EXIT_BITS = {"cadastre": 1, "zonage": 2, "friches": 4, "bdtopo": 8, "bdalti": 16,
             "sirene": 32, "georisques": 32, "patrinat": 32}


@dataclass
class Outcome:
    """What a fetch did.

    Attributes
    ----------
    fetched
        The sources fetched, by publisher.
    failed
        The error of each publisher that failed.
    written
        The source kinds written in the territory file.
    """

    fetched: dict[str, list[Fetched]] = field(default_factory=dict)
    failed: dict[str, DownloadError] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        """0 when every publisher answered, else 64 plus the bits of those that failed."""
        bits = 0
        for name in self.failed:
            bits |= EXIT_BITS[name]
        return EXIT_FAILED + bits if bits else 0


def settings(path: Path) -> tuple[Context, Telechargement, Path]:
    """Read the territory file's ``[territoire]`` and ``[telechargement]``.

    Before the first fetch the file has no ``[sources]``: the territory is read
    from a copy holding a placeholder, so its other settings are checked all the
    same (by :func:`observatoire.config.read_territory`, as ``build`` does).

    Raises
    ------
    ConfigError
        A bad territory file, or one without ``[telechargement]``.
    """
    from observatoire.acquisition.cache import write_atomic

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} : fichier de territoire introuvable ; créez-le avec "
                          f"observatoire init")
    text = path.read_text(encoding="utf-8")
    probe = path.with_name(f".{path.name}.lecture")
    if "parcelles" not in declared_sources(text, path):
        # The parcels placeholder is never read: read_territory only checks the settings.
        text += f'\n[sources.parcelles]\nchemin = "{path.name}"\n'
    write_atomic(probe, text.encode("utf-8"))
    try:
        territory, problems = read_territory(probe)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(str(probe), str(path))) from None
    finally:
        probe.unlink(missing_ok=True)
    if problems:
        raise ConfigError(str(problems[0][1]).replace(str(probe.resolve()), str(path)))
    if territory.telechargement is None:
        raise ConfigError(f"{path} : pas de table [telechargement] ; ajoutez-la (sources, "
                          f"millesime, cache) ou créez le territoire avec observatoire init")
    ctx = Context(communes=territory.communes, epci_siren=territory.epci_siren,
                  crs=territory.crs, client=None, cache=Cache(territory.telechargement.cache),
                  urls=Urls.from_env())
    return ctx, territory.telechargement, path


def telecharger(path: Path, *, sources: Sequence[str] | None = None,
                millesime: str | None = None, offline: bool = False,
                client: Client | None = None, mirror: str | None = None,
                page_size: int | None = None) -> Outcome:
    """Fetch the sources of a territory file and write them in it.

    Parameters
    ----------
    path
        The territory file (``observatoire init`` writes one).
    sources
        Publishers to fetch; default: ``[telechargement] sources``.
    millesime
        Cadastre vintage, overriding ``[telechargement] millesime``.
    offline
        Use the cache only (``--hors-ligne``).
    client
        The HTTP client (retries, timeout, concurrency, progress).
    mirror
        Base URL replacing every publisher host (see :mod:`observatoire.acquisition.urls`).
    page_size
        Features per page of the paged services (default: each service's maximum).

    Returns
    -------
    Outcome
        What was fetched, what failed, what was written.

    Raises
    ------
    ConfigError
        A bad territory file, an unknown source, or a file that would not build.
    """
    ctx, conf, path = settings(path)
    names = list(sources) if sources else list(conf.sources)
    for name in names:
        if name not in ACQUISITION_SOURCES:
            raise ConfigError(f"source inconnue : {name!r} ; sources possibles : "
                              f"{', '.join(ACQUISITION_SOURCES)}")
    ctx = replace(ctx, client=None if offline else (client or Client()),
                  millesime=millesime or conf.millesime,
                  urls=Urls.from_env(mirror), page_size=page_size)
    outcome = Outcome()
    for name in ACQUISITION_SOURCES:
        if name not in names:
            continue
        module = PUBLISHERS.get(name)
        if module is None:
            logger.warning("%s : pas encore pris en charge par observatoire telecharger ; "
                           "déclarez ce fichier à la main dans [sources]", name)
            continue
        try:
            got: list[Fetched] = module.fetch(ctx)
        except DownloadError as exc:
            outcome.failed[name] = exc
            continue
        outcome.fetched[name] = got
    everything = [item for items in outcome.fetched.values() for item in items]
    if everything:
        try:
            outcome.written = write_sources(path, everything)
        except ConfigError as exc:
            if not outcome.failed:
                raise
            # Without the parcels the file would not build: what was fetched stays in
            # the cache, and is declared by the next run that fetches the rest.
            logger.warning("%s ; les fichiers téléchargés restent dans le cache", exc)
    return outcome


@dataclass(frozen=True)
class Veille:
    """One line of ``--verifier``: the newest vintage cached and published."""

    source: str
    cached: str | None
    published: str | None
    note: str = ""

    @property
    def newer(self) -> bool:
        """Whether the publisher has a vintage newer than the cache's."""
        return self.published is not None and (self.cached is None
                                               or self.published > self.cached)


def verifier(path: Path, *, client: Client | None = None, mirror: str | None = None
             ) -> list[Veille]:
    """Tell, without downloading, whether a newer vintage of each source is published.

    Raises
    ------
    ConfigError
        A bad territory file.
    """
    ctx, conf, _ = settings(path)
    ctx = replace(ctx, client=client or Client(), urls=Urls.from_env(mirror))
    lines = []
    for name in conf.sources:
        if name == "cadastre":
            try:
                cached, published = cadastre.check(ctx)
            except DownloadError as exc:
                lines.append(Veille(name, None, None, f"index illisible : {exc}"))
                continue
            lines.append(Veille(name, cached, published))
        elif name in ("bdtopo", "bdalti"):
            editions = ctx.cache.millesimes(PUBLISHERS[name].SOURCE)
            try:
                published = max(_edition(name, ctx, dep) for dep in ctx.departements)
            except DownloadError as exc:
                lines.append(Veille(name, None, None, f"liste illisible : {exc}"))
                continue
            lines.append(Veille(name, editions[-1] if editions else None, published))
        elif name in PUBLISHERS:
            cached_list = ctx.cache.millesimes(PUBLISHERS[name].SOURCE)
            lines.append(Veille(name, cached_list[-1] if cached_list else None, None,
                                "service sans millésime publié : téléchargé à la date du "
                                "jour"))
        else:
            lines.append(Veille(name, None, None, "pas encore pris en charge"))
    return lines


def _edition(name: str, ctx: Context, departement: str) -> str:
    """Return the newest edition of an IGN product published for a département."""
    if name == "bdalti":
        return bdalti.edition(ctx, departement)[0]
    return bdtopo.edition(ctx, departement)
