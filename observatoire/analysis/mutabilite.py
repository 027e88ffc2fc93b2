"""Mutabilité of sites after Mutafriches (ADEME): the index of each usage and its reliability.

Mutafriches scores what a brownfield can become — seven usages (résidentiel,
équipements, culture, tertiaire, industrie, renaturation, photovoltaïque) from 28
weighted criteria — one site at a time. This module computes the same numbers for
every site at once, from the algorithm *as data*
(``observatoire/data/mutafriches/<version>/algorithme.json``, parsed by
:func:`load_algorithm`): no weight, threshold or score of the reference is written
here.

For each usage ``u`` and each criterion ``c`` of value ``v`` (weight ``w``, matrix
score ``s = M[c][v][u]``, one of −2, −1, 0.5, 1, 2):

- ``v`` *non renseigné* (absent), ``"ne-sait-pas"`` or :data:`AUCUN_RESULTAT`
  (searched, nothing found), or a value without a row in the matrix: nothing;
- ``s == 0.5`` (neutral): ``A += 0.5·w`` **and** ``C += 0.5·w``;
- ``s·w > 0``: ``A += s·w``; otherwise ``C += |s·w|``;

``indice = 0`` when ``A + C = 0``, else ``round_half_up(1000·A/(A+C)) / 10`` in IEEE
doubles, exactly as the reference computes it. Usages are ranked on the rounded
index by a stable sort (ties keep the usage order); the *potentiel* is read from the
rounded index. Reliability: ``note = round_half_up(2·(100·P/T)/10) / 2`` where ``P``
sums the weights of the criteria *renseignés* (anything but absent and
``"ne-sait-pas"``: a "searched, nothing found" answer counts) and ``T`` all weights.

Input conventions (:func:`evaluate`): one row per site, one column per criterion,
named as the reference's ``Site`` fields (``surfaceSite``, ``zonageReglementaire``…)
and in the reference's units (m², metres, %); a missing column, ``None`` or NaN is
*non renseigné*; ``"ne-sait-pas"`` is "don't know"; :data:`AUCUN_RESULTAT` is the
reference's ``null``. Booleans are ``True``/``False``; enumerations their string
values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from observatoire.errors import ConfigError

#: A "don't know" answer: not scored, not counted as renseigné.
NE_SAIT_PAS = "ne-sait-pas"
#: The reference's ``null`` ("recherche effectuée, aucun résultat"): not scored, but
#: counted as renseigné by the reliability.
AUCUN_RESULTAT = "aucun-resultat"

#: State of a criterion for a site (:func:`criterion_states`).
ETAT_NON_RENSEIGNE = "non renseigné"
ETAT_NE_SAIT_PAS = "ne sait pas"
ETAT_AUCUN_RESULTAT = "recherche sans résultat"
ETAT_SANS_SCORE = "valeur sans score"
ETAT_NOTE = "noté"

#: Conversions from a criterion's stored unit to its scoring unit (divisor).
_UNIT_DIVISORS = {("m", "km"): 1000.0, ("m", "m"): 1.0, ("m²", "m²"): 1.0, ("%", "%"): 1.0}


@dataclass(frozen=True)
class Palier:
    """A numeric bucket of a criterion, in the criterion's scoring unit.

    ``low``/``high`` are ``None`` for an open end; each bound is inclusive or not.
    """

    low: float | None
    low_inclusive: bool
    high: float | None
    high_inclusive: bool
    label: str
    scores: tuple[float, ...]


@dataclass(frozen=True)
class Critere:
    """One criterion of the algorithm.

    Attributes
    ----------
    key
        The reference's field name (``surfaceSite``).
    label
        French label.
    weight
        Its weight (``POIDS_CRITERES``).
    kind
        ``numeric``, ``boolean`` or ``enum``.
    unit
        Unit of the stored value (``m²``, ``m``, ``%``) or ``None``.
    divisor
        Stored value / divisor = value in the scoring unit (metres → km: 1000).
    paliers
        Numeric buckets, in the reference's order (the first that holds wins, the
        last is the fallback, as its chain of ``if``).
    nan_palier
        Index of the bucket the reference gives a non-numeric value (``NaN`` in JS).
    valeurs
        Matrix rows of a boolean or enum criterion: key (``"true"``, ``"hors-zone"``…)
        → scores per usage.
    libelles
        Key → French label of the value.
    """

    key: str
    label: str
    weight: float
    kind: str
    unit: str | None
    divisor: float = 1.0
    paliers: tuple[Palier, ...] = ()
    nan_palier: int = -1
    valeurs: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    libelles: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Algorithme:
    """The Mutafriches algorithm of one version, parsed from its tables.

    Attributes
    ----------
    version
        ``v1.11``…
    usages
        Usage keys in the reference's order (the tie-break order).
    usage_labels
        Usage key → short French label.
    criteres
        The criteria, in the reference's order.
    poids_total
        Sum of the weights.
    potentiels
        ``(label, low, low_inclusive, high, high_inclusive)`` in the reference's order.
    niveaux_fiabilite
        ``(seuil_min, text, description)`` in the reference's order (first match).
    source
        Provenance: repository, commit, files.
    """

    version: str
    usages: tuple[str, ...]
    usage_labels: Mapping[str, str]
    criteres: tuple[Critere, ...]
    poids_total: float
    potentiels: tuple[tuple[str, float | None, bool, float | None, bool], ...]
    niveaux_fiabilite: tuple[tuple[float, str, str], ...]
    source: Mapping[str, Any] = field(default_factory=dict)

    def critere(self, key: str) -> Critere:
        """Return the criterion ``key``."""
        for c in self.criteres:
            if c.key == key:
                return c
        raise KeyError(key)

    @property
    def keys(self) -> tuple[str, ...]:
        """Criterion keys, in order."""
        return tuple(c.key for c in self.criteres)


# --------------------------------------------------------------------------- tables


def _get(doc: Mapping[str, Any], key: str, where: str, typ: type | tuple[type, ...] = object
         ) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise ConfigError(f"tables Mutafriches : clé « {where}{key} » absente")
    value = doc[key]
    if typ is not object and (not isinstance(value, typ) or isinstance(value, bool)
                              and typ in (float, (int, float))):
        raise ConfigError(f"tables Mutafriches : valeur invalide pour « {where}{key} » : "
                          f"{value!r}")
    return value


def _scores(raw: Any, usages: Sequence[str], where: str) -> tuple[float, ...]:
    out = []
    for u in usages:
        v = _get(raw, u, f"{where}.", (int, float))
        if not math.isfinite(v):
            raise ConfigError(f"tables Mutafriches : « {where}.{u} » doit être un nombre fini")
        out.append(float(v))
    return tuple(out)


def _bound(rng: Mapping[str, Any], name: str, where: str) -> tuple[float | None, bool]:
    value = _get(rng, name, where)
    inclusive = _get(rng, f"{name}Inclusive", where)
    if value is None:
        return None, False
    if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(
            inclusive, bool):
        raise ConfigError(f"tables Mutafriches : borne invalide « {where}{name} » : {value!r}")
    return float(value), inclusive


def _value_key(value: Any) -> str:
    """Return the reference's object key of a matrix value (``String(v)`` in JS)."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        f = float(value)
        return str(int(f)) if f.is_integer() and abs(f) < 1e21 else repr(f)
    return str(value)


