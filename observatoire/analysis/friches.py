"""Friches of the territory: membership, parcel matching, stale parcel ids, ZAE, surfaces.

The friches are read with a margin of 5 km around the territory (the context of
its edges): :func:`attach_friches` tells those of the territory from those
nearby, and gives every friche the fields below; :func:`zae_friches` counts the
territory's friches of each ZAE. Rules:

- **in the territory** (``dans_territoire``): the friche's ``comm_insee`` is one
  of the territory's communes, when the source gives it (the CNIG standard
  requires it: the main commune of the site); else the friche is linked to a
  parcel of the territory (:func:`~observatoire.analysis.friche_links.friche_links`:
  an IDU of its ``unite_fonciere_refcad``, its perimeter or its point);
- **absent parcel ids** (``idu_absents``): the IDUs of a friche's
  ``unite_fonciere_refcad`` that the territory's cadastre does not hold, when the
  cadastre should hold them — the IDU's commune (its first 5 characters) is a
  commune of the territory or of its cadastre, or the friche is in the territory.
  Inventories list parcels of an older cadastre vintage: renumbered parcels no
  longer exist. Whether an IDU is absent is decided on the whole territory's
  cadastre (``idu``), never on a part of it;
- **matching** (``appariement``): ``identifiant`` when at least one listed IDU is
  in the cadastre, else ``géométrie`` when the friche's perimeter covers at least
  a quarter of a parcel or its point lies on one (the friche is still attached
  to those parcels), else NULL (no parcel of the territory);
- **ZAE** (``zae_id``): the zone holding the friche's point (the first in layer
  order when zones overlap), else the zone holding at least half of its
  perimeter's area;
- **surface** (``surface_m2``, origin in ``surface_origine``): the perimeter's
  area when known (``périmètre``), else ``unite_fonciere_surface``
  (``unité foncière``), else the area of the parcels it is attached to — those
  of its IDUs found in the cadastre, else those under its point (``parcelles``).

Per zone, ``nb_friches`` counts the territory's friches whose ``zae_id`` is the
zone, and ``surface_friches_m2`` adds their surfaces so that no land counts twice:
the area of the union of their perimeters, plus the ``unite_fonciere_surface`` of
each distinct land unit (friches listing the same parcels count once), plus the
area of each distinct parcel the others are attached to (friches sharing a point
share its parcel), but for the parcels that a friche counted before lists or
covers with its perimeter. The surface is the friches' whole surface, also
outside the zone.

Pure functions: frames in, frames out, inputs never modified, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.friche_links import LINK_IDU, LINK_POINT, friche_sites, listed_idus
from observatoire.analysis.geometry import geoms
from observatoire.analysis.overlay import overlap_pairs
from observatoire.schema import NULL

#: Columns the analysis adds to ``friches`` and ``friches_surfaces``, in order.
FRICHES_COLUMNS = ("dans_territoire", "appariement", "idu_absents", "zae_id", "surface_m2",
                   "surface_origine")
#: Values of ``appariement``.
APPARIEMENTS = ("identifiant", "géométrie")
#: Values of ``surface_origine``.
SURFACE_ORIGINES = ("périmètre", "unité foncière", "parcelles")
#: Share of a perimeter's area a zone must hold to be the friche's ZAE (without its point).
ZAE_MIN_SHARE = 0.5


@dataclass(frozen=True)
class AttachedFriches:
    """The friche layers with :data:`FRICHES_COLUMNS`, and one row per friche (``sites``).

    Attributes
    ----------
    friches, friches_surfaces
        The input layers with the columns added.
    sites
        One row per ``site_id`` (points and perimeters together): the added
        columns and ``unite_fonciere_refcad``.
    parcels
        The parcels each friche's ``surface_m2`` comes from, when they do
        (``site_id``, ``idu``, ``surface_m2``).
    links
        The links between parcels and friches (each once).
    """

    friches: gpd.GeoDataFrame
    friches_surfaces: gpd.GeoDataFrame
    sites: pd.DataFrame
    parcels: pd.DataFrame
    links: pd.DataFrame


def attach_friches(friches: gpd.GeoDataFrame, friches_surfaces: gpd.GeoDataFrame, *,
                   links: pd.DataFrame, idu: Iterable[str] | np.ndarray,
                   communes: Iterable[str], zae: gpd.GeoDataFrame | None = None
                   ) -> AttachedFriches:
    """Give every friche :data:`FRICHES_COLUMNS` (rules in the module's docstring).

    Parameters
    ----------
    friches, friches_surfaces
        Friche points and perimeters (canonical layers, territory CRS).
    links
        Every link between a parcel of the territory and a friche
        (:func:`~observatoire.analysis.friche_links.friche_links`, possibly found
        partition by partition and concatenated: ``idu``, ``surface_m2``,
        ``site_id``, ``rang``).
    idu
        Every IDU of the territory's cadastre, sorted (text or bytes: the staged
        IDUs of a partitioned build are ``S14``, not copied).
    communes
        INSEE codes of the territory's communes.
    zae
        The zones (``zae_id``, polygons), or ``None``.

    Returns
    -------
    AttachedFriches
        New frames; the inputs are not modified.
    """
    sites = friche_sites(friches, friches_surfaces)
    site_ids = pd.Index(sites["site_id"].astype(str).to_numpy(dtype=object))
    links = links.drop_duplicates(["site_id", "idu", "rang"])
    cadastre = np.asarray(idu) if isinstance(idu, np.ndarray) else np.sort(
        np.asarray(list(idu), dtype=object))
    territory = {_insee(c) for c in communes}
    covered = territory | communes_of(cadastre)

    linked = pd.Index(links["site_id"].unique())
    comm = sites["comm_insee"].map(_insee, na_action="ignore") if "comm_insee" in sites \
        else pd.Series(None, index=sites.index, dtype=object)
    inside = np.where(comm.notna().to_numpy(), comm.isin(territory).to_numpy(),
                      site_ids.isin(linked))

    listed = listed_idus(sites)
    found = in_sorted(listed["idu"].to_numpy(dtype=object), cadastre)
    site_row = site_ids.get_indexer(listed["site_id"].to_numpy(dtype=object))
    prefix = listed["idu"].str[:5]
    absent = ~found & (prefix.isin(covered).to_numpy() | inside[site_row])
    gone = listed[absent].groupby("site_id", sort=False)["idu"]
    absents = gone.agg("|".join).reindex(site_ids)

    by_idu = set(listed.loc[found, "site_id"])
    by_geometry = set(links.loc[links["rang"] != LINK_IDU, "site_id"])
    appariement = np.where(site_ids.isin(by_idu), APPARIEMENTS[0],
                           np.where(site_ids.isin(by_geometry), APPARIEMENTS[1], NULL))

    surface, origin, parcels = _surfaces(sites, site_ids, friches_surfaces, links)
    fields = pd.DataFrame({
        "dans_territoire": inside.astype(bool),
        "appariement": pd.Series(appariement, dtype=object).to_numpy(),
        "idu_absents": absents.astype(object).where(absents.notna(), None).to_numpy(),
        "zae_id": _zae_of(site_ids, friches, friches_surfaces, zae),
        "surface_m2": surface,
        "surface_origine": origin,
    }, index=site_ids)
    out_sites = fields.assign(unite_fonciere_refcad=sites.get(
        "unite_fonciere_refcad", pd.Series(None, index=sites.index)).to_numpy(dtype=object))
    return AttachedFriches(friches=_with_fields(friches, fields),
                           friches_surfaces=_with_fields(friches_surfaces, fields),
                           sites=out_sites.rename_axis("site_id").reset_index(),
                           parcels=parcels, links=links)


def _text(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _key(text: str, dtype: np.dtype) -> str | bytes:
    """``text`` as an element comparable with a sorted array of ``dtype``."""
    return text.encode("ascii", "replace") if dtype.kind == "S" else text


def in_sorted(values: np.ndarray, sorted_idu: np.ndarray) -> np.ndarray:
    """Whether each IDU of ``values`` (text) is in ``sorted_idu`` (sorted text or bytes).

    A binary search for each of the few listed IDUs, not a copy of the cadastre.
    """
    if len(values) == 0 or len(sorted_idu) == 0:
        return np.zeros(len(values), dtype=bool)
    keys = np.empty(len(values), dtype=object)
    keys[:] = [_key(str(v), sorted_idu.dtype) for v in values]
    if sorted_idu.dtype.kind in "SU":
        # Longer than the array's width: truncated by the conversion, never found.
        fits = np.fromiter((len(k) <= sorted_idu.dtype.itemsize // (
            4 if sorted_idu.dtype.kind == "U" else 1) for k in keys), dtype=bool,
            count=len(keys))
        keys = keys.astype(sorted_idu.dtype)
    else:
        fits = np.ones(len(values), dtype=bool)
    pos = np.searchsorted(sorted_idu, keys).clip(max=len(sorted_idu) - 1)
    return fits & (sorted_idu[pos] == keys)


def communes_of(sorted_idu: np.ndarray) -> set[str]:
    """Return the communes (first 5 characters) of sorted IDUs: one search per commune."""
    out: set[str] = set()
    i, n = 0, len(sorted_idu)
    while i < n:
        prefix = _text(sorted_idu[i])[:5]
        out.add(prefix)
        # Every IDU of the commune sorts before its code followed by DEL (IDUs are ASCII).
        end = int(np.searchsorted(sorted_idu, _key(prefix + "\x7f", sorted_idu.dtype)))
        i = max(end, i + 1)
    return out


def _insee(code: object) -> str:
    """Return an INSEE code as text of 5 characters (a number may have lost its leading 0)."""
    text = str(code).strip()
    return text.zfill(5) if text.isdigit() and len(text) == 4 else text


def _with_fields(layer: gpd.GeoDataFrame, fields: pd.DataFrame) -> gpd.GeoDataFrame:
    """``layer`` with ``fields`` (indexed by ``site_id``) added before its geometry."""
    geometry = layer.geometry.name
    out = pd.DataFrame(layer.drop(columns=[c for c in (*FRICHES_COLUMNS, geometry)
                                           if c in layer.columns]))
    values = fields.reindex(out["site_id"].astype(str).to_numpy(dtype=object))
    for col in FRICHES_COLUMNS:
        column = values[col].to_numpy()
        if col == "dans_territoire":
            out[col] = column.astype(bool)
        elif col == "surface_m2":
            out[col] = column.astype(float)
        else:
            out[col] = pd.Series(column, index=out.index, dtype=object).where(
                pd.notna(column), None)
    out[geometry] = layer.geometry.values
    return gpd.GeoDataFrame(out, geometry=geometry, crs=layer.crs)


def _surfaces(sites: pd.DataFrame, site_ids: pd.Index, friches_surfaces: gpd.GeoDataFrame,
              links: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Surface of each friche, its origin, and the parcels it comes from when it does."""
    n = len(site_ids)
    perimeter = np.full(n, np.nan)
    if len(friches_surfaces):
        rows = site_ids.get_indexer(friches_surfaces["site_id"].astype(str).to_numpy(
            dtype=object))
        ok = rows >= 0
        perimeter[rows[ok]] = shapely.area(geoms(friches_surfaces))[ok]
    uf = (pd.to_numeric(sites["unite_fonciere_surface"], errors="coerce").to_numpy(dtype=float)
          if "unite_fonciere_surface" in sites else np.full(n, np.nan))
    uf = np.where(uf > 0, uf, np.nan)
    # The parcels of a friche: those of its IDUs found in the cadastre, else those its
    # perimeter covers or its point lies in.
    own = links[["site_id", "idu", "surface_m2", "rang"]].copy()
    own["by_idu"] = own["rang"] == LINK_IDU
    any_idu = own.groupby("site_id")["by_idu"].transform("any")
    own = own[own["by_idu"] == any_idu].drop_duplicates(["site_id", "idu"])
    area = own.groupby("site_id")["surface_m2"].sum().reindex(site_ids).to_numpy(dtype=float)
    has_perimeter = np.isfinite(perimeter)
    has_uf = ~has_perimeter & np.isfinite(uf)
    has_parcels = ~has_perimeter & ~has_uf & np.isfinite(area)
    surface = np.where(has_perimeter, perimeter, np.where(has_uf, uf, np.where(
        has_parcels, area, np.nan)))
    origin = np.full(n, None, dtype=object)
    for known, name in zip((has_perimeter, has_uf, has_parcels), SURFACE_ORIGINES, strict=True):
        origin[known] = name
    from_parcels = own["site_id"].isin(set(site_ids[has_parcels]))
    parcels = own.loc[from_parcels, ["site_id", "idu", "surface_m2"]].reset_index(drop=True)
    return surface, origin, parcels


