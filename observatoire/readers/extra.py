"""The analysis inputs read together: DEM, constraints, railways, substations, owners.

Each family has its reader module, with the same signature as the other readers,
``(source, *, crs, base) -> result``: :mod:`~observatoire.readers.mnt` (``mnt``),
:mod:`~observatoire.readers.contraintes` (``contraintes``),
:mod:`~observatoire.readers.reseaux` (``voies_ferrees``, ``postes_electriques``),
:mod:`~observatoire.readers.proprietaires` (``proprietaires``) and
:mod:`~observatoire.readers.mairies` (``mairies``).

:data:`EXTRA_READERS` maps each source kind to its reader (used by ``validate``);
:func:`read_extra_sources` reads those a territory declares into
:class:`ExtraSources`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import shapely

from observatoire.config import Source, Territory
from observatoire.readers.contraintes import read_contrainte
from observatoire.readers.lineage import ReadResult, SourceReport
from observatoire.readers.mairies import read_mairies
from observatoire.readers.mnt import RasterResult, read_mnt
from observatoire.readers.proprietaires import read_proprietaires
from observatoire.readers.reseaux import read_postes_electriques, read_voies_ferrees

log = logging.getLogger(__name__)


#: Source kind → reader, for ``validate`` and the build.
EXTRA_READERS: dict[str, Callable[..., Any]] = {
    "mnt": read_mnt,
    "contraintes": read_contrainte,
    "voies_ferrees": read_voies_ferrees,
    "postes_electriques": read_postes_electriques,
    "proprietaires": read_proprietaires,
    # Read for the mutabilité (observatoire.mutabilite), checked here by validate.
    "mairies": read_mairies,
    "chefs_lieux": read_mairies,
}


@dataclass
class ExtraSources:
    """The analysis inputs of a territory, as read.

    Attributes
    ----------
    mnt, voies_ferrees, postes_electriques, proprietaires
        Results of the readers, ``None`` for a source not configured.
    contraintes
        ``(source, result)`` of every constraint layer, in file order.
    """

    mnt: RasterResult | None = None
    contraintes: list[tuple[Source, ReadResult]] = field(default_factory=list)
    voies_ferrees: ReadResult | None = None
    postes_electriques: ReadResult | None = None
    proprietaires: ReadResult | None = None

    def reports(self) -> list[SourceReport]:
        """Return the reports of every source read, for the ``sources`` table."""
        out = [r.report for r in (self.mnt, self.voies_ferrees, self.postes_electriques,
                                  self.proprietaires) if r is not None]
        return out + [r.report for _, r in self.contraintes]

    def available(self) -> set[str]:
        """Kinds of the sources read."""
        kinds = {k for k in ("mnt", "voies_ferrees", "postes_electriques", "proprietaires")
                 if getattr(self, k) is not None}
        return kinds | ({"contraintes"} if self.contraintes else set())


def read_extra_sources(territory: Territory, *,
                       bounds: tuple[float, float, float, float] | None = None
                       ) -> ExtraSources:
    """Read every analysis input the territory configures.

    Parameters
    ----------
    territory
        The loaded territory file.
    bounds
        Extent of the parcels (territory CRS): the DEM is read over it only.

    Returns
    -------
    ExtraSources
        The results; sources not configured are ``None`` (or an empty list).
    """
    out = ExtraSources()
    if (src := territory.source("mnt")) is not None:
        log.info("lecture du MNT (%s)", ", ".join(p.name for p in src.paths))
        out.mnt = read_extra_source(src, territory, bounds=bounds)
    for src in territory.constraints:
        log.info("lecture de la contrainte « %s »", src.name)
        out.contraintes.append((src, read_extra_source(src, territory, bounds=bounds)))
    for kind in ("voies_ferrees", "postes_electriques", "proprietaires"):
        if (src := territory.source(kind)) is not None:
            log.info("lecture de %s (%s)", kind, ", ".join(p.name for p in src.paths))
            setattr(out, kind, read_extra_source(src, territory, bounds=bounds))
    return out


def read_extra_source(source: Source, territory: Territory, *,
                      bounds: tuple[float, float, float, float] | None = None) -> Any:
    """Read one analysis input as the build does, and count what serves the territory.

    The build and ``validate`` both read through here.

    Parameters
    ----------
    source
        A source of a kind of :data:`EXTRA_READERS`.
    territory
        The loaded territory file.
    bounds
        Box of the territory's parcels: the DEM is read over it (and refused when it
        does not meet it); the constraint zones meeting it, the railways and
        substations within 5 km of it and the owner rows of the territory's
        communes are counted in ``report.features_in_territory``. ``None``: the
        whole source, nothing counted.

    Returns
    -------
    RasterResult or ReadResult
        As the source's reader.
    """
    kw: dict[str, Any] = {"crs": territory.crs, "base": territory.path.parent}
    if source.kind == "mnt":
        return read_mnt(source, bounds=bounds, **kw)
    result = EXTRA_READERS[source.kind](source, **kw)
    if bounds is None:
        return result
    report = result.report
    if source.kind == "proprietaires":
        insee = result.frame["idu"].astype(str).str[:5]
        report.features_in_territory = int(insee.isin(territory.communes).sum())
    else:
        from observatoire.ingest import context_extent, count_meeting

        area = shapely.box(*bounds) if source.kind == "contraintes" else context_extent(bounds)
        report.features_in_territory = count_meeting(result.frame, area)
    return result


__all__ = ["EXTRA_READERS", "ExtraSources", "read_extra_source", "read_extra_sources"]
