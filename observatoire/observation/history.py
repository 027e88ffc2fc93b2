"""The history store: one dated observation appended by each build, beside the observatory.

Layout (``historique/`` beside ``observatoire.gpkg``, GeoParquet and Parquet)::

    historique/
      observations.json                 # date → version token, written last (the commit)
      parcelles/<date>.<token>.parquet  # the parcels of the observation: one row hash each
      lignes/<date>.<token>.parquet     # the parcel rows first stored by this observation
                                        # (IDU, geometry fingerprint, indicators, classes…)
      geometries/<date>.<token>.parquet # the shapes first stored by this observation
      zae/<date>.<token>.parquet        # inventory figures per ZAE
      friches/<date>.<token>.parquet    # status per friche
      gisements/<date>.<token>.parquet  # candidate sites (identifier, parcels, area)

A shape is stored once, in the observation that first saw it, and so is a parcel's
row of attributes (keyed by a 64-bit hash of its values): an observation adds its
list of row hashes (8 bytes a parcel) and what changed. The store grows with the
changes, not with the number of observations. An append writes new
files under a fresh token, then replaces ``observations.json`` with
:func:`os.replace` (atomic); a kill at any point leaves the previous manifest,
hence the previous observations, whole. Files no manifest names are removed by
the next append.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

from observatoire.analysis.zae_inventory import EstablishmentHistory, ObservedEstablishments
from observatoire.errors import BuildError
from observatoire.outputs import StagedFile, fsync_dir

log = logging.getLogger(__name__)

MANIFEST = "observations.json"
TABLES = ("parcelles", "lignes", "geometries", "zae", "friches", "gisements")
#: Tables an observation may lack (none written by the first versions of the store).
OPTIONAL_TABLES = ("gisements",)
#: Coordinates are rounded to the centimetre before fingerprinting: a shape
#: rewritten with the same vertices (another export, another driver) keeps its
#: fingerprint.
FINGERPRINT_GRID_M = 0.01
#: Rows read at once from the history's Parquet files when only some are wanted.
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Observation:
    """One observation read back from the history.

    Attributes
    ----------
    date
        Date of the observation.
    parcelles
        One row per parcel (``idu``, ``empreinte`` and the kept attributes),
        with its geometry.
    zae
        Inventory figures per ZAE.
    friches
        Status per friche.
    gisements
        Candidate sites (identifier, parcels, area).
    inchangees
        Read by :func:`read_changes`: the parcels left out of ``parcelles`` because the
        other observation holds the very same row, those in a candidate site only
        (``idu``, ``empreinte``, ``gisement_id``, geometry); ``None`` when ``parcelles``
        holds every parcel.
    """

    date: dt.date
    parcelles: gpd.GeoDataFrame
    zae: pd.DataFrame
    friches: pd.DataFrame
    gisements: pd.DataFrame
    inchangees: gpd.GeoDataFrame | None = None


def history_folder(gpkg: str | Path) -> Path:
    """Return the history folder beside the observatory ``gpkg``."""
    return Path(gpkg).parent / "historique"


def fingerprints(geometry: gpd.GeoSeries | np.ndarray) -> np.ndarray:
    """Return a 16-character fingerprint of each geometry (normalised, centimetre grid).

    Parameters
    ----------
    geometry
        The shapes (a GeoSeries or an array of shapely geometries).

    Returns
    -------
    numpy.ndarray
        Hex strings; equal shapes (whatever their vertex order) have equal fingerprints.
    """
    values = geometry.values if isinstance(geometry, gpd.GeoSeries) else np.asarray(geometry)
    # Rounding the coordinates (then dropping the vertices it makes repeated) is three
    # times faster than shapely.set_precision, and the shape need not stay valid: it
    # is only hashed.
    decimals = int(round(-np.log10(FINGERPRINT_GRID_M)))
    shapes = np.array(values, dtype=object)  # new geometries in a new array
    coords, owner = shapely.get_coordinates(shapes, return_index=True)
    coords = np.round(coords, decimals)
    shapes = shapely.set_coordinates(shapes, coords)
    # Repeated vertices are removed only from the shapes that have one after rounding
    # (two equal points in a row; a ring's last point equal to the next ring's first
    # counts too, harmlessly): few at 1 cm, and the call costs as much as the rest.
    same = (owner[1:] == owner[:-1]) & (coords[1:] == coords[:-1]).all(axis=1)
    repeated = np.unique(owner[1:][same])
    if len(repeated):
        shapes[repeated] = shapely.remove_repeated_points(shapes[repeated], 0.0)
    shapes = shapely.normalize(shapes)
    wkb = shapely.to_wkb(shapes, output_dimension=2)
    return np.array([hashlib.blake2b(b, digest_size=8).hexdigest() for b in wkb], dtype=object)


def read_manifest(folder: Path) -> dict[str, str]:
    """Return date (ISO) → version token of the committed observations.

    Raises
    ------
    BuildError
        When the manifest cannot be read.
    """
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path} : historique illisible ({exc}) ; restaurez ce fichier "
                         f"depuis une sauvegarde ou supprimez le dossier {folder}") from None
    return dict(sorted(data["observations"].items()))


def observation_dates(folder: Path) -> list[dt.date]:
    """Return the dates of the observations in the history, oldest first."""
    return [dt.date.fromisoformat(d) for d in read_manifest(folder)]


#: One batch of parcels: their attributes (``idu`` first) and their shapes.
ParcelBatch = tuple[pa.Table, np.ndarray]


class StagedObservation(StagedFile):
    """An observation whose files are written, committed by :meth:`publish`.

    Made by :func:`stage_observation`. Until :meth:`publish` replaces the
    manifest, the history reads as before; :meth:`discard` removes the files.
    A build publishes it with its other staged outputs.
    """

    def __init__(self, folder: Path, date: dt.date, token: str) -> None:
        self.folder = folder
        self.date = date
        self.token = token
        self.dest = folder / MANIFEST
        self.tmp = _path(folder, "parcelles", date.isoformat(), token)

    def publish(self) -> Path:
        """Commit the observation: replace the manifest (atomic), then clear orphan files.

        Raises
        ------
        BuildError
            When the manifest cannot be written; the previous observations stay intact.
        """
        manifest = read_manifest(self.folder)
        try:
            _write_manifest(self.folder, {**manifest, self.date.isoformat(): self.token})
        except OSError as exc:
            raise BuildError(f"{self.folder} : écriture de l'historique impossible "
                             f"({exc.strerror}) ; les observations précédentes sont "
                             f"intactes") from None
        _remove_orphans(self.folder)
        log.info("Observation du %s ajoutée à l'historique %s", self.date, self.folder)
        return self.dest

    def manifest(self) -> dict[str, str]:
        """Return the manifest once this observation is committed (date → token)."""
        return dict(sorted({**read_manifest(self.folder),
                            self.date.isoformat(): self.token}.items()))

    def read(self) -> Observation:
        """Read the observation back, committed or not."""
        return _read_observation(self.folder, self.date, self.manifest())

    def discard(self) -> None:
        """Remove the files of an observation not committed (nothing once published)."""
        if read_manifest(self.folder).get(self.date.isoformat()) == self.token:
            return
        for name in TABLES:
            for path in _files(self.folder, name, self.date.isoformat(), self.token):
                path.unlink(missing_ok=True)


def append_observation(folder: Path, date: dt.date, *, parcelles: gpd.GeoDataFrame,
                       zae: pd.DataFrame, friches: pd.DataFrame,
                       gisements: pd.DataFrame | None = None) -> Path:
    """Add (or replace) the observation of ``date`` in the history.

    Parameters
    ----------
    folder
        The history folder (created when missing).
    date
        Date of the observation; an observation of the same date is replaced.
    parcelles
        One row per parcel with ``idu`` and its geometry, plus the attributes to keep.
    zae, friches, gisements
        Attribute tables to keep for this observation.

    Returns
    -------
    Path
        The manifest.

    Raises
    ------
    BuildError
        When the history cannot be written; the previous observations stay intact.
    """
    attrs = pa.Table.from_pandas(pd.DataFrame(parcelles.drop(columns=parcelles.geometry.name)),
                                 preserve_index=False)
    staged = stage_observation(folder, date, batches=[(attrs, parcelles.geometry.values)],
                               crs=parcelles.crs, zae=zae, friches=friches, gisements=gisements)
    try:
        return staged.publish()
    finally:
        staged.discard()


def stage_observation(folder: Path, date: dt.date, *, batches: Iterable[ParcelBatch],
                      crs: Any, zae: pd.DataFrame, friches: pd.DataFrame,
                      gisements: pd.DataFrame | None = None) -> StagedObservation:
    """Write the files of the observation of ``date``; commit them with ``publish()``.

    The parcels come in batches (read from the GeoPackage by groups): the
    attributes and the shapes not already in the history are written batch by
    batch, so a large territory is never held whole.

    Parameters
    ----------
    folder
        The history folder (created when missing).
    date
        Date of the observation; an observation of the same date is replaced on commit.
    batches
        Attributes (Arrow tables of one schema, ``idu`` first) and shapes of the parcels.
    crs
        CRS of the shapes.
    zae, friches, gisements
        Attribute tables to keep for this observation.

    Returns
    -------
    StagedObservation
        To publish (commit) or discard.

    Raises
    ------
    BuildError
        When the files cannot be written; the history stays as it was.
    """
    manifest = read_manifest(folder)
    key = date.isoformat()
    token = uuid.uuid4().hex[:12]
    staged = StagedObservation(folder, date, token)
    known = _known_fingerprints(folder, {d: t for d, t in manifest.items() if d != key})
    try:
        for name in TABLES:
            (folder / name).mkdir(parents=True, exist_ok=True)
        shapes = _ShapeWriter(_path(folder, "geometries", key, token), crs)
        if key in manifest:
            # Later observations may point at shapes first stored by the one replaced.
            previous = _read(folder, "geometries", key, manifest[key])
            previous = previous[~previous["empreinte"].isin(known)]
            shapes.add(previous["empreinte"].to_numpy(dtype=object), previous.geometry.values)
            known |= set(previous["empreinte"])
        others = {d: t for d, t in manifest.items() if d != key}
        known_rows = _known_rows(folder, others)
        if key in manifest:
            # The same for the rows (written as they were, whatever their schema).
            for path in _files(folder, "lignes", key, manifest[key]):
                table = pq.read_table(path)
                table = table.filter(pc.invert(pc.is_in(
                    table.column("ligne"), value_set=pa.array(list(known_rows), pa.int64()))))
                pq.write_table(table, _path(folder, "lignes", key, token, part="reprise"))
                known_rows.update(table.column("ligne").to_pylist())
        listing = pq.ParquetWriter(_path(folder, "parcelles", key, token),
                                   pa.schema([("ligne", pa.int64())]))
        rows_writer: pq.ParquetWriter | None = None
        for attrs, geometry in batches:
            empreinte = fingerprints(geometry)
            table = attrs.add_column(1, "empreinte", pa.array(empreinte, type=pa.string()))
            ligne = row_hashes(table)
            listing.write_table(pa.table({"ligne": pa.array(ligne, pa.int64())}))
            table = table.append_column("ligne", pa.array(ligne, pa.int64()))
            if rows_writer is None:
                rows_writer = pq.ParquetWriter(_path(folder, "lignes", key, token), table.schema)
            # Membership in the sets, batch by batch (``Series.isin(set)`` would copy the
            # whole set at every batch: quadratic on a large territory).
            fresh = np.fromiter((h not in known_rows for h in ligne.tolist()), dtype=bool,
                                count=len(ligne))
            fresh &= ~pd.Series(ligne).duplicated().to_numpy()
            rows_writer.write_table(table.filter(pa.array(fresh)).cast(rows_writer.schema))
            known_rows.update(ligne[fresh].tolist())
            fresh = np.fromiter((e not in known for e in empreinte), dtype=bool,
                                count=len(empreinte))
            fresh &= ~pd.Series(empreinte).duplicated().to_numpy()
            shapes.add(empreinte[fresh], np.asarray(geometry)[fresh])
            known.update(empreinte[fresh])
        listing.close()
        if rows_writer is None:
            raise BuildError(f"{folder} : aucune parcelle à observer le {key}")
        rows_writer.close()
        shapes.close()
        for name, frame in (("zae", zae), ("friches", friches), ("gisements", gisements)):
            path = _path(folder, name, key, token)
            frame = pd.DataFrame() if frame is None else pd.DataFrame(frame)
            frame.reset_index(drop=True).to_parquet(path, index=False)
        for name in TABLES:
            for path in _files(folder, name, key, token):
                _sync(path)
            fsync_dir(folder / name)
    except OSError as exc:
        staged.discard()
        raise BuildError(f"{folder} : écriture de l'historique impossible ({exc.strerror}) ; "
                         f"les observations précédentes sont intactes") from None
    except BaseException:
        staged.discard()
        raise
    return staged


class _ShapeWriter:
    """GeoParquet file of shapes (``empreinte``, WKB ``geometry``) written by batches."""

    def __init__(self, path: Path, crs: Any) -> None:
        projjson = json.loads(CRS.from_user_input(crs).to_json()) if crs is not None else None
        geo = {"version": "1.0.0", "primary_column": "geometry",
               "columns": {"geometry": {"encoding": "WKB", "geometry_types": [],
                                        "crs": projjson}}}
        schema = pa.schema([("empreinte", pa.string()), ("geometry", pa.binary())],
                           metadata={b"geo": json.dumps(geo).encode()})
        self.writer = pq.ParquetWriter(path, schema)

    def add(self, empreinte: np.ndarray, geometry: np.ndarray) -> None:
        if not len(empreinte):
            return
        self.writer.write_table(pa.table(
            {"empreinte": pa.array(empreinte, type=pa.string()),
             "geometry": pa.array(shapely.to_wkb(geometry, output_dimension=2),
                                  type=pa.binary())}, schema=self.writer.schema))

    def close(self) -> None:
        self.writer.close()


def read_observation(folder: Path, date: dt.date) -> Observation:
    """Read one observation back, each parcel with its geometry.

    Raises
    ------
    BuildError
        When the history holds no observation of ``date``.
    """
    manifest = read_manifest(folder)
    key = date.isoformat()
    if key not in manifest:
        dates = ", ".join(manifest) or "aucune"
        raise BuildError(f"{folder} : pas d'observation du {key} dans l'historique "
                         f"(observations : {dates})")
    return _read_observation(folder, date, manifest)


def _read_observation(folder: Path, date: dt.date, manifest: Mapping[str, str]) -> Observation:
    key = date.isoformat()
    lignes = _read(folder, "parcelles", key, manifest[key])["ligne"].to_numpy()
    attrs = _rows(folder, manifest, lignes).reindex(lignes).reset_index(drop=True)
    shapes = _shapes(folder, manifest, set(attrs["empreinte"]))
    geometry = shapes.reindex(attrs["empreinte"]).geometry.values
    parcelles = gpd.GeoDataFrame(attrs, geometry=geometry, crs=shapes.crs)
    return Observation(date=date, parcelles=parcelles,
                       zae=_read(folder, "zae", key, manifest[key]),
                       friches=_read(folder, "friches", key, manifest[key]),
                       gisements=_read(folder, "gisements", key, manifest[key]))


def read_changes(folder: Path, depuis: dt.date, jusqua: dt.date, *,
                 manifest: Mapping[str, str] | None = None) -> tuple[Observation, Observation]:
    """Read two observations, each holding only the parcels the other lacks.

    A parcel row (IDU, shape fingerprint and every kept attribute) is stored under a
    64-bit hash of its values: a hash found in both observations is a parcel that did
    not change, which no evolution reports. Only the other rows are read with their
    attributes and shapes, so the memory follows the number of changes, not the
    territory; the unchanged parcels of candidate sites are kept apart
    (:attr:`Observation.inchangees`, same frame in both) for the sites' evolution.

    Parameters
    ----------
    folder
        The history folder.
    depuis, jusqua
        Dates of the two observations.
    manifest
        Date → token of the observations (default: the committed ones;
        :meth:`StagedObservation.manifest` adds one not yet committed).

    Returns
    -------
    tuple
        The two observations (``depuis`` first).

    Raises
    ------
    BuildError
        When the history holds no observation of one of the dates.
    """
    manifest = read_manifest(folder) if manifest is None else dict(manifest)
    for date in (depuis, jusqua):
        if date.isoformat() not in manifest:
            dates = ", ".join(manifest) or "aucune"
            raise BuildError(f"{folder} : pas d'observation du {date.isoformat()} dans "
                             f"l'historique (observations : {dates})")
    keys = (depuis.isoformat(), jusqua.isoformat())
    lignes = [_read(folder, "parcelles", k, manifest[k])["ligne"].to_numpy() for k in keys]
    common = np.intersect1d(lignes[0], lignes[1])
    changed = [values[~np.isin(values, common)] for values in lignes]
    rows = _rows(folder, manifest, np.concatenate(changed))
    kept = _rows(folder, manifest, common, columns=["idu", "empreinte", "gisement_id"])
    if "gisement_id" in kept:
        kept = kept[kept["gisement_id"].notna()]
    else:
        kept = kept.iloc[:0]
    wanted = set(rows["empreinte"]) | set(kept["empreinte"]) if "empreinte" in rows else set()
    shapes = _shapes(folder, manifest, wanted)
    inchangees = gpd.GeoDataFrame(
        kept.reset_index(drop=True),
        geometry=shapes.geometry.reindex(kept["empreinte"]).values, crs=shapes.crs)
    out = []
    for key, values in zip(keys, changed, strict=True):
        attrs = rows.reindex(values).reset_index(drop=True)
        geometry = shapes.geometry.reindex(attrs["empreinte"]).values
        out.append(Observation(
            date=dt.date.fromisoformat(key),
            parcelles=gpd.GeoDataFrame(attrs, geometry=geometry, crs=shapes.crs),
            zae=_read(folder, "zae", key, manifest[key]),
            friches=_read(folder, "friches", key, manifest[key]),
            gisements=_read(folder, "gisements", key, manifest[key]),
            inchangees=inchangees))
    return out[0], out[1]


def read_table(folder: Path, name: str, *, columns: list[str] | None = None,
               manifest: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Return the table ``name`` of every observation, with a ``date_observation`` column.

    Parameters
    ----------
    folder
        The history folder.
    name
        ``parcelles``, ``zae``, ``friches`` or ``gisements``.
    columns
        The columns to read (those an observation lacks are left out); all by default.
    manifest
        Date → token of the observations to read (default: the committed ones;
        :meth:`StagedObservation.manifest` adds one not yet committed).
    """
    frames = []
    manifest = read_manifest(folder) if manifest is None else manifest
    rows = _rows(folder, manifest, None, columns=columns) if name == "parcelles" else None
    for key, token in manifest.items():
        path = _path(folder, name, key, token)
        if not path.exists():
            continue
        if rows is not None:
            lignes = pq.read_table(path).column("ligne").to_numpy()
            frame = rows.reindex(lignes).reset_index(drop=True)
        else:
            wanted = None if columns is None else [
                c for c in columns if c in pq.read_schema(path).names]
            frame = pq.read_table(path, columns=wanted).to_pandas()
        frame.insert(0, "date_observation", dt.date.fromisoformat(key))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_establishments(folder: Path, *, before: dt.date,
                        column: str = "nb_etablissements_actifs"
                        ) -> EstablishmentHistory | None:
    """Return the parcels where active establishments were observed, before a date.

    An observation made with an establishments layer gives each of its parcel rows
    ``column`` (0 when none is active on the parcel); one made without lacks it. Only
    the hashes and ``column`` of the distinct rows are read, then the identity and
    shape of the parcels where an establishment was active: the memory follows
    the occupied parcels, not the territory.

    Parameters
    ----------
    folder
        The history folder.
    before
        Only the observations dated before it are read.
    column
        The parcel rows' column counting the active establishments.

    Returns
    -------
    EstablishmentHistory or None
        ``None`` when the history holds no observation before ``before``.
    """
    manifest = {d: t for d, t in read_manifest(folder).items() if d < before.isoformat()}
    if not manifest:
        return None
    counts = _rows(folder, manifest, None, columns=[column])
    if column not in counts:
        return EstablishmentHistory(sans_etablissements=tuple(
            dt.date.fromisoformat(d) for d in manifest))
    counted = counts[column].dropna()
    recorded = counted.index.to_numpy()
    occupied = counted.index[counted.to_numpy() > 0].to_numpy()
    listings = {key: _read(folder, "parcelles", key, token)["ligne"].to_numpy()
                for key, token in manifest.items()}
    with_layer = {key: values[np.isin(values, occupied)] for key, values in listings.items()
                  if np.isin(values[:1], recorded).any()}
    wanted = np.unique(np.concatenate(list(with_layer.values()))) if with_layer else occupied[:0]
    rows = _rows(folder, manifest, wanted, columns=["idu", "empreinte", column])
    shapes = _shapes(folder, manifest, set(rows["empreinte"]) if len(rows) else set())
    observations = []
    for key, values in with_layer.items():
        attrs = rows.reindex(np.unique(values)).reset_index(drop=True)
        geometry = shapes.geometry.reindex(attrs["empreinte"]).values
        observations.append(ObservedEstablishments(
            date=dt.date.fromisoformat(key),
            parcelles=gpd.GeoDataFrame(attrs[["idu", column]], geometry=geometry,
                                       crs=shapes.crs)))
    return EstablishmentHistory(
        observations=tuple(observations),
        sans_etablissements=tuple(dt.date.fromisoformat(d) for d in manifest
                                  if d not in with_layer))