def load_algorithm(doc: Mapping[str, Any]) -> Algorithme:
    """Parse and check the tables of one version of the algorithm.

    Parameters
    ----------
    doc
        The content of ``algorithme.json`` (format of
        ``standards/mutafriches/mutafriches-v1.11.json``).

    Returns
    -------
    Algorithme
        The parsed algorithm.

    Raises
    ------
    ConfigError
        Naming the key of the tables that is missing or wrong.
    """
    version = _get(doc, "version", "", str)
    usages_raw = _get(doc, "usages", "", list)
    usages = tuple(str(_get(u, "key", f"usages[{i}].", str)) for i, u in enumerate(usages_raw))
    if not usages or len(set(usages)) != len(usages):
        raise ConfigError("tables Mutafriches : « usages » vide ou en double")
    labels = {str(u["key"]): str(u.get("labelCourt") or u.get("label") or u["key"])
              for u in usages_raw}
    weights = _get(doc, "weights", "", dict)
    order = _get(doc, "criteriaOrder", "", list) if "criteriaOrder" in doc else list(weights)
    if set(order) != set(weights):
        raise ConfigError("tables Mutafriches : « criteriaOrder » et « weights » ne listent pas "
                          "les mêmes critères")
    crit_doc = _get(doc, "criteria", "", dict)
    criteres = []
    for key in order:
        where = f"criteria.{key}"
        raw = _get(crit_doc, key, "criteria.", dict)
        weight = _get(weights, key, "weights.", (int, float))
        kind = _get(raw, "kind", f"{where}.", str)
        unit = raw.get("unit")
        common = {"key": key, "label": str(raw.get("label", key)), "weight": float(weight),
                  "kind": kind, "unit": unit}
        if kind == "numeric":
            scoring_unit = raw.get("scoringUnit", unit)
            if (unit, scoring_unit) not in _UNIT_DIVISORS:
                raise ConfigError(f"tables Mutafriches : conversion d'unité inconnue pour "
                                  f"« {where} » : {unit} → {scoring_unit}")
            name = "thresholdsScoringUnit" if "thresholdsScoringUnit" in raw else "thresholds"
            thresholds = _get(raw, name, f"{where}.", list)
            if not thresholds:
                raise ConfigError(f"tables Mutafriches : « {where}.{name} » vide")
            paliers = []
            for i, t in enumerate(thresholds):
                w = f"{where}.{name}[{i}]."
                rng = _get(t, "range", w, dict)
                low, low_inc = _bound(rng, "min", f"{w}range.")
                high, high_inc = _bound(rng, "max", f"{w}range.")
                paliers.append(Palier(low, low_inc, high, high_inc,
                                      str(t.get("label", t.get("interval", i))),
                                      _scores(_get(t, "scores", w, dict), usages,
                                              f"{w}scores")))
            special = raw.get("specialInputsScoringFunction", {}) or {}
            nan_label = special.get("NaN")
            intervals = [str(t.get("interval", "")) for t in thresholds]
            nan_palier = intervals.index(nan_label) if nan_label in intervals else len(paliers) - 1
            criteres.append(Critere(**common, divisor=_UNIT_DIVISORS[(unit, scoring_unit)],
                                    paliers=tuple(paliers), nan_palier=nan_palier))
        elif kind in ("boolean", "enum"):
            values = _get(raw, "values", f"{where}.", list)
            valeurs: dict[str, tuple[float, ...]] = {}
            libelles: dict[str, str] = {}
            for i, v in enumerate(values):
                w = f"{where}.values[{i}]."
                k = _value_key(_get(v, "value", w))
                valeurs[k] = _scores(_get(v, "scores", w, dict), usages, f"{w}scores")
                libelles[k] = str(v.get("label", k))
            for extra in raw.get("enumValuesWithoutMatrixRow", []) or []:
                if isinstance(extra, Mapping) and "value" in extra:
                    libelles.setdefault(_value_key(extra["value"]),
                                        str(extra.get("label", extra["value"])))
            criteres.append(Critere(**common, valeurs=valeurs, libelles=libelles))
        else:
            raise ConfigError(f"tables Mutafriches : type de critère inconnu pour "
                              f"« {where}.kind » : {kind!r} (numeric, boolean ou enum)")
    pot_doc = _get(_get(doc, "potentiel", "", dict), "levels", "potentiel.", list)
    potentiels = []
    for i, lv in enumerate(pot_doc):
        w = f"potentiel.levels[{i}]."
        low, low_inc = _bound(lv, "min", w)
        high, high_inc = _bound(lv, "max", w)
        potentiels.append((str(_get(lv, "label", w, str)), low, low_inc, high, high_inc))
    rel = _get(doc, "reliability", "", dict)
    niveaux = []
    for i, lv in enumerate(_get(rel, "levels", "reliability.", list)):
        w = f"reliability.levels[{i}]."
        niveaux.append((float(_get(lv, "seuilMin", w, (int, float))),
                        str(_get(lv, "text", w, str)), str(lv.get("description", ""))))
    if not potentiels or not niveaux:
        raise ConfigError("tables Mutafriches : « potentiel.levels » ou « reliability.levels » "
                          "vide")
    total = 0.0
    for key in weights:  # Object.values order, as the reference sums them
        total += float(weights[key])
    return Algorithme(version=version, usages=usages, usage_labels=labels,
                      criteres=tuple(criteres), poids_total=total,
                      potentiels=tuple(potentiels), niveaux_fiabilite=tuple(niveaux),
                      source=dict(doc.get("source", {}) or {}))