def _zae_of(site_ids: pd.Index, friches: gpd.GeoDataFrame,
            friches_surfaces: gpd.GeoDataFrame, zae: gpd.GeoDataFrame | None) -> np.ndarray:
    """Return the ZAE of each friche: the zone holding its point, else half its perimeter."""
    out = np.full(len(site_ids), None, dtype=object)
    if zae is None or len(zae) == 0:
        return out
    zones = geoms(zae)
    ids = zae["zae_id"].astype(str).to_numpy(dtype=object)
    tree = shapely.STRtree(zones)
    if len(friches):
        ip, iz = tree.query(geoms(friches), predicate="intersects")
        order = np.lexsort((iz, ip))
        ip, iz = ip[order], iz[order]
        first = np.r_[True, ip[1:] != ip[:-1]] if len(ip) else np.zeros(0, dtype=bool)
        rows = site_ids.get_indexer(friches["site_id"].astype(str).to_numpy(dtype=object))
        out[rows[ip[first]]] = ids[iz[first]]
    if len(friches_surfaces):
        perimeters = geoms(friches_surfaces)
        ib, iz, area = overlap_pairs(perimeters, zones)
        if len(ib):
            # Largest overlap first; ties go to the zone listed first.
            order = np.lexsort((iz, -area, ib))
            ib, iz, area = ib[order], iz[order], area[order]
            first = np.r_[True, ib[1:] != ib[:-1]]
            ib, iz, area = ib[first], iz[first], area[first]
            enough = area >= ZAE_MIN_SHARE * shapely.area(perimeters[ib])
            rows = site_ids.get_indexer(
                friches_surfaces["site_id"].astype(str).to_numpy(dtype=object))[ib[enough]]
            free = pd.isna(out[rows])
            out[rows[free]] = ids[iz[enough]][free]
    return out


