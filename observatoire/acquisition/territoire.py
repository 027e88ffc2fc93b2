"""Writing the territory file: the folder of ``init``, the sources of ``telecharger``.

``observatoire init`` writes ``territoire.toml`` with the territory (communes,
names, EPCI, legal CRS), a ``[telechargement]`` table and two marker lines.
``observatoire telecharger`` writes the ``[sources.*]`` tables of what it fetched
between the markers, and nothing else: the rest of the file is the user's. A
source kind the user declared outside the markers is left to the user. The new
file is loaded by :func:`observatoire.config.load_territory` before it replaces the
old one, so a file that ``build`` would refuse is never written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from observatoire import communes as table
from observatoire.acquisition.cache import write_atomic
from observatoire.acquisition.contexte import Fetched
from observatoire.config import (
    ACQUISITION_SOURCES,
    declared_constraint_names,
    declared_sources,
    load_territory,
    slugify,
    source_table,
)
from observatoire.errors import ConfigError

TERRITORY_FILE = "territoire.toml"
BEGIN = "# >>> sources téléchargées (écrites par « observatoire telecharger », ne pas modifier)"
END = "# <<< fin des sources téléchargées"
#: The source kind declared as a list, one table a layer.
CONSTRAINTS = "contraintes"
#: The comment of ``[telechargement] sources`` in the file ``init`` writes.
SOURCES_HELP = (
    "# Sources possibles (une fois téléchargées, « observatoire build » les lit) :",
    "#   cadastre, zonage, friches : parcelles, PLU/PLUi, Cartofriches (défaut, quelques Mo) ;",
    "#   bdtopo : bâtiments, routes, voies ferrées, postes électriques et mairies de la BD TOPO",
    "#     (archive de 200 à 600 Mo par département) ;",
    "#   bdalti : modèle numérique de terrain BD ALTI 25 m (archive d'environ 30 Mo par",
    "#     département), pour les pentes ;",
    "#   sirene : établissements géolocalisés (un fichier par département, republié chaque mois) ;",
    "#   georisques : zones inondables des TRI et secteurs d'information sur les sols",
    "#     (contraintes), installations classées ;",
    "#   patrinat : Natura 2000 et ZNIEFF (contraintes).",
)
#: Sources fetched by default: those the build needs first.
DEFAULT_SOURCES = ("cadastre", "zonage", "friches")


def _toml(value: object) -> str:
    """Return a TOML value: strings and lists of strings (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def resolve_communes(*, epci: str | None = None, communes: Sequence[str] = ()
                     ) -> tuple[str, list[table.Commune], table.Epci | None]:
    """Return the territory of an EPCI or of a list of communes: name, communes, EPCI.

    Raises
    ------
    ConfigError
        An unknown SIREN or INSEE code (with the closest ones), a code that is not a
        current commune (with the commune holding it).
    """
    if epci is not None:
        found = table.epci(epci)
        rows = [table.commune(code) for code in found.membres]
        return found.nom, rows, found
    rows = []
    for code in dict.fromkeys(communes):
        row = table.commune(code)
        if not row.actuelle:
            raise ConfigError(f"{row.label()} n'est pas une commune actuelle ; indiquez la "
                              f"commune qui la porte : {row.commune}")
        rows.append(row)
    if not rows:
        raise ConfigError("aucune commune : indiquez --epci SIREN ou --communes INSEE…")
    sirens = {row.epci for row in rows}
    siren = sirens.pop() if len(sirens) == 1 else None
    found_epci = table.find_epci(siren) if siren is not None else None
    if found_epci is not None and set(found_epci.membres) == {r.code for r in rows}:
        name = found_epci.nom
    elif len(rows) == 1:
        name = rows[0].nom
    elif len(rows) <= 3:
        name = ", ".join(r.nom for r in rows)
    else:
        name = f"{rows[0].nom} et {len(rows) - 1} autres communes"
    return name, rows, found_epci


def territory_crs(rows: Sequence[table.Commune]) -> str:
    """Return the legal CRS of the communes' départements (one for all).

    Raises
    ------
    ConfigError
        Communes whose départements have different legal CRS.
    """
    crs = {table.legal_crs(row.departement) for row in rows}
    if len(crs) > 1:
        raise ConfigError(f"les communes relèvent de projections légales différentes "
                          f"({', '.join(sorted(crs))}) ; faites un territoire par projection")
    return crs.pop()


#: Comment of the template on ``date_observation`` (commented out: the line to enable).
DATE_OBSERVATION_HELP = (
    "",
    "# Date de l'observation (AAAA-MM-JJ). Chaque « observatoire build » ajoute à",
    "# l'historique (dossier historique/ à côté de observatoire.gpkg) une observation datée,",
    "# comparée à la précédente ; reconstruire à la même date la remplace. Sans cette ligne,",
    "# l'observation prend la date du millésime du cadastre et l'inventaire des ZAE (vacance",
    "# de l'art. L318-8-2) la date du jour : renseignez-la pour que les deux coïncident, par",
    "# exemple au 1er janvier de chaque année d'observation. Voir docs/observation.md.",
    "# date_observation = 2025-01-01",
)


def init_territory(folder: Path, *, epci: str | None = None, communes: Sequence[str] = (),
                   sources: Sequence[str] = DEFAULT_SOURCES) -> Path:
    """Write ``folder/territoire.toml`` for an EPCI or a list of communes.

    Parameters
    ----------
    folder
        The territory folder (created).
    epci
        SIREN of an EPCI à fiscalité propre: its member communes.
    communes
        INSEE codes of current communes (when ``epci`` is ``None``).
    sources
        Publishers ``telecharger`` will fetch.

    Returns
    -------
    Path
        The territory file.

    Raises
    ------
    ConfigError
        An unknown code (with the closest ones), or an existing territory file
        (never overwritten).
    """
    name, rows, found_epci = resolve_communes(epci=epci, communes=communes)
    unknown = [s for s in sources if s not in ACQUISITION_SOURCES]
    if unknown:
        raise ConfigError(f"source inconnue : {unknown[0]!r} ; sources possibles : "
                          f"{', '.join(ACQUISITION_SOURCES)}")
    path = Path(folder) / TERRITORY_FILE
    if path.exists():
        raise ConfigError(f"{path} existe déjà ; il n'est jamais écrasé : choisissez un autre "
                          f"--dossier ou supprimez-le")
    crs = territory_crs(rows)
    lines = [
        f"# Territoire « {name} », écrit par « observatoire init » le "
        f"{dt.date.today().isoformat()}.",
        "# Communes et noms : table du découpage administratif livrée avec l'observatoire.",
        "# « observatoire telecharger --config territoire.toml » ajoute les sources entre les",
        "# lignes de marque en fin de fichier ; le reste du fichier est à vous.",
        "",
        "[territoire]",
        f"nom = {_toml(name)}",
        f"code = {_toml(slugify(name))}",
        "communes = [",
        *(f"    {_toml(r.code)},  # {r.nom}" for r in rows),
        "]",
        f"crs = {_toml(crs)}",
    ]
    if found_epci is not None:
        lines += [f"epci_nom = {_toml(found_epci.nom)}",
                  f"epci_siren = {_toml(found_epci.siren)}"]
    lines += [
        *DATE_OBSERVATION_HELP,
        "",
        "[telechargement]",
        *SOURCES_HELP,
        f"sources = {_toml(list(sources))}",
        "millesime = \"latest\"  # millésime du cadastre : \"latest\" ou AAAA-MM-JJ",
        "cache = \"cache\"",
        "",
        "[sorties]",
        "dossier = \"sorties\"",
        "",
        BEGIN,
        END,
        "",
    ]
    write_atomic(path, "\n".join(lines).encode("utf-8"))
    return path


def _split(text: str) -> tuple[str, str]:
    """Return the file without its generated block, and the block's place (text before, after)."""
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return text.rstrip("\n") + "\n\n", ""
    return text[:begin], text[end + len(END):].lstrip("\n")


def write_sources(path: Path, fetched: Sequence[Fetched]) -> list[str]:
    """Write the ``[sources.*]`` of ``fetched`` between the markers of the territory file.

    Parameters
    ----------
    path
        The territory file.
    fetched
        The sources fetched; of two of the same kind, the later one is written.

    Returns
    -------
    list of str
        The kinds written (those declared by hand outside the markers are skipped).

    Raises
    ------
    ConfigError
        The file written would be refused by ``build`` (it is then not written).
    """
    text = path.read_text(encoding="utf-8")
    before, after = _split(text)
    own = declared_sources(before + after, path)
    own_constraints = declared_constraint_names(before + after)
    base = path.resolve().parent
    kinds: dict[tuple[str, str], Fetched | str] = {}
    # What an earlier run declared stays, unless fetched again now (a run of some
    # sources only, or a source that failed this time) or its files are gone.
    for key, chunk in _generated_tables(text, base):
        if key[0] not in own and key[1] not in own_constraints:
            kinds[key] = chunk
    for item in fetched:
        if item.kind == CONSTRAINTS:
            # Constraints are a list: one [[sources.contraintes]] a layer, by name; a
            # name the user declared by hand is the user's.
            name = dict(item.extra).get("nom", "")
            if name not in own_constraints:
                kinds[(item.kind, name)] = item
        elif item.kind not in own:
            key = (item.kind, "")
            previous = kinds.get(key)
            if item.fallback and previous is not None and (
                    not isinstance(previous, str)
                    or f"producteur = {_toml(item.producer)}" not in previous):
                continue  # another producer's source of this kind is kept
            kinds[key] = item
    block = [BEGIN]
    for (kind, _), entry in kinds.items():
        if isinstance(entry, str):
            block += ["", entry]
            continue
        item = entry
        paths = [Path(os.path.relpath(p.resolve(), base)).as_posix() for p in item.paths]
        header = f"[[sources.{kind}]]" if kind == CONSTRAINTS else f"[sources.{kind}]"
        block += ["", header]
        block += [f"{key} = {_toml(value)}" for key, value in item.extra]
        block.append(f"chemin = {_toml(paths[0] if len(paths) == 1 else paths)}")
        if item.format:
            block.append(f"format = {_toml(item.format)}")
        if item.layer:
            block.append(f"couche = {_toml(item.layer)}")
        block += [f"producteur = {_toml(item.producer)}", f"date = {_toml(item.date)}"]
    block.append(END)
    new = before + "\n".join(block) + "\n" + after
    tmp = path.with_name(f".{path.name}.nouveau")
    write_atomic(tmp, new.encode("utf-8"))
    try:
        load_territory(tmp)
    except ConfigError as exc:
        tmp.unlink(missing_ok=True)
        message = re.sub(re.escape(str(tmp)), str(path), str(exc))
        raise ConfigError(f"{message} (fichier non modifié)") from None
    os.replace(tmp, path)
    return list(dict.fromkeys(kind for kind, _ in kinds))


def _generated_tables(text: str, base: Path) -> list[tuple[tuple[str, str], str]]:
    """Return the tables of the generated block: ((kind, constraint name), text).

    A table whose files no longer exist is left out.
    """
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return []
    out = []
    for chunk in re.split(r"(?m)^(?=\[\[?sources\.)", text[begin + len(BEGIN):end]):
        chunk = chunk.strip()
        m = re.match(r"\[\[?sources\.(\w+)\]\]?", chunk)
        if m is None:
            continue
        table = source_table(chunk, m[1])
        if table is None:
            continue
        paths = table.get("chemin", [])
        paths = [paths] if isinstance(paths, str) else paths
        if not paths or not all(isinstance(p, str) and (base / p).exists() for p in paths):
            continue
        name = str(table.get("nom", "")) if m[1] == CONSTRAINTS else ""
        out.append(((m[1], name), chunk))
    return out
