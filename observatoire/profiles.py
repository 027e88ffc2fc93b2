"""Scoring profiles as the territory file writes them: their types, and their parsing.

A profile (``observatoire/data/profils.toml``, overridable in the territory file
under ``[profils.<nom>]``) lists *exclusions* and *criteria* (see
:mod:`observatoire.analysis.scoring` for how a parcel is scored). This module
turns the TOML tables into frozen :class:`Profile` objects, checking each key; it
is called once, by :func:`observatoire.config.load_territory`, which stores the
result in ``Territory.profiles``. The analysis reads those objects and never
parses a table.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from observatoire.errors import ConfigError
from observatoire.sources import INDICATOR_SOURCES

CLASS_NAMES = ("A", "B", "C", "D")

#: Reliability threshold of a profile that does not set ``fiabilite_min`` (see docs/scoring.md).
FIABILITE_MIN = 0.75
FUNCTIONS = ("lineaire", "paliers", "classes")

#: Indicators derived from the others for the profiles.
DERIVED_INDICATORS = {
    "en_friche": "parcelle d'une friche (bool)",
    "en_zae": "au moins la moitié de la parcelle dans une ZAE (bool)",
    "zonage_vocation": "« activite » pour une zone d'activité, sinon le typezone (U, AU, A, N…)",
    "part_contraintes": "part de la parcelle dans la contrainte qui la couvre le plus",
    "contrainte_principale": "nom de cette contrainte",
    "part_contrainte_stricte": "part de la parcelle dans la contrainte stricte la plus étendue",
    "contrainte_stricte": "nom de cette contrainte stricte",
}
_DYNAMIC = re.compile(r"^(dist_route_[a-z0-9_]+_m|part_contrainte_[a-z0-9_]+)$")
PLACEHOLDER = re.compile(r"\{([a-zA-Z0-9_]+)\}")


@dataclass(frozen=True)
class Exclusion:
    """A rule that removes a parcel from a profile.

    Attributes
    ----------
    name
        Its key in the profile.
    indicator
        The indicator tested.
    within
        Excluded when the value is one of these (text indicators).
    below, above
        Excluded when the value is < ``below`` or > ``above``.
    unless
        Boolean indicator lifting the exclusion (e.g. ``en_friche``).
    reason
        French text; ``{valeur}`` and ``{<indicator>}`` are replaced.
    """

    name: str
    indicator: str
    reason: str
    within: tuple[str, ...] | None = None
    below: float | None = None
    above: float | None = None
    unless: str | None = None


@dataclass(frozen=True)
class Criterion:
    """One criterion of a profile: an indicator turned into a satisfaction, with a weight.

    Attributes
    ----------
    name
        Its key in the profile (used in ``contrib_<p>_<name>``).
    indicator
        The indicator read.
    weight
        Its weight (> 0).
    function
        ``lineaire``, ``paliers`` or ``classes``.
    points
        (x, s) pairs, x increasing, for ``lineaire`` and ``paliers``.
    values
        Class → satisfaction, for ``classes`` (booleans read ``oui`` / ``non``).
    other
        Satisfaction of a class not listed.
    label
        Short French name (in the reasons).
    strength, weakness
        French texts cited as a strength or a weakness (``None``: never cited).
    """

    name: str
    indicator: str
    weight: float
    function: str
    label: str
    points: tuple[tuple[float, float], ...] = ()
    values: tuple[tuple[str, float], ...] = ()
    other: float = 0.0
    strength: str | None = None
    weakness: str | None = None

    def satisfaction(self, values: pd.Series) -> np.ndarray:
        """Satisfaction in [0, 1] of each value (NaN where the value is unknown).

        Parameters
        ----------
        values
            The indicator's values.

        Returns
        -------
        numpy.ndarray
            Satisfactions, NaN for missing values.
        """
        if self.function == "classes":
            keys = class_keys(values)
            table = pd.Series(dict(self.values), dtype="float64")
            out = np.array(keys.map(table).astype("float64").to_numpy(
                dtype="float64", na_value=np.nan), copy=True)
            out[np.isnan(out) & keys.notna().to_numpy()] = self.other
            return out
        x = pd.to_numeric(as_number(values), errors="coerce").to_numpy(dtype="float64")
        xs = np.array([p[0] for p in self.points])
        ss = np.array([p[1] for p in self.points])
        if self.function == "lineaire":
            out = np.interp(x, xs, ss)
        else:
            pos = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(xs) - 1)
            out = ss[pos]
        out = np.asarray(out, dtype="float64")
        out[np.isnan(x)] = np.nan
        return out


@dataclass(frozen=True)
class Profile:
    """A scoring profile.

    Attributes
    ----------
    name
        Identifier (``industrie``), used in the column names.
    label, description
        French texts.
    classes
        (class, minimal score) pairs, decreasing; below the last: ``E``.
    exclusions, criteria
        The rules.
    fiabilite_min
        Reliability under which a scored parcel's class is :data:`UNDETERMINED`.
    """

    name: str
    label: str
    description: str
    classes: tuple[tuple[str, float], ...]
    exclusions: tuple[Exclusion, ...]
    criteria: tuple[Criterion, ...]
    fiabilite_min: float = FIABILITE_MIN

    @property
    def total_weight(self) -> float:
        """Sum of the criteria's weights."""
        return float(sum(c.weight for c in self.criteria))

    def columns(self) -> list[str]:
        """Output columns of this profile, in order."""
        p = self.name
        return [f"exclu_{p}", f"exclusions_{p}", f"score_{p}", f"classe_{p}",
                *[f"contrib_{p}_{c.name}" for c in self.criteria],
                f"raisons_{p}", f"fiabilite_{p}"]


