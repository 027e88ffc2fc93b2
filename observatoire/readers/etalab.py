"""Etalab cadastre GeoJSON read at the speed of its parsing.

The parcel files of ``cadastre.data.gouv.fr`` (``cadastre-<insee>-parcelles.json.gz``)
are the main input of the observatory: a million parcels weigh about 80 MB of gzip
and 520 MB of JSON. Most of GDAL's time (and of the former Arrow path's) goes into
parsing that JSON, so this module reads them itself:

1. gunzip in one call (``zlib-ng``, CRC checked);
2. the feature collection decoded by ``msgspec`` into typed structures whose
   coordinates and properties stay raw JSON (validated, not turned into Python
   objects);
3. every coordinate of the file parsed by one ``simdjson`` call into a flat array of
   doubles, and the ring structure (polygons, rings, points) read from the brackets'
   depths with numpy;
4. properties parsed by Arrow (one JSON line per feature), with GDAL's typing rules;
5. optionally, the flat coordinates projected with a pyproj ``Transformer``
   (the one :meth:`geopandas.GeoDataFrame.to_crs` uses) before any geometry is
   built, then the geometries built at once by :func:`shapely.from_ragged_array`.

The result is the GeoDataFrame GDAL gives (same columns, types, order, geometries;
see ``tests/test_readers_etalab.py``). Anything unusual — null, empty or
non-polygon geometries, 3D points, unclosed or too short rings, a property whose
type changes, is an object, is missing from the first feature, other dates and
times, a corrupt archive, other members in the collection — makes
:func:`read_etalab` return ``None``, and the caller reads the file the usual way
(Arrow lines, then GDAL), with the usual messages.

Why these libraries (measured on the bench's 289 files of 1,000,000 parcels, see
``README.md``): ``msgspec`` with raw members decodes the structure 10 times faster
than ``orjson`` or ``msgspec`` building Python objects; ``simdjson``'s flat buffer
parses the coordinates 7 times faster than numpy's text parser, and avoids millions
of Python floats; ``zlib-ng`` decompresses twice as fast as :mod:`zlib`. The whole
reader takes 1.5 times less CPU than the Arrow path and 2.5 times less than
pyogrio + ``to_crs`` (``bench/README.md``).
"""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import shapely
import simdjson
from pyproj import CRS, Transformer
from zlib_ng import zlib_ng

log = logging.getLogger(__name__)

#: Files larger than this once decompressed are left to the streaming paths.
MAX_BYTES = 256 * 1024 * 1024


# Untracked by the garbage collector (they hold no cycles): a million of them would
# otherwise trigger collections while decoding.
class _Geometry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: str
    coordinates: msgspec.Raw


