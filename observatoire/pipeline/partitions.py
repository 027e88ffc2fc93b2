"""The analysis by partitions: groups of neighbouring communes analysed through an executor.

Neighbouring communes are grouped into partitions of about
:data:`PARTITION_PARCELS` parcels (:func:`partition_groups`); a small territory is
one partition. Each group goes through the executor (:func:`analyse_group`:
serially, in a worker process while this one writes the previous group, or on a
Dask cluster) with the context selected around it. Land units and candidate sites
closed inside the group are made there; those that may reach across its edge are
held and made once every group is scored, from the edges between communes
(:mod:`observatoire.pipeline.contiguity`) and the edges among the parcels held.
Rows are appended to the GeoPackage in batches
(:class:`~observatoire.geopackage.LayerBuffer`).
"""

from __future__ import annotations

import collections
import functools
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis import (
    AnalysisContext,
    ExtraInputs,
    analysis_context,
    friches_of_territory,
    partition_task,
    scored_frame,
)
from observatoire.analysis.friche_links import friche_links as link_friches
from observatoire.analysis.friches import zae_friches
from observatoire.analysis.geometry import geoms, isin_sorted
from observatoire.analysis.limites import commune_outlines
from observatoire.analysis.units import (
    contiguity_pairs,
    eligible,
    gisements,
    meilleurs_sites,
    parcel_proprietaires,
    sort_gisements,
    unit_of_parcel,
    unites_foncieres,
)
from observatoire.config import Territory
from observatoire.errors import SourceError
from observatoire.executor import Executor, SerialExecutor
from observatoire.geopackage import GeoPackageWriter, LayerBuffer, LayerSum, report_columns
from observatoire.ingest import Layers
from observatoire.memory import trim
from observatoire.pipeline.contiguity import Graph, cross_pairs, open_components
from observatoire.pipeline.spill import Held, Spilled
from observatoire.pipeline.staging import IDU_BYTES, Commune, Staged, group_parcels
from observatoire.progress import track
from observatoire.publish.carte_selection import MAP_MAX_PARCELS, TopScores
from observatoire.publish.fond import read_background
from observatoire.readers.lineage import SourceReport
from observatoire.readers.tiles import as_bbox

if TYPE_CHECKING:
    from observatoire.observation.run import Observed

log = logging.getLogger(__name__)

class Views(TypedDict, total=False):
    """What the publication reads of the parcels besides the layers (let go once read)."""

    #: The parcels drawn on the map (:class:`~observatoire.publish.carte_selection.TopScores`).
    carte: gpd.GeoDataFrame
    #: How many parcels the territory has.
    nb_parcelles: int
    #: The parcels meeting a ZAE (``idu``, ``friche_id``, geometry), or ``None``.
    zae: gpd.GeoDataFrame | None
    #: Reads the parcels' columns the report needs back from the GeoPackage.
    rapport: Callable[[], pd.DataFrame]
    #: Reads the map's background (communes, roads, buildings) back from the GeoPackage.
    fond: Callable[[], dict[str, gpd.GeoDataFrame]]
    #: The land units meeting a ZAE, for the inventory.
    zae_unites_candidates: gpd.GeoDataFrame
    #: The buildings meeting those units, when the buildings are streamed.
    batiments_zae: gpd.GeoDataFrame | None
    #: The build's observation and the evolution since the previous one
    #: (:func:`observatoire.observation.run.observe`).
    observation: Observed


class SiteSettings(TypedDict):
    """Keyword arguments of :func:`observatoire.analysis.units.gisements`."""

    profile: str
    seuil_bati: float
    score_min: float


@dataclass
class Partitioned:
    """What the partitioned analysis gives the build."""

    written: dict[str, LayerSum]
    outputs: dict[str, gpd.GeoDataFrame]
    views: Views
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


