"""Build by partition: the parcels read, analysed and written by groups of communes.

A one-pass build holds every parcel, with its 60-odd indicator and score columns,
in memory: about 5 GB at a million parcels. Here the memory is bounded by the
partition (about 40,000 parcels), the context layers and a few bytes per parcel:

1. **Staging** — the parcel files are read by groups of :data:`STAGE_BYTES` (on
   every core with worker processes, :func:`stage_group`) and
   normalised by the readers of :mod:`observatoire.readers.cadastre`, split by
   commune and written to GeoParquet files (with their bounding boxes) in a
   temporary folder beside the output. Only the IDUs stay in memory (14 bytes
   each); their sorted array numbers the parcels (the *global id*).
2. **Buildings** — streamed to the GeoPackage by tiles (:func:`stream_batiments`),
   then read back by each partition through the GeoPackage's R-tree.
3. **Contiguity across communes** — from the GeoParquet boxes of neighbouring
   communes, only the candidate parcels on either side of an edge are read and
   tested (:func:`cross_pairs`): the edges between communes, as global ids.
4. **Analysis** — neighbouring communes are grouped (:func:`partition_groups`);
   each group goes through the executor (:func:`analyse_group`: serially, in a
   worker process while this one writes the previous group, or on a Dask
   cluster) with the context selected around it: indicators and scores are those
   of the one-pass build (same functions). Land units and candidate sites closed
   inside the group are made there; those that may reach across its edge are
   held and made once every group is scored, from the edges between communes and
   the edges among the parcels held. Rows are appended to the GeoPackage in
   batches (:class:`LayerBuffer`).
5. **ZAE** — the largest available area per zone from the same graph, then the
   inventory from the units and buildings met by the zones.

Layer checksums are summed batch by batch (:func:`row_hashes`), so they equal
those of a one-pass build of the same inputs.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import isin_sorted, unique_int
from observatoire.config import Territory
from observatoire.errors import SourceError
from observatoire.geopackage import GeoPackageWriter, combine_checksum, row_hashes
from observatoire.memory import trim
from observatoire.progress import Progress, track
from observatoire.readers.cadastre import dedupe_parcels, read_parcelles
from observatoire.readers.lineage import SourceReport, checksum_files, merge_reports
from observatoire.schema import LINEAGE, PARCELLES, conform

log = logging.getLogger(__name__)

#: ``options.partition = "auto"`` builds by partition when the parcel files weigh more.
PARTITION_AUTO_BYTES = 16 * 2**20
#: Parcels of the map (the best scored), as in the one-pass build.
IDU_BYTES = "S14"


def by_partition(territory: Territory) -> bool:
    """Whether ``territory`` is built by partition (``options.partition``).

    ``commune`` always, ``aucune`` never, ``auto`` (the default) when the parcel
    files weigh more than :data:`PARTITION_AUTO_BYTES` (about 200,000 parcels of
    gzipped Etalab GeoJSON: beyond an intercommunality).
    """
    mode = territory.options.partition
    if mode != "auto":
        return mode == "commune"
    source = territory.source("parcelles")
    size = sum(p.stat().st_size for p in source.paths) if source else 0
    return size > PARTITION_AUTO_BYTES


# --------------------------------------------------------------------------- staging


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


def _portable(source: Any) -> Any:
    """Return ``source`` picklable, to send to worker processes (a read-only mapping is not)."""
    return replace(source, fields=dict(source.fields))


def stage_group(task: tuple[int, tuple[Path, ...]], shared: tuple[Any, ...]) -> StagedGroup:
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


def stage_parcels(territory: Territory, folder: Path, *, executor: Any = None,
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
    from observatoire.executor import SerialExecutor

    source = territory.source("parcelles")
    assert source is not None  # required by the territory file
    communes: dict[str, Commune] = {}
    reports: list[SourceReport] = []
    idus: list[np.ndarray] = []
    executor = executor or SerialExecutor()
    groups = _file_groups(source.paths, STAGE_BYTES)
    shared = (_portable(source), territory.crs, territory.path.parent,
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


# --------------------------------------------------------------------------- contiguity


@dataclass
class Graph:
    """Contiguity edges on global ids (``a < b``, sorted by ``a`` then ``b``)."""

    a: np.ndarray
    b: np.ndarray

    @classmethod
    def of(cls, pairs: list[np.ndarray], n: int) -> Graph:
        """Merge pair arrays (2, m) of global ids, each edge once."""
        allp = np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), np.int64)
        lo, hi = np.minimum(allp[0], allp[1]), np.maximum(allp[0], allp[1])
        key = unique_int(lo.astype(np.int64) * n + hi)
        return cls(a=key // n, b=key % n)

    def leaving(self, gids: np.ndarray) -> np.ndarray:
        """Return the ids of ``gids`` (sorted) having an edge to a parcel outside ``gids``."""
        in_a, in_b = isin_sorted(self.a, gids), isin_sorted(self.b, gids)
        return unique_int(np.concatenate([self.a[in_a & ~in_b], self.b[in_b & ~in_a]]))

    def within(self, gids: np.ndarray) -> np.ndarray:
        """Positional pairs (into ``gids``, sorted) of the edges inside ``gids``."""
        if not len(gids) or not len(self.a):
            return np.zeros((2, 0), np.int64)
        i = np.minimum(np.searchsorted(gids, self.a), len(gids) - 1)
        j = np.minimum(np.searchsorted(gids, self.b), len(gids) - 1)
        ok = (gids[i] == self.a) & (gids[j] == self.b)
        return np.stack([i[ok], j[ok]]).astype(np.int64)


def _boxes(staged: Staged, commune: Commune) -> tuple[np.ndarray, np.ndarray]:
    """IDUs and bounds of a commune's staged parcels, from the GeoParquet bounding boxes."""
    import pyarrow.parquet as pq

    idu, box = [], []
    for path in commune.files:
        table = pq.read_table(path, columns=["idu", "bbox"])
        bb = table.column("bbox").combine_chunks()
        box.append(np.column_stack([bb.field(k).to_numpy(zero_copy_only=False)
                                    for k in ("xmin", "ymin", "xmax", "ymax")]))
        idu.append(table.column("idu").to_numpy().astype(object))
    return np.concatenate(idu), np.concatenate(box).astype("float64")


