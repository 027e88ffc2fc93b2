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
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatoire.analysis.indicators import Indicators
from observatoire.profiles import (
    CLASS_NAMES,
    DERIVED_INDICATORS,
    FIABILITE_MIN,
    Criterion,
    Exclusion,
    Profile,
    as_number,
    class_keys,
    known_indicator,
)
from observatoire.profiles import PLACEHOLDER as _PLACEHOLDER
from observatoire.sources import INDICATOR_SOURCES

log = logging.getLogger(__name__)

#: Satisfaction from which a criterion is cited as a strength, and up to which as a weakness.
STRENGTH = 0.7
WEAKNESS = 0.3
#: Strengths and weaknesses cited per parcel, at most.
MAX_REASONS = 3
#: Class of a scored parcel whose reliability is under the profile's threshold.
UNDETERMINED = "non déterminée"

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


# --------------------------------------------------------------------------- values


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
        return _strings(class_keys(values))
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
        hit |= class_keys(values).isin(list(ex.within)).to_numpy(dtype=bool)
    if ex.below is not None or ex.above is not None:
        x = pd.to_numeric(as_number(values), errors="coerce").to_numpy(dtype="float64")
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


__all__ = [
    "CLASS_NAMES", "DERIVED_INDICATORS", "FIABILITE_MIN", "UNDETERMINED", "Criterion",
    "Exclusion", "Profile", "aggregate", "format_values", "indicator_source", "known_indicator",
    "render", "score_parcels", "score_profile", "scoring_frame",
    "source_weights",
]