def analyse_partitions(staged: Staged, layers: Layers, extra: ExtraInputs,
                       territory: Territory, writer: GeoPackageWriter, *,
                       executor: Executor | None = None, target: int | None = None,
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
    table_proprietaires = extra.proprietaires
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
    held = Held()       # parcels of land units reaching across a commune's edge
    open_sites = Held()  # parcels of candidate sites that may do so
    pair_lists: list[np.ndarray] = [np.stack([cross.a, cross.b])]
    zae_units = Spilled(staged.folder, "zae_unites")
    zae_parcels = Spilled(staged.folder, "zae_parcelles")
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
    submitted: collections.deque[Sent] = collections.deque()
    groups = partition_groups(staged.communes, target=target)
    executor = executor or SerialExecutor()
    # A cluster's workers read their parcels from the staging store themselves: a task
    # carries paths and identifiers, not frames (see GroupFiles).
    remote = getattr(executor, "reads_staging", False)

    def tasks() -> Iterator[GroupTask | GroupFiles]:
        # Read here, in this process, as the executor asks for the next group.
        for k, group in enumerate(groups):
            given = {}
            if buildings is not None:
                pieces = [buildings(as_bbox(c.bounds)) for c in group]
                found = pd.concat(pieces) if len(pieces) > 1 else pieces[0]
                given["batiments"] = found[~found.index.duplicated()].sort_index()
            if remote:
                yield _group_files(staged, group, k, given, cross, submitted)
                continue
            part = staged.group(group, staged.report)
            gid = staged.gid(part["idu"])
            task = GroupTask(
                part=part, bounds=as_bbox(part.total_bounds), given=given,
                gid=gid, touching=isin_sorted(gid, cross.leaving(gid)),
                proprietaires=(parcel_proprietaires(part, table_proprietaires, absents=absents)
                               if table_proprietaires is not None else None))
            submitted.append(Sent(task, given))
            yield task

    t = clock()
    say(f"Indicateurs, notation, unités foncières et gisements : {len(staged.communes)} "
        f"communes…")
    shared = GroupShared(ctx, settings, table_proprietaires if remote else None, absents)
    results = executor.imap(analyse_group, tasks(), shared=shared)
    del ctx, shared  # kept by the executor as long as it needs it (serial), or sent (workers)
    trim()
    for done in track(say, results, total=len(groups), label="groupes de communes"):
        sent = submitted.popleft()
        task = sent.task
        scored, local, wait, wait_site = done.scored, done.local, done.wait, done.wait_site
        if remote:
            # The worker read the parcels: their global ids, owners and duplicates here.
            gid, proprietaires = staged.gid(scored["idu"]), done.proprietaires
            for what, n in done.repairs.items():
                staged.report.count(what, n)
                if "géométrie différente" in what:  # said by the worker, in its own log
                    log.warning("%d parcelles en double avec des géométries différentes "
                                "(la plus grande gardée)", n)
            if sent.batiments_file is not None:
                sent.batiments_file.unlink(missing_ok=True)
        else:
            assert task is not None
            gid, proprietaires = task.gid, task.proprietaires
        # Land units and candidate sites closed inside the group were made by the
        # worker; the parcels of those that may reach across its edge are held until
        # every group is read.
        _buildings_on(_write_units(out_units, done.units, zae_tree, zae_units),
                      sent.given.get("batiments"), zae_buildings)
        if wait.any():
            held.add(scored, proprietaires, gid, wait)
            out_parcels.add(scored[~wait])
            best.add(scored[~wait], gid[~wait])
        else:
            out_parcels.add(scored)
            best.add(scored, gid)
        sites.append(done.sites)
        if done.friche_links is not None:
            friche_links.append(done.friche_links)
        # Here, while the workers analyse the next groups (a commune is whole in its group).
        outlines.append(done.outlines if task is None else commune_outlines(task.part))
        if wait_site.any():
            open_sites.add(scored, proprietaires, gid, wait_site)

        # What the ZAE, the map and the report need of the parcels.
        if zae_tree is not None:
            hit = np.unique(zae_tree.query(np.asarray(scored.geometry.values),
                                           predicate="intersects")[0])
            if len(hit):
                zae_parcels.append(scored.iloc[hit][["idu", "friche_id", "geometry"]])
        # The local edges that the held parcels and the open sites will need at the end.
        need = wait | wait_site
        both = need[local[0]] & need[local[1]]
        if both.any():
            pair_lists.append(gid[local[:, both]])
        empty = scored.iloc[:0].copy()
        del done, task, sent, scored
    del results
    executor.release()  # the workers and their copies of the context are done
    trim()
    timings["communes"] = clock() - t

    t = clock()
    say("Unités foncières et gisements à cheval sur plusieurs communes…")
    graph = Graph.of(pair_lists, len(staged.idu))
    if held:
        frame, own, hgid = held.frame()
        units = unites_foncieres(frame, proprietaires=own, pairs=graph.within(hgid))
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
        sites.append(gisements(frame, pairs=graph.within(sgid), proprietaires=own,
                               **settings.sites()))
    out_parcels.flush()
    out_units.flush()
    all_sites = sites.load()
    found = [f for f in all_sites if len(f)]
    layer_sites = (sort_gisements(pd.concat(found, ignore_index=True)) if found
                   else all_sites[0])
    del all_sites, found

    zae = layers.zae.copy()
    timings["unites_gisements"] = clock() - t

    t = clock()
    # Every group gives its links (maybe none) when the territory has friches.
    links = pd.concat(friche_links, ignore_index=True) if has_friches else None
    attached = friches_of_territory(layers, links, idu=staged.idu,
                                    communes=territory.communes)
    for name, values in zae_friches(zae, attached if has_friches else None).items():
        zae[name] = values
    timings["friches"] = clock() - t

    views: Views = {
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

    def sites(self) -> SiteSettings:
        """Arguments of :func:`observatoire.analysis.units.gisements`."""
        return {"profile": self.profile, "seuil_bati": self.seuil_bati,
                "score_min": self.score_min}


@dataclass
class GroupTask:
    """A group of communes to analyse: its parcels and what is known around them."""

    part: gpd.GeoDataFrame
    bounds: tuple[float, float, float, float]
    #: Context layers given for this group (``{"batiments": …}`` when streamed).
    given: dict[str, gpd.GeoDataFrame]
    #: Global ids of the parcels.
    gid: np.ndarray
    #: The parcels with an edge to another commune.
    touching: np.ndarray
    proprietaires: pd.DataFrame | None


@dataclass
class GroupFiles:
    """A group of communes that the worker reads from the staging store (a Dask cluster).

    Small whatever the group's size (paths and identifiers, not frames): the worker
    reads the parcels (:func:`~observatoire.pipeline.staging.group_parcels`), the
    buildings given for the group and, from the shared :class:`GroupShared`, the owners.
    """

    #: Each commune's staged GeoParquet files.
    files: list[list[Path]]
    #: The buildings meeting the group (GeoParquet in the staging store), when streamed.
    batiments: Path | None
    #: IDUs (:data:`~observatoire.pipeline.staging.IDU_BYTES`, sorted) of the group's
    #: parcels with an edge to a parcel outside it.
    touching: np.ndarray


@dataclass
class Sent:
    """What this process keeps of a group sent to the executor, until its result comes."""

    #: The group with its parcels (``None`` when the worker reads them: GroupFiles).
    task: GroupTask | None
    given: dict[str, gpd.GeoDataFrame]
    #: The buildings' file written for the worker, removed once the group is done.
    batiments_file: Path | None = None


@dataclass(frozen=True)
class GroupShared:
    """What every group reads, sent once to each worker."""

    ctx: AnalysisContext
    settings: GroupSettings
    #: The owner table, when the workers read their parcels (GroupFiles).
    proprietaires: pd.DataFrame | None = None
    absents: str = "inconnu"


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
    #: Read by the worker (GroupFiles): the owners of ``scored``, the communes'
    #: outlines and the duplicates merged while reading.
    proprietaires: pd.DataFrame | None = None
    outlines: gpd.GeoDataFrame | None = None
    repairs: dict[str, int] = field(default_factory=dict)


def analyse_group(task: GroupTask | GroupFiles, shared: GroupShared) -> GroupDone:
    """Analyse a group of communes: the work of the executor's workers.

    Indicators and scores (:func:`observatoire.analysis.partition_task`), the
    contiguity among the group's parcels, and the land units and candidate sites
    that close inside the group; the parcels of those that may continue across
    its edge (a component holding a ``touching`` parcel) are marked to be held.
    A :class:`GroupFiles` is read first (:func:`_read_group`).
    """
    ctx, settings = shared.ctx, shared.settings
    read: dict[str, object] = {}
    if isinstance(task, GroupFiles):
        task, read = _read_group(task, shared)
    part, proprietaires, touching = task.part, task.proprietaires, task.touching
    ind, _avail, scores = partition_task((part, task.bounds, task.given), ctx)
    local = contiguity_pairs(geoms(part), tolerance=settings.tolerance)
    if proprietaires is None:
        units = unites_foncieres(part)
        wait = np.zeros(len(part), dtype=bool)
    else:
        key = pd.factorize(proprietaires["cle"])[0]
        wait = open_components(len(part), local, key >= 0, touching, same=key)
        rows = np.flatnonzero(~wait)
        units = unites_foncieres(part.iloc[rows], proprietaires=proprietaires.iloc[rows],
                                 pairs=_restrict(local, rows, len(part)))
    uf = np.full(len(part), None, dtype=object)
    uf[~wait] = unit_of_parcel(part[~wait], units).to_numpy(dtype=object)
    scored = scored_frame(part, ind, scores, uf)
    ok = eligible(scored, **settings.sites())
    wait_site = open_components(len(part), local, ok, touching)
    rows = np.flatnonzero(~wait_site)
    sites = gisements(scored.iloc[rows], pairs=_restrict(local, rows, len(part)),
                      proprietaires=proprietaires.iloc[rows] if proprietaires is not None else None,
                      **settings.sites())
    links = None
    if ctx.friches is not None:
        friches, surfaces = ctx.friches_around(task.bounds,
                                               idu=part["idu"].astype(str).to_numpy())
        links = link_friches(part, friches, surfaces).drop(columns="parcelle")
    return GroupDone(scored=scored, units=units, sites=sites, local=local,
                     wait=wait, wait_site=wait_site, friche_links=links, **read)  # type: ignore[arg-type]


def _group_files(staged: Staged, group: list[Commune], k: int,
                 given: dict[str, gpd.GeoDataFrame], cross: Graph,
                 submitted: collections.deque[Sent]) -> GroupFiles:
    """Return group ``k`` as paths for a worker, and keep what this process needs of it.

    Only the IDUs are read here (to find the parcels with an edge leaving the
    group); the buildings given for the group are written to the staging store.
    """
    idu = np.unique(np.concatenate([
        pd.read_parquet(path, columns=["idu"])["idu"].to_numpy(dtype=object).astype(IDU_BYTES)
        for c in group for path in c.files]))
    touching = staged.idu[cross.leaving(staged.gid(idu))]
    path = None
    if "batiments" in given:
        path = staged.folder / f"batiments-{k:06d}.parquet"
        given["batiments"].to_parquet(path, index=True, compression=None)
    submitted.append(Sent(None, given, path))
    return GroupFiles(files=[list(c.files) for c in group], batiments=path, touching=touching)


def _read_group(files: GroupFiles, shared: GroupShared) -> tuple[GroupTask, dict[str, object]]:
    """Read a group from the staging store, on the worker (see :class:`GroupFiles`)."""
    report = SourceReport("parcelles", [], "")
    given = {}
    try:
        part = group_parcels(files.files, report)
        if files.batiments is not None:
            given["batiments"] = gpd.read_parquet(files.batiments)
    except OSError as exc:
        # The worker runs on a machine that does not see this build's staging folder.
        raise SourceError(
            f"{files.files[0][0].parent} : dossier intermédiaire illisible depuis le "
            f"travailleur {socket.gethostname()} ({exc}) ; sur un cluster de plusieurs "
            f"machines, placez-le sur un chemin partagé monté au même endroit partout "
            f"(--dossier-intermediaire, options.dossier_intermediaire ou "
            f"OBSERVATOIRE_DOSSIER_INTERMEDIAIRE)") from None
    own = (parcel_proprietaires(part, shared.proprietaires, absents=shared.absents)
           if shared.proprietaires is not None else None)
    idu = part["idu"].to_numpy(dtype=object).astype(IDU_BYTES)
    task = GroupTask(part=part, bounds=as_bbox(part.total_bounds), given=given,
                     gid=np.zeros(0, np.int64), touching=isin_sorted(idu, files.touching),
                     proprietaires=own)
    return task, {"proprietaires": own, "outlines": commune_outlines(part),
                  "repairs": dict(report.repairs)}

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