def row_hashes(table: pa.Table) -> np.ndarray:
    """Return a 64-bit hash of each row's values and of the column names (``int64``)."""
    frame = table.to_pandas()
    names = hashlib.blake2b("\x1f".join(table.column_names).encode(), digest_size=8).digest()
    salt = np.frombuffer(names, dtype=np.uint64)[0]
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    return (hashed ^ salt).view(np.int64)


def _path(folder: Path, name: str, key: str, token: str, *, part: str = "") -> Path:
    return folder / name / f"{key}.{token}{'.' + part if part else ''}.parquet"


def _files(folder: Path, name: str, key: str, token: str) -> list[Path]:
    """Return the files of table ``name`` of one observation (and its ``reprise`` part)."""
    paths = [_path(folder, name, key, token), _path(folder, name, key, token, part="reprise")]
    return [p for p in paths if p.exists()]


def _known_rows(folder: Path, manifest: Mapping[str, str]) -> set[int]:
    known: set[int] = set()
    for key, token in manifest.items():
        for path in _files(folder, "lignes", key, token):
            known.update(pq.read_table(path, columns=["ligne"]).column("ligne").to_pylist())
    return known


def _rows(folder: Path, manifest: Mapping[str, str], wanted: np.ndarray | None, *,
          columns: list[str] | None = None) -> pd.DataFrame:
    """Return the parcel rows whose hash is ``wanted`` (all if ``None``), by hash."""
    value_set = None if wanted is None else pa.array(np.unique(wanted), pa.int64())
    frames = []
    for key, token in manifest.items():
        for path in _files(folder, "lignes", key, token):
            names = pq.read_schema(path).names
            keep = None if columns is None else [c for c in names if c in columns or
                                                 c == "ligne"]
            # By batches: only the wanted rows are ever held.
            parts = []
            for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=keep):
                if value_set is not None:
                    batch = batch.filter(pc.is_in(batch.column("ligne"), value_set=value_set))
                if batch.num_rows:
                    parts.append(batch)
            if parts:
                frames.append(pa.Table.from_batches(parts).to_pandas())
    if not frames:
        names = [n for key, token in manifest.items()
                 for path in _files(folder, "lignes", key, token)
                 for n in pq.read_schema(path).names
                 if n != "ligne" and (columns is None or n in columns)]
        return pd.DataFrame(columns=list(dict.fromkeys(names)),
                            index=pd.Index([], name="ligne", dtype=np.int64))
    rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return rows.drop_duplicates("ligne").set_index("ligne")


