"""Analysis: indicators per parcel, scoring profiles, land units and candidate sites.

Pure functions: GeoDataFrames in, GeoDataFrames out, inputs never modified, no
I/O. :func:`analyse` runs the whole stage on the canonical layers of a territory::

    result = analyse(layers, extra=extra_inputs(...), profiles=territory.profiles,
                     options=territory.options.analysis)
    result.layers()          # parcelles (scored), unites_foncieres, gisements, zae
    result.meilleurs_sites   # table of the best sites, for the CSV

Results do not depend on the order of the input rows: parcels are sorted by IDU
before anything is computed, and identifiers derive from IDUs.

Working by partition
--------------------
Most of the work is *row-local*: the value of a parcel depends only on the parcel
and on the context features near it, so it can be computed on any subset of the
parcels (a commune, a tile) and the pieces concatenated, with the same values as
in one run over the whole territory:

- :func:`~observatoire.analysis.indicators.compute_indicators` and each indicator
  function, given context layers *selected* (whole features, never cut) to the
  partition's bounding box: ``zonage``, ``zae``, ``batiments``, the constraint
  layers and ``friches_surfaces`` by intersection with the box; ``friches``
  (points) whole, since a friche also claims the parcels its
  ``unite_fonciere_refcad`` lists; the DEM window covering the box **plus at
  least one cell** on every side (the slope of a cell reads its eight
  neighbours; at the edge of the raster it is extrapolated instead); the
  distance targets (``routes``, ``voies_ferrees``, ``postes_electriques``)
  **whole**, since the nearest feature may lie far outside the partition. Ties
  between equal overlaps go to the first feature in layer order, which selecting
  rows keeps;
- :func:`~observatoire.analysis.scoring.score_parcels` given those indicators:
  scores, classes, contributions, reliability and texts are per row (every value
  rendered in a text is formatted on its own);
- :func:`~observatoire.analysis.units.parcel_proprietaires` given the owner table;
- :func:`~observatoire.analysis.friche_links.friche_links` given the friches of
  :meth:`AnalysisContext.friches_around`: the links of the partitions, concatenated,
  are those of the territory. :func:`~observatoire.analysis.friches.attach_friches`
  then runs once, on every IDU of the territory: an IDU is absent only when no
  partition holds it.

What links parcels across partition edges is the contiguity graph: the pipeline
builds its edges between communes on global parcel ids
(:class:`observatoire.pipeline.contiguity.Graph`) and passes the positional pairs
of any subset of parcels holding whole components as the ``pairs`` argument of
:func:`~observatoire.analysis.units.unites_foncieres` and
:func:`~observatoire.analysis.units.gisements`: the parcels of legal-entity owners
(the others are units of their own) for the land units, the eligible parcels
(:func:`~observatoire.analysis.units.eligible`) for the candidate sites.
:func:`~observatoire.analysis.units.connected_components` labels the components.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.analysis.distances import ROAD_CLASSES, distance_targets
from observatoire.analysis.friche_links import friche_links
from observatoire.analysis.friches import AttachedFriches, attach_friches, zae_friches
from observatoire.analysis.geometry import geoms
from observatoire.analysis.indicators import Constraint, Indicators, compute_indicators
from observatoire.analysis.nearest import DistanceTargets
from observatoire.analysis.scoring import Profile, score_parcels
from observatoire.analysis.slope import RasterLike, raster_window
from observatoire.analysis.units import (
    SCORE_MIN_GISEMENT,
    SEUIL_BATI_GISEMENT,
    TOLERANCE,
    connected_components,
    contiguity_pairs,
    gisements,
    meilleurs_sites,
    parcel_proprietaires,
    unit_of_parcel,
    unites_foncieres,
)
from observatoire.errors import ConfigError
from observatoire.profiles import shipped_profiles
from observatoire.readers.lineage import ReadResult
from observatoire.sources import SOURCE_KINDS

if TYPE_CHECKING:
    from observatoire.config import Source

log = logging.getLogger(__name__)

#: A partition's box: xmin, ymin, xmax, ymax.
Bounds = tuple[float, float, float, float]


class CanonicalLayers(Protocol):
    """The canonical layers the analysis reads (:class:`observatoire.ingest.Layers`)."""

    @property
    def parcelles(self) -> gpd.GeoDataFrame:
        """The parcels."""

    @property
    def zonage(self) -> gpd.GeoDataFrame:
        """The zoning of the local plans."""

    @property
    def zae(self) -> gpd.GeoDataFrame:
        """The business zones."""

    @property
    def batiments(self) -> gpd.GeoDataFrame:
        """The buildings."""

    @property
    def routes(self) -> gpd.GeoDataFrame:
        """The roads."""

    @property
    def friches(self) -> gpd.GeoDataFrame:
        """The friche points."""

    @property
    def friches_surfaces(self) -> gpd.GeoDataFrame:
        """The friche perimeters."""

    @property
    def available(self) -> Collection[str]:
        """The kinds of the sources read (the others are empty layers)."""


#: What the analysis of one partition receives: its parcels, their box and the context
#: layers given for this partition (``{"batiments": …}`` when the build streams them).
PartitionTask = tuple[gpd.GeoDataFrame, Bounds, Mapping[str, gpd.GeoDataFrame]]


@dataclass(frozen=True)
class ExtraInputs:
    """Analysis inputs beyond the canonical layers, already read (``readers.extra``).

    Attributes
    ----------
    mnt
        The DEM in the territory CRS, or ``None``.
    contraintes
        The constraint layers.
    couches
        The other vector inputs by source kind (``voies_ferrees``,
        ``postes_electriques``…), whole; a kind the territory lacks is absent.
    proprietaires
        Owner table (``idu``, ``proprietaire_cle``, ``proprietaire_type``,
        ``proprietaire_nom``, ``proprietaire_siren``), or ``None``.
    proprietaires_absents
        Owner type of the parcels absent from the table: ``personne physique`` for
        the DGFiP file of legal entities, ``inconnu`` for another table.
    """

    mnt: RasterLike | None = None
    contraintes: tuple[Constraint, ...] = ()
    couches: Mapping[str, gpd.GeoDataFrame] = field(default_factory=dict)
    proprietaires: pd.DataFrame | None = None
    proprietaires_absents: str = "inconnu"


@dataclass(frozen=True)
class AnalysisOptions:
    """Options of the analysis, from the ``[options]`` table of the territory file.

    Read by :func:`observatoire.config.analysis_options` (``Territory.options.analysis``).

    Attributes
    ----------
    classes_routes
        Road distance indicators: suffix → road classes (``options.classes_routes``);
        ``None`` computes only the distances the profiles use.
    seuil_bati_gisement
        Built share under which a parcel may join a candidate site.
    score_min_gisement
        Minimal score of a parcel of a candidate site.
    tolerance_contiguite
        Contiguity tolerance (m).
    """

    classes_routes: Mapping[str, tuple[str, ...]] | None = None
    seuil_bati_gisement: float = SEUIL_BATI_GISEMENT
    score_min_gisement: float = SCORE_MIN_GISEMENT
    tolerance_contiguite: float = TOLERANCE


def road_classes(configured: Mapping[str, Sequence[str]] | None,
                 profiles: Sequence[Profile]) -> dict[str, tuple[str, ...]]:
    """Road distances to compute: those configured, plus those the profiles use.

    A profile may use ``dist_route_<classe>_m`` for a road class (``autoroute``,
    ``principale``, ``secondaire``, ``locale``) or for a group declared in
    ``options.classes_routes``; only those are computed (each costs a
    nearest-neighbour search over every parcel).

    Raises
    ------
    ConfigError
        A profile uses a road distance that is neither a class nor a declared group.
    """
    out = {k: tuple(v) for k, v in (configured or {}).items()}
    for prof in profiles:
        used = [(f"criteres.{c.name}.indicateur", c.indicator) for c in prof.criteria]
        used += [(f"exclusions.{e.name}.indicateur", e.indicator) for e in prof.exclusions]
        for key, name in used:
            m = re.fullmatch(r"dist_route_([a-z0-9_]+)_m", name)
            if m is None or m.group(1) in out:
                continue
            if m.group(1) not in ROAD_CLASSES:
                raise ConfigError(
                    f"« profils.{prof.name}.{key} » : {name} ne correspond à aucune classe de "
                    f"route ({', '.join(ROAD_CLASSES)}) ; déclarez le groupe "
                    f"« {m.group(1)} » dans options.classes_routes")
            out[m.group(1)] = (m.group(1),)
    return out


@dataclass
class AnalysisResult:
    """Everything the analysis produces.

    Attributes
    ----------
    parcelles
        The parcels (sorted by IDU) with their indicators, ``uf_id`` and the columns
        of every profile.
    unites_foncieres
        Land units.
    gisements
        Candidate sites of the first profile.
    zae
        The ZAE layer, with its friches (the inventory adds its columns afterwards).
    meilleurs_sites
        The candidate sites as a table, best first.
    profiles
        The profiles applied.
    available
        Indicators whose input was available.
    timings
        Seconds per step.
    friches, friches_surfaces
        The friche layers with :data:`~observatoire.analysis.friches.FRICHES_COLUMNS`
        (:func:`~observatoire.analysis.friches.attach_friches`).
    """

    parcelles: gpd.GeoDataFrame
    unites_foncieres: gpd.GeoDataFrame
    gisements: gpd.GeoDataFrame
    zae: gpd.GeoDataFrame
    meilleurs_sites: pd.DataFrame
    profiles: tuple[Profile, ...]
    available: frozenset[str]
    timings: dict[str, float] = field(default_factory=dict)
    friches: gpd.GeoDataFrame | None = None
    friches_surfaces: gpd.GeoDataFrame | None = None

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """Return the layers to write in the GeoPackage (replacing those read)."""
        out = {"parcelles": self.parcelles, "unites_foncieres": self.unites_foncieres,
               "gisements": self.gisements, "zae": self.zae}
        if self.friches is not None and self.friches_surfaces is not None:
            out.update(friches=self.friches, friches_surfaces=self.friches_surfaces)
        return out


def sort_by_idu(parcelles: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the parcels sorted by IDU, with a fresh index (a new frame)."""
    order = parcelles["idu"].astype(str).sort_values(kind="stable").index
    return parcelles.loc[order].reset_index(drop=True)


