"""French communes, EPCI and départements: names and membership, offline.

The table is shipped in ``observatoire/data/decoupage`` (derived by
``scripts/decoupage_administratif.py`` from the npm package
``@etalab/decoupage-administratif``, Licence Ouverte 2.0; its version is
:func:`data_source`). It holds the current communes, and also the communes
déléguées and associées, the arrondissements municipaux (Paris, Lyon, Marseille)
and the old codes of merged communes, each flagged by its ``type``: real sources
(Cartofriches, an old PLU, a ZAE layer drawn years ago) carry such codes.

Lookups::

    commune("25267").nom            # 'Gennes'
    epci("242500361").membres       # the 67 INSEE codes of Grand Besançon Métropole
    epci_of("25267").siren          # '242500361'
    legal_crs("974")                # 'EPSG:2975'
    suggest_communes("Genes")       # closest codes or names, for an error message

The table is read once, on first use (importing the module reads nothing).
"""

from __future__ import annotations

import csv
import difflib
import functools
import gzip
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from observatoire.errors import ConfigError

#: Types of rows, in the order a code held by several rows is resolved.
TYPES = ("commune-actuelle", "arrondissement-municipal", "commune-deleguee",
         "commune-associee", "ancien-code")
#: French wording of each type, for messages.
TYPE_LABELS = {
    "commune-actuelle": "commune",
    "arrondissement-municipal": "arrondissement municipal",
    "commune-deleguee": "commune déléguée",
    "commune-associee": "commune associée",
    "ancien-code": "ancien code",
}

#: Legal projected CRS by overseas département or collectivity (arrêté du 5 mars 2019
#: on the legal references); every metropolitan département (Corsica included) is
#: in Lambert-93.
OVERSEAS_CRS = {
    "971": "EPSG:5490",  # Guadeloupe: RGAF09 / UTM 20N
    "972": "EPSG:5490",  # Martinique: RGAF09 / UTM 20N
    "973": "EPSG:2972",  # Guyane: RGFG95 / UTM 22N
    "974": "EPSG:2975",  # La Réunion: RGR92 / UTM 40S
    "976": "EPSG:4471",  # Mayotte: RGM04 / UTM 38S
    "977": "EPSG:5490",  # Saint-Barthélemy: RGAF09 / UTM 20N
    "978": "EPSG:5490",  # Saint-Martin: RGAF09 / UTM 20N
}
METROPOLE_CRS = "EPSG:2154"


@dataclass(frozen=True)
class Commune:
    """A row of the table.

    Attributes
    ----------
    code
        INSEE code.
    nom
        Official name (for an ``ancien-code``, the name of the commune holding it).
    type
        One of :data:`TYPES`.
    departement
        Code of the département (or overseas collectivity).
    commune
        INSEE code of the current commune holding it (its own code for a current
        commune).
    epci
        SIREN of the EPCI à fiscalité propre of the current commune holding it,
        or ``None`` (a few island communes belong to none).
    """

    code: str
    nom: str
    type: str
    departement: str
    commune: str
    epci: str | None

    @property
    def actuelle(self) -> bool:
        """Whether the row is a current commune."""
        return self.type == "commune-actuelle"

    def label(self) -> str:
        """French wording: ``Gennes (25267)``, ``Arbignieu (01015, commune déléguée)``."""
        if self.actuelle:
            return f"{self.nom} ({self.code})"
        if self.type == "ancien-code":
            return f"{self.code}, ancien code de {self.nom} ({self.commune})"
        return f"{self.nom} ({self.code}, {TYPE_LABELS[self.type]})"


@dataclass(frozen=True)
class Epci:
    """An EPCI à fiscalité propre: SIREN, name, type (CC, CA, CU, METRO, MET69), members."""

    siren: str
    nom: str
    type: str
    membres: tuple[str, ...]

    def label(self) -> str:
        """French wording: ``CU Grand Besançon Métropole (SIREN 242500361)``."""
        return f"{self.nom} (SIREN {self.siren})"


@dataclass(frozen=True)
class Departement:
    """A département or overseas collectivity: code, name, region, zone (metro, drom, com)."""

    code: str
    nom: str
    region: str
    zone: str


