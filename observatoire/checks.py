"""Checks that ``build`` and ``validate`` share: the same code, so they say the same things.

- The settings (profiles, options, vacancy rule, partition mode, constraint
  names, CNIG export prerequisites) are checked where they are parsed:
  :func:`observatoire.config.read_territory` collects each section's problem,
  :func:`~observatoire.config.load_territory` (the build) raises the first, and
  ``validate`` lists them all.
- :func:`missing_source_warnings`: for each key source the territory does not give
  (zoning, buildings, roads, DEM, constraints), what the results lose; and the
  profiles whose classes cannot be determined with the sources given.
- :func:`source_warnings`: a source read that holds nothing for the territory
  (a zoning file of another commune), a DEM covering part of the parcels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from observatoire.config import Territory
from observatoire.readers.lineage import SourceReport
from observatoire.sources import SOURCE_KINDS, SOURCES

log = logging.getLogger(__name__)

#: Where a source's features must lie to serve the territory (see ``features_in_territory``).
_WHERE = {"zonage": "ne recoupe l'emprise des parcelles",
          "zae": "ne recoupe l'emprise des parcelles",
          "contraintes": "ne recoupe l'emprise des parcelles",
          "proprietaires": "ne porte sur les communes du territoire"}
#: Below this share of the parcels' box with an elevation, the DEM is said to cover part of it.
DEM_COVERAGE_MIN = 0.9


# --------------------------------------------------------------------------- warnings


def _points(share: float) -> str:
    return f"{round(100 * share):d}"


def missing_source_warnings(territory: Territory) -> list[str]:
    """Say what the results lose for each key source the territory does not give.

    Parameters
    ----------
    territory
        The loaded territory file (its profiles are read).

    Returns
    -------
    list of str
        One French sentence per missing key source (with the reliability points
        each profile loses), then one per profile none of whose parcels can reach
        its reliability threshold with the sources given.
    """
    from observatoire.analysis.scoring import source_weights

    profiles = territory.profiles
    given = {s.kind for s in territory.all_sources()}
    if "zonage" in given:
        given.add("zae")  # the ZAE are derived from the zoning
    weights = {p.name: source_weights(p) for p in profiles}
    out = []
    for spec in SOURCES:
        kind, loss = spec.name, spec.missing
        if loss is None or kind in given:
            continue
        lost = [f"{_points(w[kind])} points pour {name}" for name, w in weights.items()
                if w.get(kind)]
        out.append(f"source {kind} absente : {loss}"
                   + (f" (fiabilité des scores : −{', −'.join(lost)})" if lost else ""))
    for p in profiles:
        best = sum(share for kind, share in weights[p.name].items()
                   if kind in given or kind == "parcelles")
        if best < p.fiabilite_min - 1e-9:
            absent = sorted(k for k in weights[p.name] if k not in given and k != "parcelles")
            out.append(
                f"profil {p.name} : avec ces sources, la fiabilité ne dépasse pas "
                f"{_points(best)} % (seuil de classe : {_points(p.fiabilite_min)} %) ; toutes "
                f"les parcelles auront une classe non déterminée ; ajoutez les sources "
                f"{', '.join(absent)}")
    return out


def _names(report: SourceReport) -> str:
    """Name the files of a source, and its layer unless the file's name says it (GeoJSON)."""
    files = ", ".join(p.name for p in report.paths)
    layer = report.layer if report.layer not in {p.stem for p in report.paths} else None
    return f"« {files} »" + (f", couche « {layer} »" if layer else "")


def source_warnings(reports: Sequence[SourceReport], territory: Territory) -> list[str]:
    """Say which sources hold nothing for the territory, and how little the DEM covers.

    Parameters
    ----------
    reports
        The reports of the sources read with the parcels' box (the build's, or
        ``validate``'s once the parcels are read).
    territory
        The loaded territory file.

    Returns
    -------
    list of str
        One French sentence per source whose ``in_territory`` count is 0, naming
        its files and layer, and one for a DEM with an elevation on less than
        :data:`DEM_COVERAGE_MIN` of the parcels' box.
    """
    out = []
    communes = ", ".join(territory.communes)
    for r in reports:
        if r.kind == "parcelles":
            continue
        if r.kind == "mnt":
            if r.features_read and r.features_kept < DEM_COVERAGE_MIN * r.features_read:
                share = _points(r.features_kept / r.features_read)
                out.append(
                    f"source mnt {_names(r)} : une altitude sur {share} % seulement du "
                    f"rectangle des parcelles (hors du MNT ou sans donnée) ; les parcelles "
                    f"sans altitude n'ont pas de pente et leur fiabilité baisse")
            continue
        if r.in_territory:
            continue
        where = _WHERE.get(r.kind, "à moins de 5 km des parcelles")
        read = f" ({r.features_read} lues)" if r.features_read else ""
        out.append(
            f"source {r.kind} {_names(r)} : aucune entité {where}{read} ; "
            f"{SOURCE_KINDS[r.kind].empty or 'elle ne sert à rien'} ; vérifiez que le fichier "
            f"porte sur les communes {communes} et son système de coordonnées")
    return out


def warn(messages: Sequence[str]) -> None:
    """Log each message as a warning (the build's way of saying them)."""
    for message in messages:
        log.warning("%s", message)


__all__ = ["DEM_COVERAGE_MIN", "missing_source_warnings",
           "source_warnings", "warn"]
