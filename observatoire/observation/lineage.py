"""Parcel lineage between two cadastre vintages: renumberings, splits, merges.

A parcel keeping its IDU and its exact shape is *inchangée* without any
geometry work. The others are matched by overlap, on candidates found with a
shapely STRtree: an old parcel ``o`` and a new parcel ``n`` are linked when
their intersection covers at least half of either of
them (a piece of a split lies inside its parent, a merged parcel covers its
parts), and at least 1 m² (:func:`observatoire.analysis.geometry.same_land`, whose
thresholds are justified in ``docs/observation.md``).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import same_land

INCHANGEE = "inchangée"
GEOMETRIE_MODIFIEE = "géométrie modifiée"
RENUMEROTEE = "renumérotée"
DIVISEE = "divisée"
FUSIONNEE = "fusionnée"
CREEE = "créée"
SUPPRIMEE = "supprimée"
KINDS = (INCHANGEE, GEOMETRIE_MODIFIEE, RENUMEROTEE, DIVISEE, FUSIONNEE, CREEE, SUPPRIMEE)


def parcel_links(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return the links between old and new parcels (positions and intersection area).

    Parameters
    ----------
    old, new
        Parcels of two vintages with ``idu`` and ``empreinte`` columns, same CRS.

    Returns
    -------
    pandas.DataFrame
        ``i_old``, ``i_new`` (positions) and ``surface_commune_m2``.
    """
    same = _same_parcels(old, new)
    rest_old = np.setdiff1d(np.arange(len(old)), same["i_old"].to_numpy())
    rest_new = np.setdiff1d(np.arange(len(new)), same["i_new"].to_numpy())
    g_old = old.geometry.values[rest_old]
    g_new = new.geometry.values[rest_new]
    tree = shapely.STRtree(g_old)
    j_new, j_old = tree.query(g_new, predicate="intersects")
    inter = shapely.area(shapely.intersection(g_old[j_old], g_new[j_new]))
    keep = same_land(inter, shapely.area(g_old[j_old]), shapely.area(g_new[j_new]))
    matched = pd.DataFrame({"i_old": rest_old[j_old[keep]], "i_new": rest_new[j_new[keep]],
                            "surface_commune_m2": inter[keep]})
    same["surface_commune_m2"] = shapely.area(new.geometry.values[same["i_new"].to_numpy()])
    return pd.concat([same, matched], ignore_index=True)


def parcel_lineage(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return each new parcel's predecessors and kind of change, and the deleted ones.

    Parameters
    ----------
    old, new
        Parcels of two vintages with ``idu`` and ``empreinte`` columns, same CRS.

    Returns
    -------
    pandas.DataFrame
        ``idu`` (new, empty for a deleted parcel), ``idu_precedents`` (comma-separated
        predecessors), ``nb_precedents`` and ``changement`` (one of :data:`KINDS`); one
        row per new parcel, then one per deleted old parcel.
    """
    links = parcel_links(old, new)
    old_idu = old["idu"].to_numpy(dtype=object)
    new_idu = new["idu"].to_numpy(dtype=object)
    n_succ = np.bincount(links["i_old"], minlength=len(old))
    n_pred = np.bincount(links["i_new"], minlength=len(new))
    links["idu_old"] = old_idu[links["i_old"]]
    preds = (links.sort_values(["i_new", "idu_old"]).groupby("i_new")["idu_old"]
             .agg(",".join).reindex(range(len(new))))
    first = links.drop_duplicates("i_new").set_index("i_new")["i_old"].reindex(range(len(new)))
    kind = np.full(len(new), CREEE, dtype=object)
    single = n_pred == 1
    parent = first.to_numpy()[single].astype(int)
    sole = n_succ[parent] == 1
    same_idu = old_idu[parent] == new_idu[single]
    same_shape = old["empreinte"].to_numpy()[parent] == new["empreinte"].to_numpy()[single]
    kind[single] = np.where(~sole, DIVISEE,
                            np.where(~same_idu, RENUMEROTEE,
                                     np.where(same_shape, INCHANGEE, GEOMETRIE_MODIFIEE)))
    kind[n_pred > 1] = FUSIONNEE
    rows = pd.DataFrame({"idu": new_idu, "idu_precedents": preds.to_numpy(),
                         "nb_precedents": n_pred, "changement": kind})
    gone = n_succ == 0
    deleted = pd.DataFrame({"idu": None, "idu_precedents": old_idu[gone],
                            "nb_precedents": 1, "changement": SUPPRIMEE})
    return pd.concat([rows, deleted], ignore_index=True)


def _same_parcels(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> pd.DataFrame:
    """Pairs with the same IDU and the same shape (positions)."""
    a = pd.DataFrame({"idu": old["idu"].to_numpy(), "empreinte": old["empreinte"].to_numpy(),
                      "i_old": np.arange(len(old))})
    b = pd.DataFrame({"idu": new["idu"].to_numpy(), "empreinte": new["empreinte"].to_numpy(),
                      "i_new": np.arange(len(new))})
    return a.merge(b, on=["idu", "empreinte"])[["i_old", "i_new"]]