def zae_friches(zae: gpd.GeoDataFrame, attached: AttachedFriches | None) -> pd.DataFrame:
    """Count the territory's friches of each zone and add up their surfaces.

    Parameters
    ----------
    zae
        The zones (``zae_id``).
    attached
        The friches (:func:`attach_friches`), or ``None`` when the territory has
        no friche source: the figures are then unknown (NULL).

    Returns
    -------
    pandas.DataFrame
        Aligned on ``zae``: ``nb_friches`` (Int64) and ``surface_friches_m2``
        (float), counted without double counting (see the module's docstring).
    """
    index = zae.index
    if attached is None:
        return pd.DataFrame({"nb_friches": pd.Series(pd.NA, index=index, dtype="Int64"),
                             "surface_friches_m2": pd.Series(np.nan, index=index,
                                                             dtype=float)})
    perimeters = attached.friches_surfaces
    sites = attached.sites
    ours = sites[sites["dans_territoire"].to_numpy(dtype=bool) & sites["zae_id"].notna()]
    count = ours.groupby("zae_id").size()
    zone_of = ours.set_index("site_id")["zae_id"]

    total = pd.Series(0.0, index=pd.Index(count.index, dtype=object))
    # Perimeters: the area of their union in each zone.
    with_perimeter = ours[ours["surface_origine"] == SURFACE_ORIGINES[0]]
    if len(with_perimeter):
        frame = perimeters[perimeters["site_id"].astype(str).isin(set(with_perimeter["site_id"]))]
        zone = frame["site_id"].astype(str).map(zone_of).to_numpy(dtype=object)
        shapes = geoms(frame)
        for zae_id in sorted(set(zone)):
            total[zae_id] += float(shapely.area(shapely.union_all(shapes[zone == zae_id])))
    # Land units: each distinct list of parcels once (a land unit without a list is its own).
    with_uf = ours[ours["surface_origine"] == SURFACE_ORIGINES[1]]
    if len(with_uf):
        key = with_uf["unite_fonciere_refcad"].where(with_uf["unite_fonciere_refcad"].notna(),
                                                     "site:" + with_uf["site_id"].astype(str))
        units = with_uf.assign(_key=key).sort_values("site_id", kind="stable").drop_duplicates(
            ["zae_id", "_key"])
        total = total.add(units.groupby("zae_id")["surface_m2"].sum(), fill_value=0.0)
    # Parcels: each distinct parcel once per zone, unless a friche counted above lists it
    # or covers it with its perimeter (its land is already counted).
    parcels = attached.parcels
    if len(parcels):
        links = attached.links
        counted = set(with_perimeter["site_id"]) | set(with_uf["site_id"])
        claimed = set(links.loc[links["site_id"].isin(counted)
                                & (links["rang"] != LINK_POINT), "idu"])
        parcels = parcels.assign(zae_id=parcels["site_id"].map(zone_of)).dropna(
            subset=["zae_id"]).drop_duplicates(["zae_id", "idu"])
        parcels = parcels[~parcels["idu"].isin(claimed)]
        total = total.add(parcels.groupby("zae_id")["surface_m2"].sum(), fill_value=0.0)

    ids = zae["zae_id"].astype(str).to_numpy(dtype=object)
    return pd.DataFrame({
        "nb_friches": pd.Series(count.reindex(ids).fillna(0).to_numpy(dtype=np.int64),
                                index=index, dtype="Int64"),
        "surface_friches_m2": pd.Series(total.reindex(ids).fillna(0.0).to_numpy(dtype=float),
                                        index=index, dtype=float),
    })