def _read(folder: Path, name: str, key: str, token: str) -> pd.DataFrame:
    path = _path(folder, name, key, token)
    if name == "geometries":
        return gpd.read_parquet(path)
    if not path.exists() and name in OPTIONAL_TABLES:
        return pd.DataFrame()
    return pq.read_table(path).to_pandas()


def _known_fingerprints(folder: Path, manifest: Mapping[str, str]) -> set[str]:
    known: set[str] = set()
    for key, token in manifest.items():
        table = pq.read_table(_path(folder, "geometries", key, token), columns=["empreinte"])
        known.update(table.column("empreinte").to_pylist())
    return known


def _shapes(folder: Path, manifest: Mapping[str, str], wanted: set[str]) -> gpd.GeoDataFrame:
    """Return the shapes whose fingerprint is ``wanted``, by fingerprint.

    Read by batches and decoded once filtered: only the wanted shapes are ever held.
    """
    value_set = pa.array(sorted(wanted), pa.string())
    parts: list[pa.Table] = []
    crs = None
    for key, token in manifest.items():
        path = _path(folder, "geometries", key, token)
        if crs is None:
            crs = _geoparquet_crs(path)
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS):
            batch = batch.filter(pc.is_in(batch.column("empreinte"), value_set=value_set))
            if batch.num_rows:
                parts.append(pa.Table.from_batches([batch]))
    if parts:
        table = pa.concat_tables(parts)
        empreinte = table.column("empreinte").to_numpy(zero_copy_only=False)
        geometry = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    else:
        empreinte, geometry = np.array([], dtype=object), np.array([], dtype=object)
    frame = gpd.GeoDataFrame({"empreinte": empreinte}, geometry=geometry, crs=crs)
    return frame.drop_duplicates("empreinte").set_index("empreinte")


def _geoparquet_crs(path: Path) -> CRS | None:
    """CRS of a GeoParquet file's geometry column (from its ``geo`` metadata)."""
    metadata = pq.read_schema(path).metadata or {}
    geo = json.loads(metadata.get(b"geo", b"{}"))
    crs = geo.get("columns", {}).get(geo.get("primary_column", "geometry"), {}).get("crs")
    return CRS.from_json_dict(crs) if crs else None


def _sync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_manifest(folder: Path, manifest: Mapping[str, str]) -> None:
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"observations": dict(sorted(manifest.items()))}, indent=1),
                   encoding="utf-8")
    _sync(tmp)
    os.replace(tmp, folder / MANIFEST)
    fsync_dir(folder)


def _remove_orphans(folder: Path) -> None:
    manifest = read_manifest(folder)
    for name in TABLES:
        for path in (folder / name).glob("*.parquet"):
            key, _, rest = path.name.partition(".")
            if manifest.get(key) != rest.removesuffix(".parquet").split(".")[0]:
                path.unlink(missing_ok=True)
    for tmp in folder.glob(f".{MANIFEST}.*.tmp"):
        tmp.unlink(missing_ok=True)
