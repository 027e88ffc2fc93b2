"""The only code that writes GeoPackages: the observatory file, and copies of templates.

Layers are written with pyogrio (Arrow) into a temporary file in the destination
folder, checked, then moved over the previous file with :func:`os.replace`, so a
build killed at any moment leaves the previous GeoPackage intact. The file is a
GeoPackage 1.2 (QGIS 3.22 opens it without warnings), every spatial layer has an
R-tree index, and ``gpkg_contents.description`` says what each layer is. A
standard's export (CNIG Sites Économiques) is a copy of its official template
with rows appended (:func:`append_to_template`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sqlite3
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from observatoire.errors import BuildError, ConfigError
from observatoire.outputs import prepare_output, publish_file, staging_path
from observatoire.schema import NULL

log = logging.getLogger(__name__)

GPKG_VERSION = "1.2"


class GeoPackageWriter:
    """Write layers into a temporary GeoPackage, then replace the destination atomically.

    Use as a context manager; :meth:`commit` publishes the file. Leaving the block
    without committing (an exception, a kill) leaves the destination untouched and
    removes the temporary file when Python still can.

    Parameters
    ----------
    dest
        The GeoPackage to produce.
    """

    def __init__(self, dest: str | Path) -> None:
        self.dest = Path(dest)
        self.tmp = staging_path(self.dest)
        self.descriptions: dict[str, str] = {}
        self._created = False
        self._layers: list[str] = []

    def __enter__(self) -> GeoPackageWriter:
        prepare_output(self.dest)
        _remove(self.tmp)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _remove(self.tmp)

    @property
    def layers(self) -> list[str]:
        """Layers written so far, in order."""
        return list(self._layers)

    def start_from(self, path: Path) -> None:
        """Start from a copy of the GeoPackage ``path``: its layers are kept, others added.

        Raises
        ------
        BuildError
            When the copy cannot be made.
        """
        try:
            shutil.copyfile(path, self.tmp)
        except OSError as exc:
            raise BuildError(f"{path} : copie impossible ({exc.strerror}) ; rien n'a été "
                             f"publié") from None
        self._created = True
        self._layers = [name for name, _ in pyogrio.list_layers(self.tmp)]

    def write(self, name: str, frame: pd.DataFrame, *, description: str = "",
              geometry_type: str | None = None, append: bool = False) -> None:
        """Write (or append to) one layer or attribute table.

        Parameters
        ----------
        name
            Layer name.
        frame
            A GeoDataFrame (spatial layer) or a DataFrame (attribute table).
        description
            French description for ``gpkg_contents``.
        geometry_type
            Promised geometry type (``MultiPolygon``…); inferred when ``None``.
        append
            Add rows to a layer written before.
        """
        opts: dict[str, object] = {}
        if not self._created:
            opts["dataset_options"] = {"VERSION": GPKG_VERSION}
        frame = _writable(frame)
        spatial = isinstance(frame, gpd.GeoDataFrame)
        if spatial and geometry_type is None:
            geometry_type = _geometry_type(frame)
        creation = {"OVERWRITE": "YES"} if name in self._layers and not append else {}
        if spatial:
            opts["geometry_type"] = geometry_type
            creation["SPATIAL_INDEX"] = "YES"
        if creation:
            opts["layer_options"] = creation
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pyogrio.write_dataframe(frame, self.tmp, layer=name, driver="GPKG",
                                        append=append and name in self._layers,
                                        use_arrow=spatial and len(frame) > 0, **opts)
        except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError,
                pyogrio.errors.FieldError, pyogrio.errors.GeometryError) as exc:
            raise BuildError(
                f"{self.dest} : écriture de la couche « {name} » impossible ({exc}) ; "
                f"vérifiez l'espace disque et les droits du dossier — rien n'a été publié"
            ) from None
        self._created = True
        if name not in self._layers:
            self._layers.append(name)
        if description:
            self.descriptions[name] = description

    def connect(self) -> sqlite3.Connection:
        """Open the temporary GeoPackage with sqlite3 (styles, project, metadata)."""
        if not self._created:
            raise BuildError("GeoPackage vide : aucune couche écrite")
        return sqlite3.connect(self.tmp)

    def commit(self, *, finalize: Callable[[sqlite3.Connection], None] | None = None) -> Path:
        """Write the descriptions, run ``finalize``, check the file and publish it.

        Parameters
        ----------
        finalize
            Called with an open connection before publication (styles, project).

        Returns
        -------
        pathlib.Path
            The published GeoPackage.
        """
        with contextlib.closing(self.connect()) as con, con:
            for name, text in self.descriptions.items():
                con.execute("UPDATE gpkg_contents SET description = ? WHERE table_name = ?",
                            (text, name))
            if finalize is not None:
                finalize(con)
        with contextlib.closing(sqlite3.connect(self.tmp)) as con:
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                raise BuildError(f"{self.tmp} : GeoPackage corrompu ({ok}) ; rien n'a été publié")
        publish_file(self.tmp, self.dest, previous="la version précédente du GeoPackage")
        log.info("GeoPackage publié : %s", self.dest)
        return self.dest


def _writable(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a frame GDAL can write: nullable ints and bools kept, objects as text."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out, gpd.GeoDataFrame) and col == out.geometry.name:
            continue
        s = out[col]
        if s.dtype == object:
            kind = pd.api.types.infer_dtype(s, skipna=True)
            if kind == "boolean":
                out[col] = s.astype("boolean")  # a boolean field, NULL where None
            elif kind not in ("string", "empty"):
                out[col] = s.map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                                 else (v if isinstance(v, str) else str(v)))
    return out


def _all_bool(values: pd.Series) -> bool:
    """Whether the non-null ``values`` are all booleans, and there is at least one."""
    return pd.api.types.infer_dtype(values, skipna=True) == "boolean"


def _geometry_type(frame: gpd.GeoDataFrame) -> str:
    types = set(frame.geometry.dropna().geom_type.unique())
    if not types:
        return "Unknown"
    if len(types) == 1:
        return types.pop()
    if types <= {"Polygon", "MultiPolygon"}:
        return "MultiPolygon"
    if types <= {"LineString", "MultiLineString"}:
        return "MultiLineString"
    if types <= {"Point", "MultiPoint"}:
        return "MultiPoint"
    return "Unknown"


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def layer_checksum(frame: pd.DataFrame) -> str:
    """Return a content checksum of a layer: typed attributes and 2D WKB, in any row order.

    Two builds from the same inputs give the same checksum whatever the order of
    the rows. Values are compared as written to the GeoPackage: NULL is NULL
    whatever its pandas spelling (``None``, ``NaN``, ``<NA>``), numbers by value
    (``1`` and ``1.0``, ``True`` and ``1`` are equal), text as text (other values
    in a text column as :func:`str` spells them, as the writer stores them),
    geometries by their 2D WKB — so the checksum of a layer read back from the
    GeoPackage equals the one printed by the build.

    The checksum is the combination (:func:`combine_checksum`) of the sum modulo
    2⁶⁴ of the row hashes (:func:`row_hashes`), the row count and the column
    names, so it can be computed partition by partition::

        total = sum(int(row_hashes(part).sum(dtype=np.uint64)) for part in parts)
        combine_checksum(total % 2**64, n_rows, list(frame.columns))

    Parameters
    ----------
    frame
        A layer (GeoDataFrame) or an attribute table.

    Returns
    -------
    str
        16 hexadecimal characters.
    """
    total = int(row_hashes(frame).sum(dtype=np.uint64))
    return combine_checksum(total, len(frame), [str(c) for c in frame.columns])


#: Rows hashed at once (bounds the memory of WKB and text conversions).
CHECKSUM_CHUNK = 65_536
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_NUMBER_TAG = np.uint64(0x2545F4914F6CDD1D)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """Return a 64-bit hash of every row of a layer, independent of the column order.

    Each value is hashed by kind — numbers (and booleans) by their float64 value,
    text by its UTF-8 bytes, geometries by their 2D little-endian WKB, NULL as
    NULL — and mixed with its column's name.

    Parameters
    ----------
    frame
        A layer (GeoDataFrame) or an attribute table.

    Returns
    -------
    numpy.ndarray
        ``uint64``, one hash per row, in the frame's row order.
    """
    n = len(frame)
    out = np.empty(n, dtype=np.uint64)
    names = [str(c) for c in frame.columns]
    order = sorted(range(len(names)), key=lambda i: names[i])
    name_hashes = [_name_hash(names[i]) for i in order]
    for start in range(0, n, CHECKSUM_CHUNK):
        part = frame.iloc[start:start + CHECKSUM_CHUNK]
        h = np.full(len(part), _NULL_HASH, dtype=np.uint64)
        for i, nh in zip(order, name_hashes, strict=True):
            h = _mix(h ^ _mix(_value_hashes(part.iloc[:, i]) ^ nh))
        out[start:start + len(part)] = h
    return out


def combine_checksum(hash_sum: int, n_rows: int, columns: list[str]) -> str:
    """Return the checksum of a layer from the sum of its row hashes.

    Parameters
    ----------
    hash_sum
        Sum modulo 2⁶⁴ of :func:`row_hashes` over every row (of every partition).
    n_rows
        Number of rows.
    columns
        Column names (geometry included), in any order.

    Returns
    -------
    str
        16 hexadecimal characters, as :func:`layer_checksum`.
    """
    h = hashlib.sha256()
    h.update(f"{n_rows}\x1f{int(hash_sum) % 2**64}\x1f".encode())
    h.update("\x1f".join(sorted(map(str, columns))).encode())
    return h.hexdigest()[:16]


def _name_hash(name: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise (wrapping uint64 arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _value_hashes(values: pd.Series) -> np.ndarray:
    """Hash of each value of a column, by kind (see :func:`row_hashes`)."""
    dtype = values.dtype
    if pd.api.types.is_object_dtype(dtype) and _all_bool(values):
        # Booleans with NULLs: written as a boolean field, hashed as numbers like a
        # bool column (the same row hashes the same in a batch without NULL).
        values = values.astype("boolean")
        dtype = values.dtype
    if isinstance(dtype, gpd.array.GeometryDtype):
        geoms = np.asarray(values.array, dtype=object)
        wkb = shapely.to_wkb(geoms, output_dimension=2, byte_order=1)
        return _bytes_hashes(wkb)
    if pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype)
                                             and not pd.api.types.is_complex_dtype(dtype)):
        nums = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(nums)
        bits = (nums + 0.0).view(np.uint64)  # + 0.0: -0.0 and 0.0 are the same number
        h = _mix(bits ^ _NUMBER_TAG)
        h[missing] = _NULL_HASH
        return h
    return _bytes_hashes(_text_values(values))


def _bytes_hashes(values: np.ndarray) -> np.ndarray:
    """Hash of str/bytes values (SipHash with pandas' fixed key), NULL for ``None``."""
    h = np.full(len(values), _NULL_HASH, dtype=np.uint64)
    present = np.flatnonzero(np.not_equal(values, NULL))
    if len(present):
        try:
            h[present] = pd.util.hash_array(values[present], categorize=False)
        except UnicodeEncodeError:  # lone surrogates (undecodable file names, bytes)
            raw = np.array([v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v
                            for v in values[present]] + [None], dtype=object)[:-1]
            h[present] = pd.util.hash_array(raw, categorize=False)
    return h


def _text_values(values: pd.Series) -> np.ndarray:
    """Return a text column as written: ``str`` kept, NULL as ``None``, others through ``str()``."""
    out = values.to_numpy(dtype=object).copy()
    missing = pd.isna(out)
    out[missing] = None
    if pd.api.types.infer_dtype(out, skipna=True) not in ("string", "empty"):
        other = ~missing & ~np.fromiter((isinstance(v, str) for v in out), dtype=bool,
                                        count=len(out))
        out[other] = [str(v) for v in out[other]]
    return out


def read_layer(path: str | Path, layer: str) -> gpd.GeoDataFrame:
    """Read one layer of an observatory GeoPackage (Arrow)."""
    return pyogrio.read_dataframe(path, layer=layer, use_arrow=True)


def append_to_template(template: Path, layers: Mapping[str, gpd.GeoDataFrame]
                       | Iterable[Mapping[str, gpd.GeoDataFrame]], path: str | Path, *,
                       tables: Sequence[str], what: str) -> Path:
    """Copy a GeoPackage template to ``path`` and append the layers' rows.

    The copy keeps the template's tables, fields and styles; its layers are
    declared in the CRS of the first layer that has one (:func:`declare_srs`).

    Parameters
    ----------
    template
        The GeoPackage to copy (a standard's official template).
    layers
        Layer name → rows, or several such parts (appended as they come: one part
        in memory at a time).
    path
        The file to write (replaced).
    tables
        The template's layers, in the order their rows are appended.
    what
        What the file is, for messages (« l'export CNIG »).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    shutil.copyfile(template, path)
    parts = [layers] if isinstance(layers, Mapping) else layers
    declared = False
    for part in parts:
        if not declared:
            crs = next((f.crs for f in part.values() if f.crs is not None), None)
            if crs is not None:
                declare_srs(path, crs, tables=tables, what=what)
            declared = True
        for name in tables:
            frame = part.get(name)
            if frame is None or len(frame) == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG", append=True)
        del part
    return path


def declare_srs(path: Path, crs: Any, *, tables: Sequence[str], what: str) -> None:
    """Declare the layers ``tables`` of a template copy in ``crs`` (templates say EPSG:2154).

    Raises
    ------
    ConfigError
        When ``crs`` has no EPSG code.
    """
    target = CRS.from_user_input(crs)
    epsg = target.to_epsg()
    if epsg == 2154:
        return
    if epsg is None:
        raise ConfigError(f"CRS {crs} sans code EPSG : {what} exige un CRS légal EPSG")
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.execute(
            "INSERT OR IGNORE INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, "
            "organization_coordsys_id, definition, description) VALUES (?, ?, 'EPSG', ?, ?, ?)",
            (target.name, epsg, epsg, target.to_wkt("WKT1_GDAL"), target.name))
        for table in tables:
            con.execute("UPDATE gpkg_geometry_columns SET srs_id = ? WHERE table_name = ?",
                        (epsg, table))
            con.execute("UPDATE gpkg_contents SET srs_id = ? WHERE table_name = ?",
                        (epsg, table))


class LayerBuffer:
    """Rows of a layer gathered from the partitions, appended to the GeoPackage in batches.

    One append per partition would reopen the file hundreds of times; one append
    per :data:`FLUSH_ROWS` rows bounds the memory as well.
    """

    def __init__(self, writer: GeoPackageWriter, name: str, total: LayerSum) -> None:
        from observatoire.schema import LAYERS

        self.writer, self.name, self.total = writer, name, total
        self.schema = LAYERS[name]
        self.frames: list[gpd.GeoDataFrame] = []
        self.rows = 0

    def add(self, frame: gpd.GeoDataFrame) -> None:
        """Queue ``frame``; write the queue once it holds :data:`FLUSH_ROWS` rows."""
        if len(frame) or not self.total.columns:
            self.frames.append(frame)
            self.rows += len(frame)
        if self.rows >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Append the queued rows (the first time, create the layer even if empty)."""
        if not self.frames:
            return
        frames = [f for f in self.frames if len(f)] or self.frames[:1]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=frames[0].crs)
        self.writer.write(self.name, frame, description=self.schema.description,
                          geometry_type=self.schema.geometry_type, append=True)
        self.total.add(frame)
        self.frames, self.rows = [], 0