# --------------------------------------------------------------------------- parsing


def default_profiles_table() -> dict[str, Any]:
    """Read the profiles shipped with the package (``observatoire/data/profils.toml``)."""
    text = resources.files("observatoire").joinpath("data", "profils.toml").read_text("utf-8")
    return tomllib.loads(text)


def merge_tables(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two TOML tables: ``override`` wins, sub-tables merge key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = value
    return out


def load_profiles(territory_profiles: Mapping[str, Any] | None = None, *,
                  defaults: Mapping[str, Any] | None = None) -> tuple[Profile, ...]:
    """Load the profiles of a territory: the shipped ones, overridden and completed by its own.

    Parameters
    ----------
    territory_profiles
        The ``[profils]`` table of the territory file.
    defaults
        The shipped profiles (read from the package when ``None``).

    Returns
    -------
    tuple of Profile
        Shipped profiles first (``industrie``, ``logistique``), then the territory's
        new ones, in file order.

    Raises
    ------
    ConfigError
        Naming the key at fault, e.g. ``profils.industrie.criteres.pente.poids``.
    """
    base = dict(defaults) if defaults is not None else default_profiles_table()
    merged = {name: dict(table) for name, table in base.items()}
    for name, table in (territory_profiles or {}).items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"« profils.{name} » doit être une table ([profils.{name}])")
        merged[name] = merge_tables(merged.get(name, {}), table)
    return tuple(parse_profile(name, table) for name, table in merged.items())


@functools.cache
def shipped_profiles() -> tuple[Profile, ...]:
    """Return the profiles shipped with the package, parsed (the analysis's default)."""
    return load_profiles()


def _key(*parts: str) -> str:
    return "profils." + ".".join(parts)


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"« {key} » : {message}")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(key, f"valeur invalide {value!r} ; un nombre est attendu")
    return float(value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, f"valeur invalide {value!r} ; un texte non vide est attendu")
    return value