def _geometries(staged: Staged, commune: Commune, idu: np.ndarray) -> gpd.GeoDataFrame:
    """Read some parcels of a commune (``idu``, geometry), one per IDU, in IDU order."""
    wanted = sorted(set(idu))
    frames = [gpd.read_parquet(p, columns=["idu", "contenance", LINEAGE, "geometry"],
                               filters=[("idu", "in", wanted)]) for p in commune.files]
    frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                             crs=frames[0].crs)
    if len(commune.files) > 1:
        frame = dedupe_parcels(frame, SourceReport("parcelles", [], ""))
    return frame.sort_values("idu", kind="stable").reset_index(drop=True)


#: Communes whose parcel boxes are kept between two neighbours.
CACHE_COMMUNES = 32


def cross_pairs(staged: Staged, *, tolerance: float, progress: Progress | None = None
                ) -> Graph:
    """Contiguous parcels of different communes, on global ids.

    The candidates come from the GeoParquet bounding boxes of neighbouring
    communes (no geometry decoded); only they are read and tested, with the same
    test as the one-pass build (:func:`~observatoire.analysis.units.contiguity_pairs`).
    ``progress`` counts the communes.
    """
    from observatoire.analysis.units import contiguity_pairs

    n = len(staged.idu)
    grow = np.array([-tolerance, -tolerance, tolerance, tolerance])
    bounds = np.array([c.bounds for c in staged.communes]) + grow
    tree = shapely.STRtree(shapely.box(*bounds.T))
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pairs: list[np.ndarray] = []
    for k, commune in enumerate(track(progress, staged.communes, total=len(staged.communes),
                                      label="communes")):
        later = [int(j) for j in np.sort(tree.query(shapely.box(*bounds[k]))) if j > k]
        if not later:
            cache.pop(k, None)
            continue
        own_idu, own_box = cache.pop(k, None) or _boxes(staged, commune)
        own = shapely.box(*(own_box + grow).T)
        own_tree = shapely.STRtree(own)
        picked_own: set[str] = set()
        picked: list[tuple[int, np.ndarray]] = []
        for j in later:
            if j not in cache:
                cache[j] = _boxes(staged, staged.communes[j])
            f_idu, f_box = cache[j]
            near = np.flatnonzero((f_box[:, 0] <= bounds[k, 2]) & (f_box[:, 2] >= bounds[k, 0])
                                  & (f_box[:, 1] <= bounds[k, 3]) & (f_box[:, 3] >= bounds[k, 1]))
            if not len(near):
                continue
            fi, oi = own_tree.query(shapely.box(*f_box[near].T))
            if not len(fi):
                continue
            picked_own.update(own_idu[np.unique(oi)])
            picked.append((j, f_idu[near[np.unique(fi)]]))
        if not picked:
            continue
        frames = [_geometries(staged, commune, np.array(sorted(picked_own), dtype=object))]
        frames += [_geometries(staged, staged.communes[j], idu) for j, idu in picked]
        gid = np.concatenate([staged.gid(f["idu"]) for f in frames])
        side = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)])
        polys = np.concatenate([np.asarray(f.geometry.values) for f in frames])
        p = contiguity_pairs(polys, tolerance=tolerance)
        p = p[:, (side[p[0]] == 0) != (side[p[1]] == 0)]
        pairs.append(gid[p])
        while len(cache) > CACHE_COMMUNES:  # bounded: read again if met again
            cache.pop(next(iter(cache)))
    graph = Graph.of(pairs, n)
    log.info("contiguïté entre communes : %d paires", len(graph.a))
    return graph