# --------------------------------------------------------------------------- criteria


@dataclass
class _Column:
    """One criterion evaluated for every site."""

    #: Row of the criterion's table per site (bucket or value), −1 when not scored.
    row: np.ndarray
    #: Counted as renseigné by the reliability.
    renseigne: np.ndarray
    #: State code per site: 0 non renseigné, 1 ne sait pas, 2 aucun résultat,
    #: 3 value without a matrix row, 4 scored.
    state: np.ndarray
    #: Scores per row of the table (rows × usages).
    table: np.ndarray
    #: Label of each row of the table.
    row_labels: list[str]


def _is_missing(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


def _numeric_column(values: Any, crit: Critere, n: int) -> _Column:
    table = np.array([p.scores for p in crit.paliers], dtype=float)
    labels = [p.label for p in crit.paliers]
    state = np.zeros(n, dtype=np.int8)
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype | pd.CategoricalDtype):
        obj = series.astype(object).to_numpy(dtype=object)
        missing = _is_missing(obj)
        ne_sait_pas = ~missing & (obj == NE_SAIT_PAS)
        aucun = ~missing & (obj == AUCUN_RESULTAT)
        plain = obj.copy()
        plain[missing | ne_sait_pas | aucun] = np.nan
        try:
            number = plain.astype(float)
        except (TypeError, ValueError):
            number = pd.to_numeric(pd.Series(plain), errors="coerce").to_numpy(dtype=float)
        # A value that is not a number (the reference compares it as NaN).
        not_number = ~missing & ~ne_sait_pas & ~aucun & np.isnan(number)
    else:
        number = series.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(number)
        ne_sait_pas = aucun = not_number = np.zeros(n, dtype=bool)
    state[ne_sait_pas] = 1
    state[aucun] = 2
    scored = ~missing & ~ne_sait_pas & ~aucun
    state[scored] = 4
    x = number / crit.divisor if crit.divisor != 1.0 else number
    row = np.full(n, -1, dtype=np.int64)
    todo = scored & ~not_number
    # The reference's chain of ifs: the first bucket whose bounds hold, else the last.
    for i in range(len(crit.paliers) - 1, -1, -1):
        p = crit.paliers[i]
        ok = todo.copy()
        with np.errstate(invalid="ignore"):
            if p.low is not None:
                ok &= (x >= p.low) if p.low_inclusive else (x > p.low)
            if p.high is not None:
                ok &= (x <= p.high) if p.high_inclusive else (x < p.high)
        row[ok] = i
    row[todo & (row < 0)] = len(crit.paliers) - 1
    row[not_number] = crit.nan_palier
    return _Column(row=row, renseigne=~missing & ~ne_sait_pas, state=state, table=table,
                   row_labels=labels)