def _check_unknown(table: Mapping[str, Any], allowed: set[str], key: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(f"{key}.{unknown[0]}", f"clé inconnue ; clés possibles : "
                    f"{', '.join(sorted(allowed))}")


def known_indicator(name: str) -> bool:
    """Whether ``name`` is an indicator a profile may use."""
    return (name in INDICATOR_SOURCES or name in DERIVED_INDICATORS
            or bool(_DYNAMIC.match(name)))


def _indicator(value: Any, key: str) -> str:
    name = _text(value, key)
    if not known_indicator(name):
        raise _fail(key, f"indicateur inconnu {name!r} ; indicateurs possibles : "
                    f"{', '.join(sorted([*INDICATOR_SOURCES, *DERIVED_INDICATORS]))}, "
                    f"dist_route_<classe>_m, part_contrainte_<nom>")
    return name


def _template(value: Any, key: str) -> str:
    text = _text(value, key)
    for name in PLACEHOLDER.findall(text):
        if name != "valeur" and not known_indicator(name):
            raise _fail(key, f"« {{{name}}} » ne désigne aucun indicateur ; utilisez {{valeur}} "
                        f"ou le nom d'un indicateur")
    return text


def parse_profile(name: str, table: Mapping[str, Any]) -> Profile:
    """Check and build one profile from its TOML table.

    Parameters
    ----------
    name
        The profile's name (``industrie``).
    table
        Its table, merged with the shipped one if any.

    Returns
    -------
    Profile
        The checked profile.

    Raises
    ------
    ConfigError
        Naming the key at fault.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise _fail(_key(name), "nom de profil invalide ; lettres minuscules, chiffres et _")
    _check_unknown(table, {"libelle", "description", "classes", "fiabilite_min", "exclusions",
                           "criteres"}, _key(name))
    label = _text(table.get("libelle", name), _key(name, "libelle"))
    description = str(table.get("description", ""))
    classes = _parse_classes(table.get("classes", {"A": 75, "B": 60, "C": 45, "D": 30}), name)
    fiabilite_min = _number(table.get("fiabilite_min", FIABILITE_MIN),
                            _key(name, "fiabilite_min"))
    if not 0 <= fiabilite_min <= 1:
        raise _fail(_key(name, "fiabilite_min"), f"{fiabilite_min} hors de [0, 1] ; la "
                    f"fiabilité est une part du poids des critères (0,75 : les trois quarts)")
    raw_ex = table.get("exclusions", {})
    if not isinstance(raw_ex, Mapping):
        raise _fail(_key(name, "exclusions"), "doit être une table de règles")
    exclusions = tuple(e for ename, etable in raw_ex.items()
                       if (e := _parse_exclusion(name, ename, etable)) is not None)
    raw_cr = table.get("criteres")
    if not isinstance(raw_cr, Mapping) or not raw_cr:
        raise _fail(_key(name, "criteres"), "au moins un critère est attendu")
    criteria = tuple(c for cname, ctable in raw_cr.items()
                     if (c := _parse_criterion(name, cname, ctable)) is not None)
    if not criteria:
        raise _fail(_key(name, "criteres"), "tous les critères ont un poids nul ; donnez à au "
                    "moins un critère un poids positif")
    return Profile(name=name, label=label, description=description, classes=classes,
                   exclusions=exclusions, criteria=criteria, fiabilite_min=fiabilite_min)


def _parse_classes(raw: Any, name: str) -> tuple[tuple[str, float], ...]:
    key = _key(name, "classes")
    if not isinstance(raw, Mapping):
        raise _fail(key, "doit être une table { A = 75, B = 60, C = 45, D = 30 }")
    _check_unknown(raw, set(CLASS_NAMES), key)
    missing = [c for c in CLASS_NAMES if c not in raw]
    if missing:
        raise _fail(f"{key}.{missing[0]}", "seuil absent ; donnez les seuils de A, B, C et D")
    values = [_number(raw[c], f"{key}.{c}") for c in CLASS_NAMES]
    for c, v in zip(CLASS_NAMES, values, strict=True):
        if not 0 <= v <= 100:
            raise _fail(f"{key}.{c}", f"{v} hors de [0, 100]")
    if any(a <= b for a, b in zip(values, values[1:], strict=False)):
        raise _fail(key, "les seuils doivent décroître strictement de A à D")
    return tuple(zip(CLASS_NAMES, values, strict=True))


def _parse_exclusion(name: str, ename: str, raw: Any) -> Exclusion | None:
    key = _key(name, "exclusions", ename)
    if not isinstance(raw, Mapping):
        raise _fail(key, "doit être une table (indicateur, dans / inferieur_a / superieur_a, "
                    "raison)")
    _check_unknown(raw, {"indicateur", "dans", "inferieur_a", "superieur_a", "sauf", "raison",
                         "active"}, key)
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise _fail(f"{key}.active", f"valeur invalide {active!r} ; true ou false")
    if not active:
        return None
    if "indicateur" not in raw:
        raise _fail(f"{key}.indicateur", "clé obligatoire absente")
    indicator = _indicator(raw["indicateur"], f"{key}.indicateur")
    within = raw.get("dans")
    if within is not None:
        if not isinstance(within, list) or not within:
            raise _fail(f"{key}.dans", "doit être une liste non vide de valeurs")
        within = tuple(str(v) for v in within)
    below = _number(raw["inferieur_a"], f"{key}.inferieur_a") if "inferieur_a" in raw else None
    above = _number(raw["superieur_a"], f"{key}.superieur_a") if "superieur_a" in raw else None
    if within is None and below is None and above is None:
        raise _fail(key, "aucune condition ; donnez dans, inferieur_a ou superieur_a")
    unless = _indicator(raw["sauf"], f"{key}.sauf") if "sauf" in raw else None
    if "raison" not in raw:
        raise _fail(f"{key}.raison", "clé obligatoire absente ; écrivez la raison en français")
    return Exclusion(name=ename, indicator=indicator, reason=_template(raw["raison"],
                     f"{key}.raison"), within=within, below=below, above=above, unless=unless)


def _parse_criterion(name: str, cname: str, raw: Any) -> Criterion | None:
    key = _key(name, "criteres", cname)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", cname):
        raise _fail(key, "nom de critère invalide ; lettres minuscules, chiffres et _")
    if not isinstance(raw, Mapping):
        raise _fail(key, "doit être une table (indicateur, poids, fonction…)")
    _check_unknown(raw, {"indicateur", "poids", "fonction", "points", "valeurs", "autre",
                         "libelle", "atout", "faiblesse"}, key)
    for k in ("indicateur", "poids", "fonction"):
        if k not in raw:
            raise _fail(f"{key}.{k}", "clé obligatoire absente")
    weight = _number(raw["poids"], f"{key}.poids")
    if weight < 0:
        raise _fail(f"{key}.poids", f"poids négatif {weight} ; un poids est positif ou nul")
    if weight == 0:
        return None
    indicator = _indicator(raw["indicateur"], f"{key}.indicateur")
    function = _text(raw["fonction"], f"{key}.fonction")
    if function not in FUNCTIONS:
        raise _fail(f"{key}.fonction", f"fonction inconnue {function!r} ; fonctions possibles : "
                    f"{', '.join(FUNCTIONS)}")
    points: tuple[tuple[float, float], ...] = ()
    values: tuple[tuple[str, float], ...] = ()
    other = 0.0
    if function == "classes":
        raw_values = raw.get("valeurs")
        if not isinstance(raw_values, Mapping) or not raw_values:
            raise _fail(f"{key}.valeurs", "table { classe = satisfaction } attendue")
        values = tuple((str(k), _satisfaction(v, f"{key}.valeurs.{k}"))
                       for k, v in raw_values.items())
        other = _satisfaction(raw.get("autre", 0.0), f"{key}.autre")
    else:
        raw_points = raw.get("points")
        if not isinstance(raw_points, list) or not raw_points:
            raise _fail(f"{key}.points", "liste [[x, satisfaction], …] attendue")
        pts = []
        for i, p in enumerate(raw_points):
            if not isinstance(p, list) or len(p) != 2:
                raise _fail(f"{key}.points[{i}]", "paire [x, satisfaction] attendue")
            pts.append((_number(p[0], f"{key}.points[{i}]"),
                        _satisfaction(p[1], f"{key}.points[{i}]")))
        if any(b[0] <= a[0] for a, b in zip(pts, pts[1:], strict=False)):
            raise _fail(f"{key}.points", "les x doivent croître strictement")
        points = tuple(pts)
    return Criterion(
        name=cname, indicator=indicator, weight=weight, function=function,
        label=_text(raw.get("libelle", cname), f"{key}.libelle"), points=points,
        values=values, other=other,
        strength=_template(raw["atout"], f"{key}.atout") if "atout" in raw else None,
        weakness=_template(raw["faiblesse"], f"{key}.faiblesse") if "faiblesse" in raw else None,
    )


def _satisfaction(value: Any, key: str) -> float:
    v = _number(value, key)
    if not 0.0 <= v <= 1.0:
        raise _fail(key, f"satisfaction {v} hors de [0, 1]")
    return v


def as_number(values: pd.Series) -> pd.Series:
    """Values as numbers: booleans as 1.0 / 0.0, NULL as NaN, others as they are."""
    if values.dtype == bool or str(values.dtype) == "boolean":
        return values.astype("Float64").astype("float64")
    return values


def class_keys(values: pd.Series) -> pd.Series:
    """Class keys of values: text as is, booleans as ``oui`` / ``non``, NULL as NA."""
    if values.dtype == bool or str(values.dtype) == "boolean":
        return values.astype("boolean").map({True: "oui", False: "non"}).astype("string")
    return values.astype("string")
