"""The only code that writes the observatory GeoPackage.

Layers are written with pyogrio (Arrow) into a temporary file in the destination
folder, checked, then moved over the previous file with :func:`os.replace`, so a
build killed at any moment leaves the previous GeoPackage intact. The file is a
GeoPackage 1.2 (QGIS 3.22 opens it without warnings), every spatial layer has an
R-tree index, and ``gpkg_contents.description`` says what each layer is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from observatoire.errors import BuildError
from observatoire.outputs import fsync_dir, remove_stale, staging_path

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
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BuildError(
                f"{self.dest.parent} : dossier de sortie impossible à créer ({exc.strerror}) ; "
                f"choisissez un autre dossier (--out ou sorties.dossier)"
            ) from None
        remove_stale(self.dest)
        _remove(self.tmp)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _remove(self.tmp)

    @property
    def layers(self) -> list[str]:
        """Layers written so far, in order."""
        return list(self._layers)

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
        if spatial:
            opts["geometry_type"] = geometry_type
            opts["layer_options"] = {"SPATIAL_INDEX": "YES"}
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
        try:
            with open(self.tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, self.dest)
        except OSError as exc:
            raise BuildError(
                f"{self.dest} : publication impossible ({exc.strerror}) ; le GeoPackage "
                f"précédent est intact"
            ) from None
        fsync_dir(self.dest.parent)
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
            non_null = s.dropna()
            if len(non_null) and not non_null.map(lambda v: isinstance(v, str)).all():
                out[col] = s.map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                                 else (v if isinstance(v, str) else str(v)))
    return out


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
    """Return a content checksum of a layer: attributes and WKB, in a stable row order.

    Two builds from the same inputs give the same checksum whatever the order of
    the input files. Values are compared as written to the GeoPackage: NULL is
    NULL whatever its pandas spelling (``None``, ``NaN``, ``<NA>``), ``1`` and
    ``1.0`` are equal, booleans are 0/1 — so the checksum of a layer read back
    from the GeoPackage equals the one printed by the build.

    Parameters
    ----------
    frame
        A layer (GeoDataFrame) or an attribute table.

    Returns
    -------
    str
        16 hexadecimal characters.
    """
    df = pd.DataFrame(frame).copy()
    if isinstance(frame, gpd.GeoDataFrame):
        geom = frame.geometry.name
        wkb = shapely.to_wkb(shapely.normalize(frame.geometry.values), hex=True,
                             output_dimension=2)
        df = df.drop(columns=geom)
        df["__wkb__"] = wkb
    df = df.reindex(sorted(df.columns), axis=1)
    canon = pd.DataFrame({c: _canonical(df[c]) for c in df.columns}, index=df.index)
    rows = pd.util.hash_pandas_object(canon, index=False).sort_values().to_numpy()
    h = hashlib.sha256(rows.tobytes())
    h.update(",".join(map(str, df.columns)).encode())
    return h.hexdigest()[:16]


_NULL = "\x1fNULL"  # no real text looks like this (and numpy keeps it intact)


def _canonical(values: pd.Series) -> pd.Series:
    """Text form of a column that does not depend on its pandas dtype."""
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        nums = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
        return pd.Series(_numbers(nums), index=values.index, dtype=object)
    return values.astype(object).map(_value)


def _numbers(nums: np.ndarray) -> np.ndarray:
    """Integers without a decimal part, other floats in their shortest form, NaN as NULL."""
    out = np.full(len(nums), _NULL, dtype=object)
    finite = np.isfinite(nums)
    integer = finite & (np.abs(nums) < 2**53)
    integer[integer] = nums[integer] == np.round(nums[integer])
    out[integer] = nums[integer].astype(np.int64).astype(str)
    other = ~integer & ~np.isnan(nums)
    out[other] = nums[other].astype(str)
    return out


def _number(v: float) -> str:
    return str(_numbers(np.array([v], dtype="float64"))[0])


def _value(v: object) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return _NULL
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return _number(float(v))
    return str(v)


def read_layer(path: str | Path, layer: str) -> gpd.GeoDataFrame:
    """Read one layer of an observatory GeoPackage (Arrow)."""
    return pyogrio.read_dataframe(path, layer=layer, use_arrow=True)