def _keyed_column(values: Any, crit: Critere, n: int) -> _Column:
    keys = list(crit.valeurs)
    table = np.array([crit.valeurs[k] for k in keys], dtype=float).reshape(len(keys),
                                                                            -1)
    labels = [crit.libelles.get(k, k) for k in keys]
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    position = {k: i for i, k in enumerate(keys)}
    # Per distinct value: its row (−1: no row), and its state.
    u_row = np.full(len(uniques) + 1, -1, dtype=np.int64)
    u_state = np.zeros(len(uniques) + 1, dtype=np.int8)  # last slot: missing
    for j, v in enumerate(uniques):
        if isinstance(v, str) and v == NE_SAIT_PAS:
            u_state[j] = 1
        elif isinstance(v, str) and v == AUCUN_RESULTAT:
            u_state[j] = 2
        else:
            k = _value_key(v)
            if k in position:
                u_row[j], u_state[j] = position[k], 4
            else:
                u_state[j] = 3
    idx = np.where(codes < 0, len(uniques), codes)
    state = u_state[idx]
    return _Column(row=u_row[idx], renseigne=(state >= 2), state=state, table=table,
                   row_labels=labels)


def _column(criteria: pd.DataFrame, crit: Critere, n: int) -> _Column:
    values = criteria[crit.key] if crit.key in criteria else pd.Series(
        np.full(n, np.nan), index=criteria.index)
    if crit.kind == "numeric":
        return _numeric_column(values, crit, n)
    return _keyed_column(values, crit, n)