def friche_counts(friches: gpd.GeoDataFrame, friches_surfaces: gpd.GeoDataFrame
                  ) -> dict[str, int]:
    """Figures of the build output: friches in the territory and nearby, absent parcel ids.

    Parameters
    ----------
    friches, friches_surfaces
        The layers given by :func:`attach_friches` (a friche in both counts once).

    Returns
    -------
    dict
        ``dans_territoire`` and ``a_proximite`` (friches), ``idu_absents`` (parcel
        ids absent from the cadastre), ``friches_idu_absents`` (friches listing
        one), and how those were attached: ``par_identifiant`` (by their other
        ids), ``par_geometrie``, ``sans_parcelle``.
    """
    cols = ["site_id", "dans_territoire", "appariement", "idu_absents"]
    sites = pd.concat([pd.DataFrame(friches[cols]), pd.DataFrame(friches_surfaces[cols])],
                      ignore_index=True).drop_duplicates("site_id")
    inside = sites["dans_territoire"].to_numpy(dtype=bool)
    stale = sites[sites["idu_absents"].notna()]
    how = stale["appariement"]
    return {
        "dans_territoire": int(inside.sum()),
        "a_proximite": int((~inside).sum()),
        "idu_absents": int((stale["idu_absents"].astype(str).str.count(r"\|") + 1).sum()),
        "friches_idu_absents": len(stale),
        "par_identifiant": int((how == APPARIEMENTS[0]).sum()),
        "par_geometrie": int((how == APPARIEMENTS[1]).sum()),
        "sans_parcelle": int(how.isna().sum()),
    }


__all__ = ["APPARIEMENTS", "FRICHES_COLUMNS", "SURFACE_ORIGINES", "AttachedFriches",
           "attach_friches", "friche_counts", "zae_friches"]
