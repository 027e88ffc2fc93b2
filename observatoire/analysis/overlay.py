"""Overlaps of two polygon layers without intersecting what need not be.

Pairs where one geometry lies inside the other (a building inside its parcel, a
parcel inside a PLU zone) are found with ``contains_properly`` tests (after a
bounding-box test; a geometry met by many pairs is prepared) and take the smaller
area; only the pairs that cross a boundary are intersected. The engine of the
coverage indicators (:mod:`observatoire.analysis.coverage`), the friche links and
the mutability criteria.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import prepared

#: A geometry is prepared for the overlap tests when it takes part in this many pairs.
_PREPARE_FROM = 4


def overlap_pairs(a: np.ndarray, b: np.ndarray, *, tree: shapely.STRtree | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of overlapping polygons of ``a`` and ``b``, with the overlap area.

    Parameters
    ----------
    a, b
        Arrays of polygons.
    tree
        ``STRtree(a)``, when already built.

    Returns
    -------
    tuple of numpy.ndarray
        ``ia``, ``ib`` (indices into ``a`` and ``b``) and ``area`` (m², > 0), sorted by
        ``ia`` then ``ib``.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    ib, ia = (tree or shapely.STRtree(a)).query(b)
    # Containment needs containing boxes: tested with numpy first. Only the pairs
    # that cross a boundary are intersected. A geometry met by many pairs (a PLU
    # zone) is prepared; preparing one met once (a parcel, a building) costs more
    # than it saves.
    box_a, box_b = shapely.bounds(a)[ia], shapely.bounds(b)[ib]
    many_a = np.bincount(ia, minlength=len(a))[ia] >= _PREPARE_FROM
    many_b = np.bincount(ib, minlength=len(b))[ib] >= _PREPARE_FROM
    area = np.full(len(ia), np.nan)
    with prepared(a[ia[many_a]], b[ib[many_b]]):
        test = np.flatnonzero(np.all(box_b[:, :2] >= box_a[:, :2], axis=1)
                              & np.all(box_b[:, 2:] <= box_a[:, 2:], axis=1))
        b_in_a = test[shapely.contains_properly(a[ia[test]], b[ib[test]])]
        area[b_in_a] = shapely.area(b[ib[b_in_a]])
        test = np.flatnonzero(np.isnan(area) & np.all(box_a[:, :2] >= box_b[:, :2], axis=1)
                              & np.all(box_a[:, 2:] <= box_b[:, 2:], axis=1))
        a_in_b = test[shapely.contains_properly(b[ib[test]], a[ia[test]])]
        area[a_in_b] = shapely.area(a[ia[a_in_b]])
        rest = np.flatnonzero(np.isnan(area))
        flip = many_b[rest]
        hit = np.zeros(len(rest), dtype=bool)
        hit[flip] = shapely.intersects(b[ib[rest[flip]]], a[ia[rest[flip]]])
        hit[~flip] = shapely.intersects(a[ia[rest[~flip]]], b[ib[rest[~flip]]])
        rest = rest[hit]
    if len(rest):
        area[rest] = shapely.area(shapely.intersection(a[ia[rest]], b[ib[rest]]))
    keep = area > 0
    ia, ib, area = ia[keep], ib[keep], area[keep]
    order = np.lexsort((ib, ia))
    return ia[order], ib[order], area[order]


def covered_share(a: np.ndarray, b: np.ndarray, *, tree: shapely.STRtree | None = None
                  ) -> np.ndarray:
    """Share of each polygon of ``a`` covered by the union of the polygons of ``b``.

    Overlapping polygons of ``b`` are counted once: the pieces falling in the same
    polygon of ``a`` are unioned before their area is taken; ``tree`` is
    ``STRtree(a)`` when already built.

    Returns
    -------
    numpy.ndarray
        Shares in [0, 1], aligned to ``a`` (0 where nothing overlaps).
    """
    n = len(a)
    out = np.zeros(n)
    if n == 0 or len(b) == 0:
        return out
    tree_a = tree or shapely.STRtree(a)
    ib, ia = tree_a.query(b, predicate="intersects")
    if len(ia) == 0:
        return out
    whole = np.zeros(n, dtype=bool)
    cb, ca = tree_a.query(b, predicate="covers")
    whole[ca] = True
    keep = ~whole[ia]
    ia, ib = ia[keep], ib[keep]
    counts = np.bincount(ia, minlength=n)
    single = counts[ia] == 1
    area_a = shapely.area(a)
    covered = np.zeros(n)
    if single.any():
        covered[ia[single]] = shapely.area(shapely.intersection(a[ia[single]], b[ib[single]]))
    multi = ~single
    if multi.any():
        order = np.argsort(ia[multi], kind="stable")
        ia_m, ib_m = ia[multi][order], ib[multi][order]
        pieces = shapely.intersection(a[ia_m], b[ib_m])
        groups, first = np.unique(ia_m, return_inverse=True)
        # buffer(0) of a collection is the union of its members: overlaps count once.
        merged = shapely.buffer(shapely.geometrycollections(pieces, indices=first), 0)
        covered[groups] = shapely.area(merged)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(area_a > 0, covered / area_a, 0.0)
    out = np.clip(share, 0.0, 1.0)
    out[whole] = 1.0
    return out


def dominant_overlap(ia: np.ndarray, ib: np.ndarray, area: np.ndarray, n: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """For each ``a``, the ``b`` of largest overlap (−1 when none) and that area."""
    best = np.full(n, -1, dtype=np.int64)
    best_area = np.zeros(n)
    if len(ia) == 0:
        return best, best_area
    order = np.lexsort((ib, -area, ia))
    first = order[np.r_[True, ia[order][1:] != ia[order][:-1]]]
    best[ia[first]] = ib[first]
    best_area[ia[first]] = area[first]
    return best, best_area


def take_or_null(values: pd.Series, index: np.ndarray, out_index: pd.Index, name: str) -> pd.Series:
    """``values[index]`` with NULL where ``index`` is −1, as an object or float Series."""
    arr = values.astype(object).where(values.notna(), None).to_numpy(dtype=object)
    ok = index >= 0
    out = np.full(len(index), None, dtype=object)
    out[ok] = arr[index[ok]]
    return pd.Series(out, index=out_index, name=name, dtype=object)
