"""The history store: one dated observation appended by each build, beside the observatory.

Layout (``historique/`` beside ``observatoire.gpkg``, GeoParquet and Parquet)::

    historique/
      observations.json                 # date → version token, written last (the commit)
      parcelles/<date>.<token>.parquet  # IDU, geometry fingerprint, indicators, classes
      geometries/<date>.<token>.parquet # the shapes first stored by this observation
      zae/<date>.<token>.parquet        # inventory figures per ZAE
      friches/<date>.<token>.parquet    # status per friche

A shape is stored once, in the observation that first saw it: the store grows
with the changes, not with the number of observations. An append writes new
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import shapely

from observatoire.errors import BuildError
from observatoire.outputs import fsync_dir

log = logging.getLogger(__name__)

MANIFEST = "observations.json"
TABLES = ("parcelles", "geometries", "zae", "friches")
#: Coordinates are rounded to the centimetre before fingerprinting: a shape
#: rewritten with the same vertices (another export, another driver) keeps its
#: fingerprint.
FINGERPRINT_GRID_M = 0.01


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
    """

    date: dt.date
    parcelles: gpd.GeoDataFrame
    zae: pd.DataFrame
    friches: pd.DataFrame


def history_folder(gpkg: str | Path) -> Path:
    """Return the history folder beside the observatory ``gpkg``."""
    return Path(gpkg).parent / "historique"


def fingerprints(geometry: gpd.GeoSeries) -> np.ndarray:
    """Return a 16-character fingerprint of each geometry (normalised, centimetre grid).

    Parameters
    ----------
    geometry
        The shapes.

    Returns
    -------
    numpy.ndarray
        Hex strings; equal shapes (whatever their vertex order) have equal fingerprints.
    """
    shapes = shapely.normalize(shapely.set_precision(geometry.values, FINGERPRINT_GRID_M))
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


def append_observation(folder: Path, date: dt.date, *, parcelles: gpd.GeoDataFrame,
                       zae: pd.DataFrame, friches: pd.DataFrame) -> Path:
    """Add (or replace) the observation of ``date`` in the history.

    Parameters
    ----------
    folder
        The history folder (created when missing).
    date
        Date of the observation; an observation of the same date is replaced.
    parcelles
        One row per parcel with ``idu`` and its geometry, plus the attributes to keep.
    zae, friches
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
    manifest = read_manifest(folder)
    key = date.isoformat()
    token = uuid.uuid4().hex[:12]
    empreinte = fingerprints(parcelles.geometry)
    known = _known_fingerprints(folder, {d: t for d, t in manifest.items() if d != key})
    if key in manifest:
        # Later observations may point at shapes first stored by the one replaced.
        previous = _read(folder, "geometries", key, manifest[key])
        keep = previous[~previous["empreinte"].isin(known)]
        known |= set(keep["empreinte"])
    else:
        keep = None
    shapes = gpd.GeoDataFrame({"empreinte": empreinte}, geometry=parcelles.geometry.values,
                              crs=parcelles.crs)
    shapes = shapes[~shapes["empreinte"].isin(known)].drop_duplicates("empreinte")
    if keep is not None:
        shapes = pd.concat([gpd.GeoDataFrame(keep, geometry="geometry", crs=parcelles.crs),
                            shapes]).drop_duplicates("empreinte")
    attrs = pd.DataFrame(parcelles.drop(columns=parcelles.geometry.name))
    attrs.insert(1, "empreinte", empreinte)
    try:
        for name in TABLES:
            (folder / name).mkdir(parents=True, exist_ok=True)
        path = _path(folder, "geometries", key, token)
        shapes.sort_values("empreinte").to_parquet(path, index=False)
        _sync(path)
        for name, frame in (("parcelles", attrs), ("zae", zae), ("friches", friches)):
            path = _path(folder, name, key, token)
            pd.DataFrame(frame).reset_index(drop=True).to_parquet(path, index=False)
            _sync(path)
        for name in TABLES:
            fsync_dir(folder / name)
        _write_manifest(folder, {**manifest, key: token})
    except OSError as exc:
        raise BuildError(f"{folder} : écriture de l'historique impossible ({exc.strerror}) ; "
                         f"les observations précédentes sont intactes") from None
    _remove_orphans(folder)
    log.info("Observation du %s ajoutée à l'historique %s", key, folder)
    return folder / MANIFEST


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
    attrs = _read(folder, "parcelles", key, manifest[key])
    shapes = _shapes(folder, manifest, set(attrs["empreinte"]))
    geometry = shapes.reindex(attrs["empreinte"]).geometry.values
    parcelles = gpd.GeoDataFrame(attrs, geometry=geometry, crs=shapes.crs)
    return Observation(date=date, parcelles=parcelles,
                       zae=_read(folder, "zae", key, manifest[key]),
                       friches=_read(folder, "friches", key, manifest[key]))


def read_table(folder: Path, name: str) -> pd.DataFrame:
    """Return the table ``name`` of every observation, with a ``date_observation`` column."""
    frames = []
    for key, token in read_manifest(folder).items():
        frame = _read(folder, name, key, token)
        frame.insert(0, "date_observation", dt.date.fromisoformat(key))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _path(folder: Path, name: str, key: str, token: str) -> Path:
    return folder / name / f"{key}.{token}.parquet"


def _read(folder: Path, name: str, key: str, token: str) -> pd.DataFrame:
    path = _path(folder, name, key, token)
    if name == "geometries":
        return gpd.read_parquet(path)
    return pq.read_table(path).to_pandas()


def _known_fingerprints(folder: Path, manifest: Mapping[str, str]) -> set[str]:
    known: set[str] = set()
    for key, token in manifest.items():
        table = pq.read_table(_path(folder, "geometries", key, token), columns=["empreinte"])
        known.update(table.column("empreinte").to_pylist())
    return known


def _shapes(folder: Path, manifest: Mapping[str, str], wanted: set[str]) -> gpd.GeoDataFrame:
    frames = []
    for key, token in manifest.items():
        frame = _read(folder, "geometries", key, token)
        frames.append(frame[frame["empreinte"].isin(wanted)])
    return pd.concat(frames).drop_duplicates("empreinte").set_index("empreinte")


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
            if manifest.get(key) != rest.removesuffix(".parquet"):
                path.unlink(missing_ok=True)
    for tmp in folder.glob(f".{MANIFEST}.*.tmp"):
        tmp.unlink(missing_ok=True)
