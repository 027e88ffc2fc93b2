"""Shape indicators of a parcel: compactness, useful width, room for a square footprint.

Pure, vectorised functions of the parcels alone (canonical ``parcelles`` layer), each
returning a Series indexed like the parcels.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import geoms, prepared

#: Side of the square footprint tested by ``emprise_50m`` (m).
FOOTPRINT_SIDE = 50.0


def compacite(parcelles: gpd.GeoDataFrame) -> pd.Series:
    """Polsby-Popper compactness 4πA/P² (1 for a disc, ≈ 0.785 for a square).

    Parameters
    ----------
    parcelles
        The parcels.

    Returns
    -------
    pandas.Series
        ``compacite`` in [0, 1]; NaN for empty geometries.
    """
    g = geoms(parcelles)
    area = shapely.area(g)
    perim = shapely.length(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(perim > 0, 4 * np.pi * area / perim**2, np.nan)
    return pd.Series(np.clip(value, 0.0, 1.0), index=parcelles.index, name="compacite")


def largeur_utile(parcelles: gpd.GeoDataFrame) -> pd.Series:
    """Usable width (m): the width of the *equivalent rectangle* of each parcel.

    The equivalent rectangle has the parcel's area *A* and perimeter *P*; its width
    is the smaller root of w² − (P/2)·w + A = 0. It is exact for rectangles and
    strips (the commonest cadastral shapes) and for L shapes of equal arms, and
    errs on the safe side (narrower) for jagged or triangular parcels. A parcel
    more compact than a square (P² < 16·A) gets √A. Computing the largest inscribed
    circle instead costs up to a millisecond per long thin parcel, which the scale
    of a département forbids; the footprint test :func:`emprise_possible` is exact
    where it matters.

    Parameters
    ----------
    parcelles
        The parcels.

    Returns
    -------
    pandas.Series
        ``largeur_utile_m``; NaN for empty geometries.
    """
    g = geoms(parcelles)
    area = shapely.area(g)
    half = shapely.length(g) / 2
    disc = half**2 - 4 * area
    with np.errstate(invalid="ignore"):
        width = np.where(disc > 0, (half - np.sqrt(np.maximum(disc, 0.0))) / 2, np.sqrt(area))
    width[half <= 0] = np.nan
    return pd.Series(width, index=parcelles.index, name="largeur_utile_m")


def emprise_possible(parcelles: gpd.GeoDataFrame, *, cote: float = FOOTPRINT_SIDE
                     ) -> pd.Series:
    """Whether a ``cote`` × ``cote`` square footprint fits in the parcel.

    The parcel is eroded (negative buffer) by half the side: if nothing is left,
    not even a circle of diameter *c* fits, so no square does. If something is left
    after eroding by c/√2 (the square's circumscribed radius), the square fits in
    any orientation. In between, squares are tested centred on the centroid and on
    a point of the eroded core, in six orientations every 15° from the parcel's
    minimum rotated rectangle, which settles rectangular and trapezoidal parcels
    exactly and other shapes prudently. A 5 cm tolerance absorbs rounding.

    Parameters
    ----------
    parcelles
        The parcels.
    cote
        Side of the footprint (m).

    Returns
    -------
    pandas.Series
        ``emprise_50m`` (bool).
    """
    g = geoms(parcelles)
    fits = np.zeros(len(g), dtype=bool)
    tol = 0.05
    cand = np.flatnonzero(shapely.area(g) >= (cote - 2 * tol) ** 2)
    if len(cand):
        # Cheap necessary condition first: the square's width in every direction, so
        # the minimum rotated rectangle must be at least ``cote`` wide.
        rect = shapely.get_coordinates(shapely.minimum_rotated_rectangle(g[cand]))
        rect = rect.reshape(-1, 5, 2)
        width = np.minimum(np.hypot(*(rect[:, 1] - rect[:, 0]).T),
                           np.hypot(*(rect[:, 2] - rect[:, 1]).T))
        wide = width >= cote - 2 * tol
        cand, rect, width = cand[wide], rect[wide], width[wide]
    if len(cand):
        core = shapely.buffer(g[cand], -(cote / 2 - tol))
        alive = ~shapely.is_empty(core)
        cand, core, rect, width = cand[alive], core[alive], rect[alive], width[alive]
    if len(cand):
        # A disc of radius c/√2 fits only in a parcel at least c·√2 wide; the 1 m margin
        # on the radius covers the buffer's arc approximation (under 0.2 m here).
        deep = np.zeros(len(cand), dtype=bool)
        maybe = np.flatnonzero(width >= 2 * (cote / np.sqrt(2) - tol - 1.0))
        deep[maybe] = ~shapely.is_empty(shapely.buffer(core[maybe],
                                                       -(cote / np.sqrt(2) - cote / 2)))
        fits[cand[deep]] = True
        band = ~deep
        if band.any():
            fits[cand[band]] = _square_fits(g[cand[band]], core[band], rect[band],
                                            cote / 2 - tol)
    return pd.Series(fits, index=parcelles.index, name="emprise_50m")


def _square_fits(polys: np.ndarray, cores: np.ndarray, rect: np.ndarray, half: float
                 ) -> np.ndarray:
    """Whether a square of half-side ``half`` centred in ``cores`` fits in ``polys``.

    ``rect`` holds the coordinates of each polygon's minimum rotated rectangle,
    whose orientation is tried first; each polygon is tested until a square fits.
    """
    edge = rect[:, 1] - rect[:, 0]
    base = np.arctan2(edge[:, 1], edge[:, 0])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float) * half
    found = np.zeros(len(polys), dtype=bool)
    with prepared(polys):
        for centre in (shapely.centroid(cores), shapely.point_on_surface(cores)):
            xy = shapely.get_coordinates(centre)
            for k in range(6):
                todo = np.flatnonzero(~found)
                if not len(todo):
                    return found
                theta = base[todo] + np.deg2rad(15.0 * k)
                cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
                x = xy[todo, 0][:, None] + corners[:, 0] * cos - corners[:, 1] * sin
                y = xy[todo, 1][:, None] + corners[:, 0] * sin + corners[:, 1] * cos
                squares = shapely.polygons(np.stack([x, y], axis=-1))
                # ``covers`` with the prepared parcel first (``covered_by`` would not use it).
                found[todo] = shapely.covers(polys[todo], squares)
    return found