# --------------------------------------------------------------------------- index


def round_half_up(x: np.ndarray) -> np.ndarray:
    """``Math.round`` of JavaScript: the nearest integer, exact halves towards +∞.

    ``floor(x + 0.5)`` is wrong for some doubles (0.49999999999999994 + 0.5 rounds
    to 1); the difference to the floor is exact below 2**52.
    """
    x = np.asarray(x, dtype=float)
    f = np.floor(x)
    return f + ((x - f) >= 0.5)


@dataclass
class Evaluation:
    """The mutabilité of every site, as the reference computes it.

    Attributes
    ----------
    algorithm
        The algorithm applied.
    indices
        Index 0–100 (one decimal) per site × usage (usage order of the algorithm).
    avantages, contraintes
        The reference's ``A`` and ``C`` per site × usage.
    rangs
        Rank 1–7 per site × usage.
    potentiel_codes
        Level of the potential per site × usage (position in ``algorithm.potentiels``).
    fiabilite
        Reliability note /10 (steps of 0.5).
    niveaux
        Reliability level (``Très fiable``…).
    poids_renseignes, criteres_renseignes
        Weight and number of the criteria renseignés.
    """

    algorithm: Algorithme
    indices: np.ndarray
    avantages: np.ndarray
    contraintes: np.ndarray
    rangs: np.ndarray
    potentiel_codes: np.ndarray
    fiabilite: np.ndarray
    niveaux: np.ndarray
    poids_renseignes: np.ndarray
    criteres_renseignes: np.ndarray

    @property
    def descriptions(self) -> np.ndarray:
        """Description of each site's reliability level (the reference's text)."""
        table = {text: desc for _, text, desc in self.algorithm.niveaux_fiabilite}
        return np.array([table.get(t, "") for t in self.niveaux], dtype=object)

    @property
    def potentiels(self) -> np.ndarray:
        """Potential label per site × usage (``Excellent`` … ``Faible``)."""
        labels = np.array([p[0] for p in self.algorithm.potentiels], dtype=object)
        return labels[self.potentiel_codes]

    @property
    def meilleur_usage(self) -> np.ndarray:
        """Usage of rank 1 per site (the first usage when every index ties)."""
        usages = np.array(self.algorithm.usages, dtype=object)
        return usages[np.argmin(self.rangs, axis=1)] if len(self.rangs) else usages[:0]

    def classement(self) -> np.ndarray:
        """Usages in rank order per site (sites × usages)."""
        usages = np.array(self.algorithm.usages, dtype=object)
        return usages[np.argsort(self.rangs, axis=1)]

    def columns(self, index: pd.Index | None = None) -> pd.DataFrame:
        """Return the layers' columns, aligned to ``index``.

        Per usage ``mutabilite_<u>`` (index), ``mutabilite_<u>_rang``,
        ``mutabilite_<u>_potentiel``; then ``mutabilite_meilleur_usage``,
        ``mutabilite_fiabilite`` (/10), ``mutabilite_fiabilite_niveau`` and
        ``mutabilite_version``.
        """
        n = len(self.fiabilite)
        index = pd.RangeIndex(n) if index is None else index
        cols: dict[str, Any] = {}
        labels = np.array([p[0] for p in self.algorithm.potentiels], dtype=object)
        for j, u in enumerate(self.algorithm.usages):
            cols[f"mutabilite_{u}"] = self.indices[:, j]
            cols[f"mutabilite_{u}_rang"] = pd.array(self.rangs[:, j], dtype="Int64")
            cols[f"mutabilite_{u}_potentiel"] = labels[self.potentiel_codes[:, j]]
        cols["mutabilite_meilleur_usage"] = self.meilleur_usage
        cols["mutabilite_fiabilite"] = self.fiabilite
        cols["mutabilite_fiabilite_niveau"] = self.niveaux
        cols["mutabilite_version"] = np.full(n, self.algorithm.version, dtype=object)
        return pd.DataFrame(cols, index=index)


