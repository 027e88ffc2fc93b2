"""The analysis inputs read together: DEM, constraints, railways, substations, owners.

The kinds read here are those of stage ``analyse`` in the source registry
(:data:`observatoire.sources.SOURCES`), each with its reader, of the same signature
as the other readers, ``(source, *, crs, base) -> result``:
:mod:`~observatoire.readers.mnt` (``mnt``),
:mod:`~observatoire.readers.contraintes` (``contraintes``),
:mod:`~observatoire.readers.reseaux` (``voies_ferrees``, ``postes_electriques``) and
:mod:`~observatoire.readers.proprietaires` (``proprietaires``).

:func:`read_extra_sources` reads those a territory declares into
:class:`ExtraSources`; :func:`read_extra_source` reads one of them (or a town-hall
source of the mutabilité) as the build does, for the build and ``validate``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import shapely

from observatoire.config import Source, Territory
from observatoire.readers.lineage import ReadResult, SourceReport
from observatoire.sources import SOURCE_KINDS, kinds_read_at

log = logging.getLogger(__name__)


@dataclass
class ExtraSources:
    """The analysis inputs of a territory, as read.

    Attributes
    ----------
    read
        Source kind → result of its reader (a ``RasterResult`` for ``mnt``, a
        ``ReadResult`` otherwise), for the single sources configured.
    contraintes
        ``(source, result)`` of every constraint layer, in file order.
    """

    read: dict[str, Any] = field(default_factory=dict)
    contraintes: list[tuple[Source, ReadResult]] = field(default_factory=list)

    def reports(self) -> list[SourceReport]:
        """Return the reports of every source read, for the ``sources`` table."""
        out = [self.read[k].report for k in kinds_read_at("analyse") if k in self.read]
        return out + [r.report for _, r in self.contraintes]

    def available(self) -> set[str]:
        """Kinds of the sources read."""
        return set(self.read) | ({"contraintes"} if self.contraintes else set())


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
        The results; sources not configured are absent.
    """
    out = ExtraSources()
    kinds = kinds_read_at("analyse")
    for src in territory.all_sources():
        if src.kind not in kinds:
            continue
        log.info("lecture de %s (%s)", src.key or src.kind, ", ".join(p.name for p in src.paths))
        result = read_extra_source(src, territory, bounds=bounds)
        if SOURCE_KINDS[src.kind].is_list:
            out.contraintes.append((src, result))
        else:
            out.read[src.kind] = result
    return out


def read_extra_source(source: Source, territory: Territory, *,
                      bounds: tuple[float, float, float, float] | None = None) -> Any:
    """Read one analysis input as the build does, and count what serves the territory.

    The build and ``validate`` both read through here.

    Parameters
    ----------
    source
        A source of stage ``analyse`` or ``mutabilite`` in the registry.
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
    read = SOURCE_KINDS[source.kind].reader
    if source.kind == "mnt":
        return read(source, bounds=bounds, **kw)
    result = read(source, **kw)
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


__all__ = ["ExtraSources", "read_extra_source", "read_extra_sources"]
