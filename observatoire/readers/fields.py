"""Fields of a source mapped to the canonical columns; text and numbers normalised.

:func:`map_fields` renames a source's fields to the canonical ones (the first
candidate present wins); :func:`text` and :func:`numbers` normalise values (numbers
stored as text such as ``"1 234,5"`` are parsed; unreadable ones set to NULL and
counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatoire.errors import SchemaError, where
from observatoire.readers.lineage import SourceReport


def map_fields(frame: pd.DataFrame, mapping: Mapping[str, str | Iterable[str]],
               overrides: Mapping[str, str], *, path: Path, layer: str | None,
               required: Iterable[str] = (), key: str | None = None) -> pd.DataFrame:
    """Rename source fields to canonical names.

    Parameters
    ----------
    frame
        The layer as read.
    mapping
        Canonical name → candidate source names (case-insensitive), tried in order.
    overrides
        Canonical name → source name from the territory file; wins over ``mapping``.
    path, layer
        For messages.
    required
        Canonical names that must be found.
    key
        The TOML key of the source (``sources.zonage``), for messages.

    Returns
    -------
    pandas.DataFrame
        A frame with canonical columns (those found) and the geometry.

    Raises
    ------
    SchemaError
        When a required field is not found, or an override names a missing field.
    """
    lower = {str(c).lower(): c for c in frame.columns}
    prefix = f"{key}.champs" if key else "champs"
    geom = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    available = ", ".join(str(c) for c in frame.columns[:30] if c != geom) or "aucun"
    data: dict[str, Any] = {}
    for canon, src in overrides.items():
        if src not in frame.columns and src.lower() not in lower:
            raise SchemaError(
                f"{where(path, layer, src)} : champ absent (déclaré dans « {prefix}.{canon} ») ; "
                f"champs disponibles : {available}"
            )
        data[canon] = frame[src if src in frame.columns else lower[src.lower()]]
    for canon, candidates in mapping.items():
        if canon in data:
            continue
        cands = [candidates] if isinstance(candidates, str) else list(candidates)
        for c in cands:
            if c.lower() in lower:
                data[canon] = frame[lower[c.lower()]]
                break
    missing = [c for c in required if c not in data]
    if missing:
        looked = mapping.get(missing[0], missing[0])
        names = [looked] if isinstance(looked, str) else list(looked)
        raise SchemaError(
            f"{where(path, layer, missing[0])} : champ obligatoire introuvable (cherché : "
            f"{', '.join(names)}) ; indiquez le champ source avec « {prefix}.{missing[0]} = "
            f"\"NOM_DU_CHAMP\" » dans le fichier de territoire ; champs disponibles : {available}"
        )
    out = pd.DataFrame(data, index=frame.index)
    if isinstance(frame, gpd.GeoDataFrame):
        return gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs)
    return out


def text(series: pd.Series) -> pd.Series:
    """Return ``series`` as text (``None`` for missing), numbers without ``.0``.

    Text is stripped and an empty string is missing; an integer-valued number is
    written without decimal part (``22.0`` → ``"22"``), another number as Python
    writes it. Vectorised for text (Arrow) and numeric columns; other columns
    (mixed types, booleans, dates) are converted value by value.

    Parameters
    ----------
    series
        Any column.

    Returns
    -------
    pandas.Series
        Text with the index and name of ``series``, in the dtype pandas infers for
        strings (``str`` in pandas 3, ``object`` before; ``object`` when all missing).
    """
    dtype = series.dtype
    if pd.api.types.is_object_dtype(dtype) or (pd.api.types.is_string_dtype(dtype)
                                               and not isinstance(dtype, pd.CategoricalDtype)):
        stripped = _strip_text(series)
        if stripped is not None:
            if stripped.null_count == len(stripped):
                values = np.full(len(stripped), None, dtype=object)
            elif pd.api.types.is_object_dtype(TEXT_DTYPE):
                values = stripped.to_numpy(zero_copy_only=False)
            else:
                return pd.Series(pd.array(stripped, dtype=TEXT_DTYPE), index=series.index,
                                 name=series.name)
            return pd.Series(values, index=series.index, name=series.name, dtype=object)
    values = _text_values(series)
    return pd.Series(values, index=series.index, name=series.name, dtype=object).infer_objects()


#: The dtype pandas gives a column of strings (``str`` in pandas 3, ``object`` before).
TEXT_DTYPE = pd.Series(["a"]).dtype


def _strip_text(series: pd.Series) -> pa.Array | None:
    """Strip a column of strings with Arrow (empty → null), or ``None`` if not all strings."""
    values = series.to_numpy(dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "empty"):
        return None
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError, TypeError):
        return None  # lone surrogates: Python strips them
    # Arrow's Unicode whitespace is Python's (str.isspace), checked code point by code point.
    trimmed = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(pc.utf8_length(trimmed), 0), pa.scalar(None, pa.large_string()),
                      trimmed)


def _text_values(series: pd.Series) -> np.ndarray:
    """Return the values of :func:`text` for a non-text column (``str`` and ``None``)."""
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype):
        missing = series.isna().to_numpy()
        base = getattr(dtype, "numpy_dtype", dtype)
        out = series.to_numpy(dtype=base, na_value=0).astype(str).astype(object)
        out[missing] = None
        return out
    if pd.api.types.is_float_dtype(dtype):
        return _float_text(series.to_numpy(dtype="float64", na_value=np.nan))
    return _text_python(series)


def _float_text(nums: np.ndarray) -> np.ndarray:
    """Floats as text: integers without ``.0`` (``22.0`` → ``"22"``), NaN as ``None``."""
    out = np.full(len(nums), None, dtype=object)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(nums) & (np.abs(nums) < 2.0**63) & (nums == np.trunc(nums))
    out[integral] = nums[integral].astype(np.int64).astype(str)
    rest = ~integral & ~np.isnan(nums)
    if rest.any():
        # Infinities, decimals and integers beyond int64: few, written as Python does.
        out[rest] = [str(int(v)) if v.is_integer() else str(v) for v in nums[rest].tolist()]
    return out


def _text_python(series: pd.Series) -> np.ndarray:
    """:func:`text` value by value, for columns of mixed or unusual types."""
    def conv(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        s = str(v).strip()
        return s or None
    return np.array([conv(v) for v in series.astype(object).tolist()] or [], dtype=object)


def numbers(series: pd.Series, *, report: SourceReport | None = None,
            field_name: str | None = None) -> pd.Series:
    """Parse numbers that may be stored as text (``"1 234,5"``, ``"12.0"``).

    Spaces (also non-breaking) are thousands separators and a comma is a decimal
    separator. Values that are not numbers become NULL and are counted.

    Parameters
    ----------
    series
        Numbers or text.
    report
        Counts the values set to NULL.
    field_name
        Canonical name of the field, for the count.

    Returns
    -------
    pandas.Series
        ``float64`` values, NaN where missing or unreadable.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype):
        values = pd.to_numeric(series, errors="coerce").astype("float64")
        return values.where(np.isfinite(values))
    raw = text(series)
    cleaned = raw.str.replace(r"[\s\u00a0\u202f]", "", regex=True).str.replace(
        ",", ".", regex=False)
    out = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    out = out.where(np.isfinite(out))
    bad = raw.notna() & out.isna() & ~raw.str.upper().isin(["NA", "NAN", "NULL", "N/A"])
    if report is not None and bad.any():
        report.count(f"valeurs non numériques du champ « {field_name or series.name} » mises "
                     f"à NULL", int(bad.sum()))
    return out