def open_components(n_local: int, pairs: np.ndarray, nodes: np.ndarray, touching: np.ndarray,
                    same: np.ndarray | None = None) -> np.ndarray:
    """Mask of the ``nodes`` whose component (local edges) holds a ``touching`` node.

    Those components may continue across the partition's edge: they are made once
    the whole graph is known.
    """
    from observatoire.analysis.units import connected_components

    keep = nodes[pairs[0]] & nodes[pairs[1]]
    if same is not None:
        keep &= (same[pairs[0]] >= 0) & (same[pairs[0]] == same[pairs[1]])
    labels = connected_components(n_local, pairs[:, keep])
    open_labels = np.unique(labels[nodes & touching])
    return nodes & np.isin(labels, open_labels)


# --------------------------------------------------------------------------- analysis


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


@dataclass
class Partitioned:
    """What the partitioned analysis gives the build."""

    written: dict[str, LayerSum]
    outputs: dict[str, gpd.GeoDataFrame]
    views: dict[str, gpd.GeoDataFrame]
    tables: dict[str, pd.DataFrame]
    timings: dict[str, float]


#: Parcels analysed together: few calls (each costs a fixed overhead), bounded memory.
PARTITION_PARCELS = 40_000


def partition_groups(communes: list[Commune], *, target: int | None = None
                     ) -> list[list[Commune]]:
    """Group neighbouring communes into partitions of about ``target`` parcels.

    The communes are taken in the Z-order (Morton) of their centres, so that a group
    is compact whatever the order of the INSEE codes (alphabetical in a département).
    """
    target = PARTITION_PARCELS if target is None else target
    centre = np.array([[(c.bounds[0] + c.bounds[2]) / 2, (c.bounds[1] + c.bounds[3]) / 2]
                       for c in communes])
    span = np.maximum(centre.max(axis=0) - centre.min(axis=0), 1.0)
    cell = np.minimum(((centre - centre.min(axis=0)) / span * 65535).astype(np.uint64), 65535)
    order = np.argsort(_morton(cell[:, 0]) | (_morton(cell[:, 1]) << np.uint64(1)),
                       kind="stable")
    groups: list[list[Commune]] = []
    size = target
    for k in order:
        if size + communes[k].count > target and size > 0:
            groups.append([])
            size = 0
        groups[-1].append(communes[k])
        size += communes[k].count
    return groups


