"""Distance from each geometry of a layer to the nearest geometry of another, exactly.

No nearest-neighbour search per parcel: parcels are grouped in grid cells that share
their candidate targets, settled by bounds on whole arrays, and only the candidates
that may be nearest are measured (:func:`nearest_distance`, :class:`DistanceTargets`
for targets reused by several calls).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from observatoire.analysis.geometry import edges, geoms, ramp, unique_int

#: Parcels per grid cell sharing their nearest-feature candidates (see ``nearest_distance``).
NEAREST_CELL_PARCELS = 16


#: Parcels settled at once by ``nearest_distance`` (bounds the memory of its pair arrays).
_NEAREST_CHUNK = 100_000


def nearest_distance(a: np.ndarray, b: np.ndarray | DistanceTargets, *,
                     cell_parcels: int = NEAREST_CELL_PARCELS) -> np.ndarray:
    """Exact distance from each geometry of ``a`` to the nearest one of ``b``.

    No nearest-neighbour search is made per parcel. The parcels are grouped in
    grid cells of about ``cell_parcels`` parcels; each cell gets, once, the few
    edges of ``b`` that can be nearest to one of its parcels (from bounds of the
    distance between the cell's box and each edge, computed with numpy). Each
    parcel bounds its distance to those edges from its own box; GEOS measures the
    feature of the edge nearest to the box centre, then only the features whose
    lower bound does not exceed that distance: about 1.3 measures per parcel.
    Every pruning step keeps whatever could be nearest (bounds widened by 1 µm
    against rounding), so the result is the GEOS distance to the nearest feature,
    bit for bit what a brute-force minimum gives.

    Parameters
    ----------
    a
        Geometries (parcels); missing or empty ones get NaN.
    b
        Target geometries: points, lines or polygons (a polygon touching a parcel
        is at 0 m), missing or empty ones ignored. A :class:`DistanceTargets` is
        used as it is: its index serves every call, where an array is indexed
        again at each call.
    cell_parcels
        Parcels per grid cell (a speed setting; the result does not depend on it).

    Returns
    -------
    numpy.ndarray
        Distances aligned to ``a``; NaN everywhere when ``b`` holds nothing.
    """
    a = np.asarray(a, dtype=object)
    targets = b if isinstance(b, DistanceTargets) else DistanceTargets(b)
    out = np.full(len(a), np.nan)
    todo = np.flatnonzero(~(shapely.is_missing(a) | shapely.is_empty(a)))
    if len(targets) == 0 or len(todo) == 0:
        return out
    index = targets._indexed()
    out[todo] = index.nearest(a[todo], cell_parcels=max(int(cell_parcels), 1))
    if index.areal_tree is not None:
        # Inside a polygon the distance is 0; elsewhere it is the distance to its rings.
        hit, _ = index.areal_tree.query(a[todo], predicate="intersects")
        out[todo[hit]] = 0.0
    return out


class DistanceTargets:
    """A distance-target layer indexed once for :func:`nearest_distance`.

    A partitioned analysis measures the distance from the parcels of each
    partition to the same whole layers (roads of a class group, railways,
    substations); indexing them once instead of at every call is the point. The
    index (edge arrays grouped by feature, the layer's ``STRtree``, and the
    polygons with their own ``STRtree`` for the "inside a polygon is at 0 m" test)
    is built at the first measure and then kept. Pickling keeps only the
    geometries (the index is rebuilt where they are unpickled, e.g. once per Dask
    worker), and the distances do not depend on it.

    Parameters
    ----------
    geometries
        The target geometries (array, GeoSeries or GeoDataFrame); missing and
        empty ones are dropped.

    Attributes
    ----------
    geometries
        The present target geometries, in layer order.
    """

    def __init__(self, geometries: np.ndarray | gpd.GeoSeries | gpd.GeoDataFrame) -> None:
        b = (geoms(geometries) if isinstance(geometries, (gpd.GeoDataFrame, gpd.GeoSeries))
             else np.asarray(geometries, dtype=object))
        self.geometries: np.ndarray = b[~(shapely.is_missing(b) | shapely.is_empty(b))]
        self._index: _Targets | None = None

    def __len__(self) -> int:
        return len(self.geometries)

    def __repr__(self) -> str:
        return f"DistanceTargets({len(self)} entités)"

    def _indexed(self) -> _Targets:
        """Return the layer's index, built at the first call (not for an empty layer)."""
        index = self._index
        if index is None:
            # Built aside then assigned at once: two threads at worst build it twice.
            index = _Targets(self.geometries)
            self._index = index
        return index

    def __getstate__(self) -> dict[str, np.ndarray]:
        return {"geometries": self.geometries}

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        self.geometries = state["geometries"]
        self._index = None


_AREAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON,
          shapely.GeometryType.GEOMETRYCOLLECTION)