#: Largest table of a group of criteria combined for one lookup per site (:func:`evaluate`).
_GROUP_ROWS = 4096


def _potentiel_codes(indices: np.ndarray, algo: Algorithme) -> np.ndarray:
    """Potential level of each index: the first level of the reference's chain that holds."""
    last = len(algo.potentiels) - 1
    code = np.full(indices.shape, last, dtype=np.int8)
    done = np.zeros(indices.shape, dtype=bool)
    for k, (_, low, low_inc, high, high_inc) in enumerate(algo.potentiels):
        ok = ~done
        if low is not None:
            ok &= (indices >= low) if low_inc else (indices > low)
        if high is not None:
            ok &= (indices <= high) if high_inc else (indices < high)
        code[ok] = k
        done |= ok
    return code


def _potentiel(indices: np.ndarray, algo: Algorithme) -> np.ndarray:
    """Potential label of each index."""
    return np.array([p[0] for p in algo.potentiels], dtype=object)[_potentiel_codes(indices,
                                                                                    algo)]


def evaluate(criteria: pd.DataFrame, algorithm: Algorithme) -> Evaluation:
    """Compute the index of every usage and the reliability of every site at once.

    Parameters
    ----------
    criteria
        One row per site, one column per criterion (the reference's field names and
        units; see the module's conventions). Columns of other names are ignored; a
        criterion without a column is *non renseigné* for every site.
    algorithm
        From :func:`load_algorithm`.

    Returns
    -------
    Evaluation
        Arrays aligned to the rows of ``criteria``.
    """
    n = len(criteria)
    algo = algorithm
    nu = len(algo.usages)
    # A and C side by side: the gain of each row of a criterion's table, as the reference
    # splits it (a neutral 0.5 counts on both sides), with a last row of zeros that the
    # sites not scored (row −1) read. Criteria are gathered in groups whose combined
    # table stays small, so that each group costs one lookup per site: every value is a
    # multiple of 0.25, so the sums are exact in any order.
    gains = np.zeros((n, 2 * nu))
    poids = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    group_table = np.zeros((1, 2 * nu))
    group_code = np.zeros(n, dtype=np.int32)
    for crit in algo.criteres:
        col = _column(criteria, crit, n)
        w = crit.weight
        sw = col.table * w
        neutral = col.table == 0.5
        plus = np.where(neutral, 0.5 * w, np.where(sw > 0, sw, 0.0))
        minus = np.where(neutral, 0.5 * w, np.where(sw > 0, 0.0, np.abs(sw)))
        table = np.vstack([np.hstack([plus, minus]), np.zeros((1, 2 * nu))])
        rows = len(table)
        if len(group_table) * rows > _GROUP_ROWS:
            gains += np.take(group_table, group_code, axis=0)
            group_table = np.zeros((1, 2 * nu))
            group_code[:] = 0
        group_table = (group_table[:, None, :] + table[None, :, :]).reshape(-1, 2 * nu)
        group_code *= rows
        group_code += np.where(col.row >= 0, col.row, rows - 1).astype(np.int32)
        poids += np.where(col.renseigne, w, 0.0)
        count += col.renseigne
    gains += np.take(group_table, group_code, axis=0)
    avantages, contraintes = gains[:, :nu], gains[:, nu:]
    total = avantages + contraintes
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total == 0, 0.0, avantages / np.where(total == 0, 1.0, total))
    indices = np.where(total == 0, 0.0, round_half_up(ratio * 1000) / 10)
    # Stable sort on the rounded index, highest first: ties keep the usage order.
    order = np.argsort(-indices, axis=1, kind="stable")
    rangs = np.empty((n, nu), dtype=np.int64)
    np.put_along_axis(rangs, order, np.arange(1, nu + 1)[None, :].repeat(n, axis=0), axis=1)
    pourcentage = (poids / algo.poids_total) * 100 if algo.poids_total > 0 else poids * 0
    note = round_half_up((pourcentage / 10) * 2) / 2
    niveaux = np.full(n, algo.niveaux_fiabilite[-1][1], dtype=object)
    done = np.zeros(n, dtype=bool)
    for seuil, text, _ in algo.niveaux_fiabilite:
        ok = ~done & (note >= seuil)
        niveaux[ok] = text
        done |= ok
    return Evaluation(algorithm=algo, indices=indices, avantages=avantages,
                      contraintes=contraintes, rangs=rangs,
                      potentiel_codes=_potentiel_codes(indices, algo),
                      fiabilite=note, niveaux=niveaux, poids_renseignes=poids,
                      criteres_renseignes=count)