def analyse(layers: CanonicalLayers, *, extra: ExtraInputs | None = None,
            profiles: Sequence[Profile] | None = None,
            options: AnalysisOptions | None = None,
            communes: Sequence[str] | None = None) -> AnalysisResult:
    """Compute the indicators, scores, land units and candidate sites of layers in memory.

    For notebooks and tests: the layers of a small territory held in memory, analysed
    in one piece. The build (:mod:`observatoire.pipeline`) calls the same functions
    partition by partition, with the same values (see *Working by partition*).

    Parameters
    ----------
    layers
        The canonical layers (:class:`observatoire.ingest.Layers`): ``parcelles``,
        ``zonage``, ``zae``, ``batiments``, ``routes``, ``friches``,
        ``friches_surfaces`` and ``available`` (the source kinds configured).
    extra
        DEM, constraints, railways, substations and owners, when configured.
    profiles
        The profiles (``Territory.profiles``); ``None``: the shipped ones.
    options
        The analysis options (``Territory.options.analysis``); ``None``: the defaults.
    communes
        INSEE codes of the territory's communes, which tell its friches from those
        nearby (:func:`~observatoire.analysis.friches.attach_friches`); default: the
        communes of the parcels.

    Returns
    -------
    AnalysisResult
        New frames; the inputs are not modified.

    Raises
    ------
    ConfigError
        A profile or an option is invalid.
    """
    clock = time.perf_counter
    timings: dict[str, float] = {}
    extra = extra or ExtraInputs()
    opts = options if options is not None else AnalysisOptions()
    t = clock()
    parcelles = sort_by_idu(layers.parcelles)
    context = analysis_context(layers, extra=extra, profiles=profiles, options=opts)
    profs = context.profiles
    indicators, scores = _indicators_and_scores(parcelles, context, timings)
    timings["indicateurs_notation"] = clock() - t

    t = clock()
    pairs = contiguity_pairs(geoms(parcelles), tolerance=opts.tolerance_contiguite)
    proprietaires = None
    if extra.proprietaires is not None:
        proprietaires = parcel_proprietaires(parcelles, extra.proprietaires,
                               absents=extra.proprietaires_absents)
    unites = unites_foncieres(parcelles, proprietaires=proprietaires, pairs=pairs)
    scored = scored_frame(parcelles, indicators.frame, scores,
                          unit_of_parcel(parcelles, unites).to_numpy(dtype=object))
    first = profs[0]
    sites = gisements(scored, profile=first.name, pairs=pairs, proprietaires=proprietaires,
                      seuil_bati=opts.seuil_bati_gisement, score_min=opts.score_min_gisement)
    zae = layers.zae.copy()
    best = meilleurs_sites(sites, classes=dict(first.classes))
    timings["unites_gisements"] = clock() - t

    t = clock()
    links = (friche_links(parcelles, context.friches, context.friches_surfaces)
             if context.friches is not None else None)
    attached = friches_of_territory(
        layers, links, idu=parcelles["idu"].astype(str).to_numpy(),
        communes=communes if communes is not None else parcelles["code_insee"].dropna()
        .astype(str).unique())
    for name, values in zae_friches(zae, attached if links is not None else None).items():
        zae[name] = values
    timings["friches"] = clock() - t
    log.info("analyse : %d parcelles, %d unités foncières, %d gisements (profil %s)",
             len(scored), len(unites), len(sites), first.name)
    return AnalysisResult(parcelles=scored, unites_foncieres=unites, gisements=sites, zae=zae,
                          meilleurs_sites=best, profiles=profs,
                          available=indicators.available, timings=timings,
                          friches=attached.friches, friches_surfaces=attached.friches_surfaces)