def _morton(v: np.ndarray) -> np.ndarray:
    """Spread the 16 low bits of ``v`` to the even bits (Z-order interleaving)."""
    v = v & np.uint64(0xFFFF)
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def analyse_partitions(staged: Staged, layers: Any, extra: Any, territory: Territory,
                       writer: GeoPackageWriter, *, executor: Any = None,
                       buildings: Callable[[tuple[float, float, float, float]],
                                           gpd.GeoDataFrame] | None = None,
                       say: Callable[[str], None] = log.info) -> Partitioned:
    """Analyse the staged communes and write ``parcelles`` and ``unites_foncieres``.

    Parameters
    ----------
    staged
        The staged parcels (:func:`stage_parcels`).
    layers
        The context layers (:class:`observatoire.ingest.Layers`, parcels empty); the
        roads, written by the caller, are let go once indexed.
    extra
        :class:`observatoire.analysis.ExtraInputs`.
    territory
        The territory (profiles, options).
    writer
        The GeoPackage being written.
    executor
        Runs the communes' indicators and scores (serial when ``None``).
    buildings
        Returns the buildings meeting a box, when they are not held in ``layers``
        (streamed to the GeoPackage before).

    Returns
    -------
    Partitioned
        Checksums of the layers written, the other analysis layers (``gisements``,
        ``zae``, ``friches``, ``friches_surfaces``), the views of the parcels needed
        by the publication (the best for the map, those of the ZAE for the CNIG
        export, a light table for the report) and the table of the best sites.
    """
    from observatoire.analysis import analysis_context, friches_of_territory
    from observatoire.analysis.friches import zae_friches
    from observatoire.analysis.limites import commune_outlines
    from observatoire.analysis.units import (
        gisements,
        largest_available,
        meilleurs_sites,
        parcel_owners,
        sort_gisements,
        unit_of_parcel,
        unites_foncieres,
    )
    from observatoire.executor import SerialExecutor
    from observatoire.publish.carte_selection import MAP_MAX_PARCELS, TopScores
    from observatoire.publish.fond import read_background

    clock = time.perf_counter
    timings: dict[str, float] = {}
    opts = territory.options.analysis
    tolerance = opts.tolerance_contiguite
    ctx = analysis_context(layers, extra=extra, profiles=territory.profiles, options=opts)
    first = ctx.profiles[0].name
    classes = dict(ctx.profiles[0].classes)
    has_friches = ctx.friches is not None
    # Written by the caller; from now on held by the context only (indexed for the
    # distances), and not at all in this process once the context is sent to workers.
    layers.routes = layers.routes.iloc[:0].copy()
    owners_table = extra.proprietaires
    absents = extra.proprietaires_absents

    t = clock()
    say("Contiguïté des parcelles entre communes…")
    cross = cross_pairs(staged, tolerance=tolerance, progress=say)
    timings["contiguite"] = clock() - t

    sums = {"parcelles": LayerSum(), "unites_foncieres": LayerSum()}
    out_parcels = LayerBuffer(writer, "parcelles", sums["parcelles"])
    out_units = LayerBuffer(writer, "unites_foncieres", sums["unites_foncieres"])
    zae_tree = shapely.STRtree(np.asarray(layers.zae.geometry.values)) if len(layers.zae) \
        else None
    best = TopScores(f"score_{first}", MAP_MAX_PARCELS)
    # What the end of the analysis, the inventory and the exports need of every group
    # waits on disk: the worker processes are still running, with their own memory.
    sites = Spilled(staged.folder, "gisements")
    held = _Held()       # parcels of land units reaching across a commune's edge
    open_sites = _Held()  # parcels of candidate sites that may do so
    pair_lists: list[np.ndarray] = [np.stack([cross.a, cross.b])]
    zae_units = Spilled(staged.folder, "zae_unites")
    zae_parcels = Spilled(staged.folder, "zae_parcelles")
    zae_rows: list[pd.DataFrame] = []
    zae_buildings = Spilled(staged.folder, "zae_batiments")
    # Links between parcels and friches: decided on the whole territory at the end (an
    # IDU is absent only when no partition holds it).
    friche_links: list[pd.DataFrame] = []
    # Outlines of the communes, for the map's background.
    outlines: list[gpd.GeoDataFrame] = []
    settings = GroupSettings(tolerance=tolerance, profile=first,
                             seuil_bati=opts.seuil_bati_gisement,
                             score_min=opts.score_min_gisement)

    # The tasks given to the executor, in order: its results come back in that order.
    submitted: collections.deque[GroupTask] = collections.deque()
    groups = partition_groups(staged.communes)

    def tasks() -> Iterator[GroupTask]:
        # Read here, in this process, as the executor asks for the next group.
        for group in groups:
            part = staged.group(group, staged.report)
            given = {}
            if buildings is not None:
                pieces = [buildings(tuple(float(v) for v in c.bounds)) for c in group]
                found = pd.concat(pieces) if len(pieces) > 1 else pieces[0]
                given["batiments"] = found[~found.index.duplicated()].sort_index()
            gid = staged.gid(part["idu"])
            submitted.append(GroupTask(
                part=part, bounds=tuple(float(v) for v in part.total_bounds), given=given,
                gid=gid, touching=isin_sorted(gid, cross.leaving(gid)),
                owners=(parcel_owners(part, owners_table, absents=absents)
                        if owners_table is not None else None)))
            yield submitted[-1]

    executor = executor or SerialExecutor()
    t = clock()
    say(f"Indicateurs, notation, unités foncières et gisements : {len(staged.communes)} "
        f"communes…")
    results = executor.imap(analyse_group, tasks(), shared=(ctx, settings))
    del ctx  # kept by the executor as long as it needs it (serial), or sent (workers)
    trim()
    for done in track(say, results, total=len(groups), label="groupes de communes"):
        task = submitted.popleft()
        scored, local, wait, wait_site = done.scored, done.local, done.wait, done.wait_site
        gid, owners = task.gid, task.owners
        # Land units and candidate sites closed inside the group were made by the
        # worker; the parcels of those that may reach across its edge are held until
        # every group is read.
        _buildings_on(_write_units(out_units, done.units, zae_tree, zae_units),
                      task.given.get("batiments"), zae_buildings)
        if wait.any():
            held.add(scored, owners, gid, wait)
            out_parcels.add(scored[~wait])
            best.add(scored[~wait], gid[~wait])
        else:
            out_parcels.add(scored)
            best.add(scored, gid)
        sites.append(done.sites)
        if done.friche_links is not None:
            friche_links.append(done.friche_links)
        # Here, while the workers analyse the next groups (a commune is whole in its group).
        outlines.append(commune_outlines(task.part))
        if wait_site.any():
            open_sites.add(scored, owners, gid, wait_site)

        # What the ZAE, the map and the report need of the parcels.
        in_zae = scored["zae_id"].notna().to_numpy()
        if in_zae.any():
            zae_rows.append(_zae_rows(scored, gid, profile=first,
                                      seuil_bati=opts.seuil_bati_gisement))
        if zae_tree is not None:
            hit = np.unique(zae_tree.query(np.asarray(scored.geometry.values),
                                           predicate="intersects")[0])
            if len(hit):
                zae_parcels.append(scored.iloc[hit][["idu", "friche_id", "geometry"]])
        # The local edges that the held parcels and the ZAE will need at the end.
        need = wait | wait_site | in_zae
        both = need[local[0]] & need[local[1]]
        if both.any():
            pair_lists.append(gid[local[:, both]])
        empty = scored.iloc[:0].copy()
        del done, task, scored
    del results
    executor.release()  # the workers and their copies of the context are done
    trim()
    timings["communes"] = clock() - t

    t = clock()
    say("Unités foncières et gisements à cheval sur plusieurs communes…")
    graph = Graph.of(pair_lists, len(staged.idu))
    if held:
        frame, own, hgid = held.frame()
        units = unites_foncieres(frame, owners=own, pairs=graph.within(hgid))
        frame["uf_id"] = unit_of_parcel(frame, units).to_numpy(dtype=object)
        met = _write_units(out_units, units, zae_tree, zae_units)
        if met is not None and buildings is not None:
            _buildings_on(met, buildings(tuple(met.total_bounds)), zae_buildings)
        out_parcels.add(frame)
        best.add(frame, hgid)
        if open_sites:
            open_sites.set_units(hgid, frame["uf_id"].to_numpy(dtype=object))
    if open_sites:
        frame, own, sgid = open_sites.frame()
        sites.append(gisements(frame, pairs=graph.within(sgid), owners=own,
                               **settings.sites()))
    out_parcels.flush()
    out_units.flush()
    all_sites = sites.load()
    found = [f for f in all_sites if len(f)]
    layer_sites = (sort_gisements(pd.concat(found, ignore_index=True)) if found
                   else all_sites[0])
    del all_sites, found

    zae = layers.zae.copy()
    z = (pd.concat(zae_rows, ignore_index=True).sort_values("_gid", kind="stable")
         .reset_index(drop=True) if zae_rows else _zae_rows(empty, np.empty(0, dtype=np.int64),
                                                             profile=first, seuil_bati=0.0))
    zae["plus_grand_terrain_libre_m2"] = largest_available(
        z["ok"].to_numpy(dtype=bool), z["zae_id"].to_numpy(dtype=object),
        z["inside"].to_numpy(dtype="float64"), graph.within(z["_gid"].to_numpy()), zae)
    timings["unites_gisements"] = clock() - t

    t = clock()
    # Every group gives its links (maybe none) when the territory has friches.
    links = pd.concat(friche_links, ignore_index=True) if has_friches else None
    attached = friches_of_territory(layers, links, idu=staged.idu,
                                    communes=territory.communes)
    for name, values in zae_friches(zae, attached if has_friches else None).items():
        zae[name] = values
    timings["friches"] = clock() - t

    views: dict[str, Any] = {
        "carte": best.result(),
        "nb_parcelles": best.seen,
        "zae": pd.concat(zae_parcels.load(), ignore_index=True) if zae_parcels else None,
        # Read back from the GeoPackage when the report is made, not held till then.
        "rapport": functools.partial(report_columns, writer.tmp),
        # The map's background: communes, and roads and buildings read back when drawn.
        "fond": functools.partial(read_background, writer.tmp, limites=_concat(outlines)),
        "zae_unites_candidates": (pd.concat(zae_units.load(), ignore_index=True) if zae_units
                                  else unites_foncieres(empty)),
    }
    if buildings is not None:
        met = pd.concat(zae_buildings.load()) if zae_buildings else None
        views["batiments_zae"] = (gpd.GeoDataFrame(met[~met.index.duplicated()].sort_index())
                                  if met is not None else None)
    log.info("analyse par commune : %d parcelles, %d unités foncières, %d gisements "
             "(profil %s)", sums["parcelles"].rows, sums["unites_foncieres"].rows,
             len(layer_sites), first)
    return Partitioned(written=sums, outputs={"gisements": layer_sites, "zae": zae,
                                              "friches": attached.friches,
                                              "friches_surfaces": attached.friches_surfaces},
                       views=views,
                       tables={"meilleurs_sites": meilleurs_sites(
                           layer_sites, classes=classes)},
                       timings=timings)


