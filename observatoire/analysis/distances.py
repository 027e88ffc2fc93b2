"""Distance indicators of a parcel: to each class of road, to the nearest of a layer.

Each returns a Series or a DataFrame indexed like the parcels; distances are exact
(:mod:`observatoire.analysis.nearest`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from observatoire.analysis.geometry import geoms
from observatoire.analysis.nearest import DistanceTargets, nearest_distance
from observatoire.sources import DISTANCE_INDICATORS

#: Road classes of the ``routes`` layer, from the strongest.
ROAD_CLASSES = ("autoroute", "principale", "secondaire", "locale")


#: Default road distances: indicator suffix → road classes it measures.
DEFAULT_CLASSES_ROUTES: Mapping[str, tuple[str, ...]] = {c: (c,) for c in ROAD_CLASSES}


def distance_plus_proche(parcelles: gpd.GeoDataFrame,
                         cibles: gpd.GeoDataFrame | gpd.GeoSeries | np.ndarray | DistanceTargets,
                         *, name: str) -> pd.Series:
    """Distance (m) from each parcel to the nearest feature of ``cibles``.

    Parameters
    ----------
    parcelles
        The parcels.
    cibles
        Roads, railways, substations… (any geometry type): a layer, an array of
        geometries, or a layer indexed once by :class:`DistanceTargets` (the same
        result, without indexing it again).
    name
        Name of the returned Series.

    Returns
    -------
    pandas.Series
        0 for a parcel touching a feature; NaN for every parcel when ``cibles`` is
        empty (nothing within the layer's extent).
    """
    b = cibles if isinstance(cibles, (np.ndarray, DistanceTargets)) else geoms(cibles)
    return pd.Series(nearest_distance(geoms(parcelles), b), index=parcelles.index, name=name)


def distances_routes(parcelles: gpd.GeoDataFrame, routes: gpd.GeoDataFrame, *,
                     classes: Mapping[str, Sequence[str]] = DEFAULT_CLASSES_ROUTES,
                     cibles: Mapping[str, DistanceTargets] | None = None) -> pd.DataFrame:
    """Distance to the nearest road of each configured class group.

    Parameters
    ----------
    parcelles
        The parcels.
    routes
        The canonical ``routes`` layer (``classe``).
    classes
        Indicator suffix → road classes measured, e.g. ``{"principale":
        ["autoroute", "principale"]}`` gives ``dist_route_principale_m``.
    cibles
        Road groups already indexed, by column (:func:`distance_targets`); a group
        missing from it is taken from ``routes``.

    Returns
    -------
    pandas.DataFrame
        One ``dist_route_<suffix>_m`` column per group; NaN when no road of the
        group lies within the layer.
    """
    cibles = cibles or {}
    columns = {f"dist_route_{s}_m": m for s, m in classes.items()}
    built = _road_groups(routes, {c: m for c, m in columns.items() if c not in cibles})
    cols = {c: distance_plus_proche(parcelles, cibles[c] if c in cibles else built[c], name=c)
            for c in columns}
    return pd.DataFrame(cols, index=parcelles.index)


def _road_groups(routes: gpd.GeoDataFrame, columns: Mapping[str, Sequence[str]]
                 ) -> dict[str, np.ndarray]:
    """Return the road geometries of each column's classes (column → classes)."""
    if not columns:
        return {}
    g = geoms(routes)
    cls = routes["classe"].astype(object).to_numpy()
    return {col: g[np.isin(cls, list(members))] for col, members in columns.items()}


def distance_targets(*, routes: gpd.GeoDataFrame | None = None,
                     couches: Mapping[str, gpd.GeoDataFrame] | None = None,
                     classes_routes: Mapping[str, Sequence[str]] = DEFAULT_CLASSES_ROUTES
                     ) -> dict[str, DistanceTargets]:
    """Distance-target layers indexed once, for :func:`compute_indicators` (``cibles``).

    Parameters
    ----------
    routes
        The whole road layer; ``None`` when the territory lacks it (its indicators
        get no entry).
    couches
        Whole layers by source kind; those of a kind with a ``distance`` indicator
        in the registry (:data:`observatoire.sources.DISTANCE_INDICATORS`) are
        indexed, the others ignored.
    classes_routes
        Road distance groups (see :func:`distances_routes`).

    Returns
    -------
    dict
        Indicator column → its targets: ``dist_route_<suffix>_m`` for each group of
        ``classes_routes``, then the distance indicator of each kind given.
    """
    out: dict[str, DistanceTargets] = {}
    if routes is not None:
        columns = {f"dist_route_{s}_m": m for s, m in classes_routes.items()}
        out.update({c: DistanceTargets(g) for c, g in _road_groups(routes, columns).items()})
    couches = couches or {}
    for kind, name in DISTANCE_INDICATORS.items():
        if couches.get(kind) is not None:
            out[name] = DistanceTargets(couches[kind])
    return out
