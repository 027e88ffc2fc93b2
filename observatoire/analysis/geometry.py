"""Vectorised geometry helpers shared by the indicators, the slope and the contiguity graph.

They read coordinates straight from whole arrays of geometries: the common case
of cadastral parcels, a single polygon without holes, never goes through
``get_parts`` / ``get_rings`` (which copy every geometry); only multi-part
geometries, polygons with holes and collections do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import geopandas as gpd
import numpy as np
import shapely

_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
_COLLECTIONS = (shapely.GeometryType.MULTIPOINT, shapely.GeometryType.MULTILINESTRING,
                shapely.GeometryType.MULTIPOLYGON, shapely.GeometryType.GEOMETRYCOLLECTION)


#: Share of the one or the other of two parcels of two dates that their common part must
#: cover for them to be the same land (lineage, :mod:`observatoire.observation.lineage`;
#: justified in ``docs/observation.md``).
SEUIL_RECOUVREMENT = 0.5
#: Smallest common part linking two parcels (m²): slivers along redrawn limits are not links.
SURFACE_MIN_M2 = 1.0


def same_land(common: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """Whether pieces of two dates with a common part of area ``common`` are the same land.

    The common part covers at least :data:`SEUIL_RECOUVREMENT` of either piece (a
    part of a split lies inside its parent, a merged parcel covers its parts) and
    at least :data:`SURFACE_MIN_M2`.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.maximum(common / area_a, common / area_b)
    return (share >= SEUIL_RECOUVREMENT) & (common >= SURFACE_MIN_M2)


def ramp(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])`` without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def chains(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of every ring, line and point of ``geoms``, cut into chains.

    A chain is a sequence of coordinates whose consecutive pairs are edges: a
    polygon ring (closed), a line, or a single point. Missing and empty geometries
    have none.

    Parameters
    ----------
    geoms
        Any geometries.

    Returns
    -------
    tuple of numpy.ndarray
        ``xy`` (m × 2), ``chain`` (m, the chain of each coordinate; coordinates of a
        chain are consecutive and chains are numbered in order of appearance) and
        ``chain_geom`` (the index in ``geoms`` of each chain).
    """
    geoms = np.asarray(geoms, dtype=object)
    xy, owner = shapely.get_coordinates(geoms, return_index=True)
    if len(xy) == 0:
        return xy, np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    sizes = np.diff(np.r_[starts, len(owner)])
    ends = starts + sizes - 1
    gid = owner[starts]
    kind = shapely.get_type_id(geoms[gid])
    # A polygon whose coordinates hold its first vertex exactly twice, first and last,
    # is a single ring: its exterior, without holes nor other parts. Any other hole
    # or part would repeat a closing vertex.
    first = np.repeat(starts, sizes)
    again = (xy[:, 0] == xy[first, 0]) & (xy[:, 1] == xy[first, 1])
    single_ring = (np.isin(kind, _POLYGONAL) & (np.add.reduceat(again, starts) == 2)
                   & again[ends])
    simple = single_ring | ~np.isin(kind, _COLLECTIONS + _POLYGONAL)
    if simple.all():
        return xy, np.repeat(np.arange(len(starts)), sizes), gid
    keep = np.repeat(simple, sizes)
    fast_xy = xy[keep]
    fast_chain = np.repeat(np.flatnonzero(simple), sizes[simple])
    # The rest: split into parts, then polygons into rings, then read per piece.
    pieces, piece_geom = _pieces(geoms[gid[~simple]])
    slow_xy, slow_piece = shapely.get_coordinates(pieces, return_index=True)
    slow_geom = gid[~simple][piece_geom]
    xy = np.concatenate([fast_xy, slow_xy])
    chain = np.concatenate([fast_chain, len(starts) + slow_piece])
    chain_geom = np.concatenate([gid, slow_geom])
    # Group the chains by geometry, then number them in order of appearance.
    order = np.lexsort((chain, chain_geom[chain]))
    xy, chain = xy[order], chain[order]
    new = np.r_[True, chain[1:] != chain[:-1]]
    return xy, np.cumsum(new) - 1, chain_geom[chain[new]]


def _pieces(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points, lines and polygon rings of ``geoms``, with the index of their geometry."""
    parts, of = geoms, np.arange(len(geoms))
    while True:
        multi = np.isin(shapely.get_type_id(parts), _COLLECTIONS)
        if not multi.any():
            break
        sub, sub_of = shapely.get_parts(parts[multi], return_index=True)
        parts = np.concatenate([parts[~multi], sub])
        of = np.concatenate([of[~multi], of[multi][sub_of]])
    poly = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    rings, ring_of = shapely.get_rings(parts[poly], return_index=True)
    pieces = np.concatenate([parts[~poly], rings])
    owner = np.concatenate([of[~poly], of[poly][ring_of]])
    order = np.argsort(owner, kind="stable")
    return pieces[order], owner[order]


def edges(geoms: np.ndarray, *, points: bool = False
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every edge of the rings and lines of ``geoms``.

    Parameters
    ----------
    geoms
        Any geometries.
    points
        Also return each point (a chain of one coordinate) as a degenerate edge
        whose two ends coincide.

    Returns
    -------
    tuple of numpy.ndarray
        ``x0``, ``y0``, ``x1``, ``y1`` and ``geom`` (index in ``geoms``) of each edge,
        grouped by geometry in increasing order.
    """
    xy, chain, chain_geom = chains(geoms)
    same = chain[:-1] == chain[1:]
    first = np.flatnonzero(same)
    second = first + 1
    if points and len(chain):
        size = np.bincount(chain, minlength=len(chain_geom))
        lone = np.flatnonzero(size[chain] == 1)
        first = np.concatenate([first, lone])
        second = np.concatenate([second, lone])
    geom = chain_geom[chain[first]]
    order = np.argsort(geom, kind="stable")
    first, second, geom = first[order], second[order], geom[order]
    return xy[first, 0], xy[first, 1], xy[second, 0], xy[second, 1], geom


def unique_int(x: np.ndarray) -> np.ndarray:
    """Sorted unique values of an integer array.

    ``np.unique`` hashes integers since numpy 2.3, which is two orders of magnitude
    slower than a sort on millions of pair keys.
    """
    s = np.sort(np.asarray(x))
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def isin_sorted(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``np.isin(x, ref)`` for a sorted ``ref``, by binary search (no sort of ``x``)."""
    if len(ref) == 0:
        return np.zeros(len(x), dtype=bool)
    pos = np.minimum(np.searchsorted(ref, x), len(ref) - 1)
    return ref[pos] == x


@contextmanager
def prepared(*arrays: np.ndarray) -> Iterator[None]:
    """Prepare geometries for the duration of a ``with`` block.

    Preparation is stored on the geometry objects themselves, which the caller
    shares: the geometries this block prepared are released on exit (a prepared
    parcel would slow down later ``dwithin`` tests and hold memory).
    """
    fresh = []
    for arr in arrays:
        arr = np.asarray(arr, dtype=object)
        todo = arr[~shapely.is_prepared(arr) & ~shapely.is_missing(arr)]
        shapely.prepare(todo)
        fresh.append(todo)
    try:
        yield
    finally:
        for todo in fresh:
            shapely.destroy_prepared(todo)


__all__ = ["chains", "edges", "isin_sorted", "prepared", "ramp", "unique_int"]


def geoms(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray:
    """Return the geometries of a layer as a plain array of shapely objects."""
    series = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
    return np.asarray(series.array, dtype=object)
