"""Check a territory file and its sources without building anything.

Every source is read exactly as the build would read it; nothing is written. Each
source gets one line: ``LU`` (read as is), ``RÉPARÉ`` (read, with the repairs
counted), ``REFUSÉ`` (the build would stop on it, with the reason and the fix) or
``IGNORÉ`` (no reader for this kind of source).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from observatoire.config import Territory, load_territory
from observatoire.errors import ObservatoireError
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.common import ReadResult
from observatoire.readers.friches import read_friches
from observatoire.readers.layers import read_batiments, read_routes, read_zonage
from observatoire.readers.zae import read_zae

log = logging.getLogger(__name__)

READERS = {
    "parcelles": read_parcelles,
    "zonage": read_zonage,
    "friches": read_friches,
    "zae": read_zae,
    "batiments": read_batiments,
    "routes": read_routes,
}


def _extra_readers() -> dict[str, object]:
    """Readers of the analysis inputs, when their modules are present."""
    readers: dict[str, object] = {}
    try:
        from observatoire.readers.extra import EXTRA_READERS
    except ImportError:
        pass
    else:
        readers.update(EXTRA_READERS)
    try:
        from observatoire.readers.etablissements import read_etablissements
    except ImportError:
        pass
    else:
        readers.setdefault("etablissements", read_etablissements)
    from observatoire.readers.mairies import read_mairies

    readers.update({"mairies": read_mairies, "chefs_lieux": read_mairies})
    return readers


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


def validate_territory(path: str | Path) -> tuple[bool, list[str]]:
    """Read every source of a territory file and say what would be read, repaired or refused.

    Parameters
    ----------
    path
        The territory file.

    Returns
    -------
    tuple
        ``True`` when every source can be read, and the French lines of the report.
    """
    try:
        territory = load_territory(path)
    except ObservatoireError as exc:
        return False, [f"REFUSÉ fichier de territoire : {exc}"]
    out = Path(os.path.normpath(territory.output_dir.absolute()))
    lines = [f"Territoire « {territory.name} » : {len(territory.communes)} commune(s), "
             f"{territory.crs}, sorties dans {out}"]
    ok = True
    problem = check_output_dir(out)
    if problem is not None:
        ok = False
        lines.append(f"REFUSÉ  sorties.dossier : {problem}")
    readers = READERS | _extra_readers()
    for source in territory.all_sources():
        reader = readers.get(source.kind)
        label = source.key
        if reader is None:
            lines.append(f"IGNORÉ  {label} : pas de lecteur pour ce type de source")
            continue
        try:
            result: ReadResult = _run(reader, source, territory)
        except ObservatoireError as exc:
            ok = False
            lines.append(f"REFUSÉ  {label} : {exc}")
            continue
        except Exception as exc:  # a reader bug must not hide the other sources
            log.debug("erreur interne sur %s", label, exc_info=True)
            ok = False
            lines.append(f"REFUSÉ  {label} : erreur interne ({type(exc).__name__} : "
                         f"{' '.join(str(exc).split())[:200]}) ; signalez-la avec ce fichier")
            continue
        r = result.report
        if source.kind == "parcelles" and r.features_kept == 0:
            ok = False
            lines.append(f"REFUSÉ  {label} : aucune parcelle des communes "
                         f"{', '.join(territory.communes)} sur {r.features_read} lues ; "
                         f"vérifiez « territoire.communes » et le fichier")
            continue
        repairs = "; ".join(f"{k} : {v}" for k, v in sorted(r.repairs.items()))
        status = "RÉPARÉ " if r.repairs else "LU     "
        lines.append(
            f"{status} {label} : {r.features_kept} entités gardées sur {r.features_read} lues "
            f"({r.format}, CRS {r.crs_in})" + (f" — {repairs}" if repairs else "")
        )
    lines.append("Toutes les sources sont lisibles." if ok else
                 "Des sources sont refusées : corrigez-les avant de construire.")
    return ok, lines


def _run(reader, source, territory: Territory) -> ReadResult:  # type: ignore[no-untyped-def]
    kwargs = {"crs": territory.crs, "base": territory.path.parent}
    if source.kind == "parcelles":
        kwargs["communes"] = territory.communes
    return reader(source, **kwargs)
