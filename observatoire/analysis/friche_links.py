"""Links between parcels and friches, and the friche indicator of each parcel.

A parcel is linked to a friche by its IDU listed in the friche's
``unite_fonciere_refcad``, by the friche's perimeter covering enough of it, or by the
friche's point lying in it (:func:`friche_links`); :func:`friche` keeps, for each
parcel, the friche of its most explicit link.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import geoms
from observatoire.analysis.overlay import overlap_pairs, take_or_null

#: Share of a parcel a friche perimeter must cover for the parcel to belong to it.
FRICHE_MIN_SHARE = 0.25


#: Kinds of link between a parcel and a friche, from the most explicit (see friche_links).
LINK_IDU, LINK_PERIMETER, LINK_POINT = 0, 1, 2


def friche_sites(friches: gpd.GeoDataFrame, friches_surfaces: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return the attributes of every friche once: its point's row, else its perimeter's."""
    sites = pd.concat([pd.DataFrame(friches.drop(columns=friches.geometry.name)),
                       pd.DataFrame(friches_surfaces.drop(
                           columns=friches_surfaces.geometry.name))], ignore_index=True)
    return sites.drop_duplicates("site_id").reset_index(drop=True)


def listed_idus(sites: pd.DataFrame) -> pd.DataFrame:
    """Each IDU listed in a friche's ``unite_fonciere_refcad``: ``site_id``, ``idu``, in order."""
    if "unite_fonciere_refcad" not in sites:
        return pd.DataFrame({"site_id": pd.Series([], dtype=object),
                             "idu": pd.Series([], dtype=object)})
    refs = sites[["site_id", "unite_fonciere_refcad"]].dropna()
    listed = refs.assign(idu=refs["unite_fonciere_refcad"].astype(str).str.split("|")
                         ).explode("idu")
    listed["idu"] = listed["idu"].str.strip()
    listed = listed[listed["idu"].str.len() > 0]
    return pd.DataFrame({"site_id": listed["site_id"].astype(str).to_numpy(dtype=object),
                         "idu": listed["idu"].to_numpy(dtype=object)})


