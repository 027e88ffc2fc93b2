"""Check a territory file and its sources without building anything.

``validate`` runs the build's own code up to the analysis: the territory file read
as the build reads it (:func:`observatoire.config.read_territory`, every settings
problem listed where the build stops on the first), then every
source read exactly as the build reads it (through the parcels' box, the DEM over
the parcels), so that it refuses what the build refuses and counts what the build
keeps. Nothing is written. Each setting or source gets one line: ``LU`` (read as
is), ``RÉPARÉ`` (read, with the repairs counted), ``REFUSÉ`` (the build would stop
on it, with the reason and the fix); every kind has its reader in the source
registry (:data:`observatoire.sources.SOURCES`), the one the build uses. Then
``ATTENTION`` lines say what the results lose (a key source missing,
a source holding nothing for the territory).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from observatoire.config import Source, Territory, read_territory
from observatoire.errors import ObservatoireError
from observatoire.ingest import read_context_source
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.extra import read_extra_source
from observatoire.readers.lineage import SourceReport
from observatoire.sources import source_kind

log = logging.getLogger(__name__)

#: Line statuses, padded so that the keys align.
READ, REPAIRED, REFUSED = "LU     ", "RÉPARÉ ", "REFUSÉ "


@dataclass
class Check:
    """The verdict on one setting or source.

    Attributes
    ----------
    key
        Its key in the territory file (``sources.zonage``, ``profils``…).
    status
        :data:`READ`, :data:`REPAIRED` or :data:`REFUSED`.
    message
        French text after the key.
    error
        The error the build would raise, when refused.
    report
        How the source was read, when it was.
    """

    key: str
    status: str
    message: str
    error: ObservatoireError | None = None
    report: SourceReport | None = None

    @property
    def line(self) -> str:
        """Return the line of the ``validate`` report."""
        return f"{self.status} {self.key} : {self.message}"


@dataclass
class Validation:
    """What ``validate`` found.

    Attributes
    ----------
    territory
        The loaded territory file (``None`` when it is refused).
    checks
        One verdict per setting refused and per source, in file order.
    warnings
        What the results would lose (French sentences).
    header
        The first line (territory, communes, CRS, output folder).
    """

    territory: Territory | None
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    header: str = ""

    @property
    def ok(self) -> bool:
        """Whether the build can start: nothing refused."""
        return self.territory is not None and not self.refused

    @property
    def refused(self) -> list[Check]:
        """Return the refused checks."""
        return [c for c in self.checks if c.status == REFUSED]

    def lines(self) -> list[str]:
        """Return the French lines of the report."""
        if self.territory is None:
            return [f"REFUSÉ {c.key} : {c.message}" for c in self.checks]
        out = [self.header] if self.header else []
        out += [c.line for c in self.checks]
        out += [f"ATTENTION {w}" for w in self.warnings]
        out.append("Toutes les sources sont lisibles." if self.ok else
                   "Des sources sont refusées : corrigez-les avant de construire.")
        return out


def check_output_dir(folder: Path) -> str | None:
    """Return why the outputs cannot be written to ``folder``, or ``None`` when they can."""
    folder = Path(os.path.normpath(folder.absolute()))
    if folder.exists() and not folder.is_dir():
        return f"{folder} existe et n'est pas un dossier ; choisissez un autre dossier"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return (f"{existing} n'est pas accessible en écriture ; choisissez un autre dossier "
                f"(sorties.dossier ou --out)")
    return None


def check_territory(path: str | Path) -> Validation:
    """Run every check of the build up to the analysis on a territory file.

    Parameters
    ----------
    path
        The territory file.

    Returns
    -------
    Validation
        The verdict on each setting refused and each source, and the warnings.
    """
    from observatoire.checks import missing_source_warnings, source_warnings

    try:
        territory, problems = read_territory(path)
    except ObservatoireError as exc:
        return Validation(None, [Check("fichier de territoire", REFUSED, str(exc), exc)])
    out = Path(os.path.normpath(territory.output_dir.absolute()))
    result = Validation(territory, header=(
        f"Territoire « {territory.name} » : {len(territory.communes)} commune(s), "
        f"{territory.crs}, sorties dans {out}"))
    problem = check_output_dir(out)
    if problem is not None:
        result.checks.append(Check("sorties.dossier", REFUSED, problem))
    for key, error in problems:
        result.checks.append(Check(key, REFUSED, str(error), error))
    result.warnings += missing_source_warnings(territory)

    bounds: tuple[float, float, float, float] | None = None
    for source in territory.all_sources():
        check, box = _read(source, territory, bounds)
        result.checks.append(check)
        bounds = box or bounds
    if bounds is not None:
        # Without the parcels, nothing can be said of what the sources hold for them.
        result.warnings += source_warnings(
            [c.report for c in result.checks if c.report is not None], territory)
    return result


def validate_territory(path: str | Path) -> tuple[bool, list[str]]:
    """Read every source of a territory file and say what would be read, repaired or refused.

    Parameters
    ----------
    path
        The territory file.

    Returns
    -------
    tuple
        ``True`` when the build can start, and the French lines of the report.
    """
    result = check_territory(path)
    return result.ok, result.lines()


def _read(source: Source, territory: Territory,
          bounds: tuple[float, float, float, float] | None
          ) -> tuple[Check, tuple[float, float, float, float] | None]:
    """Read one source as the build does; the verdict, and the box of the parcels read."""
    try:
        if source.kind == "parcelles":
            read = read_parcelles(source, crs=territory.crs, base=territory.path.parent,
                                  communes=territory.communes)
        elif source_kind(source.kind).stage == "contexte":
            read = read_context_source(source, territory, bounds=bounds)
        else:
            read = read_extra_source(source, territory, bounds=bounds)
    except ObservatoireError as exc:
        return Check(source.key, REFUSED, str(exc), exc), None
    except Exception as exc:  # a reader bug must not hide the other sources
        log.debug("erreur interne sur %s", source.key, exc_info=True)
        return Check(source.key, REFUSED, f"erreur interne ({type(exc).__name__} : "
                     f"{' '.join(str(exc).split())[:200]}) ; signalez-la avec ce fichier"), None
    r = read.report
    if source.kind == "parcelles":
        if r.features_kept == 0:
            from observatoire.errors import SourceError

            error = SourceError(f"{source.path} : aucune parcelle des communes "
                                f"{', '.join(territory.communes)} sur {r.features_read} lues ; "
                                f"vérifiez « territoire.communes » et le fichier")
            return Check(source.key, REFUSED, str(error), error, r), None
    repairs = "; ".join(f"{k} : {v}" for k, v in sorted(r.repairs.items()))
    check = Check(source.key, REPAIRED if r.repairs else READ,
                  f"{r.features_kept} entités gardées sur {r.features_read} lues "
                  f"({r.format}, CRS {r.crs_in})" + (f" — {repairs}" if repairs else ""),
                  report=r)
    if source.kind == "parcelles":
        xmin, ymin, xmax, ymax = (float(v) for v in read.frame.total_bounds)
        return check, (xmin, ymin, xmax, ymax)
    return check, None
