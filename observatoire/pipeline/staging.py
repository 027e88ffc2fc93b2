"""Staging: the parcel files read by groups, normalised and split by commune into GeoParquet.

The parcel files are read by groups of :data:`STAGE_BYTES` (on every core with
worker processes, :func:`stage_group`), normalised by the readers of
:mod:`observatoire.readers.cadastre`, split by commune and written to GeoParquet
files (with their bounding boxes) in a temporary folder beside the outputs
(:func:`staging_folder`). Only the IDUs stay in memory (14 bytes each): their
sorted array numbers the parcels (the *global id*, :meth:`Staged.gid`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from observatoire.config import Source, Territory
from observatoire.errors import SourceError
from observatoire.executor import Executor, SerialExecutor
from observatoire.memory import trim
from observatoire.outputs import remove_stale_folders
from observatoire.progress import Progress, track
from observatoire.readers.cadastre import dedupe_parcels, read_parcelles
from observatoire.readers.lineage import SourceReport, checksum_files, merge_reports
from observatoire.schema import PARCELLES, conform

log = logging.getLogger(__name__)

#: IDUs held in memory: 14 bytes each.
IDU_BYTES = "S14"


@dataclass
class Commune:
    """One partition: a commune's staged files, its box and its parcels' global ids."""

    code: str
    files: list[Path] = field(default_factory=list)
    bounds: np.ndarray = field(default_factory=lambda: np.array([np.inf, np.inf,
                                                                 -np.inf, -np.inf]))
    count: int = 0

    def grow(self, box: np.ndarray) -> None:
        """Extend the bounds to hold ``box``."""
        self.bounds = np.r_[np.minimum(self.bounds[:2], box[:2]),
                            np.maximum(self.bounds[2:], box[2:])]


@dataclass
class Staged:
    """The staged parcels: communes in code order, the sorted IDUs, the merged report."""

    communes: list[Commune]
    idu: np.ndarray
    report: SourceReport
    folder: Path

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Box of every parcel."""
        b = np.array([c.bounds for c in self.communes])
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()),
                float(b[:, 3].max()))

    def gid(self, idu: pd.Series | np.ndarray) -> np.ndarray:
        """Global ids of IDUs (all present)."""
        return np.searchsorted(self.idu, np.asarray(idu, dtype=object).astype(IDU_BYTES))

    def read(self, commune: Commune, *, columns: list[str] | None = None,
             bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
        """Read a commune's staged parcels (in file order; not yet deduplicated)."""
        frames = [gpd.read_parquet(p, columns=columns, bbox=bbox) for p in commune.files]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return gpd.GeoDataFrame(frame, geometry="geometry", crs=frames[0].crs)

    def group(self, communes: list[Commune], report: SourceReport | None = None
              ) -> gpd.GeoDataFrame:
        """Return the canonical parcels of some communes, sorted by IDU."""
        parts = [self.parcels(c, report) for c in communes]
        if len(parts) == 1:
            return parts[0]
        frame = pd.concat(parts, ignore_index=True).sort_values("idu", kind="stable")
        return gpd.GeoDataFrame(frame.reset_index(drop=True), geometry="geometry",
                                crs=parts[0].crs)

    def parcels(self, commune: Commune, report: SourceReport | None = None
                ) -> gpd.GeoDataFrame:
        """Return a commune's canonical parcels as the one-pass reader does: one per IDU, sorted.

        Duplicates across files are counted in ``report`` when given.
        """
        frame = self.read(commune)
        if len(commune.files) > 1:
            frame = dedupe_parcels(frame, report or SourceReport("parcelles", [], ""))
            frame = frame.sort_values("idu", kind="stable").reset_index(drop=True)
        return conform(frame, PARCELLES)

    def meeting(self, boxes: np.ndarray) -> Iterator[gpd.GeoDataFrame]:
        """Yield, a commune at a time, the canonical parcels of the communes meeting ``boxes``.

        ``boxes``: ``(n, 4)`` bounds (the ZAE's); a commune whose box meets none of
        them is not read.
        """
        for commune in self.communes:
            b = commune.bounds
            if np.any((boxes[:, 0] <= b[2]) & (b[0] <= boxes[:, 2])
                      & (boxes[:, 1] <= b[3]) & (b[1] <= boxes[:, 3])):
                yield self.parcels(commune)


#: Parcel files read together while staging (bytes): few calls, bounded memory.
STAGE_BYTES = 16 * 2**20


def _file_groups(paths: tuple[Path, ...], budget: int) -> list[tuple[Path, ...]]:
    """Consecutive groups of files weighing at most ``budget`` (at least one file each)."""
    groups: list[list[Path]] = []
    size = budget
    for path in paths:
        weight = path.stat().st_size
        if size + weight > budget:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += weight
    return [tuple(g) for g in groups]


@dataclass
class StagedGroup:
    """A group of parcel files staged (see :func:`stage_group`)."""

    report: SourceReport
    #: IDUs of the group's parcels (:data:`IDU_BYTES`).
    idu: np.ndarray
    #: One entry per commune met: (code, GeoParquet file, parcels, box).
    files: list[tuple[str, Path, int, np.ndarray]]


def portable(source: Source) -> Source:
    """Return ``source`` picklable, to send to worker processes (a read-only mapping is not)."""
    return replace(source, fields=dict(source.fields))


#: What every group's staging shares: the parcel source, the territory's CRS, folder
#: and communes, and the staging folder.
StageShared = tuple[Source, str, Path, tuple[str, ...], Path]


def stage_group(task: tuple[int, tuple[Path, ...]], shared: StageShared) -> StagedGroup:
    """Read group ``k`` of parcel files and write its parcels, split by commune, to GeoParquet.

    The work of the executor's workers while staging (any worker process may run
    it: only file names and counts come back). ``shared`` is the parcel source,
    the territory's CRS, its folder and communes, and the staging folder.
    """
    k, paths = task
    source, crs, base, codes, folder = shared
    result = read_parcelles(replace(source, paths=paths), crs=crs, base=base, communes=codes)
    frame = result.frame
    files = []
    for code, rows in frame.groupby("code_insee", sort=True).indices.items():
        part = frame.iloc[np.sort(rows)]
        dest = folder / f"{code}-{k:06d}.parquet"
        # Uncompressed: a temporary file, written and read faster.
        part.to_parquet(dest, index=False, write_covering_bbox=True,
                        row_group_size=8192, compression=None)
        files.append((str(code), dest, len(part), np.asarray(part.total_bounds)))
    return StagedGroup(report=result.report,
                       idu=frame["idu"].to_numpy(dtype=object).astype(IDU_BYTES), files=files)


def stage_parcels(territory: Territory, folder: Path, *, executor: Executor | None = None,
                  progress: Progress | None = None) -> Staged:
    """Read the parcel files by groups, split them by commune into GeoParquet files.

    ``executor`` reads the groups (:func:`stage_group`), in worker processes or
    here (serial when ``None``); the result does not depend on it. ``progress``
    counts the groups read (:func:`observatoire.progress.track`).

    Raises
    ------
    SourceError
        No parcel of the territory's communes in the files.
    """
    source = territory.source("parcelles")
    assert source is not None  # required by the territory file
    communes: dict[str, Commune] = {}
    reports: list[SourceReport] = []
    idus: list[np.ndarray] = []
    executor = executor or SerialExecutor()
    groups = _file_groups(source.paths, STAGE_BYTES)
    shared: StageShared = (portable(source), territory.crs, territory.path.parent,
                           tuple(territory.communes), folder)
    for done in track(progress, executor.imap(stage_group, enumerate(groups), shared=shared),
                      total=len(groups), label="fichiers de parcelles"):
        reports.append(done.report)
        if len(done.idu):
            idus.append(done.idu)
        for code, dest, count, box in done.files:
            commune = communes.setdefault(code, Commune(code))
            commune.files.append(dest)
            commune.count += count
            commune.grow(box)
    executor.release()
    trim()
    report = merge_reports(reports)
    report.checksum = checksum_files(list(source.paths))
    if not communes:
        raise SourceError(
            f"{source.path} : aucune parcelle des communes {', '.join(territory.communes)} ; "
            f"vérifiez territoire.communes et le fichier")
    idu = np.unique(np.concatenate(idus))
    dups = sum(len(a) for a in idus) - len(idu)
    report.features_kept = len(idu)
    if dups:
        log.info("parcelles : %d IDU présents dans plusieurs fichiers", dups)
    ordered = [communes[c] for c in sorted(communes)]
    return Staged(communes=ordered, idu=idu, report=report, folder=folder)


STAGING_PREFIX = ".observatoire-partitions-"


def staging_folder(territory: Territory) -> tempfile.TemporaryDirectory[str]:
    """Return a temporary folder beside the outputs for the staged parcels.

    Named after this process (``.observatoire-partitions-<pid>-…``): the folders
    that killed builds left behind are removed first.
    """
    territory.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_folders(territory.output_dir, STAGING_PREFIX)
    return tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-",
                                       dir=territory.output_dir)
