"""Indicators per parcel: every family computed at once, and which had their input.

:func:`compute_indicators` assembles the families, each a pure, vectorised function
of the parcels (canonical ``parcelles`` layer) and one context layer that returns a
Series or a DataFrame indexed like the parcels, none modifying its inputs:

- shape (:mod:`observatoire.analysis.shape`): compactness, useful width, footprint;
- coverage (:mod:`observatoire.analysis.coverage`): buildings, PLU zone, ZAE,
  constraint layers, through the overlaps of :mod:`observatoire.analysis.overlay`;
- friches (:mod:`observatoire.analysis.friche_links`);
- distances (:mod:`observatoire.analysis.distances`): roads, and the nearest
  feature of each kind with a ``distance`` indicator in the source registry
  (:data:`observatoire.sources.DISTANCE_INDICATORS`: railways, substations…), exact
  through :mod:`observatoire.analysis.nearest`;
- slope (:mod:`observatoire.analysis.slope`).

Spatial joins go through :class:`shapely.STRtree` queries on whole arrays; there is
no Python loop over features.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.coverage import bati, part_contrainte, zae_dominante, zonage_dominant
from observatoire.analysis.distances import (
    DEFAULT_CLASSES_ROUTES,
    distance_plus_proche,
    distances_routes,
)
from observatoire.analysis.friche_links import friche
from observatoire.analysis.geometry import geoms
from observatoire.analysis.nearest import DistanceTargets
from observatoire.analysis.shape import compacite, emprise_possible, largeur_utile
from observatoire.analysis.slope import RasterLike, parcel_slope
from observatoire.errors import ConfigError
from observatoire.sources import DISTANCE_INDICATORS


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
    couches: Mapping[str, gpd.GeoDataFrame | None] | None = None,
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
    zonage, zae, batiments, routes, friches, friches_surfaces
        Context layers; ``None`` when the territory does not provide them (their
        indicators are then NULL and not ``available``). An empty layer that was
        provided is *available*: no building means a built share of 0.
    mnt
        The DEM in the territory CRS, or ``None``.
    couches
        The other vector inputs by source kind (``voies_ferrees``,
        ``postes_electriques``…), as the context layers: a kind absent or ``None``
        leaves its indicators NULL.
    contraintes
        Constraint layers.
    classes_routes
        Road distance groups (see :func:`distances_routes`).
    cibles
        The distance targets indexed once (:func:`distance_targets`), by column;
        the distance indicators read them instead of indexing ``routes`` and the
        layers of the kinds with a ``distance`` indicator in the registry
        (:data:`~observatoire.sources.DISTANCE_INDICATORS`) again; those layers
        still decide which of the indicators are available (a layer that is
        ``None`` leaves them NULL). A column missing from it is measured on its
        layer.
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
    layers = {"zonage": zonage, "zae": zae, "batiments": batiments, "friches": friches,
              **(couches or {})}
    for kind, name in DISTANCE_INDICATORS.items():
        layer = layers.get(kind)
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
    "Constraint", "Indicators", "check_constraint_names",
    "compute_indicators", "identifier", "pente",
]