class _Feature(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: str
    geometry: _Geometry
    properties: msgspec.Raw
    id: str | int | msgspec.UnsetType = msgspec.UNSET


class _Collection(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    features: list[_Feature]


_DECODER = msgspec.json.Decoder(_Collection)
_KINDS = {"Polygon": 0, "MultiPolygon": 1}
#: Text that GDAL may read as a date, a time or a date and time (then GDAL decides).
_DATE_LIKE = r"\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}:\d{2}"
_OPEN, _CLOSE, _COMMA = ord("["), ord("]"), ord(",")
_ONE_THREAD = pa_json.ReadOptions(use_threads=False)
_INT32 = (-(2**31), 2**31 - 1)


def read_etalab(path: Path, *, crs: Any = None, max_bytes: int = MAX_BYTES
                ) -> gpd.GeoDataFrame | None:
    """Read an Etalab parcel file (``.json`` or ``.json.gz``), or ``None`` if unusual.

    Parameters
    ----------
    path
        The file.
    crs
        Project the coordinates to this CRS (before building the geometries);
        ``None`` keeps the file's EPSG:4326.
    max_bytes
        Files larger than this once decompressed are declined (left to a streaming
        reader).

    Returns
    -------
    geopandas.GeoDataFrame or None
        The features as GDAL reads them (properties as columns in the order of the
        first feature; text as Python strings; ``YYYY-MM-DD`` columns as dates), in
        file order. ``None`` when the file cannot be read, is a corrupt archive,
        weighs more than ``max_bytes`` decompressed, or holds anything GDAL should
        judge (see the module's docstring): the caller then reads it with GDAL.
    """
    gz = path.name.lower().endswith(".gz")
    try:
        if not gz and path.stat().st_size > max_bytes:
            return None
        raw = path.read_bytes()
    except OSError:
        return None
    data = gunzip(raw, limit=max_bytes) if gz else raw
    return None if data is None else parse_etalab(data, crs=crs)


def gunzip(raw: bytes, *, limit: int) -> bytes | None:
    """Decompress a one-member gzip file, or ``None`` (corrupt, truncated, too large)."""
    d = zlib_ng.decompressobj(wbits=31)  # gzip header; CRC and size checked at the end
    try:
        data = d.decompress(raw, limit + 1)
    # zlib_ng's stub declares ``error`` as an instance (``error: Exception``); it is a class.
    except zlib_ng.error:  # type: ignore[misc]
        return None
    if len(data) > limit or not d.eof or d.unused_data:
        return None  # too large, truncated, or several members: the streaming path
    return data


def parse_etalab(data: bytes, *, crs: Any = None) -> gpd.GeoDataFrame | None:
    """Parse an Etalab GeoJSON (decompressed), or ``None`` if GDAL should judge it.

    Parameters
    ----------
    data
        The file's bytes.
    crs
        Project to this CRS before building the geometries (``None``: EPSG:4326).

    Returns
    -------
    geopandas.GeoDataFrame or None
        See :func:`read_etalab`.
    """
    try:
        collection = _DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    features = collection.features
    if collection.type != "FeatureCollection" or not features:
        return None
    if any(f.type != "Feature" for f in features):
        return None
    kinds = np.fromiter((_KINDS.get(f.geometry.type, -1) for f in features), dtype=np.int8,
                        count=len(features))
    if (kinds < 0).any():
        return None
    has_id = any(f.id is not msgspec.UNSET for f in features)
    table = _properties([f.properties for f in features], has_id=has_id)
    if table is None:
        return None
    parts = _coordinates([f.geometry.coordinates for f in features], kinds)
    if parts is None:
        return None
    xy, ring_off, poly_off, feature_off = parts
    target: Any = "EPSG:4326"
    if crs is not None:
        target, transform = _transformer(crs)
        x, y = transform(xy[:, 0], xy[:, 1])
        xy = np.column_stack([x, y])
    geoms = _geometries(xy, ring_off, poly_off, feature_off, kinds)
    if geoms is None:
        return None
    return gpd.GeoDataFrame(_frame(table), geometry=geoms, crs=target)


@functools.lru_cache(maxsize=8)
def _transformer(crs: Any) -> tuple[CRS, Any]:
    """Return the CRS and the transformation from EPSG:4326 that ``to_crs`` uses."""
    target = CRS.from_user_input(crs)
    return target, Transformer.from_crs(CRS.from_epsg(4326), target, always_xy=True).transform


def _frame(table: pa.Table) -> pd.DataFrame:
    """Arrow properties as pandas columns, text as Python strings (as the GDAL reader)."""
    text = [n for n, t in zip(table.column_names, table.schema.types, strict=True)
            if pa.types.is_string(t)]
    frame = table.drop_columns(text).to_pandas()
    for name in text:  # straight to Python strings, without pandas' own text type
        column = table.column(name)
        values = column.to_numpy(zero_copy_only=False)
        if column.null_count:  # missing text is NaN, as pandas' text type turned to object
            values[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
        frame[name] = pd.Series(values, dtype=object)
    return frame[table.column_names]


def _properties(raws: list[msgspec.Raw], *, has_id: bool) -> pa.Table | None:
    """Properties as an Arrow table typed as GDAL types them, or ``None`` if unusual.

    Properties whose first value is text are read as text (Arrow would otherwise
    guess timestamps); a text column of ``YYYY-MM-DD`` only becomes dates, as GDAL
    does; a column of nulls only is text.
    """
    try:
        first = msgspec.json.decode(raws[0])
    except msgspec.DecodeError:
        return None
    if not isinstance(first, dict) or not first:
        return None
    lines = b"\n".join(raws)
    if lines.count(b"\n") != len(raws) - 1:
        return None  # properties written over several lines
    text_fields = [(k, pa.string()) for k, v in first.items() if isinstance(v, str)]
    try:
        table = pa_json.read_json(
            io.BytesIO(lines), read_options=_ONE_THREAD,  # files are read in parallel
            parse_options=pa_json.ParseOptions(explicit_schema=pa.schema(text_fields),
                                               newlines_in_values=False))
        table.validate(full=True)  # Arrow's JSON reader does not check UTF-8
    except (pa.ArrowException, ValueError):
        return None
    names = table.column_names
    if (table.num_rows != len(raws) or len(set(names)) != len(names)
            or not set(names) <= set(first) or has_id and "id" not in names):
        # A property missing from the first feature: GDAL inserts it in its own order.
        # A feature id without an id property: GDAL exposes it as a field.
        return None
    columns = {}
    for name in names:
        column = table.column(name).combine_chunks()
        if pa.types.is_nested(column.type) or pa.types.is_temporal(column.type):
            return None  # GDAL writes objects and arrays as JSON text
        if pa.types.is_null(column.type):
            column = column.cast(pa.string())  # GDAL: a text field, all NULL
        elif pa.types.is_int64(column.type):
            low, high = pc.min_max(column).values()
            if low.is_valid and _INT32[0] <= low.as_py() and high.as_py() <= _INT32[1]:
                column = column.cast(pa.int32())  # GDAL: Integer when it fits, else Integer64
        elif pa.types.is_string(column.type) and pc.any(
                pc.match_substring_regex(column, _DATE_LIKE)).as_py():
            if not pc.all(pc.match_substring_regex(column, r"^\d{4}-\d{2}-\d{2}$")).as_py():
                return None
            try:
                column = column.cast(pa.date32())
            except (pa.ArrowException, ValueError):  # an impossible date: GDAL judges
                return None
        columns[name] = column
    order = [k for k in first if k in columns]
    return pa.Table.from_arrays([columns[k] for k in order], names=order)


def _coordinates(raws: list[msgspec.Raw], kinds: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Flat coordinates and the offsets of rings, polygons and features, or ``None``.

    The coordinates of every feature are parsed by one simdjson call; since they
    hold only arrays and numbers, every bracket is structural, and the depth of
    each opening bracket tells what it opens. Depths are counted as in a
    MultiPolygon (2: the feature, 3: a polygon, 4: a ring, 5: a point); a Polygon's
    are shifted by one.
    """
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))
    text = b"[" + b",".join(raws) + b"]"
    parser = simdjson.Parser()
    try:
        doc = parser.parse(text)
        if not isinstance(doc, simdjson.Array):
            return None
        values = np.frombuffer(doc.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        return None  # not arrays of numbers only (or numbers beyond doubles)
    del doc
    buf = np.frombuffer(text, dtype=np.uint8)[1:-1]  # without the outer brackets
    starts = np.zeros(len(raws), dtype=np.int64)  # each feature's coordinates in ``buf``
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    tok_pos = np.flatnonzero((buf == _OPEN) | (buf == _CLOSE) | (buf == _COMMA))
    tok = buf[tok_pos]
    opening = tok == _OPEN
    step = opening.astype(np.int8) - (tok == _CLOSE)
    depth = np.cumsum(step, dtype=np.int32) + 1  # an opening's depth is counted after it
    first_tok = np.searchsorted(tok_pos, starts)  # each feature's opening bracket
    if (first_tok[0] != 0 or (first_tok >= len(tok)).any() or (np.diff(first_tok) < 1).any()
            or (tok[first_tok] != _OPEN).any()):
        return None  # coordinates that are not arrays
    # A Polygon is one level shallower than a MultiPolygon.
    depth += np.repeat(kinds == 0, np.diff(np.append(first_tok, len(tok))))
    open_depth = np.where(opening, depth, 0)
    if (open_depth > 5).any():
        return None
    points = np.flatnonzero(open_depth == 5)
    # Every point is "[x,y]": its opening, one comma, its closing.
    if len(points) == 0 or points[-1] + 2 >= len(tok) or not (
            (tok[points + 1] == _COMMA).all() and (tok[points + 2] == _CLOSE).all()):
        return None
    if len(values) != 2 * len(points):
        return None  # numbers outside points
    xy = values.reshape(-1, 2)
    rings = np.flatnonzero(open_depth == 4)
    polys = np.flatnonzero(open_depth == 3)
    ring_off = np.append(np.searchsorted(points, rings), len(points))
    poly_off = np.append(np.searchsorted(rings, polys), len(rings))
    feature_off = np.append(np.searchsorted(polys, first_tok), len(polys))
    if ((np.diff(ring_off) < 4).any() or (np.diff(poly_off) < 1).any()
            or (np.diff(feature_off) < 1).any()):
        return None  # empty or too short: GDAL judges
    if not np.isfinite(xy).all():
        return None
    if not (xy[ring_off[:-1]] == xy[ring_off[1:] - 1]).all():
        return None  # unclosed ring: GDAL closes it
    polygon_features = kinds == 0
    if (np.diff(feature_off)[polygon_features] != 1).any():
        return None
    return xy, ring_off, poly_off, feature_off


def _geometries(xy: np.ndarray, ring_off: np.ndarray, poly_off: np.ndarray,
                feature_off: np.ndarray, kinds: np.ndarray) -> np.ndarray | None:
    """Polygons and MultiPolygons built from the flat coordinates and their offsets."""
    try:
        if not kinds.any():
            return shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy,
                                             (ring_off, poly_off))
        if kinds.all():
            return shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, xy,
                                             (ring_off, poly_off, feature_off))
        polygons = shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy,
                                             (ring_off, poly_off))
    except (shapely.errors.GEOSException, ValueError):
        return None
    out = np.empty(len(kinds), dtype=object)
    single = kinds == 0
    out[single] = polygons[feature_off[:-1][single]]
    multi = np.flatnonzero(~single)
    counts = np.diff(feature_off)[multi]
    members = np.concatenate([np.arange(feature_off[i], feature_off[i + 1]) for i in multi])
    out[multi] = shapely.multipolygons(polygons[members],
                                       indices=np.repeat(np.arange(len(multi)), counts))
    return out