def friches_of_territory(layers: CanonicalLayers, links: pd.DataFrame | None, *, idu: np.ndarray,
                         communes: Sequence[str]) -> AttachedFriches:
    """Attach the friches of ``layers`` (both build paths call it, with every parcel's links).

    ``links`` is ``None`` when the territory has no friche source: the layers (empty)
    still get the columns, so that every observatory has the same ones.
    """
    if links is None:
        links = friche_links(layers.parcelles.iloc[:0], layers.friches.iloc[:0],
                             layers.friches_surfaces.iloc[:0])
    return attach_friches(layers.friches, layers.friches_surfaces, links=links, idu=idu,
                          communes=communes, zae=layers.zae)


def analysis_context(layers: CanonicalLayers, *, extra: ExtraInputs | None = None,
                     profiles: Sequence[Profile] | None = None,
                     options: AnalysisOptions | None = None
                     ) -> AnalysisContext:
    """Everything but the parcels that indicators and scores read, indexed once.

    Parameters
    ----------
    layers, extra, profiles, options
        As for :func:`analyse` (the parcels of ``layers`` are not read).

    Returns
    -------
    AnalysisContext
        Layers of the kinds available (others ``None``), the distance targets
        indexed once, the road classes and the profiles.
    """
    extra = extra or ExtraInputs()
    opts = options if options is not None else AnalysisOptions()
    profs = tuple(profiles) if profiles is not None else shipped_profiles()
    have = set(layers.available)

    def layer(kind: str, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame | None:
        return frame if kind in have else None

    classes = road_classes(opts.classes_routes, profs)
    kinds = ("zonage", "zae", "batiments", "routes", "friches")
    context: dict[str, gpd.GeoDataFrame] = {k: getattr(layers, k) for k in kinds if k in have}
    routes = context.get("routes")
    return AnalysisContext(
        zonage=context.get("zonage"),
        zae=context.get("zae"),
        batiments=context.get("batiments"),
        routes=routes,
        friches=context.get("friches"),
        friches_surfaces=layer("friches", layers.friches_surfaces),
        mnt=extra.mnt,
        couches=extra.couches,
        contraintes=tuple(extra.contraintes),
        classes_routes=classes,
        profiles=profs,
        cibles=distance_targets(routes=routes, couches={**context, **extra.couches},
                                classes_routes=classes),
        friche_refs=_friche_refs(layer("friches", layers.friches)),
    )


def _friche_refs(friches: gpd.GeoDataFrame | None) -> pd.DataFrame | None:
    """Each IDU listed in a friche's ``unite_fonciere_refcad``, with the friche's row."""
    if friches is None or "unite_fonciere_refcad" not in friches:
        return None
    refs = friches["unite_fonciere_refcad"].reset_index(drop=True).dropna().astype(str)
    listed = refs.str.split("|").explode().str.strip()
    return pd.DataFrame({"row": listed.index.to_numpy(dtype=np.int64),
                         "idu": listed.to_numpy(dtype=object)})


def scored_frame(parcelles: gpd.GeoDataFrame, indicators: pd.DataFrame, scores: pd.DataFrame,
                 uf_id: np.ndarray) -> gpd.GeoDataFrame:
    """Assemble the ``parcelles`` layer: fields, ``uf_id``, indicators, scores, geometry."""
    ind = indicators.drop(columns=[c for c in indicators if c in parcelles])
    scored = gpd.GeoDataFrame(pd.concat([parcelles.drop(columns=parcelles.geometry.name), ind,
                                         scores], axis=1),
                              geometry=parcelles.geometry.values, crs=parcelles.crs)
    scored.insert(len(parcelles.columns) - 1, "uf_id",
                  pd.Series(uf_id, index=parcelles.index, name="uf_id", dtype=object))
    return scored


@dataclass(frozen=True)
class AnalysisContext:
    """Everything but the parcels that indicators and scores read."""

    zonage: gpd.GeoDataFrame | None
    zae: gpd.GeoDataFrame | None
    batiments: gpd.GeoDataFrame | None
    routes: gpd.GeoDataFrame | None
    friches: gpd.GeoDataFrame | None
    friches_surfaces: gpd.GeoDataFrame | None
    mnt: RasterLike | None
    couches: Mapping[str, gpd.GeoDataFrame]
    contraintes: tuple[Constraint, ...]
    classes_routes: Mapping[str, Sequence[str]]
    profiles: tuple[Profile, ...]
    cibles: Mapping[str, DistanceTargets] = field(default_factory=dict)
    friche_refs: pd.DataFrame | None = None

    def friches_around(self, bounds: tuple[float, float, float, float], *,
                       idu: Sequence[str] | None = None
                       ) -> tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame | None]:
        """Return the friche points and perimeters of a partition (see :meth:`around`)."""
        box = shapely.box(*bounds)
        surfaces = self.friches_surfaces
        if surfaces is not None and len(surfaces):
            surfaces = surfaces.iloc[np.sort(surfaces.sindex.query(box, predicate="intersects"))]
        friches = self.friches
        if idu is not None and friches is not None and len(friches):
            rows = friches.sindex.query(box, predicate="intersects")
            if self.friche_refs is not None and len(self.friche_refs):
                listed = pd.Index(np.asarray(idu, dtype=object)).get_indexer(
                    self.friche_refs["idu"].to_numpy(dtype=object)) >= 0
                rows = np.concatenate([rows, self.friche_refs["row"].to_numpy()[listed]])
            if surfaces is not None and len(surfaces):
                same = friches["site_id"].isin(set(surfaces["site_id"])).to_numpy()
                rows = np.concatenate([rows, np.flatnonzero(same)])
            friches = friches.iloc[np.unique(rows)]
        return friches, surfaces

    def around(self, bounds: tuple[float, float, float, float], *,
               idu: Sequence[str] | None = None) -> AnalysisContext:
        """Return the context of a partition around ``bounds``.

        Overlay layers, and the inputs of ``couches`` whose registry ``partition`` is
        ``boite``, are selected by the box (whole features, in layer order); the
        DEM is cut to the box plus two cells (:func:`~observatoire.analysis.slope.
        raster_window`: the same slopes); distance targets stay whole. Friche points
        stay whole, unless ``idu`` (the partition's parcels) is given: then those in
        the box, those whose ``unite_fonciere_refcad`` lists one of ``idu`` and
        those whose perimeter was selected are kept.
        """
        box = shapely.box(*bounds)

        def select(frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
            if frame is None or len(frame) == 0:
                return frame
            rows = np.sort(frame.sindex.query(box, predicate="intersects"))
            return frame.iloc[rows]

        friches, surfaces = self.friches_around(bounds, idu=idu)
        return replace(
            self, zonage=select(self.zonage), zae=select(self.zae),
            batiments=select(self.batiments), friches=friches, friches_surfaces=surfaces,
            mnt=raster_window(self.mnt, bounds) if self.mnt is not None else None,
            couches={k: select(f) if SOURCE_KINDS[k].partition == "boite" else f
                     for k, f in self.couches.items()},
            contraintes=tuple(replace(c, frame=select(c.frame)) for c in self.contraintes))


def _indicators_and_scores(parcelles: gpd.GeoDataFrame, ctx: AnalysisContext,
                           timings: dict[str, float] | None = None
                           ) -> tuple[Indicators, pd.DataFrame]:
    indicators = compute_indicators(
        parcelles, zonage=ctx.zonage, zae=ctx.zae, batiments=ctx.batiments, routes=ctx.routes,
        friches=ctx.friches, friches_surfaces=ctx.friches_surfaces, mnt=ctx.mnt,
        couches=ctx.couches, contraintes=ctx.contraintes, classes_routes=ctx.classes_routes,
        cibles=ctx.cibles,
        timings=timings)
    return indicators, score_parcels(indicators, ctx.profiles)


def partition_task(task: PartitionTask, ctx: AnalysisContext
                   ) -> tuple[pd.DataFrame, frozenset[str], pd.DataFrame]:
    """One partition: its indicators, which were available, and its scores.

    ``task`` is the partition's parcels, their box and the context layers
    given for this partition (``{"batiments": …}`` when the build streams them);
    ``ctx`` the whole context (sent once to each worker), from which the
    partition's is selected.
    """
    part, bounds, given = task
    local = ctx.around(bounds, idu=part["idu"].astype(str).to_numpy())
    if given:
        local = replace(local, **given)
    indicators, scores = _indicators_and_scores(part, local)
    return indicators.frame, indicators.available, scores


def extra_inputs(read: Mapping[str, ReadResult | RasterLike | None], *,
                 contraintes: Sequence[tuple[Source, ReadResult]] = ()) -> ExtraInputs:
    """Build :class:`ExtraInputs` from the results of the ``readers.extra`` readers.

    Parameters
    ----------
    read
        Source kind → result of its reader (``ExtraSources.read``): ``mnt`` a
        ``RasterResult`` (or any raster with ``array``, ``transform``, ``crs``,
        ``nodata``), ``proprietaires`` and every other kind a ``ReadResult``, whose
        frame goes to :attr:`ExtraInputs.couches`.
    contraintes
        ``(source, result)`` of each constraint: the :class:`~observatoire.config.Source`
        (``name``, ``constraint_type``, ``strict``) and its ``ReadResult``.

    Returns
    -------
    ExtraInputs
        The inputs of :func:`analyse`.
    """
    constraints = tuple(
        Constraint(name=str(source.name), kind=str(source.constraint_type or "autre"),
                   strict=bool(source.strict), frame=result.frame)
        for source, result in contraintes)
    results = {k: r for k, r in read.items() if isinstance(r, ReadResult)}
    raster = read.get("mnt")
    proprietaires = results.get("proprietaires")
    absents = "inconnu"
    if proprietaires is not None and proprietaires.report.format == "personnes_morales":
        # The DGFiP file lists every parcel owned by a legal entity: the others belong
        # to natural persons.
        absents = "personne physique"
    return ExtraInputs(
        mnt=None if raster is None or isinstance(raster, ReadResult) else raster,
        contraintes=constraints,
        couches={k: r.frame for k, r in results.items() if k != "proprietaires"},
        proprietaires=proprietaires.frame if proprietaires is not None else None,
        proprietaires_absents=absents,
    )


__all__ = ["AnalysisContext", "AnalysisOptions", "AnalysisResult", "Bounds", "CanonicalLayers",
           "Constraint", "ExtraInputs", "PartitionTask", "SCORE_MIN_GISEMENT",
           "SEUIL_BATI_GISEMENT",
           "analyse", "analysis_context", "friches_of_territory", "partition_task",
           "scored_frame",
           "connected_components", "contiguity_pairs", "extra_inputs", "road_classes",
           "sort_by_idu"]