@dataclass(frozen=True)
class _Table:
    communes: dict[str, tuple[Commune, ...]]
    epci: dict[str, Epci]
    departements: dict[str, Departement]


def _read_csv(name: str) -> list[list[str]]:
    """Rows of a shipped CSV file, header first."""
    data = resources.files("observatoire").joinpath("data", "decoupage", name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return list(csv.reader(io.StringIO(data.decode("utf-8")), delimiter=";"))


@functools.lru_cache(maxsize=1)
def _table() -> _Table:
    header, *rows = _read_csv("communes.csv.gz")
    assert header == ["code", "type", "nom", "departement", "commune", "epci"], header
    # The file is sorted by code, then in the order of TYPES; rows other than a
    # current commune take the EPCI of the current commune holding them.
    epci_of = {row[0]: row[5] for row in rows if row[1] == "commune-actuelle"}
    communes: dict[str, list[Commune]] = {}
    members: dict[str, list[str]] = {}
    for code, kind, nom, dep, holder, siren in rows:
        holder = holder or code
        siren = siren or epci_of.get(holder, "")
        communes.setdefault(code, []).append(Commune(code, nom, kind, dep, holder, siren or None))
        if kind == "commune-actuelle" and siren:
            members.setdefault(siren, []).append(code)
    epci = {siren: Epci(siren, nom, kind, tuple(members.get(siren, ())))
            for siren, nom, kind in _read_csv("epci.csv")[1:]}
    deps = {code: Departement(code, nom, region, zone)
            for code, nom, region, zone in _read_csv("departements.csv")[1:]}
    return _Table({code: tuple(found) for code, found in communes.items()}, epci, deps)


@functools.lru_cache(maxsize=1)
def data_source() -> dict[str, Any]:
    """Return where the table comes from: package, version, licence, row counts."""
    text = resources.files("observatoire").joinpath("data", "decoupage",
                                                    "source.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def find_commune(code: str) -> Commune | None:
    """Return the row of an INSEE code (a current commune first), or ``None``.

    Parameters
    ----------
    code
        INSEE code (``25267``, ``2A004``).

    Returns
    -------
    Commune or None
        The current commune of that code, else the arrondissement, commune
        déléguée, commune associée or old code holding it.
    """
    rows = _table().communes.get(str(code).strip().upper())
    return rows[0] if rows else None


def commune(code: str) -> Commune:
    """Return the row of an INSEE code.

    Raises
    ------
    ConfigError
        An unknown code, with the closest codes and names.
    """
    found = find_commune(code)
    if found is None:
        raise ConfigError(f"code INSEE inconnu : {code!r}{_closest(suggest_communes(code))}")
    return found


def commune_name(code: str) -> str | None:
    """Return the official name of an INSEE code, or ``None`` when the table lacks it."""
    found = find_commune(code)
    return found.nom if found else None


def commune_names(codes: Iterable[str], *, overrides: Mapping[str, str] | None = None
                  ) -> dict[str, str]:
    """Return INSEE code → name for ``codes``: the table's names, ``overrides`` first.

    Parameters
    ----------
    codes
        INSEE codes (missing values and repeats are ignored).
    overrides
        Names given by the user (``[options.noms_communes]``); they win, and
        their codes are included even when not in ``codes``.

    Returns
    -------
    dict
        The codes whose name is known (from ``overrides`` or the table).
    """
    names: dict[str, str] = {}
    for code in codes:
        if isinstance(code, str) and code and code not in names:
            name = commune_name(code)
            if name is not None:
                names[code] = name
    names.update(overrides or {})
    return names


def epci(siren: str) -> Epci:
    """Return the EPCI of a SIREN.

    Raises
    ------
    ConfigError
        An unknown SIREN, with the closest SIREN and names.
    """
    found = _table().epci.get(str(siren).strip())
    if found is None:
        raise ConfigError(f"SIREN d'EPCI inconnu : {siren!r}{_closest(suggest_epci(siren))}")
    return found


def find_epci(siren: str) -> Epci | None:
    """Return the EPCI of a SIREN, or ``None``."""
    return _table().epci.get(str(siren).strip())


def epci_of(code: str) -> Epci | None:
    """Return the EPCI à fiscalité propre of a commune (of the commune holding the code)."""
    found = find_commune(code)
    return _table().epci.get(found.epci) if found and found.epci else None


def departement(code: str) -> Departement:
    """Return a département (or overseas collectivity) by its code (``25``, ``2A``, ``974``).

    Raises
    ------
    ConfigError
        An unknown code.
    """
    found = _table().departements.get(str(code).strip().upper())
    if found is None:
        known = sorted(_table().departements)
        close = difflib.get_close_matches(str(code), known, n=5, cutoff=0.5)
        hint = f" ; codes proches : {', '.join(close)}" if close else ""
        raise ConfigError(f"code de département inconnu : {code!r}{hint}")
    return found


def legal_crs(departement_code: str) -> str:
    """Return the legal projected CRS of a département (``EPSG:2154`` in metropolitan France).

    Raises
    ------
    ConfigError
        An unknown département, or an overseas collectivity without a legal CRS
        that the observatory handles (Saint-Pierre-et-Miquelon, the Pacific…).
    """
    dep = departement(departement_code)
    if dep.zone == "metro":
        return METROPOLE_CRS
    crs = OVERSEAS_CRS.get(dep.code)
    if crs is None:
        raise ConfigError(
            f"{dep.nom} ({dep.code}) : pas de projection légale prise en charge ; indiquez "
            f"territoire.crs vous-même")
    return crs


def _fold(text: str) -> str:
    """Lower-case ASCII form of a name, for comparisons (``Épinay`` ≈ ``epinay``)."""
    norm = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return " ".join(norm.replace("-", " ").replace("'", " ").lower().split())


@functools.lru_cache(maxsize=1)
def _names() -> dict[str, list[str]]:
    """Folded names → codes (current communes first; old codes bear a current name)."""
    by_name: dict[str, list[Commune]] = {}
    for rows in _table().communes.values():
        for c in rows:
            if c.type != "ancien-code":
                by_name.setdefault(_fold(c.nom), []).append(c)
    return {name: [c.code for c in sorted(rows, key=lambda c: (TYPES.index(c.type), c.code))]
            for name, rows in by_name.items()}


def _departement_of_code(code: str) -> str:
    return code[:3] if code.startswith("97") or code.startswith("98") else code[:2]


def suggest_communes(query: str, *, n: int = 5) -> list[Commune]:
    """Return the communes whose code or name is closest to ``query`` (best first).

    A code is compared with the codes of its département (the most similar, then
    the nearest in number), or with every code when the département is unknown;
    anything else with the names (accents and case ignored).
    """
    query = str(query).strip()
    table = _table().communes
    if re.fullmatch(r"\d{5}|2[AB]\d{3}", query.upper()):
        query = query.upper()
        dep = _departement_of_code(query)
        same = sorted(c for c in table if _departement_of_code(c) == dep)
        hits = difflib.get_close_matches(query, same or sorted(table), n=n, cutoff=0.6)
        if len(hits) < n and same and query[2:].isdigit():
            rest = sorted((c for c in same if c not in hits and c[2:].isdigit()),
                          key=lambda c: (abs(int(c[2:]) - int(query[2:])), c))
            hits += rest[:n - len(hits)]
    else:
        names = _names()
        close = difflib.get_close_matches(_fold(query), list(names), n=n, cutoff=0.6)
        hits = list(dict.fromkeys(code for name in close for code in names[name]))[:n]
    return [r for r in (find_commune(code) for code in hits) if r is not None]


def suggest_epci(query: str, *, n: int = 5) -> list[Epci]:
    """Return the EPCI whose SIREN or name is closest to ``query`` (best first)."""
    query = str(query).strip()
    table = _table().epci
    if query.isdigit():
        return [table[s] for s in difflib.get_close_matches(query, list(table), n=n,
                                                            cutoff=0.6)]
    folded = {_fold(e.nom): e for e in table.values()}
    return [folded[k] for k in difflib.get_close_matches(_fold(query), list(folded), n=n,
                                                         cutoff=0.5)]


def _closest(found: list[Commune] | list[Epci]) -> str:
    if not found:
        return " ; aucun code proche dans la table du découpage administratif"
    return " ; les plus proches : " + ", ".join(item.label() for item in found)