def _slack(x: np.ndarray) -> np.ndarray:
    """Widen a bound far beyond the rounding errors of its computation (1 µm)."""
    return x * (1 + 1e-9) + 1e-6


def _point_edge(px: np.ndarray, py: np.ndarray, ax: np.ndarray, ay: np.ndarray,
                dx: np.ndarray, dy: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Distance from points to the edges A + t·D, t in [0, 1] (``l2`` = |D|²)."""
    ux, uy = px - ax, py - ay
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (ux * dx + uy * dy) / l2
    np.clip(t, 0.0, 1.0, out=t)
    t[~(l2 > 0)] = 0.0
    ux -= t * dx
    uy -= t * dy
    return np.sqrt(ux * ux + uy * uy)


def _box_edge_bounds(box: np.ndarray, ax: np.ndarray, ay: np.ndarray, dx: np.ndarray,
                     dy: np.ndarray, l2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest distance from the points of boxes (k × 4) to edges.

    The largest is reached at a corner (the distance to an edge is convex); the
    smallest, for a box and an edge that do not cross, at a corner or at an end of
    the edge (two disjoint convex sets are nearest at a vertex of one of them).
    """
    x0, y0, x1, y1 = box[:, 0], box[:, 1], box[:, 2], box[:, 3]
    corner = [_point_edge(cx, cy, ax, ay, dx, dy, l2)
              for cx, cy in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    hi = np.maximum(np.maximum(corner[0], corner[1]), np.maximum(corner[2], corner[3]))
    lo = np.minimum(np.minimum(corner[0], corner[1]), np.minimum(corner[2], corner[3]))
    for ex, ey in ((ax, ay), (ax + dx, ay + dy)):
        gap_x = np.maximum(np.maximum(x0 - ex, ex - x1), 0.0)
        gap_y = np.maximum(np.maximum(y0 - ey, ey - y1), 0.0)
        lo = np.minimum(lo, np.sqrt(gap_x * gap_x + gap_y * gap_y))
    test = np.flatnonzero(lo > 0)
    if len(test):
        # Does the edge cross the box? Clip its parameter range to both slabs.
        sx, sy, ex, ey = ax[test], ay[test], dx[test], dy[test]
        t_lo, t_hi = np.zeros(len(test)), np.ones(len(test))
        for s, e, lo_b, hi_b in ((sx, ex, x0[test], x1[test]), (sy, ey, y0[test], y1[test])):
            flat = e == 0
            with np.errstate(invalid="ignore", divide="ignore"):
                t0, t1 = (lo_b - s) / e, (hi_b - s) / e
            outside = flat & ((s < lo_b) | (s > hi_b))
            t_lo = np.where(flat, t_lo, np.maximum(t_lo, np.minimum(t0, t1)))
            t_hi = np.where(flat, t_hi, np.minimum(t_hi, np.maximum(t0, t1)))
            t_hi[outside] = -1.0
        lo[test[t_lo <= t_hi]] = 0.0
    return lo, hi


class _Targets:
    """The edges of a target layer, grouped by feature, and its spatial indexes.

    ``b`` holds present geometries only. ``areal_tree`` indexes its polygons (for
    the parcels inside one), ``None`` when it has none.
    """

    def __init__(self, b: np.ndarray) -> None:
        self.b = b
        self.tree = shapely.STRtree(b)
        areal = b[np.isin(shapely.get_type_id(b), _AREAL)]
        self.areal_tree = shapely.STRtree(areal) if len(areal) else None
        ax, ay, bx, by, feat = edges(b, points=True)
        self.ax, self.ay, self.dx, self.dy, self.feat = ax, ay, bx - ax, by - ay, feat
        self.l2 = self.dx * self.dx + self.dy * self.dy
        self.count = np.bincount(feat, minlength=len(b))
        self.start = np.cumsum(self.count) - self.count

    def bounds(self, box: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance bounds between boxes and the edges ``e``."""
        return _box_edge_bounds(box, self.ax[e], self.ay[e], self.dx[e], self.dy[e], self.l2[e])

    def nearest(self, a: np.ndarray, *, cell_parcels: int) -> np.ndarray:
        """Exact nearest distances of the (present) geometries ``a``."""
        n = len(a)
        box = shapely.bounds(a)
        cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        x0, y0 = cx.min(), cy.min()
        size = np.sqrt(max((cx.max() - x0) * (cy.max() - y0), 1.0) / n * cell_parcels)
        key = (np.floor((cx - x0) / size).astype(np.int64) << 32) + np.floor(
            (cy - y0) / size).astype(np.int64)
        cells, cell_of = np.unique(key, return_inverse=True)
        cand, first, count = self._cell_candidates(box, cell_of, len(cells))
        best = np.full(n, np.inf)
        centre = (cx, cy, np.hypot(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) / 2)
        # Parcels in chunks, in their own order (their geometries are read in memory
        # order): the pair arrays stay a few tens of MB.
        for lo in range(0, n, _NEAREST_CHUNK):
            p = np.arange(lo, min(lo + _NEAREST_CHUNK, n))
            reps = count[cell_of[p]]
            pi = np.repeat(p, reps)
            ei = cand[np.repeat(first[cell_of[p]], reps) + ramp(reps)]
            self._settle(a, box, centre, pi, ei, best)
        return best

    def _cell_candidates(self, box: np.ndarray, cell_of: np.ndarray, k: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Edges that can be nearest to a parcel of each cell: (edges, first, count)."""
        env = np.empty((k, 4))
        env[:, :2], env[:, 2:] = np.inf, -np.inf
        for col, fn in ((0, np.minimum), (1, np.minimum), (2, np.maximum), (3, np.maximum)):
            fn.at(env[:, col], cell_of, box[:, col])
        # Upper bound of the distance from any point of a cell: its centre's nearest
        # feature plus the half-diagonal. A feature whose box lies farther is useless.
        w, h = env[:, 2] - env[:, 0], env[:, 3] - env[:, 1]
        centre = shapely.points(env[:, 0] + w / 2, env[:, 1] + h / 2)
        (ic, _), d = self.tree.query_nearest(centre, return_distance=True, all_matches=False)
        reach = np.full(k, np.inf)
        reach[ic] = d
        reach = _slack(reach + np.hypot(w, h) / 2)
        qc, qf = self.tree.query(shapely.box(env[:, 0] - reach, env[:, 1] - reach,
                                             env[:, 2] + reach, env[:, 3] + reach))
        reps = self.count[qf]
        ci = np.repeat(qc, reps)
        ei = np.repeat(self.start[qf], reps) + ramp(reps)
        lo, hi = self.bounds(env[ci], ei)
        ub = np.full(k, np.inf)
        np.minimum.at(ub, ci, hi)
        keep = lo <= _slack(ub[ci])
        ci, ei = ci[keep], ei[keep]
        order = np.argsort(ci, kind="stable")
        count = np.bincount(ci, minlength=k)
        return ei[order], np.cumsum(count) - count, count

    def _settle(self, a: np.ndarray, box: np.ndarray,
                centre: tuple[np.ndarray, np.ndarray, np.ndarray], pi: np.ndarray,
                ei: np.ndarray, best: np.ndarray) -> None:
        """Exact distances of the parcels of ``pi`` (pairs grouped by parcel) into ``best``."""
        # Bounds from the box centre c and half-diagonal r: d(c, e) ± r.
        cx, cy, half = centre
        half = half[pi]
        dc = _point_edge(cx[pi], cy[pi], self.ax[ei], self.ay[ei], self.dx[ei], self.dy[ei],
                         self.l2[ei])
        ub = np.full(len(best), np.inf)
        np.minimum.at(ub, pi, dc + half)
        keep = dc - half <= _slack(ub[pi])
        pi, fi, dc, half = pi[keep], self.feat[ei[keep]], dc[keep], half[keep]
        ei = ei[keep]
        # GEOS measures the feature of the nearest edge to the centre…
        starts = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]])
        grp = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(pi)]))
        is_min = dc == np.minimum.reduceat(dc, starts)[grp]
        pick = np.full(len(starts), len(pi))
        np.minimum.at(pick, grp[is_min], np.flatnonzero(is_min))
        p1, f1 = pi[pick], fi[pick]
        best[p1] = shapely.distance(a[p1], self.b[f1])
        # … then only the other features that can still be nearer: first by the
        # centre bounds, then by the exact bounds on the parcel's box.
        rest = np.flatnonzero((dc - half <= _slack(best[pi])) & (fi != f1[grp]))
        lo, _ = self.bounds(box[pi[rest]], ei[rest])
        rest = rest[lo <= _slack(best[pi[rest]])]
        if len(rest):
            nb = np.int64(len(self.b))
            key = unique_int(pi[rest].astype(np.int64) * nb + fi[rest])
            rp, rf = key // nb, key % nb
            np.minimum.at(best, rp, shapely.distance(a[rp], self.b[rf]))