def friche_links(parcelles: gpd.GeoDataFrame, friches: gpd.GeoDataFrame,
                 friches_surfaces: gpd.GeoDataFrame, *, tree: shapely.STRtree | None = None
                 ) -> pd.DataFrame:
    """Every link between a parcel and a friche, and its kind.

    A parcel is linked to a friche when its IDU is listed in the friche's
    ``unite_fonciere_refcad`` (``rang`` 0, :data:`LINK_IDU`), when the friche's
    perimeter covers at least :data:`FRICHE_MIN_SHARE` of it (``rang`` 1), when
    the friche's point lies in it (``rang`` 2). A link depends only on the parcel
    and the friche: links found on parts of the parcels add up to those of all.

    Parameters
    ----------
    parcelles
        The parcels (``idu``, ``surface_m2``, polygons).
    friches, friches_surfaces
        Friche points and perimeters (``site_id``, ``unite_fonciere_refcad``).
    tree
        ``STRtree`` of the parcels' geometries, when already built.

    Returns
    -------
    pandas.DataFrame
        One row per link: ``parcelle`` (position in ``parcelles``), ``idu``,
        ``surface_m2`` (the parcel's), ``site_id``, ``rang`` and ``surface``
        (area of the perimeter on the parcel, 0 for the other kinds), in no
        particular order.
    """
    a = geoms(parcelles)
    pos: list[np.ndarray] = []
    site: list[np.ndarray] = []
    rank: list[np.ndarray] = []
    area: list[np.ndarray] = []
    # 1. IDU listed in unite_fonciere_refcad.
    listed = listed_idus(friche_sites(friches, friches_surfaces))
    if len(listed):
        parcel_idu = pd.Index(parcelles["idu"].astype(str).to_numpy(dtype=object))
        where_idu = parcel_idu.get_indexer(pd.Index(listed["idu"].to_numpy(dtype=object)))
        hit = where_idu >= 0
        pos.append(where_idu[hit])
        site.append(listed["site_id"].to_numpy(dtype=object)[hit])
        rank.append(np.full(int(hit.sum()), LINK_IDU))
        area.append(np.zeros(int(hit.sum())))
    # 2. Perimeter covering at least FRICHE_MIN_SHARE of the parcel. Without the
    # parcels' tree, the friches' (a few) is built instead.
    if len(friches_surfaces) and len(a):
        b = geoms(friches_surfaces)
        if tree is None:
            ib, ia, shared = overlap_pairs(b, a)
        else:
            ia, ib, shared = overlap_pairs(a, b, tree=tree)
        ok = shared / np.maximum(shapely.area(a[ia]), 1e-9) >= FRICHE_MIN_SHARE
        pos.append(ia[ok])
        site.append(friches_surfaces["site_id"].astype(str).to_numpy(dtype=object)[ib[ok]])
        rank.append(np.full(int(ok.sum()), LINK_PERIMETER))
        area.append(shared[ok])
    # 3. Point inside the parcel.
    if len(friches) and len(a):
        pts = geoms(friches)
        if tree is None:
            ia, ip = shapely.STRtree(pts).query(a, predicate="intersects")
        else:
            ip, ia = tree.query(pts, predicate="intersects")
        pos.append(ia)
        site.append(friches["site_id"].astype(str).to_numpy(dtype=object)[ip])
        rank.append(np.full(len(ia), LINK_POINT))
        area.append(np.zeros(len(ia)))
    p = np.concatenate(pos).astype(np.int64) if pos else np.zeros(0, dtype=np.int64)
    surface = (pd.to_numeric(parcelles["surface_m2"], errors="coerce").to_numpy(dtype=float)
               if "surface_m2" in parcelles else shapely.area(a))
    return pd.DataFrame({
        "parcelle": p,
        "idu": parcelles["idu"].astype(str).to_numpy(dtype=object)[p],
        "surface_m2": surface[p],
        "site_id": np.concatenate(site) if site else np.zeros(0, dtype=object),
        "rang": np.concatenate(rank).astype(np.int8) if rank else np.zeros(0, dtype=np.int8),
        "surface": np.concatenate(area) if area else np.zeros(0),
    })


def friche(parcelles: gpd.GeoDataFrame, friches: gpd.GeoDataFrame,
           friches_surfaces: gpd.GeoDataFrame, *, tree: shapely.STRtree | None = None
           ) -> pd.DataFrame:
    """Find the friche each parcel belongs to, with its status and type.

    A parcel belongs to a friche when its IDU is listed in the friche's
    ``unite_fonciere_refcad`` (the most explicit link), else when the friche's
    perimeter covers at least 25 % of it, else when the friche's point lies in it
    (:func:`friche_links`). Among several friches of the same kind of link, the
    largest overlap wins, then the smallest ``site_id``. ``tree`` is the
    ``STRtree`` of the parcels' geometries, when already built.

    Returns
    -------
    pandas.DataFrame
        ``friche_id``, ``friche_statut``, ``friche_type`` (NULL outside every friche).
    """
    n = len(parcelles)
    sites = friche_sites(friches, friches_surfaces)
    links = friche_links(parcelles, friches, friches_surfaces, tree=tree)
    best = np.full(n, -1, dtype=np.int64)
    if len(links):
        site_pos = pd.Index(sites["site_id"].astype(str).to_numpy(dtype=object))
        ca = links["parcelle"].to_numpy()
        cs = site_pos.get_indexer(links["site_id"].to_numpy(dtype=object))
        site_key = links["site_id"].to_numpy(dtype=object)
        order = np.lexsort((site_key, -links["surface"].to_numpy(), links["rang"].to_numpy(),
                            ca))
        first = order[np.r_[True, ca[order][1:] != ca[order][:-1]]]
        best[ca[first]] = cs[first]
    idx = parcelles.index
    return pd.DataFrame({
        "friche_id": take_or_null(sites["site_id"], best, idx, "friche_id"),
        "friche_statut": take_or_null(sites["site_statut"], best, idx, "friche_statut"),
        "friche_type": take_or_null(sites["site_type"], best, idx, "friche_type"),
    })
