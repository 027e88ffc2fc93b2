"""Contiguity across communes: the edges of the parcel graph between staged communes.

From the GeoParquet boxes of neighbouring communes, only the candidate parcels on
either side of an edge are read and tested (:func:`cross_pairs`), with the test of
:func:`~observatoire.analysis.units.contiguity_pairs`: the edges between communes,
as global ids (:class:`Graph`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import shapely

from observatoire.analysis.geometry import isin_sorted, unique_int
from observatoire.analysis.units import connected_components, contiguity_pairs
from observatoire.pipeline.staging import Commune, Staged
from observatoire.progress import Progress, track
from observatoire.readers.cadastre import dedupe_parcels
from observatoire.readers.lineage import SourceReport
from observatoire.schema import LINEAGE

log = logging.getLogger(__name__)


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
        cached = cache.pop(k, None)
        own_idu, own_box = cached if cached is not None else _boxes(staged, commune)
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
    keep = nodes[pairs[0]] & nodes[pairs[1]]
    if same is not None:
        keep &= (same[pairs[0]] >= 0) & (same[pairs[0]] == same[pairs[1]])
    labels = connected_components(n_local, pairs[:, keep])
    open_labels = np.unique(labels[nodes & touching])
    return nodes & np.isin(labels, open_labels)

