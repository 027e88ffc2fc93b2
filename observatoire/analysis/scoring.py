"""Scoring profiles: exclusions, criteria, score 0–100, class A–E, reasons and reliability.

A profile (``observatoire/data/profils.toml``, overridable in the territory file
under ``[profils.<nom>]``) lists *exclusions* (an excluded parcel gets no score,
only its reasons) and *criteria*: each maps one indicator to a satisfaction in
[0, 1] — piecewise linear, steps or classes — with a weight. For a parcel,

- ``score = 100 × Σ(w·s) / Σ(w of the criteria whose input is available)``;
- ``contrib_<p>_<c> = 100 × w·s / Σ(w available)`` (the contributions add up to the score);
- ``fiabilite = Σ(w available) / Σ(w)``;
- ``classe`` from the score by fixed thresholds (A–E), or ``non déterminée`` when
  ``fiabilite`` is under the profile's ``fiabilite_min``: the score is kept, but a
  class read on a third of the criteria would mean nothing.

A criterion whose layer is absent, or whose value is unknown for a parcel (off the
DEM), is left out of both sums: it lowers ``fiabilite``, never the score. Only a
distance to a layer that *was* given but holds no feature of the class is read as
"beyond every threshold".
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatoire.analysis.indicators import INDICATOR_SOURCES, Indicators
from observatoire.errors import ConfigError

log = logging.getLogger(__name__)

#: Satisfaction from which a criterion is cited as a strength, and up to which as a weakness.
STRENGTH = 0.7
WEAKNESS = 0.3
#: Strengths and weaknesses cited per parcel, at most.
MAX_REASONS = 3
CLASS_NAMES = ("A", "B", "C", "D")
#: Class of a scored parcel whose reliability is under the profile's threshold.
UNDETERMINED = "non déterminée"
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
_PLACEHOLDER = re.compile(r"\{([a-zA-Z0-9_]+)\}")


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
            keys = _class_keys(values)
            table = pd.Series(dict(self.values), dtype="float64")
            out = np.array(keys.map(table).astype("float64").to_numpy(
                dtype="float64", na_value=np.nan), copy=True)
            out[np.isnan(out) & keys.notna().to_numpy()] = self.other
            return out
        x = pd.to_numeric(_as_number(values), errors="coerce").to_numpy(dtype="float64")
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
        The ``[profils]`` table of the territory file (``Territory.profiles``).
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


#: Source kind of the derived indicators (the others: ``INDICATOR_SOURCES``).
_DERIVED_SOURCES = {"en_friche": "friches", "en_zae": "zae", "zonage_vocation": "zonage",
                    "part_contraintes": "contraintes", "contrainte_principale": "contraintes",
                    "part_contrainte_stricte": "contraintes",
                    "contrainte_stricte": "contraintes"}


def indicator_source(indicator: str) -> str | None:
    """Return the source kind an indicator is computed from (``zonage``, ``mnt``…).

    Parameters
    ----------
    indicator
        A name :func:`known_indicator` accepts.

    Returns
    -------
    str or None
        The kind of the ``[sources.<kind>]`` table that feeds it; ``None`` for an
        unknown name.
    """
    if indicator in INDICATOR_SOURCES:
        return INDICATOR_SOURCES[indicator]
    if indicator in _DERIVED_SOURCES:
        return _DERIVED_SOURCES[indicator]
    if indicator.startswith("dist_route_"):
        return "routes"
    if indicator.startswith("part_contrainte_"):
        return "contraintes"
    return None


def source_weights(profile: Profile) -> dict[str, float]:
    """Share of the profile's weight that each source kind feeds (criteria only).

    Without the source, the reliability of every parcel loses at least this share:
    ``{"zonage": 0.25, "parcelles": 0.30, …}`` for the shipped ``industrie``.
    """
    out: dict[str, float] = {}
    for c in profile.criteria:
        kind = indicator_source(c.indicator) or c.indicator
        out[kind] = out.get(kind, 0.0) + c.weight / profile.total_weight
    return out


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
    return name in INDICATOR_SOURCES or name in DERIVED_INDICATORS or bool(_DYNAMIC.match(name))


def _indicator(value: Any, key: str) -> str:
    name = _text(value, key)
    if not known_indicator(name):
        raise _fail(key, f"indicateur inconnu {name!r} ; indicateurs possibles : "
                    f"{', '.join(sorted([*INDICATOR_SOURCES, *DERIVED_INDICATORS]))}, "
                    f"dist_route_<classe>_m, part_contrainte_<nom>")
    return name


def _template(value: Any, key: str) -> str:
    text = _text(value, key)
    for name in _PLACEHOLDER.findall(text):
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


# --------------------------------------------------------------------------- values


def _as_number(values: pd.Series) -> pd.Series:
    if values.dtype == bool or str(values.dtype) == "boolean":
        return values.astype("Float64").astype("float64")
    return values


def _class_keys(values: pd.Series) -> pd.Series:
    """Class keys of values: text as is, booleans as ``oui`` / ``non``, NULL as NA."""
    if values.dtype == bool or str(values.dtype) == "boolean":
        return values.astype("boolean").map({True: "oui", False: "non"}).astype("string")
    return values.astype("string")


def scoring_frame(indicators: Indicators) -> tuple[pd.DataFrame, frozenset[str]]:
    """Add the derived indicators the profiles use, and say what is available.

    Parameters
    ----------
    indicators
        Output of :func:`~observatoire.analysis.indicators.compute_indicators`.

    Returns
    -------
    tuple
        The extended table (a new frame) and the available indicators.
    """
    f = indicators.frame.copy()
    available = set(indicators.available)
    idx = f.index
    if "friche_id" in available:
        f["en_friche"] = f["friche_id"].notna()
        available.add("en_friche")
    else:
        f["en_friche"] = pd.Series(pd.NA, index=idx, dtype="boolean")
    if "part_zae" in available:
        f["en_zae"] = f["part_zae"] >= 0.5
        available.add("en_zae")
    else:
        f["en_zae"] = pd.Series(pd.NA, index=idx, dtype="boolean")
    if "zone_typezone" in available:
        act = f["zone_activite"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        voc = f["zone_typezone"].astype(object)
        f["zonage_vocation"] = voc.where(~act, "activite")
        available.add("zonage_vocation")
    else:
        f["zonage_vocation"] = pd.Series(None, index=idx, dtype=object)
    for prefix, subset in (("", indicators.constraints),
                           ("_stricte", [c for c in indicators.constraints if c.strict])):
        share_col = "part_contraintes" if not prefix else "part_contrainte_stricte"
        name_col = "contrainte_principale" if not prefix else "contrainte_stricte"
        cols = [c.column for c in subset if c.column in f]
        if cols:
            shares = f[cols].to_numpy(dtype="float64")
            best = np.nanargmax(np.nan_to_num(shares, nan=-1.0), axis=1)
            top = shares[np.arange(len(f)), best]
            names = np.array([c.name for c in subset if c.column in f], dtype=object)[best]
            f[share_col] = top
            f[name_col] = pd.Series(np.where(top > 0, names, None), index=idx, dtype=object)
            available |= {share_col, name_col}
        else:
            f[share_col] = np.nan
            f[name_col] = pd.Series(None, index=idx, dtype=object)
    return f, frozenset(available)


# --------------------------------------------------------------------------- text
#
# Texts are built with Arrow string kernels: no Python call per parcel.

_NULL = pa.scalar(None, pa.string())


def _strings(values: np.ndarray | pd.Series) -> pa.Array:
    """Arrow strings from an object array or Series (None / NaN → null)."""
    if isinstance(values, pd.Series):
        values = values.astype(object).where(values.notna(), None).to_numpy(dtype=object)
    return pa.array(values, type=pa.string(), from_pandas=True)


def _join(*parts: pa.Array | str, sep: str = "", skip: bool = False) -> pa.Array:
    """Element-wise concatenation; a null part gives null, or is skipped with ``skip``.

    With ``skip``, a row whose parts are all null stays null. (Arrow's own
    ``null_handling="skip"`` drops such rows in pyarrow 26.)
    """
    if not skip:
        return pc.binary_join_element_wise(*parts, sep)
    acc = parts[0]
    for part in parts[1:]:
        acc = pc.coalesce(pc.binary_join_element_wise(acc, part, sep), acc, part)
    return acc


def _scatter(text: pa.Array, rows: np.ndarray, n: int) -> pa.Array:
    """Texts of ``rows`` placed in an array of ``n`` (null elsewhere)."""
    pos = np.full(n, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    return pc.take(text, pa.array(pos, mask=pos < 0))


def _fmt_number(x: np.ndarray, decimals: int) -> pa.Array:
    """French formatting of numbers: narrow no-break space between thousands, decimal comma.

    Halves round up (away from zero), as a French reader expects. Rounded values
    repeat a lot (slopes to 0.1 %, distances to 10 m): each distinct one is
    written once, then taken for every row.
    """
    ok = np.isfinite(x)
    scale = 10**decimals
    scaled = np.floor(np.abs(np.where(ok, x, 0.0)) * scale + 0.5).astype(np.int64)
    negative = (x < 0) & (scaled > 0)
    code = np.where(ok, 2 * scaled + negative, -1)
    uniq, inverse = np.unique(code, return_inverse=True)
    scaled, negative, ok = uniq // 2, (uniq % 2).astype(bool), uniq >= 0
    ints, frac = scaled // scale, scaled % scale
    text = pa.array(ints).cast(pa.string())
    low = pc.utf8_lpad(pa.array(ints % 1000).cast(pa.string()), 3, padding="0")
    grouped = _join(pa.array(ints // 1000).cast(pa.string()), low, sep="\u202f")
    text = pc.if_else(pa.array(ints >= 1000), grouped, text)
    if decimals:
        text = _join(text, pc.utf8_lpad(pa.array(frac).cast(pa.string()), decimals,
                                        padding="0"), sep=",")
    text = pc.if_else(pa.array(negative), _join("-", text), text)
    text = pc.if_else(pa.array(ok), text, _NULL)
    return text.take(pa.array(inverse.ravel().astype(np.int64)))


def format_values(name: str, values: pd.Series) -> pa.Array:
    """French rendering of an indicator's values (``12 500 m²``, ``3,2 %``, ``oui``).

    Parameters
    ----------
    name
        The indicator (its name says its unit).
    values
        Its values.

    Returns
    -------
    pyarrow.Array
        Strings, null for unknown values (a distance to a layer with no feature of
        the class reads ``aucune dans les données``).
    """
    if values.dtype == bool or str(values.dtype) == "boolean":
        return _strings(_class_keys(values))
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        return _strings(values.astype(object))
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if name == "surface_m2":
        return pc.if_else(pa.array(x >= 10_000), _join(_fmt_number(x / 10_000, 1), " ha"),
                          _join(_fmt_number(x, 0), " m²"))
    if name.startswith("part_"):
        return _join(_fmt_number(100 * x, 0), " %")
    if name.startswith("pente_"):
        return _join(_fmt_number(x, 1), " %")
    if name.startswith("dist_"):
        text = pc.if_else(pa.array(x >= 1000), _join(_fmt_number(x / 1000, 1), " km"),
                          _join(_fmt_number(np.round(x, -1), 0), " m"))
        return pc.fill_null(text, "aucune dans les données")
    if name.endswith("_m"):
        return _join(_fmt_number(x, 0), " m")
    if name == "compacite":
        return _fmt_number(x, 2)
    finite = x[np.isfinite(x)]
    return _fmt_number(x, 2 if len(finite) and np.any(finite % 1) else 0)


def _elementwise(name: str, values: pd.Series) -> bool:
    """Tell whether :func:`format_values` renders each value on its own.

    Such a column may be rendered once and cached; not the generic numbers, whose
    decimals depend on the whole set.
    """
    if values.dtype == bool or str(values.dtype) == "boolean":
        return True
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        return True
    return (name == "surface_m2" or name == "compacite" or name.endswith("_m")
            or name.startswith(("part_", "pente_", "dist_")))


def render(template: str, frame: pd.DataFrame, rows: np.ndarray, *, value: str,
           formatted: dict[str, pa.Array] | None = None) -> pa.Array:
    """Fill ``template`` for the ``rows`` of ``frame``.

    Parameters
    ----------
    template
        French text with ``{valeur}`` (the column ``value``) and ``{<indicator>}``
        placeholders; an unknown value reads ``?``.
    frame
        The scoring table.
    rows
        Positions of the rows to render.
    value
        The column ``{valeur}`` stands for.
    formatted
        A cache of whole columns already rendered by :func:`format_values`, filled
        as needed: the templates of every profile share it.

    Returns
    -------
    pyarrow.Array
        One text per selected row.
    """
    cols = {value if m.group(1) == "valeur" else m.group(1)
            for m in _PLACEHOLDER.finditer(template)}
    cols &= set(frame.columns)
    col = next(iter(cols)) if len(cols) == 1 else None
    if formatted is not None and col is not None and _elementwise(col, frame[col]):
        # One cached column: fill the template once per distinct value, then take.
        if col not in formatted:
            formatted[col] = pc.dictionary_encode(pc.fill_null(format_values(col, frame[col]),
                                                               "?"))
        encoded = formatted[col]
        filled = _fill(template, {col: encoded.dictionary}, value, len(encoded.dictionary))
        codes = encoded.indices.take(pa.array(rows, type=pa.int64()))
        return filled.take(codes)
    sub = {col: pc.fill_null(format_values(col, frame[col].iloc[rows]), "?") for col in cols}
    return _fill(template, sub, value, len(rows))


def _fill(template: str, values: Mapping[str, pa.Array], value: str, n: int) -> pa.Array:
    """Replace the placeholders of ``template`` by ``values`` (``?`` for a missing column)."""
    parts: list[pa.Array | str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        parts.append(template[pos:m.start()])
        parts.append(values.get(value if m.group(1) == "valeur" else m.group(1), "?"))
        pos = m.end()
    parts.append(template[pos:])
    if not any(isinstance(p, pa.Array) for p in parts):
        return pa.array(["".join(str(p) for p in parts)] * n, type=pa.string())
    return _join(*parts)


def _join_rows(values: pa.Array, counts: np.ndarray, sep: str) -> pa.Array:
    """Join consecutive ``values``, ``counts[i]`` of them for row ``i`` (null for none).

    One Arrow kernel over a list array: no chain of element-wise joins.
    """
    offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, values), sep)
    return pc.if_else(pa.array(counts > 0), joined, _NULL)


def _join_chosen(texts: Sequence[pa.Array], choice: np.ndarray, sep: str) -> pa.Array:
    """For each row ``i``, join ``texts[j][i]`` for the ``j`` of ``choice[i]`` (−1: none).

    Parameters
    ----------
    texts
        ``k`` string arrays of ``n`` values (not null where chosen).
    choice
        (n, m) indices into ``texts``, in the order of the text, −1 to skip.
    sep
        Separator.
    """
    n = choice.shape[0]
    valid = choice >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], choice.shape)[valid]
    flat = pa.concat_arrays([t.cast(pa.string()) for t in texts])
    values = flat.take(pa.array(choice[valid].astype(np.int64) * n + rows))
    return _join_rows(values, valid.sum(axis=1), sep)


# --------------------------------------------------------------------------- scoring


def score_profile(frame: pd.DataFrame, available: frozenset[str], profile: Profile, *,
                  formatted: dict[str, pa.Array] | None = None) -> pd.DataFrame:
    """Score every parcel with one profile.

    Parameters
    ----------
    frame
        Output of :func:`scoring_frame` (indicators and derived indicators).
    available
        Indicators whose input was available.
    profile
        The profile.
    formatted
        Cache of rendered indicator values (see :func:`render`), shared by profiles.

    Returns
    -------
    pandas.DataFrame
        The columns of :meth:`Profile.columns`, indexed like ``frame``.
    """
    n = len(frame)
    p = profile.name
    formatted = {} if formatted is None else formatted
    excluded = np.zeros(n, dtype=bool)
    pieces: list[pa.Array] = []
    hits: list[np.ndarray] = []
    for ex in profile.exclusions:
        hit = _excluded_by(frame, available, ex)
        if hit is None:
            log.info("profil %s : exclusion « %s » non vérifiable (indicateur %s absent)",
                     p, ex.name, ex.indicator)
            continue
        rows = np.flatnonzero(hit)
        if len(rows):
            pieces.append(_scatter(render(ex.reason, frame, rows, value=ex.indicator,
                                          formatted=formatted), rows, n))
            hits.append(hit)
        excluded |= hit
    if pieces:
        choice = np.where(np.stack(hits, axis=1), np.arange(len(hits)), -1)
        reasons = _join_chosen(pieces, choice, " ; ")
    else:
        reasons = pa.nulls(n, pa.string())

    crit = profile.criteria
    k = len(crit)
    weights = np.array([c.weight for c in crit])
    sat = np.full((n, k), np.nan)
    for j, c in enumerate(crit):
        if c.indicator not in available or c.indicator not in frame:
            continue
        values = frame[c.indicator]
        if c.indicator.startswith("dist_") and values.dtype.kind == "f":
            # The layer was given: no feature of this class in it means "beyond every threshold".
            values = values.fillna(np.inf)
        sat[:, j] = c.satisfaction(values)
    score, contrib, reliability = aggregate(sat, weights)
    score[excluded] = np.nan
    contrib[excluded] = np.nan
    klass = np.full(n, None, dtype=object)
    scored = ~np.isnan(score)
    klass[scored] = "E"
    for name, threshold in reversed(profile.classes):
        klass[scored & (score >= threshold)] = name
    # A small tolerance: 75 points known of 100 is 0.75, whatever the rounding of the sums.
    klass[scored & (reliability < profile.fiabilite_min - 1e-9)] = UNDETERMINED

    out = {
        f"exclu_{p}": excluded,
        f"exclusions_{p}": _series(reasons, frame.index),
        f"score_{p}": score,
        f"classe_{p}": pd.Series(klass, index=frame.index, dtype=object),
    }
    for j, c in enumerate(crit):
        out[f"contrib_{p}_{c.name}"] = contrib[:, j]
    out[f"raisons_{p}"] = _reasons(frame, profile, sat, excluded, reasons, formatted)
    out[f"fiabilite_{p}"] = reliability
    return pd.DataFrame(out, index=frame.index)


def aggregate(sat: np.ndarray, weights: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, contributions and reliability from satisfactions and weights.

    Parameters
    ----------
    sat
        Satisfactions, shape (parcels, criteria), NaN where the input is unknown.
    weights
        Positive weights of the criteria.

    Returns
    -------
    tuple of numpy.ndarray
        ``score`` = 100·Σ(w·s)/Σ(w known) (NaN when nothing is known),
        ``contrib`` = 100·w·s/Σ(w known) per criterion (NaN where unknown), and
        ``fiabilite`` = Σ(w known)/Σ(w).
    """
    known = ~np.isnan(sat)
    w_known = known @ weights
    points = np.where(known, sat, 0.0) * weights
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(w_known > 0, 100 * points.sum(axis=1) / w_known, np.nan)
        contrib = np.where(known & (w_known[:, None] > 0), 100 * points / w_known[:, None],
                           np.nan)
    return score, contrib, w_known / weights.sum()


