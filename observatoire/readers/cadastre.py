"""Cadastral parcels: Etalab GeoJSON (.json/.json.gz), BD PARCELLAIRE / PCI Express, EDIGEO.

Whatever the source, every parcel gets the canonical 14-character IDU:
INSEE (5) + préfixe (3, ``000`` by default) + section (2, zero-padded: Etalab's
``A`` is ``0A``) + numéro (4, zero-padded).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import shapely

from observatoire.config import Source
from observatoire.errors import ObservatoireError, SchemaError, SourceError, where
from observatoire.readers.crs import to_territory_crs
from observatoire.readers.etalab import read_etalab
from observatoire.readers.fields import TEXT_DTYPE, map_fields, numbers, text
from observatoire.readers.gdal import (
    check_file,
    ensure_geometry,
    first_line,
    pick_layer,
    python_text,
    read_vector,
)
from observatoire.readers.geometry import clean_geometries
from observatoire.readers.lineage import ReadResult, SourceReport, new_report, relative_name
from observatoire.readers.provenance import note_provenance
from observatoire.schema import LINEAGE, PARCELLES, conform

log = logging.getLogger(__name__)

ETALAB_FIELDS = {
    "code_insee": ["commune"],
    "prefixe": ["prefixe"],
    "section": ["section"],
    "numero": ["numero"],
    "contenance": ["contenance"],
    "idu": ["id"],
}
# Also reads the Etalab shapefiles (same fields as the GeoJSON: id, commune…).
BDPARCELLAIRE_FIELDS = {
    "code_insee": ["DEPCOM", "code_insee", "insee", "commune"],
    "code_dep": ["CODE_DEP"],
    "code_com": ["CODE_COM"],
    "prefixe": ["COM_ABS", "prefixe"],
    "section": ["SECTION"],
    "numero": ["NUMERO"],
    "contenance": ["CONTENANCE", "SUPF"],
    "idu": ["IDU", "id"],
}
EDIGEO_FIELDS = {"idu12": ["IDU"], "contenance": ["SUPF"]}
_SECTION = re.compile(r"^[0-9A-Z]{1,2}$")


def format_idu(code_insee: pd.Series, prefixe: pd.Series, section: pd.Series,
               numero: pd.Series) -> pd.DataFrame:
    """Build the canonical IDU and its padded parts.

    Parameters
    ----------
    code_insee
        5-character commune codes.
    prefixe
        Section prefixes (``None`` → ``000``), zero-padded to 3.
    section
        Sections, upper-cased and zero-padded to 2 (``A`` → ``0A``).
    numero
        Parcel numbers, zero-padded to 4 (``22`` → ``0022``).

    Returns
    -------
    pandas.DataFrame
        Columns ``idu``, ``code_insee``, ``prefixe``, ``section``, ``numero``; a part
        that cannot be formatted leaves ``idu`` empty.
    """
    # Codes stored as numbers lose their leading zeros (1004 for Ain's 01004) or gain
    # a decimal part (22.0): both are undone before padding.
    insee = text(code_insee).str.upper()
    if insee.str.len().eq(4).any():  # the regular expression only when it can match
        insee = insee.str.replace(r"^(\d{4})$", r"0\1", regex=True)
    pre = _integer_text(text(prefixe)).fillna("000").str.zfill(3)
    sec = text(section).str.upper().str.zfill(2)
    num = _integer_text(text(numero)).str.zfill(4)
    try:
        idu = insee + pre + sec + num
    except TypeError:  # pandas 3 refuses str + object (a part missing on every row)
        insee, pre, sec, num = (part.astype(TEXT_DTYPE) for part in (insee, pre, sec, num))
        idu = insee + pre + sec + num
    ok = (insee.str.fullmatch(r"(\d{2}|2A|2B)\d{3}") & pre.str.fullmatch(r"\d{3}")
          & sec.str.fullmatch(r"[0-9A-Z]{2}") & num.str.fullmatch(r"\d{4}")).fillna(False)
    return pd.DataFrame({
        "idu": idu.where(ok, None),
        "code_insee": insee,
        "prefixe": pre,
        "section": sec,
        "numero": num,
    })


def _integer_text(values: pd.Series) -> pd.Series:
    if not values.str.contains(".", regex=False).eq(True).any():
        return values  # the regular expression only when it can match
    return values.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)


def detect_format(path: Path) -> str:
    """Guess the cadastre format from the file name and its layers."""
    name = path.name.lower()
    if name.endswith((".tar.bz2", ".thf", ".tbz2", ".tar", ".tar.gz", ".tgz")):
        return "edigeo"
    if name.endswith((".json", ".json.gz", ".geojson", ".geojson.gz")):
        return "etalab"
    return "bdparcellaire"


def read_parcelles(source: Source, *, crs: str, base: Path | None = None,
                   communes: tuple[str, ...] = ()) -> ReadResult:
    """Read every file of a cadastre source into the canonical ``parcelles`` layer.

    Parameters
    ----------
    source
        The ``sources.parcelles`` entry (one or several files).
    crs
        The territory's CRS.
    base
        Folder against which lineage names are written.
    communes
        Keep only these communes (all when empty).

    Returns
    -------
    ReadResult
        The parcels, one row per IDU.

    Raises
    ------
    SourceError, SchemaError, CRSError
        With the file, layer and field at fault.
    """
    fmt = source.format if source.format != "auto" else detect_format(source.path)
    report = new_report("parcelles", source.paths, fmt, source.layer)
    frames = []
    for path in source.paths:
        this_fmt = source.format if source.format != "auto" else detect_format(path)
        if this_fmt == "edigeo":
            frame = _read_edigeo(path, source, report, communes=communes)
        else:
            frame = _read_table(path, source, this_fmt, report)
        frame = to_territory_crs(frame, target=crs, declared=source.crs, path=path,
                                 layer=source.layer, report=report, key=source.key or None)
        frame = clean_geometries(frame, geometry_type="MultiPolygon", report=report, path=path,
                                 layer=source.layer)
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    parcels = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    parcels = gpd.GeoDataFrame(parcels, geometry="geometry", crs=crs)
    if communes:
        outside = ~parcels["code_insee"].isin(communes)
        report.count("parcelles hors des communes du territoire écartées", int(outside.sum()))
        parcels = parcels[~outside]
    parcels = dedupe_parcels(parcels, report)
    parcels["surface_m2"] = parcels.geometry.area.round(2)
    parcels = parcels.sort_values("idu", kind="stable").reset_index(drop=True)
    report.features_kept = len(parcels)
    return ReadResult(conform(parcels, PARCELLES), report)


def _read_table(path: Path, source: Source, fmt: str, report: SourceReport) -> gpd.GeoDataFrame:
    if fmt == "etalab":
        raw = _read_etalab(path, source)
    else:
        layer = pick_layer(path, source.layer)
        raw = read_vector(path, layer, encoding=source.encoding, key=source.key or None)
    raw = ensure_geometry(raw, path=path, layer=source.layer)
    report.features_read += len(raw)
    note_provenance(report, raw, path=path)
    if fmt == "etalab":
        mapping = ETALAB_FIELDS
    elif fmt in ("bdparcellaire", "couche"):
        mapping = BDPARCELLAIRE_FIELDS
    else:
        raise SourceError(f"{path} : format de cadastre inconnu « {fmt} »")
    if len(raw) == 0:
        raise SourceError(
            f"{where(path, source.layer)} : couche vide (aucune parcelle) ; vérifiez le fichier"
        )
    fields = map_fields(raw, mapping, source.fields, path=path, layer=source.layer,
                        key=source.key or None)
    if "code_insee" not in fields and {"code_dep", "code_com"} <= set(fields.columns):
        fields["code_insee"] = text(fields["code_dep"]).str.zfill(2) + text(
            fields["code_com"]).str.zfill(3)
    if {"section", "numero", "code_insee"} <= set(fields.columns):
        parts = format_idu(fields["code_insee"], fields.get("prefixe", pd.Series(
            None, index=fields.index, dtype=object)), fields["section"], fields["numero"])
    elif "idu" in fields:
        parts = split_idu(fields["idu"])
    else:
        missing = next(c for c in ("code_insee", "section", "numero") if c not in fields)
        raise SchemaError(
            f"{where(path, source.layer, missing)} : champ obligatoire introuvable ; indiquez-le "
            f"avec « {source.key or 'sources.parcelles'}.champs.{missing} = \"NOM_DU_CHAMP\" » "
            f"ou fournissez un champ IDU"
        )
    bad = parts["idu"].isna()
    if bad.all():
        row = fields.index[0]
        raise SchemaError(
            f"{where(path, source.layer)} : aucun identifiant de parcelle valide (ex. ligne {row} :"
            f" insee={fields['code_insee'].iloc[0] if 'code_insee' in fields else None!r}) ; "
            f"vérifiez les champs commune, section et numéro"
        )
    report.count("parcelles sans identifiant valide écartées", int(bad.sum()))
    out = parts.copy()
    out["contenance"] = (numbers(fields["contenance"], report=report, field_name="contenance")
                         if "contenance" in fields else np.nan)
    frame = gpd.GeoDataFrame(out, geometry=raw.geometry.values, crs=raw.crs)
    return frame[~bad.to_numpy()]


def split_idu(idu: pd.Series) -> pd.DataFrame:
    """Split 14-character IDUs into their parts (invalid ones give an empty ``idu``)."""
    s = text(idu).str.upper()
    ok = s.str.fullmatch(r"(\d{2}|2A|2B)\d{3}\d{3}[0-9A-Z]{2}\d{4}").fillna(False)
    return pd.DataFrame({
        "idu": s.where(ok, None),
        "code_insee": s.str[:5],
        "prefixe": s.str[5:8],
        "section": s.str[8:10],
        "numero": s.str[10:14],
    })


#: Etalab files up to this size (decompressed) are parsed in memory; larger ones are
#: decompressed to a temporary file and streamed by GDAL.
ETALAB_IN_MEMORY_BYTES = 256 * 1024 * 1024


def _read_etalab(path: Path, source: Source) -> gpd.GeoDataFrame:
    """Read an Etalab GeoJSON (``.json`` or ``.json.gz``).

    Read first by :func:`observatoire.readers.etalab.read_etalab` (1.5 times less CPU
    than Arrow, 2.5 times less than GDAL); what it declines, if written one feature
    per line, is parsed with Arrow (:func:`parse_etalab_lines`, 2–3 times faster than
    GDAL). Any other layout, and
    anything unusual in the file (null or non-polygon geometry, Z coordinates,
    unclosed ring, a type conflict), goes through GDAL, which gives the same
    layer or the same error as before.
    """
    gz = path.name.lower().endswith(".gz")
    simple = source.layer is None and source.encoding is None
    if simple:
        frame = read_etalab(path, max_bytes=ETALAB_IN_MEMORY_BYTES)  # None: see below
        if frame is not None:
            return frame
    data = None
    if gz:
        check_file(path)
        data = _gunzip(path, limit=ETALAB_IN_MEMORY_BYTES)
    elif simple:
        check_file(path)
        if path.stat().st_size <= ETALAB_IN_MEMORY_BYTES:
            data = path.read_bytes()
    if data is not None and simple:
        frame = parse_etalab_lines(data)
        if frame is not None:
            return frame
    if not gz:
        layer = pick_layer(path, source.layer)
        return read_vector(path, layer, encoding=source.encoding, key=source.key or None)
    return _read_gzip_geojson(path, source, data)


def _gunzip(path: Path, *, limit: int) -> bytes | None:
    """Decompress ``path`` in memory (checking its CRC), or ``None`` beyond ``limit`` bytes."""
    out = bytearray()
    try:
        with gzip.open(path, "rb") as src:
            while chunk := _read_chunk(src, path):
                out += chunk
                if len(out) > limit:
                    return None
    except SourceError:
        raise
    except OSError as exc:
        raise SourceError(f"{path} : lecture impossible ({exc.strerror or exc})") from None
    return bytes(out)


def _read_gzip_geojson(path: Path, source: Source, data: bytes | None = None
                       ) -> gpd.GeoDataFrame:
    # GDAL reads .gz through /vsigzip/, but reports a truncated archive vaguely:
    # decompressing first (streamed, to a temporary file) gives a clear message and
    # checks the CRC. ``data``: the file already decompressed, if it was.
    with tempfile.TemporaryDirectory(prefix="observatoire-") as tmp:
        plain = Path(tmp) / path.name[:-3]
        try:
            if data is not None:
                plain.write_bytes(data)
            else:
                with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                    while chunk := _read_chunk(src, path):
                        dst.write(chunk)
        except SourceError:
            raise
        except OSError as exc:
            raise SourceError(
                f"{path} : décompression impossible ({exc.strerror or exc}) ; vérifiez "
                f"l'espace disque du dossier temporaire"
            ) from None
        try:
            return read_vector(plain, source.layer, encoding=source.encoding,
                               key=source.key or None)
        except ObservatoireError as exc:
            raise type(exc)(str(exc).replace(str(plain), str(path))) from None


_ETALAB_HEAD = b'{"type":"FeatureCollection","features":[\n'
_RING = pa.list_(pa.list_(pa.float64()))
_GEOMETRY = {
    "Polygon": pa.struct([("type", pa.string()), ("coordinates", pa.list_(_RING))]),
    "MultiPolygon": pa.struct([("type", pa.string()),
                               ("coordinates", pa.list_(pa.list_(_RING)))]),
}


def parse_etalab_lines(data: bytes) -> gpd.GeoDataFrame | None:
    """Parse an Etalab GeoJSON written one feature per line, with Arrow.

    The layout Etalab publishes: a first line ``{"type":"FeatureCollection",
    "features":[``, then one feature per line (``{"type":"Feature","id":…,
    "geometry":…,"properties":…}``) separated by commas, then ``]}``. Geometries are
    Polygons and MultiPolygons (holes included) in lon/lat.

    Parameters
    ----------
    data
        The file's bytes (decompressed).

    Returns
    -------
    geopandas.GeoDataFrame or None
        The features as GDAL reads them (properties as columns, in the order of
        the first feature; text as Python strings; ``YYYY-MM-DD`` columns as dates;
        EPSG:4326), in file order. ``None`` when the file does not follow this
        layout exactly or holds anything GDAL should judge (null or other
        geometries, 3D points, rings not closed or too short, a property whose type
        changes, is an object or is missing from the first feature, other dates and
        times, invalid UTF-8): the caller then reads it with GDAL.
    """
    if not data.startswith(_ETALAB_HEAD):
        return None
    tail = data.rstrip()
    if not tail.endswith(b"]}"):
        return None
    body = tail[len(_ETALAB_HEAD):-2].replace(b",\n", b"\n")
    first = _first_properties(body)
    if first is None:
        return None
    # Polygons and MultiPolygons nest their coordinates differently: each kind is
    # parsed with its own schema, then the features are put back in file order.
    multi_at = ([m.start() for m in re.finditer(rb'"MultiPolygon"', body)]
                if b'"MultiPolygon"' in body else [])
    parts: list[tuple[str, bytes, np.ndarray | None]]
    if not multi_at:
        parts = [("Polygon", body, None)]
    else:
        starts = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 0x0A)
        lines = body.split(b"\n")
        is_multi = np.zeros(len(lines), dtype=bool)
        is_multi[np.searchsorted(starts, multi_at)] = True
        parts = [(kind, b"\n".join(itertools.compress(lines, mask)), np.flatnonzero(mask))
                 for kind, mask in (("Polygon", ~is_multi), ("MultiPolygon", is_multi))
                 if mask.any()]
    tables: list[pa.Table] = []
    geometries: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    for kind, chunk, rows in parts:
        try:
            parsed = _parse_features(chunk, kind, first)
        except (pa.ArrowException, ValueError):  # invalid UTF-8 in a name, a bad cast…
            return None
        if parsed is None:
            return None
        tables.append(parsed[0])
        geometries.append(parsed[1])
        if rows is not None:  # two kinds: their features' places in the file
            positions.append(rows)
    table, geoms = tables[0], geometries[0]
    if len(tables) > 1:
        if tables[0].schema != tables[1].schema:
            return None  # the two kinds' properties differ: leave it to GDAL
        order = np.argsort(np.concatenate(positions), kind="stable")
        table = pa.concat_tables(tables).take(order)
        geoms = np.concatenate(geometries)[order]
    frame = python_text(table.to_pandas())
    return gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")


def _first_properties(body: bytes) -> dict[str, object] | None:
    """Properties of the first feature (their order and JSON types), or ``None``."""
    end = body.find(b"\n")
    try:
        feature = json.loads(body[:end] if end >= 0 else body)
    except ValueError:
        return None
    props = feature.get("properties") if isinstance(feature, dict) else None
    return props if isinstance(props, dict) and props else None


#: Text that GDAL may read as a date, a time or a date and time (then GDAL decides).
_DATE_LIKE = r"\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}:\d{2}"


def _parse_features(chunk: bytes, kind: str, first: dict[str, object]
                    ) -> tuple[pa.Table, np.ndarray] | None:
    """Properties and geometries of the features of one kind, or ``None`` if unusual.

    Properties whose first value is text are read as text (Arrow would otherwise
    guess timestamps); a text column of ``YYYY-MM-DD`` only becomes dates, as GDAL
    does.
    """
    text_fields = [(k, pa.string()) for k, v in first.items() if isinstance(v, str)]
    schema = pa.schema([("type", pa.string()), ("geometry", _GEOMETRY[kind]),
                        ("properties", pa.struct(text_fields))])
    table = pa_json.read_json(io.BytesIO(chunk), parse_options=pa_json.ParseOptions(
        explicit_schema=schema, newlines_in_values=False))
    table.validate(full=True)  # Arrow's JSON reader does not check UTF-8
    if (not {"type", "geometry", "properties"} <= set(table.column_names)
            or not set(table.column_names) <= {"type", "id", "geometry", "properties"}
            or table.num_rows == 0):
        return None
    geometry = table.column("geometry").combine_chunks()
    properties = table.column("properties").combine_chunks()
    feature_type = table.column("type")
    if (geometry.type != _GEOMETRY[kind] or geometry.null_count or properties.null_count
            or feature_type.null_count):
        return None
    geometry_type, coords = geometry.flatten()
    if (geometry_type.null_count or not pc.all(pc.equal(feature_type, "Feature")).as_py()
            or not pc.all(pc.equal(geometry_type, kind)).as_py()):
        return None
    names = [properties.type.field(i).name for i in range(properties.type.num_fields)]
    if (len(set(names)) != len(names) or not set(names) <= set(first)
            or "id" in table.column_names and "id" not in names):
        # A property missing from the first feature: GDAL inserts it in its own order.
        # A feature id without an id property: GDAL exposes it as a field.
        return None
    geoms = _ragged_polygons(coords, kind)
    if geoms is None:
        return None
    columns = dict(zip(names, properties.flatten(), strict=True))
    for name, column in columns.items():
        if pa.types.is_nested(column.type) or pa.types.is_temporal(column.type):
            return None  # GDAL writes objects and arrays as JSON text
        if pa.types.is_null(column.type):
            columns[name] = column.cast(pa.string())  # GDAL: a text field, all NULL
        elif pa.types.is_string(column.type) and pc.any(
                pc.match_substring_regex(column, _DATE_LIKE)).as_py():
            if not pc.all(pc.match_substring_regex(column, r"^\d{4}-\d{2}-\d{2}$")).as_py():
                return None
            columns[name] = column.cast(pa.date32())  # raises on an impossible date
    order = [k for k in first if k in columns]
    return pa.Table.from_arrays([columns[k] for k in order], names=order), geoms


def _ragged_polygons(coords: pa.ListArray, kind: str) -> np.ndarray | None:
    """Shapely (Multi)Polygons from nested coordinate lists, or ``None`` if GDAL must judge."""
    levels = [coords]
    while pa.types.is_list(levels[-1].type):
        if levels[-1].null_count:
            return None
        levels.append(levels[-1].flatten())
    values = levels[-1]
    if values.null_count:
        return None
    # offsets of each level, relative to the flattened level below
    offsets = []
    for level in levels[:-1]:
        off = np.asarray(level.offsets, dtype=np.int64)
        offsets.append(off - off[0])
    point_off = offsets[-1]
    if len(point_off) < 2 or not (np.diff(point_off) == 2).all():
        return None  # 3D (or malformed) points
    xy = np.asarray(values.to_numpy(zero_copy_only=False), dtype="float64").reshape(-1, 2)
    ring_off = offsets[-2]  # rings → points
    sizes = np.diff(ring_off)
    if (sizes < 4).any() or not np.isfinite(xy).all():
        return None
    if not (xy[ring_off[:-1]] == xy[ring_off[1:] - 1]).all():
        return None  # unclosed ring: GDAL closes it
    parts = offsets[:-2]  # polygons → rings (and multipolygons → polygons)
    if any((np.diff(o) < 1).any() for o in parts):
        return None  # empty polygon or multipolygon
    gtype = (shapely.GeometryType.POLYGON if kind == "Polygon"
             else shapely.GeometryType.MULTIPOLYGON)
    try:
        return shapely.from_ragged_array(gtype, xy, tuple([ring_off, *parts[::-1]]))
    except (shapely.errors.GEOSException, ValueError):
        return None


def _read_chunk(src: gzip.GzipFile, path: Path) -> bytes:
    try:
        return src.read(1 << 20)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise SourceError(
            f"{path} : archive gzip corrompue ou tronquée ({exc}) ; téléchargez-la à nouveau"
        ) from None


def _read_edigeo(path: Path, source: Source, report: SourceReport, *,
                 communes: tuple[str, ...]) -> gpd.GeoDataFrame:
    """Read the parcels of an EDIGEO file.

    ``path`` is one sheet (``.tar.bz2`` as distributed), an archive bundling several
    sheet archives (a whole commune), or an extracted ``.THF``. Every sheet found is
    read; in a bundle, a sheet without parcels is counted rather than refused.
    """
    with tempfile.TemporaryDirectory(prefix="observatoire-edigeo-") as tmp:
        if path.suffix.upper() == ".THF":
            sheets = [(path, path)]
        else:
            sheets = _extract_edigeo(path, Path(tmp), budget=[EDIGEO_MAX_BYTES])
        frames = []
        for origin, thf in sheets:
            frame = _read_sheet(path, origin, thf, source, report, communes=communes)
            if len(frame) == 0 and len(sheets) == 1:
                raise SourceError(f"{where(path, source.layer or 'PARCELLE_id')} : feuille "
                                  f"EDIGEO sans parcelle")
            report.count("feuilles EDIGEO sans parcelle", int(len(frame) == 0))
            frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                            crs=frames[0].crs)


def _read_sheet(path: Path, origin: Path, thf: Path, source: Source, report: SourceReport,
                *, communes: tuple[str, ...]) -> gpd.GeoDataFrame:
    """Read the parcels of one extracted sheet (``origin``: the archive it came in)."""
    layer = source.layer or "PARCELLE_id"
    label = f"{path} ({origin.name})" if origin != path else f"{path} ({thf.name})"
    try:
        raw = ensure_geometry(read_vector(thf, layer), path=thf, layer=layer)
    except ObservatoireError as exc:
        raise type(exc)(str(exc).replace(str(thf), label)) from None
    report.features_read += len(raw)
    fields = map_fields(raw, EDIGEO_FIELDS, source.fields, path=path, layer=layer,
                        required=["idu12"], key=source.key or None)
    dep = _edigeo_departement(origin if origin != thf else path, communes)
    parts = split_idu(dep + text(fields["idu12"]).str.upper())
    bad = parts["idu"].isna()
    report.count("parcelles sans identifiant valide écartées", int(bad.sum()))
    parts["contenance"] = (numbers(fields["contenance"], report=report, field_name="contenance")
                           if "contenance" in fields else np.nan)
    frame = gpd.GeoDataFrame(parts, geometry=raw.geometry.values, crs=raw.crs)
    return frame[~bad.to_numpy()]


#: An EDIGEO sheet holds a few MB; more means this is not one (or an archive bomb).
EDIGEO_MAX_BYTES = 512 * 1024 * 1024
_NESTED = (".tar.bz2", ".tbz2", ".tar.gz", ".tgz", ".tar")


def _extract_edigeo(path: Path, dest: Path, *, budget: list[int], depth: int = 0
                    ) -> list[tuple[Path, Path]]:
    """Extract an EDIGEO archive; return ``(archive, THF)`` for every sheet found.

    Member paths are never trusted: ``..`` and absolute parts are dropped, links
    skipped, so nothing is written outside ``dest``. Sheet archives bundled in
    the archive are extracted too (one level).
    """
    try:
        # Streamed ("r|*"): one decompression pass, members extracted as they come.
        with tarfile.open(path, "r|*") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                budget[0] -= m.size
                if budget[0] < 0:
                    raise SourceError(
                        f"{path} : archive de plus de {EDIGEO_MAX_BYTES >> 20} Mo une fois "
                        f"décompressée ; ce n'est pas une feuille EDIGEO PCI"
                    )
                parts = [p for p in PurePosixPath(m.name.replace("\\", "/")).parts
                         if p not in ("", ".", "..", "/")]
                if not parts:
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None:
                    continue
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        if isinstance(exc, SourceError):
            raise
        reason = ("archive tar illisible" if isinstance(exc, tarfile.ReadError)
                  else first_line(exc))
        raise SourceError(
            f"{path} : archive EDIGEO corrompue ou tronquée ({reason}) ; téléchargez-la à "
            f"nouveau (feuille .tar.bz2 telle que distribuée par la DGFiP)"
        ) from None
    sheets = [(path, thf) for thf in sorted(dest.rglob("*.[Tt][Hh][Ff]"))]
    if depth == 0:
        nested = sorted(p for p in dest.rglob("*") if p.is_file()
                        and p.name.lower().endswith(_NESTED))
        for i, inner in enumerate(nested):
            folder = dest / f".feuille-{i}"
            folder.mkdir()
            try:
                sheets += _extract_edigeo(inner, folder, budget=budget, depth=1)
            except SourceError as exc:
                raise SourceError(str(exc).replace(str(inner), f"{path} ({inner.name})")
                                  ) from None
    if not sheets:
        raise SourceError(
            f"{path} : aucune fiche .THF dans l'archive ; ce n'est pas une feuille EDIGEO PCI"
        )
    return sheets


def _edigeo_departement(path: Path, communes: tuple[str, ...]) -> str:
    """Département code of an EDIGEO sheet: from its name, else from the territory."""
    name = path.name.upper()
    m = re.search(r"(\d{2}|2A|2B)(\d{3})[0-9A-Z]{3}[0-9A-Z]{2}\d{2}", name) or re.search(
        r"EDIGEO[-_](\d{2}|2A|2B)(\d{3})", name)
    if m:
        return m.group(1)
    deps = sorted({c[:2] for c in communes})
    if len(deps) == 1:
        return deps[0]
    raise SourceError(
        f"{path} : impossible de déduire le département de la feuille EDIGEO ; gardez le nom "
        f"distribué (edigeo-DDCCC…) ou ne déclarez qu'un département dans territoire.communes"
    )


def dedupe_parcels(parcels: gpd.GeoDataFrame, report: SourceReport) -> gpd.GeoDataFrame:
    """Keep one feature per IDU: identical duplicates merged, differing ones reported.

    When two features share an IDU with different geometries (two vintages, two
    overlapping files), the largest is kept and the rest counted. Ties are broken
    by the geometry's bytes, then the source file's name, then the contenance, so
    the result never depends on the order of the input files.
    """
    dup = parcels["idu"].duplicated(keep=False)
    if not dup.any():
        return parcels
    d = parcels[dup].copy()
    d["_wkb"] = d.geometry.normalize().to_wkb()  # bytes sort as their hex does
    d["_area"] = d.geometry.area.round(6)
    d["_lineage"] = d[LINEAGE].astype(str) if LINEAGE in d else ""
    d = d.sort_values(["idu", "_area", "_wkb", "_lineage", "contenance"],
                      ascending=[True, False, True, True, True], kind="stable",
                      na_position="last")
    first = ~d["idu"].duplicated(keep="first")
    kept_wkb = d["idu"].map(d.loc[first].set_index("idu")["_wkb"])
    identical = ~first & (d["_wkb"] == kept_wkb)
    differing = ~first & ~identical
    report.count("parcelles en double identiques fusionnées", int(identical.sum()))
    if differing.any():
        report.count("parcelles en double de géométrie différente (la plus grande gardée)",
                     int(differing.sum()))
        log.warning("%d parcelles en double avec des géométries différentes, ex. %s",
                    int(differing.sum()), d.loc[differing, "idu"].iloc[0])
    kept = d[first].drop(columns=["_wkb", "_area", "_lineage"])
    return gpd.GeoDataFrame(pd.concat([parcels[~dup], kept]), geometry="geometry",
                            crs=parcels.crs)
