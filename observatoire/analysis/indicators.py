"""Indicators per parcel: pure, vectorised functions, each aligned to the parcels' index.

Every function takes the parcels (canonical ``parcelles`` layer) and one context
layer, and returns a Series or a DataFrame indexed like the parcels; none modifies
its inputs. Spatial joins go through :class:`shapely.STRtree` queries on whole
arrays; there is no Python loop over features.

Overlaps avoid polygon intersections whenever one geometry lies inside the other
(a building inside its parcel, a parcel inside a PLU zone): those pairs are found
with ``contains_properly`` tests (after a bounding-box test; a geometry met by many
pairs is prepared) and take the smaller area; only the pairs that cross a boundary
are intersected. Distances to the nearest feature are exact without a
nearest-neighbour search per parcel (:func:`nearest_distance`).
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.geometry import edges, prepared, ramp, unique_int
from observatoire.analysis.slope import RasterLike, parcel_slope
from observatoire.errors import ConfigError

log = logging.getLogger(__name__)

#: Road classes of the ``routes`` layer, from the strongest.
ROAD_CLASSES = ("autoroute", "principale", "secondaire", "locale")
#: Default road distances: indicator suffix → road classes it measures.
DEFAULT_CLASSES_ROUTES: Mapping[str, tuple[str, ...]] = {c: (c,) for c in ROAD_CLASSES}
#: Side of the square footprint tested by ``emprise_50m`` (m).
FOOTPRINT_SIDE = 50.0
#: Share of a parcel a friche perimeter must cover for the parcel to belong to it.
FRICHE_MIN_SHARE = 0.25
#: A building counts on a parcel holding this share of its footprint, or this area (m²).
BUILDING_MIN_SHARE = 0.1
BUILDING_MIN_AREA = 20.0
#: Parcels per grid cell sharing their nearest-feature candidates (see ``nearest_distance``).
NEAREST_CELL_PARCELS = 16
#: A geometry is prepared for the overlap tests when it takes part in this many pairs.
_PREPARE_FROM = 4
#: Parcels settled at once by ``nearest_distance`` (bounds the memory of its pair arrays).
_NEAREST_CHUNK = 100_000


@dataclass(frozen=True)
class Constraint:
    """A constraint layer declared by the territory (flood zone, protected area…).

    Attributes
    ----------
    name
        Its name in the territory file (``sources.contraintes[i].nom``).
    kind
        ``inondation``, ``nature``, ``patrimoine``, ``risque_technologique`` or ``autre``.
    strict
        Whether a parcel inside is excluded by the profiles.
    frame
        Its polygons, in the territory CRS.
    """

    name: str
    kind: str
    strict: bool
    frame: gpd.GeoDataFrame

    @property
    def column(self) -> str:
        """Indicator column: ``part_contrainte_<name as an identifier>``."""
        return f"part_contrainte_{identifier(self.name)}"


def check_constraint_names(names: Sequence[str]) -> None:
    """Refuse two constraint names that give the same indicator column.

    Raises
    ------
    ConfigError
        Naming both constraints and their column.
    """
    seen: dict[str, str] = {}
    for name in names:
        column = f"part_contrainte_{identifier(name)}"
        if column in seen:
            raise ConfigError(
                f"contraintes « {seen[column]} » et « {name} » : même identifiant "
                f"« {column} » ; donnez-leur des noms plus distincts (sources.contraintes)")
        seen[column] = name


@dataclass
class Indicators:
    """The indicators of every parcel and which of them had their input.

    Attributes
    ----------
    frame
        One column per indicator, indexed like the parcels.
    available
        Names of the indicators whose input layer was present. An indicator not in
        this set is NULL for every parcel and never counts as 0.
    constraints
        The constraint layers, to describe ``part_contrainte_*`` columns.
    """

    frame: pd.DataFrame
    available: frozenset[str]
    constraints: tuple[Constraint, ...] = field(default_factory=tuple)


def identifier(name: str) -> str:
    """ASCII lower-case identifier of a name (``Zone rouge PPRI`` → ``zone_rouge_ppri``)."""
    norm = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", norm.lower()).strip("_") or "x"


def geoms(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray:
    """Return the geometries of a layer as a plain array of shapely objects."""
    series = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
    return np.asarray(series.array, dtype=object)


# --------------------------------------------------------------------------- shape


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


# --------------------------------------------------------------------------- overlaps


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


def _dominant(ia: np.ndarray, ib: np.ndarray, area: np.ndarray, n: int
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


def _take(values: pd.Series, index: np.ndarray, out_index: pd.Index, name: str) -> pd.Series:
    """``values[index]`` with NULL where ``index`` is −1, as an object or float Series."""
    arr = values.astype(object).where(values.notna(), None).to_numpy(dtype=object)
    ok = index >= 0
    out = np.full(len(index), None, dtype=object)
    out[ok] = arr[index[ok]]
    return pd.Series(out, index=out_index, name=name, dtype=object)


# --------------------------------------------------------------------------- context


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
    best, _ = _dominant(ia, ib, area, len(a))
    idx = parcelles.index
    activite = pd.array(np.zeros(len(a), dtype=bool), dtype="boolean")
    ok = best >= 0
    flags = zonage["zone_activite"].to_numpy(dtype=bool)
    activite[ok] = flags[best[ok]]
    activite[~ok] = pd.NA
    return pd.DataFrame({
        "zone_libelle": _take(zonage["libelle"], best, idx, "zone_libelle"),
        "zone_typezone": _take(zonage["typezone"], best, idx, "zone_typezone"),
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
    best, best_area = _dominant(ia, ib, area, len(a))
    area_a = shapely.area(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(area_a > 0, np.clip(best_area / area_a, 0.0, 1.0), 0.0)
    return pd.DataFrame({"zae_id": _take(zae["zae_id"], best, parcelles.index, "zae_id"),
                         "part_zae": share}, index=parcelles.index)


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


#: Kinds of link between a parcel and a friche, from the most explicit (see friche_links).
LINK_IDU, LINK_PERIMETER, LINK_POINT = 0, 1, 2


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
        "friche_id": _take(sites["site_id"], best, idx, "friche_id"),
        "friche_statut": _take(sites["site_statut"], best, idx, "friche_statut"),
        "friche_type": _take(sites["site_type"], best, idx, "friche_type"),
    })


def pente(parcelles: gpd.GeoDataFrame, mnt: RasterLike) -> pd.DataFrame:
    """Mean and maximum slope (%) of each parcel from a DEM in the parcels' CRS.

    See :mod:`observatoire.analysis.slope` for the method.

    Returns
    -------
    pandas.DataFrame
        ``pente_moy_pct`` and ``pente_max_pct``; NaN off the DEM or on nodata.
    """
    mean, vmax = parcel_slope(geoms(parcelles), mnt)
    return pd.DataFrame({"pente_moy_pct": mean, "pente_max_pct": vmax}, index=parcelles.index)


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
                     voies_ferrees: gpd.GeoDataFrame | None = None,
                     postes_electriques: gpd.GeoDataFrame | None = None,
                     classes_routes: Mapping[str, Sequence[str]] = DEFAULT_CLASSES_ROUTES
                     ) -> dict[str, DistanceTargets]:
    """Distance-target layers indexed once, for :func:`compute_indicators` (``cibles``).

    Parameters
    ----------
    routes, voies_ferrees, postes_electriques
        The whole target layers; ``None`` for a layer the territory lacks (its
        indicators get no entry).
    classes_routes
        Road distance groups (see :func:`distances_routes`).

    Returns
    -------
    dict
        Indicator column → its targets: ``dist_route_<suffix>_m`` for each group of
        ``classes_routes``, ``dist_voie_ferree_m``, ``dist_poste_electrique_m``.
    """
    out: dict[str, DistanceTargets] = {}
    if routes is not None:
        columns = {f"dist_route_{s}_m": m for s, m in classes_routes.items()}
        out.update({c: DistanceTargets(g) for c, g in _road_groups(routes, columns).items()})
    for name, layer in (("dist_voie_ferree_m", voies_ferrees),
                        ("dist_poste_electrique_m", postes_electriques)):
        if layer is not None:
            out[name] = DistanceTargets(layer)
    return out


def part_contrainte(parcelles: gpd.GeoDataFrame, contrainte: gpd.GeoDataFrame, *,
                    tree: shapely.STRtree | None = None) -> pd.Series:
    """Share of each parcel inside a constraint layer (overlapping polygons counted once).

    ``tree`` is the ``STRtree`` of the parcels' geometries, when already built.
    """
    return pd.Series(covered_share(geoms(parcelles), geoms(contrainte), tree=tree),
                     index=parcelles.index)


# --------------------------------------------------------------------------- all


#: Indicator → the source kind it needs (``parcelles`` ones are always available).
INDICATOR_SOURCES: dict[str, str] = {
    "surface_m2": "parcelles",
    "compacite": "parcelles",
    "largeur_utile_m": "parcelles",
    "emprise_50m": "parcelles",
    "part_batie": "batiments",
    "nb_batiments": "batiments",
    "zone_libelle": "zonage",
    "zone_typezone": "zonage",
    "zone_activite": "zonage",
    "zae_id": "zae",
    "part_zae": "zae",
    "friche_id": "friches",
    "friche_statut": "friches",
    "friche_type": "friches",
    "pente_moy_pct": "mnt",
    "pente_max_pct": "mnt",
    "dist_voie_ferree_m": "voies_ferrees",
    "dist_poste_electrique_m": "postes_electriques",
}


def compute_indicators(
    parcelles: gpd.GeoDataFrame,
    *,
    zonage: gpd.GeoDataFrame | None = None,
    zae: gpd.GeoDataFrame | None = None,
    batiments: gpd.GeoDataFrame | None = None,
    routes: gpd.GeoDataFrame | None = None,
    friches: gpd.GeoDataFrame | None = None,
    friches_surfaces: gpd.GeoDataFrame | None = None,
    mnt: RasterLike | None = None,
    voies_ferrees: gpd.GeoDataFrame | None = None,
    postes_electriques: gpd.GeoDataFrame | None = None,
    contraintes: Sequence[Constraint] = (),
    classes_routes: Mapping[str, Sequence[str]] = DEFAULT_CLASSES_ROUTES,
    cibles: Mapping[str, DistanceTargets] | None = None,
    timings: dict[str, float] | None = None,
) -> Indicators:
    """Every indicator of every parcel.

    Parameters
    ----------
    parcelles
        The canonical parcels (territory CRS).
    zonage, zae, batiments, routes, friches, friches_surfaces, voies_ferrees,
    postes_electriques
        Context layers; ``None`` when the territory does not provide them (their
        indicators are then NULL and not ``available``). An empty layer that was
        provided is *available*: no building means a built share of 0.
    mnt
        The DEM in the territory CRS, or ``None``.
    contraintes
        Constraint layers.
    classes_routes
        Road distance groups (see :func:`distances_routes`).
    cibles
        The distance targets indexed once (:func:`distance_targets`), by column;
        the distance indicators read them instead of indexing ``routes``,
        ``voies_ferrees`` and ``postes_electriques`` again, which still decide
        which of those indicators are available (a layer that is ``None`` leaves
        them NULL). A column missing from it is measured on its layer.
    timings
        Filled with the seconds spent per indicator family, when given.

    Returns
    -------
    Indicators
        The indicator table and the set of available indicators.
    """
    clock = time.perf_counter
    spent = timings if timings is not None else {}
    idx = parcelles.index
    cols: dict[str, pd.Series] = {}
    available: set[str] = set()

    def null(names: Sequence[str], dtype: str = "float64") -> None:
        for name in names:
            cols[name] = pd.Series(np.nan if dtype == "float64" else None, index=idx,
                                   dtype=dtype)

    # One spatial index of the parcels serves every overlay.
    tree = shapely.STRtree(geoms(parcelles))
    t = clock()
    surface = (parcelles["surface_m2"] if "surface_m2" in parcelles
               else pd.Series(shapely.area(geoms(parcelles)), index=idx))
    cols["surface_m2"] = surface.astype("float64")
    cols["compacite"] = compacite(parcelles)
    cols["largeur_utile_m"] = largeur_utile(parcelles)
    cols["emprise_50m"] = emprise_possible(parcelles)
    available |= {"surface_m2", "compacite", "largeur_utile_m", "emprise_50m"}
    spent["forme"] = clock() - t

    t = clock()
    if batiments is not None:
        cols.update(bati(parcelles, batiments, tree=tree))
        available |= {"part_batie", "nb_batiments"}
    else:
        null(["part_batie"])
        cols["nb_batiments"] = pd.Series(pd.NA, index=idx, dtype="Int64")
    spent["bati"] = clock() - t

    t = clock()
    if zonage is not None:
        cols.update(zonage_dominant(parcelles, zonage, tree=tree))
        available |= {"zone_libelle", "zone_typezone", "zone_activite"}
    else:
        null(["zone_libelle", "zone_typezone"], "object")
        cols["zone_activite"] = pd.Series(pd.NA, index=idx, dtype="boolean")
    if zae is not None:
        cols.update(zae_dominante(parcelles, zae, tree=tree))
        available |= {"zae_id", "part_zae"}
    else:
        null(["zae_id"], "object")
        null(["part_zae"])
    spent["zonage_zae"] = clock() - t

    t = clock()
    if friches is not None or friches_surfaces is not None:
        empty = gpd.GeoDataFrame({"site_id": [], "site_statut": [], "site_type": [],
                                  "unite_fonciere_refcad": []},
                                 geometry=gpd.GeoSeries([], crs=parcelles.crs))
        cols.update(friche(parcelles, friches if friches is not None else empty,
                           friches_surfaces if friches_surfaces is not None else empty,
                           tree=tree))
        available |= {"friche_id", "friche_statut", "friche_type"}
    else:
        null(["friche_id", "friche_statut", "friche_type"], "object")
    spent["friches"] = clock() - t

    t = clock()
    if mnt is not None:
        cols.update(pente(parcelles, mnt))
        available |= {"pente_moy_pct", "pente_max_pct"}
    else:
        null(["pente_moy_pct", "pente_max_pct"])
    spent["pente"] = clock() - t

    t = clock()
    road_cols = [f"dist_route_{s}_m" for s in classes_routes]
    if routes is not None:
        cols.update(distances_routes(parcelles, routes, classes=classes_routes, cibles=cibles))
        available |= set(road_cols)
    else:
        null(road_cols)
    for name, layer in (("dist_voie_ferree_m", voies_ferrees),
                        ("dist_poste_electrique_m", postes_electriques)):
        if layer is not None:
            target = cibles[name] if cibles and name in cibles else layer
            cols[name] = distance_plus_proche(parcelles, target, name=name)
            available.add(name)
        else:
            null([name])
    spent["distances"] = clock() - t

    t = clock()
    check_constraint_names([c.name for c in contraintes])
    for c in contraintes:
        cols[c.column] = part_contrainte(parcelles, c.frame, tree=tree)
        available.add(c.column)
    spent["contraintes"] = clock() - t

    frame = pd.DataFrame(cols, index=idx)
    return Indicators(frame=frame, available=frozenset(available),
                      constraints=tuple(contraintes))


__all__ = [
    "DEFAULT_CLASSES_ROUTES", "INDICATOR_SOURCES", "ROAD_CLASSES", "Constraint",
    "DistanceTargets", "Indicators", "bati", "check_constraint_names", "compacite",
    "compute_indicators", "covered_share",
    "distance_plus_proche", "distance_targets", "distances_routes", "emprise_possible", "friche",
    "friche_links", "friche_sites", "geoms", "identifier", "largeur_utile", "listed_idus",
    "nearest_distance", "overlap_pairs", "part_contrainte", "pente", "zae_dominante",
    "zonage_dominant",
]