def _excluded_by(frame: pd.DataFrame, available: frozenset[str], ex: Exclusion
                 ) -> np.ndarray | None:
    """Rows excluded by ``ex``; ``None`` when its indicator is not available."""
    if ex.indicator not in available or ex.indicator not in frame:
        return None
    values = frame[ex.indicator]
    hit = np.zeros(len(frame), dtype=bool)
    if ex.within is not None:
        hit |= _class_keys(values).isin(list(ex.within)).to_numpy(dtype=bool)
    if ex.below is not None or ex.above is not None:
        x = pd.to_numeric(_as_number(values), errors="coerce").to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            if ex.below is not None:
                hit |= x < ex.below
            if ex.above is not None:
                hit |= x > ex.above
    if ex.unless is not None and ex.unless in available and ex.unless in frame:
        lift = frame[ex.unless].astype("boolean").fillna(False).to_numpy(dtype=bool)
        hit &= ~lift
    return hit


def _series(text: pa.Array, index: pd.Index) -> pd.Series:
    """Arrow strings as a pandas text Series (the default ``str`` dtype, NaN for null)."""
    return pd.Series(pd.array(text, dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
                     index=index)


def _reasons(frame: pd.DataFrame, profile: Profile, sat: np.ndarray, excluded: np.ndarray,
             exclusions: pa.Array, formatted: dict[str, pa.Array]) -> pd.Series:
    """Short French text: main strengths, main weaknesses, criteria left out."""
    n, k = sat.shape
    weights = np.array([c.weight for c in profile.criteria])
    strong = sat >= STRENGTH
    weak = sat <= WEAKNESS
    texts = []
    for j, c in enumerate(profile.criteria):
        found = []
        for mask, template in ((strong[:, j], c.strength), (weak[:, j], c.weakness)):
            rows = np.flatnonzero(mask & ~excluded)
            if template is not None and len(rows):
                found.append(_scatter(render(template, frame, rows, value=c.indicator,
                                             formatted=formatted), rows, n))
        texts.append(pc.coalesce(*found) if found else pa.nulls(n, pa.string()))
    has_text = np.stack([pc.is_valid(t).to_numpy(zero_copy_only=False) for t in texts], axis=1)
    gain = np.where(strong & has_text, weights * np.nan_to_num(sat), -1.0)
    loss = np.where(weak & has_text, weights * (1 - np.nan_to_num(sat)), -1.0)
    blocks = []
    for title, key in (("Atouts", gain), ("Faiblesses", loss)):
        order = np.argsort(-key, axis=1, kind="stable")[:, :MAX_REASONS]
        cited = np.take_along_axis(key, order, axis=1) >= 0
        blocks.append(_join(f"{title} : ", _join_chosen(texts, np.where(cited, order, -1),
                                                         " ; "), "."))
    missing = np.isnan(sat)
    labels = pa.array([c.label for c in profile.criteria], type=pa.string())
    absent = _join_rows(labels.take(pa.array(np.nonzero(missing)[1].astype(np.int64))),
                        missing.sum(axis=1), ", ")
    blocks.append(_join("Non évalué : ", absent, " (donnée absente)."))
    present = np.stack([pc.is_valid(b).to_numpy(zero_copy_only=False) for b in blocks], axis=1)
    text = _join_chosen(blocks, np.where(present, np.arange(len(blocks)), -1), " ")
    text = pc.if_else(pa.array(excluded), _join("Exclue : ", pc.fill_null(exclusions, "")), text)
    return _series(text, frame.index)


def score_parcels(indicators: Indicators, profiles: Sequence[Profile]) -> pd.DataFrame:
    """Score every parcel with every profile.

    Parameters
    ----------
    indicators
        The parcels' indicators.
    profiles
        The profiles (see :func:`load_profiles`).

    Returns
    -------
    pandas.DataFrame
        The columns of every profile, side by side, indexed like the parcels.
    """
    frame, available = scoring_frame(indicators)
    formatted: dict[str, pa.Array] = {}
    parts = [score_profile(frame, available, prof, formatted=formatted) for prof in profiles]
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)


def profile_names(profiles: Iterable[Profile]) -> list[str]:
    """Names of the profiles, in order."""
    return [p.name for p in profiles]


__all__ = [
    "CLASS_NAMES", "DERIVED_INDICATORS", "FIABILITE_MIN", "UNDETERMINED", "Criterion",
    "Exclusion", "Profile", "aggregate", "default_profiles_table", "format_values",
    "indicator_source", "known_indicator", "load_profiles", "merge_tables", "parse_profile",
    "profile_names", "render", "score_parcels", "score_profile", "scoring_frame",
    "source_weights",
]