#: Rows gathered before an append to the GeoPackage.
FLUSH_ROWS = 50_000


@dataclass
class LayerSum:
    """Row count and hash sum of a layer written in pieces (its checksum)."""

    rows: int = 0
    total: int = 0
    columns: list[str] = field(default_factory=list)

    def add(self, frame: pd.DataFrame) -> None:
        """Count the rows of ``frame``."""
        self.rows += len(frame)
        self.total = (self.total + int(row_hashes(frame).sum(dtype=np.uint64))) % 2**64
        self.columns = [str(c) for c in frame.columns]

    def checksum(self) -> str:
        """Return the checksum of the whole layer."""
        return combine_checksum(self.total, self.rows, self.columns)


@contextlib.contextmanager
def reading_unpublished() -> Iterator[None]:
    """Read the GeoPackage being written: named *.tmp until published, GDAL warns of it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "File .* non conformant file extension",
                                RuntimeWarning)
        yield


def layer_reader(path: Path, layer: str) -> Callable[[tuple[float, float, float, float]],
                                                      gpd.GeoDataFrame]:
    """Read the features of a GeoPackage layer meeting a box (its R-tree), geometry only."""
    import pyogrio

    def read(bounds: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
        with reading_unpublished():
            return pyogrio.read_dataframe(path, layer=layer, bbox=bounds, columns=[],
                                          use_arrow=True, fid_as_index=True)

    return read


def report_columns(path: Path, layer: str = "parcelles") -> pd.DataFrame:
    """Read the columns of the parcels that the report reads (no geometry) from a GeoPackage.

    A build by partition does not hold every parcel: the report reads these few
    columns back from the GeoPackage being written, once the other publications
    are done with their memory.
    """
    import pyogrio

    with reading_unpublished():
        fields = pyogrio.read_info(path, layer=layer)["fields"]
        keep = [str(c) for c in fields if c in ("code_insee", "surface_m2")
                or str(c).startswith(("score_", "classe_", "fiabilite_", "exclu_"))]
        coded = [c for c in keep if c.startswith("classe_") or c == "code_insee"]
        # By batches, texts coded as categories as they come: a few bytes a parcel.
        parts = []
        with pyogrio.open_arrow(path, layer=layer, columns=keep, read_geometry=False,
                                use_pyarrow=True, batch_size=REPORT_BATCH) as (_, batches):
            for batch in batches:
                part = batch.to_pandas()
                parts.append(part.astype(dict.fromkeys(coded, "category")))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="category" if c in coded else "float64")
                             for c in keep})
    if len(parts) > 1:
        _same_categories(parts, coded)
    return pd.concat(parts, ignore_index=True)


#: Parcels read at once by :func:`report_columns`.
REPORT_BATCH = 200_000


def _same_categories(parts: list[pd.DataFrame], coded: list[str]) -> None:
    """Give every part the same categories in each coded column (concatenated as codes)."""
    from pandas.api.types import union_categoricals

    for c in coded:
        cats = union_categoricals([p[c] for p in parts]).categories
        for p in parts:
            p[c] = p[c].cat.set_categories(cats)


