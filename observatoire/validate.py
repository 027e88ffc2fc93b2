"""Check a territory file and its sources without building anything."""

from __future__ import annotations

from pathlib import Path

from observatoire.config import Territory, load_territory
from observatoire.errors import ObservatoireError
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.common import ReadResult
from observatoire.readers.friches import read_friches
from observatoire.readers.layers import read_batiments, read_routes, read_zonage
from observatoire.readers.zae import read_zae

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
    try:
        from observatoire.readers.extra import EXTRA_READERS
    except ImportError:
        return {}
    return dict(EXTRA_READERS)


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
    lines = [f"Territoire « {territory.name} » : {len(territory.communes)} commune(s), "
             f"{territory.crs}, sorties dans {territory.output_dir}"]
    ok = True
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
        r = result.report
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
