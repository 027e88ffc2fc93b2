"""Indicators of what covers a parcel: buildings, PLU zone, ZAE, constraint layers.

Each function takes the parcels and one context layer and returns a Series or a
DataFrame indexed like the parcels, computed with the overlaps of
:mod:`observatoire.analysis.overlay`.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import geoms
from observatoire.analysis.overlay import (
    covered_share,
    dominant_overlap,
    overlap_pairs,
    take_or_null,
)

#: A building counts on a parcel holding this share of its footprint, or this area (m²).
BUILDING_MIN_SHARE = 0.1


BUILDING_MIN_AREA = 20.0


def bati(parcelles: gpd.GeoDataFrame, batiments: gpd.GeoDataFrame, *,
         tree: shapely.STRtree | None = None) -> pd.DataFrame:
    """Built share and number of buildings of each parcel.

    A building counts on a parcel holding at least 10 % or 20 m² of its footprint,
    so the slivers due to the offset between BD TOPO and the cadastre are ignored.
    The built share sums the buildings' overlaps (BD TOPO buildings do not overlap
    each other), capped at 1.

    Parameters
    ----------
    parcelles
        The parcels.
    batiments
        Building footprints.
    tree
        ``STRtree`` of the parcels' geometries (in their order), when already built.

    Returns
    -------
    pandas.DataFrame
        ``part_batie`` (0–1) and ``nb_batiments`` (int).
    """
    a, b = geoms(parcelles), geoms(batiments)
    n = len(a)
    ia, ib, area = overlap_pairs(a, b, tree=tree)
    area_a = shapely.area(a)
    # Summed in the order of the areas, not of the layer: the same float whatever the
    # buildings' order (a partitioned build reads them in another order).
    order = np.lexsort((area, ia))
    built = np.bincount(ia[order], weights=area[order], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(area_a > 0, np.clip(built / area_a, 0.0, 1.0), 0.0)
    b_area = shapely.area(b)
    counted = (area >= BUILDING_MIN_AREA) | (area >= BUILDING_MIN_SHARE * b_area[ib])
    count = np.bincount(ia[counted], minlength=n)
    return pd.DataFrame({"part_batie": share, "nb_batiments": count.astype(np.int64)},
                        index=parcelles.index)


def zonage_dominant(parcelles: gpd.GeoDataFrame, zonage: gpd.GeoDataFrame, *,
                    tree: shapely.STRtree | None = None) -> pd.DataFrame:
    """PLU zone covering the largest part of each parcel.

    Parameters
    ----------
    parcelles
        The parcels.
    zonage
        The canonical ``zonage`` layer (``libelle``, ``typezone``, ``zone_activite``).
    tree
        ``STRtree`` of the parcels' geometries (in their order), when already built.

    Returns
    -------
    pandas.DataFrame
        ``zone_libelle``, ``zone_typezone``, ``zone_activite`` (nullable boolean):
        NULL for a parcel no zone touches.
    """
    a = geoms(parcelles)
    ia, ib, area = overlap_pairs(a, geoms(zonage), tree=tree)
    best, _ = dominant_overlap(ia, ib, area, len(a))
    idx = parcelles.index
    activite = pd.array(np.zeros(len(a), dtype=bool), dtype="boolean")
    ok = best >= 0
    flags = zonage["zone_activite"].to_numpy(dtype=bool)
    activite[ok] = flags[best[ok]]
    activite[~ok] = pd.NA
    return pd.DataFrame({
        "zone_libelle": take_or_null(zonage["libelle"], best, idx, "zone_libelle"),
        "zone_typezone": take_or_null(zonage["typezone"], best, idx, "zone_typezone"),
        "zone_activite": pd.Series(activite, index=idx),
    })


def zae_dominante(parcelles: gpd.GeoDataFrame, zae: gpd.GeoDataFrame, *,
                  tree: shapely.STRtree | None = None) -> pd.DataFrame:
    """Find the business zone holding the largest part of each parcel, and that share.

    ``tree`` is the ``STRtree`` of the parcels' geometries, when already built.

    Returns
    -------
    pandas.DataFrame
        ``zae_id`` (NULL outside every zone) and ``part_zae`` (0–1, 0 outside).
    """
    a = geoms(parcelles)
    ia, ib, area = overlap_pairs(a, geoms(zae), tree=tree)
    best, best_area = dominant_overlap(ia, ib, area, len(a))
    area_a = shapely.area(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(area_a > 0, np.clip(best_area / area_a, 0.0, 1.0), 0.0)
    return pd.DataFrame({"zae_id": take_or_null(zae["zae_id"], best, parcelles.index, "zae_id"),
                         "part_zae": share}, index=parcelles.index)


def part_contrainte(parcelles: gpd.GeoDataFrame, contrainte: gpd.GeoDataFrame, *,
                    tree: shapely.STRtree | None = None) -> pd.Series:
    """Share of each parcel inside a constraint layer (overlapping polygons counted once).

    ``tree`` is the ``STRtree`` of the parcels' geometries, when already built.
    """
    return pd.Series(covered_share(geoms(parcelles), geoms(contrainte), tree=tree),
                     index=parcelles.index)