def _concat(frames: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame | None:
    found = [f for f in frames if f is not None and len(f)]
    if not found:
        return None
    return gpd.GeoDataFrame(pd.concat(found, ignore_index=True), crs=found[0].crs)


@dataclass(frozen=True)
class GroupSettings:
    """What :func:`analyse_group` needs besides the context (sent once per worker)."""

    tolerance: float
    profile: str
    seuil_bati: float
    score_min: float

    def sites(self) -> dict[str, Any]:
        """Arguments of :func:`observatoire.analysis.units.gisements`."""
        return {"profile": self.profile, "seuil_bati": self.seuil_bati,
                "score_min": self.score_min}


@dataclass
class GroupTask:
    """A group of communes to analyse: its parcels and what is known around them."""

    part: gpd.GeoDataFrame
    bounds: tuple[float, float, float, float]
    #: Context layers given for this group (``{"batiments": …}`` when streamed).
    given: dict[str, Any]
    #: Global ids of the parcels.
    gid: np.ndarray
    #: The parcels with an edge to another commune.
    touching: np.ndarray
    owners: pd.DataFrame | None


@dataclass
class GroupDone:
    """The analysis of a group (see :func:`analyse_group`)."""

    #: The parcels with fields, ``uf_id`` (``None`` while held), indicators and scores.
    scored: gpd.GeoDataFrame
    #: Land units and candidate sites closed inside the group.
    units: gpd.GeoDataFrame
    sites: gpd.GeoDataFrame
    #: Contiguity among the group's parcels (pairs of positions).
    local: np.ndarray
    #: Parcels of units, and of sites, that may reach across the group's edge.
    wait: np.ndarray
    wait_site: np.ndarray
    #: Links between the group's parcels and the friches (``None`` without friches).
    friche_links: pd.DataFrame | None = None


def analyse_group(task: GroupTask, shared: tuple[Any, GroupSettings]) -> GroupDone:
    """Analyse a group of communes: the work of the executor's workers.

    Indicators and scores (:func:`observatoire.analysis.partition_task`), the
    contiguity among the group's parcels, and the land units and candidate sites
    that close inside the group; the parcels of those that may continue across
    its edge (a component holding a ``touching`` parcel) are marked to be held.
    """
    from observatoire.analysis import partition_task, scored_frame
    from observatoire.analysis.friche_links import friche_links
    from observatoire.analysis.geometry import geoms
    from observatoire.analysis.units import (
        contiguity_pairs,
        eligible,
        gisements,
        unit_of_parcel,
        unites_foncieres,
    )

    ctx, settings = shared
    part, owners, touching = task.part, task.owners, task.touching
    ind, _avail, scores = partition_task((part, task.bounds, task.given), ctx)
    local = contiguity_pairs(geoms(part), tolerance=settings.tolerance)
    if owners is None:
        units = unites_foncieres(part)
        wait = np.zeros(len(part), dtype=bool)
    else:
        key = pd.factorize(owners["cle"])[0]
        wait = open_components(len(part), local, key >= 0, touching, same=key)
        rows = np.flatnonzero(~wait)
        units = unites_foncieres(part.iloc[rows], owners=owners.iloc[rows],
                                 pairs=_restrict(local, rows, len(part)))
    uf = np.full(len(part), None, dtype=object)
    uf[~wait] = unit_of_parcel(part[~wait], units).to_numpy(dtype=object)
    scored = scored_frame(part, ind, scores, uf)
    ok = eligible(scored, **settings.sites())
    wait_site = open_components(len(part), local, ok, touching)
    rows = np.flatnonzero(~wait_site)
    sites = gisements(scored.iloc[rows], pairs=_restrict(local, rows, len(part)),
                      owners=owners.iloc[rows] if owners is not None else None,
                      **settings.sites())
    links = None
    if ctx.friches is not None:
        friches, surfaces = ctx.friches_around(task.bounds,
                                               idu=part["idu"].astype(str).to_numpy())
        links = friche_links(part, friches, surfaces).drop(columns="parcelle")
    return GroupDone(scored=scored, units=units, sites=sites, local=local,
                     wait=wait, wait_site=wait_site, friche_links=links)


class Spilled:
    """Frames gathered group by group, kept in files of a folder until loaded.

    The staging folder holds them (deleted with it); pickle keeps their dtypes
    exactly, so the frames loaded are those appended.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.paths: list[Path] = []
        self.first: pd.DataFrame | None = None  # an empty frame, when all are empty

    def __bool__(self) -> bool:
        return bool(self.paths) or self.first is not None

    def append(self, frame: pd.DataFrame) -> None:
        """Keep ``frame`` (empty ones are not written)."""
        if not len(frame):
            if self.first is None and not self.paths:
                self.first = frame
            return
        path = self.folder / f"{self.name}-{len(self.paths):06d}.pkl"
        with open(path, "wb") as f:
            pickle.dump(frame, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.paths.append(path)

    def load(self) -> list[pd.DataFrame]:
        """Return the frames appended, in order (the empty ones only if all were)."""
        frames = []
        for path in self.paths:
            with open(path, "rb") as f:
                frames.append(pickle.load(f))  # noqa: S301 - written above, by this build
        return frames or ([self.first] if self.first is not None else [])


class _Held:
    """Scored parcels (and their owners) kept aside until every commune is analysed."""

    def __init__(self) -> None:
        self.frames: list[gpd.GeoDataFrame] = []
        self.owners: list[pd.DataFrame] = []
        self.gids: list[np.ndarray] = []

    def __bool__(self) -> bool:
        return bool(self.frames)

    def add(self, scored: gpd.GeoDataFrame, owners: pd.DataFrame | None, gid: np.ndarray,
            mask: np.ndarray) -> None:
        """Keep the rows of ``mask``."""
        rows = np.flatnonzero(mask)
        self.frames.append(scored.iloc[rows])
        if owners is not None:
            self.owners.append(owners.iloc[rows])
        self.gids.append(gid[rows])

    def set_units(self, gid: np.ndarray, uf_id: np.ndarray) -> None:
        """Fill the ``uf_id`` of the rows of global ids ``gid`` (sorted)."""
        for frame, g in zip(self.frames, self.gids, strict=True):
            pos = np.searchsorted(gid, g)
            pos = np.minimum(pos, len(gid) - 1)
            hit = gid[pos] == g
            if hit.any():
                values = frame["uf_id"].to_numpy(dtype=object).copy()
                values[hit] = uf_id[pos[hit]]
                frame["uf_id"] = values

    def frame(self) -> tuple[gpd.GeoDataFrame, pd.DataFrame | None, np.ndarray]:
        """Return the rows kept in global id order, their owners and their global ids."""
        gid = np.concatenate(self.gids)
        order = np.argsort(gid, kind="stable")
        frame = pd.concat(self.frames, ignore_index=True).iloc[order].reset_index(drop=True)
        frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=self.frames[0].crs)
        owners = None
        if self.owners:
            owners = pd.concat(self.owners, ignore_index=True).iloc[order].reset_index(
                drop=True)
        return frame, owners, gid[order]


def _restrict(pairs: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Pairs (positions among ``n``) whose two ends are in ``rows``, renumbered."""
    pos = np.full(n, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    i, j = pos[pairs[0]], pos[pairs[1]]
    ok = (i >= 0) & (j >= 0)
    return np.stack([i[ok], j[ok]])


def _write_units(out: LayerBuffer, units: gpd.GeoDataFrame, zae_tree: shapely.STRtree | None,
                 keep: Spilled) -> gpd.GeoDataFrame | None:
    """Queue ``units``; keep (and return) those meeting a ZAE, for the inventory."""
    out.add(units)
    if zae_tree is not None and len(units):
        hit = np.unique(zae_tree.query(np.asarray(units.geometry.values),
                                       predicate="intersects")[0])
        if len(hit):
            keep.append(units.iloc[hit])
            return units.iloc[hit]
    return None


def _buildings_on(units: gpd.GeoDataFrame | None, batiments: gpd.GeoDataFrame | None,
                  keep: Spilled) -> None:
    """Keep the buildings meeting ``units`` (the inventory measures their built area)."""
    if units is None or batiments is None or not len(batiments):
        return
    tree = shapely.STRtree(np.asarray(batiments.geometry.values))
    rows = np.unique(tree.query(np.asarray(units.geometry.values), predicate="intersects")[1])
    if len(rows):
        keep.append(batiments.iloc[rows])


#: Side of the tiles in which the buildings are streamed to the GeoPackage (m).
TILE_SIZE = 20_000.0


def read_tile(tile: Any, shared: tuple[Any, ...]) -> tuple[gpd.GeoDataFrame, SourceReport]:
    """Read the buildings of ``tile`` kept near the territory, and their report.

    The work of the executor's workers while streaming the buildings; ``shared``
    is the source, the territory's CRS and folder, the box read and the extent.
    """
    from observatoire.ingest import keep_near
    from observatoire.readers.layers import read_batiments

    source, crs, base, box, extent = shared
    result = read_batiments(source, crs=crs, base=base, bbox=box, tile=tile)
    return keep_near(result.frame, extent, result.report, "bâtiments"), result.report


def stream_batiments(territory: Territory, writer: GeoPackageWriter, extent: Any,
                     total: LayerSum, *, executor: Any = None,
                     progress: Progress | None = None) -> SourceReport:
    """Read the buildings tile by tile into the ``batiments`` layer; return their report.

    Each building is read once (the tile holding the corner of its box), kept when
    it meets ``extent`` (as the one-pass build does) and appended as it comes. The
    tiles are read through ``executor`` (a worker process reads the next tiles
    while this one writes), serially when ``None``. ``progress`` counts the tiles.
    """
    from observatoire.executor import SerialExecutor
    from observatoire.readers.tiles import tile_grid

    source = territory.source("batiments")
    assert source is not None
    box = tuple(float(v) for v in extent.bounds)
    out = LayerBuffer(writer, "batiments", total)
    reports = []
    executor = executor or SerialExecutor()
    shared = (_portable(source), territory.crs, territory.path.parent, box, extent)
    tiles = tile_grid(box, size=TILE_SIZE)
    for frame, report in track(progress, executor.imap(read_tile, tiles, shared=shared),
                               total=len(tiles), label="tuiles de bâtiments"):
        out.add(frame)
        reports.append(report)
    executor.release()
    out.flush()
    return merge_reports(reports)


@contextlib.contextmanager
def _reading_unpublished() -> Iterator[None]:
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
        with _reading_unpublished():
            return pyogrio.read_dataframe(path, layer=layer, bbox=bounds, columns=[],
                                          use_arrow=True, fid_as_index=True)

    return read


def _zae_rows(scored: gpd.GeoDataFrame, gid: np.ndarray, *, profile: str,
              seuil_bati: float) -> pd.DataFrame:
    """Return what :func:`largest_available` needs of the parcels of a ZAE."""
    from observatoire.analysis.units import available_in_zae

    zid = scored["zae_id"]
    sel = zid.notna().to_numpy()
    ok, inside = available_in_zae(scored, profile=profile, seuil_bati=seuil_bati)
    return pd.DataFrame({"_gid": gid[sel], "zae_id": zid[sel].astype(object).to_numpy(),
                         "ok": ok[sel], "inside": inside[sel]})


def report_columns(path: Path, layer: str = "parcelles") -> pd.DataFrame:
    """Read the columns of the parcels that the report reads (no geometry) from a GeoPackage.

    A build by partition does not hold every parcel: the report reads these few
    columns back from the GeoPackage being written, once the other publications
    are done with their memory.
    """
    import pyogrio

    with _reading_unpublished():
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


#: Start of the name of a staging folder, followed by the build's process id.
STAGING_PREFIX = ".observatoire-partitions-"


def staging_folder(territory: Territory) -> tempfile.TemporaryDirectory[str]:
    """Return a temporary folder beside the outputs for the staged parcels.

    Named after this process (``.observatoire-partitions-<pid>-…``): the folders
    that killed builds left behind are removed first.
    """
    from observatoire.outputs import remove_stale_folders

    territory.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_folders(territory.output_dir, STAGING_PREFIX)
    return tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-",
                                       dir=territory.output_dir)


__all__ = ["PARTITION_AUTO_BYTES", "Partitioned", "Staged", "analyse_partitions",
           "by_partition", "cross_pairs", "stage_parcels", "staging_folder"]
