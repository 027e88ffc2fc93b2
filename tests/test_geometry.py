"""Geometry helpers of the analysis: chains and edges read without get_parts / get_rings."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from observatoire.analysis.geometry import (
    chains,
    edges,
    isin_sorted,
    prepared,
    ramp,
    unique_int,
)


def reference_edges(geoms: np.ndarray) -> set[tuple[float, float, float, float, int]]:
    """Edges of every ring and line, the slow way (parts, then rings)."""
    out = set()
    for k, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        parts = getattr(g, "geoms", [g])
        stack = list(parts)
        while stack:
            p = stack.pop()
            if hasattr(p, "geoms"):
                stack.extend(p.geoms)
                continue
            lines = ([p.exterior, *p.interiors] if p.geom_type == "Polygon" else [p])
            for line in lines:
                xy = list(line.coords)
                out |= {(*a, *b, k) for a, b in zip(xy, xy[1:], strict=False)}
    return out


def as_set(e: tuple[np.ndarray, ...]) -> set[tuple[float, float, float, float, int]]:
    return {(x0, y0, x1, y1, int(g)) for x0, y0, x1, y1, g in zip(*e, strict=True)}


def test_ramp():
    assert ramp(np.array([2, 0, 3])).tolist() == [0, 1, 0, 1, 2]
    assert ramp(np.array([], dtype=int)).tolist() == []


def test_chains_of_every_kind_of_geometry():
    holed = shapely.Polygon(shapely.box(0, 0, 10, 10).exterior.coords,
                            [shapely.box(1, 1, 2, 2).exterior.coords])
    g = np.array([
        shapely.box(0, 0, 1, 1),                                          # fast path
        shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3)]),
        holed,
        None,
        shapely.Point(5, 5),
        shapely.LineString([(0, 0), (1, 0), (1, 1)]),
        shapely.MultiPoint([(0, 0), (1, 1)]),
        shapely.GeometryCollection([shapely.Point(9, 9), shapely.MultiLineString(
            [[(0, 0), (1, 1)], [(2, 2), (3, 3)]])]),
        shapely.MultiPolygon([shapely.box(0, 0, 1, 1)]),                  # fast path
        shapely.Polygon(),
    ], dtype=object)
    xy, chain, chain_geom = chains(g)
    # Chains are numbered in order, grouped by geometry; each holds its coordinates.
    assert chain_geom.tolist() == [0, 1, 1, 2, 2, 4, 5, 6, 6, 7, 7, 7, 8]
    assert np.all(np.diff(chain) >= 0)
    sizes = np.bincount(chain).tolist()
    assert sizes == [5, 5, 5, 5, 5, 1, 3, 1, 1, 1, 2, 2, 5]
    # The hole is its own ring: no edge joins it to the exterior.
    assert as_set(edges(g)) == reference_edges(g)
    # Points appear as degenerate edges only when asked.
    with_points = as_set(edges(g, points=True)) - as_set(edges(g))
    assert with_points == {(5.0, 5.0, 5.0, 5.0, 4), (0.0, 0.0, 0.0, 0.0, 6),
                           (1.0, 1.0, 1.0, 1.0, 6), (9.0, 9.0, 9.0, 9.0, 7)}


def test_ring_revisiting_its_first_vertex_takes_the_slow_path():
    # Two squares touching at (1, 1), written as one polygon whose ring passes twice
    # through that vertex; the first vertex is (1, 1) and reappears mid-ring.
    bow = shapely.Polygon([(1, 1), (2, 1), (2, 2), (1, 2), (1, 1), (0, 1), (0, 0), (1, 0),
                           (1, 1)])
    g = np.array([bow, shapely.box(5, 5, 6, 6)], dtype=object)
    assert as_set(edges(g)) == reference_edges(g)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(1, 50),
                          st.integers(0, 3)), min_size=1, max_size=12))
def test_edges_match_the_parts_and_rings(specs):
    g = []
    for x, y, size, kind in specs:
        square = shapely.box(x, y, x + size, y + size)
        if kind == 0:
            g.append(square)
        elif kind == 1:
            g.append(shapely.MultiPolygon([square, shapely.box(x + 2 * size, y,
                                                               x + 3 * size, y + size)]))
        elif kind == 2:
            g.append(square.buffer(size / 4, quad_segs=2))
        else:
            g.append(shapely.LineString([(x, y), (x + size, y), (x + size, y - size)]))
    arr = np.array(g, dtype=object)
    assert as_set(edges(arr)) == reference_edges(arr)


def test_prepared_releases_only_what_it_prepared():
    a = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], dtype=object)
    shapely.prepare(a[0])
    with prepared(a, np.array([None], dtype=object)):
        assert shapely.is_prepared(a).all()
    # The caller's own preparation is kept; ours is released.
    assert shapely.is_prepared(a).tolist() == [True, False]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-50, 10**12), max_size=40), st.lists(st.integers(-50, 10**12),
                                                                  max_size=40))
def test_unique_and_isin_like_numpy(x, ref):
    x, ref = np.array(x, dtype=np.int64), np.array(ref, dtype=np.int64)
    assert unique_int(x).tolist() == np.unique(x).tolist()
    assert isin_sorted(x, unique_int(ref)).tolist() == np.isin(x, ref).tolist()