def reference_frame(sites: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Build the input of :func:`evaluate` from sites written as the reference's ``Site``.

    ``None`` (JSON ``null``) becomes :data:`AUCUN_RESULTAT`; an absent key stays
    absent (*non renseigné*); other values are kept as they are.
    """
    rows = [{k: (AUCUN_RESULTAT if v is None else v) for k, v in site.items()}
            for site in sites]
    frame = pd.DataFrame(rows)
    return frame.astype(object).where(frame.notna(), None) if len(frame.columns) else frame


_STATE_LABELS = np.array([ETAT_NON_RENSEIGNE, ETAT_NE_SAIT_PAS, ETAT_AUCUN_RESULTAT,
                          ETAT_SANS_SCORE, ETAT_NOTE], dtype=object)


def criteria_details(criteria: pd.DataFrame, algorithm: Algorithme) -> pd.DataFrame:
    """Explain every index: one row per site × criterion, with the score of each usage.

    Parameters
    ----------
    criteria
        As for :func:`evaluate`.
    algorithm
        The algorithm.

    Returns
    -------
    pandas.DataFrame
        ``ligne`` (position of the site in ``criteria``), ``critere``, ``etat``
        (:data:`ETAT_NOTE`, :data:`ETAT_NON_RENSEIGNE`…), ``classe`` (the bucket or
        value label the score was read from), ``poids``, ``renseigne`` and one
        ``impact_<usage>`` per usage: the matrix score (−2, −1, 0.5 neutral, 1, 2),
        NULL when the criterion was not scored. Sorted by site then criterion order.
    """
    n = len(criteria)
    frames = []
    for k, crit in enumerate(algorithm.criteres):
        col = _column(criteria, crit, n)
        ok = col.row >= 0
        impacts = np.full((n, len(algorithm.usages)), np.nan)
        impacts[ok] = col.table[col.row[ok]]
        labels = np.array([*col.row_labels, None], dtype=object)[np.where(ok, col.row, -1)]
        frame = pd.DataFrame({
            "ligne": np.arange(n, dtype=np.int64),
            "ordre": np.full(n, k, dtype=np.int64),
            "critere": crit.key,
            "etat": _STATE_LABELS[col.state],
            "classe": labels,
            "poids": crit.weight,
            "renseigne": col.renseigne,
        })
        for j, u in enumerate(algorithm.usages):
            frame[f"impact_{u}"] = impacts[:, j]
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["ligne", "ordre"], kind="stable").drop(columns="ordre")
    return out.reset_index(drop=True)


__all__ = ["AUCUN_RESULTAT", "NE_SAIT_PAS", "Algorithme", "Critere", "Evaluation", "Palier",
           "criteria_details", "evaluate", "load_algorithm", "reference_frame", "round_half_up"]
