"""Ingestion: read every configured source into the canonical layers of the territory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.config import Source, Territory
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.layers import stable_sort
from observatoire.readers.lineage import ReadResult, SourceReport, new_report
from observatoire.readers.zae import assign_zae_ids, derive_zae_from_zonage
from observatoire.schema import BATIMENTS, ROUTES, ZAE, ZONAGE, empty_layer
from observatoire.sources import SOURCE_KINDS

log = logging.getLogger(__name__)

#: Context layers are kept within this distance of the territory's parcels (m).
CONTEXT_MARGIN = 5_000.0

#: The territory's parcels meeting some boxes (``(n, 4)`` bounds, territory CRS), in
#: parts (see :func:`ingest`).
ParcelParts = Callable[[np.ndarray], Iterable[gpd.GeoDataFrame]]


@dataclass
class Layers:
    """The canonical layers of a territory and the reports of their sources."""

    parcelles: gpd.GeoDataFrame
    friches: gpd.GeoDataFrame
    friches_surfaces: gpd.GeoDataFrame
    zae: gpd.GeoDataFrame
    zonage: gpd.GeoDataFrame
    batiments: gpd.GeoDataFrame
    routes: gpd.GeoDataFrame
    etablissements: gpd.GeoDataFrame | None = None
    reports: list[SourceReport] = field(default_factory=list)
    available: set[str] = field(default_factory=set)

    def spatial(self) -> dict[str, gpd.GeoDataFrame]:
        """Return the layers by name, in publication order."""
        return {
            "parcelles": self.parcelles,
            "friches": self.friches,
            "friches_surfaces": self.friches_surfaces,
            "zae": self.zae,
            "zonage": self.zonage,
            "batiments": self.batiments,
            "routes": self.routes,
        }


def ingest(territory: Territory, *, parcelles: ReadResult | None = None,
           bounds: tuple[float, float, float, float] | None = None,
           streamed: tuple[str, ...] = (), parcel_parts: ParcelParts | None = None) -> Layers:
    """Read and normalise every source of ``territory``.

    Parameters
    ----------
    territory
        The loaded territory file.
    parcelles
        The parcels already read (the partitioned build stages them and passes an
        empty layer with their report); read from the territory when ``None``.
    bounds
        Box of the parcels, when ``parcelles`` does not hold them.
    streamed
        Source kinds that the caller reads itself, tile by tile (the partitioned
        build streams ``batiments``): their layer is left empty but *available*,
        and their report is a placeholder at its place in ``reports``.
    parcel_parts
        The parcels meeting some boxes, in parts (a commune at a time), when
        ``parcelles`` does not hold them: the ZAE are placed on them
        (:func:`place_zae`).

    Returns
    -------
    Layers
        Canonical layers in the territory CRS; optional layers not configured are
        empty and absent from ``available``.

    Raises
    ------
    ObservatoireError
        The first source that cannot be read, with its file, layer and field.
    """
    crs = territory.crs
    base = territory.path.parent
    reports: list[SourceReport] = []
    available: set[str] = set()

    if parcelles is None:
        source = territory.source("parcelles")
        assert source is not None  # required by the territory file
        log.info("lecture de parcelles (%s)", ", ".join(p.name for p in source.paths))
        parcelles = read_parcelles(source, crs=crs, base=base, communes=territory.communes)
        if len(parcelles.frame) == 0:
            from observatoire.errors import SourceError

            raise SourceError(
                f"{source.path} : aucune parcelle des communes "
                f"{', '.join(territory.communes)} ; vérifiez territoire.communes et le fichier"
            )
    reports.append(parcelles.report)
    available.add("parcelles")
    box = bounds or tuple(parcelles.frame.total_bounds)

    def run(kind: str, **options: Any) -> ReadResult | None:
        source = territory.source(kind)
        if source is None:
            return None
        available.add(kind)
        if kind in streamed:
            reports.append(new_report(kind, source.paths, source.format, source.layer))
            return None
        log.info("lecture de %s (%s)", kind, ", ".join(p.name for p in source.paths))
        result = read_context_source(source, territory, bounds=box, **options)
        reports.append(result.report)
        return result

    zonage = run("zonage")
    zonage_frame = zonage.frame if zonage else empty_layer(ZONAGE, crs)
    friches = run("friches")

    def on_territory(zones: gpd.GeoDataFrame, report: SourceReport) -> gpd.GeoDataFrame:
        # Zones outside the territory are left out before the others are numbered:
        # ids [INSEE]_SITE-ECO_[n] need the commune, found from the parcels.
        parts = (() if len(zones) == 0 else (parcelles.frame,) if parcel_parts is None
                 else parcel_parts(zones.geometry.bounds.to_numpy()))
        placed = place_zae(zones, parts, report=report,
                           part_min=territory.options.vacance.part_min_zae)
        return assign_zae_ids(placed)

    zae = run("zae", assign_ids=False)
    if zae is not None:
        # In identifier order, as the reader gives zones that have theirs.
        zae_frame = stable_sort(on_territory(zae.frame, zae.report), ["zae_id"])
        zae.report.features_kept = zae.report.features_in_territory = len(zae_frame)
    elif zonage is not None:
        zae_frame = on_territory(derive_zae_from_zonage(zonage_frame, report=zonage.report,
                                                        assign_ids=False), zonage.report)
        available.add("zae")
    else:
        zae_frame = empty_layer(ZAE, crs)
    batiments = run("batiments")
    routes = run("routes")
    etablissements = run("etablissements")
    return Layers(
        parcelles=parcelles.frame,
        friches=friches.frame if friches else empty_friches(crs),
        friches_surfaces=friches.extra["friches_surfaces"] if friches
        else empty_friches(crs, surfaces=True),
        zae=zae_frame,
        zonage=zonage_frame,
        batiments=batiments.frame if batiments else empty_layer(BATIMENTS, crs),
        routes=routes.frame if routes else empty_layer(ROUTES, crs),
        etablissements=etablissements.frame if etablissements else None,
        reports=reports,
        available=available,
    )


def read_context_source(source: Source, territory: Territory, *,
                        bounds: tuple[float, float, float, float] | None,
                        **options: Any) -> ReadResult:
    """Read one context source as the build does, and count what serves the territory.

    The build and ``validate`` both read through here, so that they keep the same
    features and say the same counts.

    Parameters
    ----------
    source
        A source of a kind the build reads with the context (``stage="contexte"`` in
        :data:`observatoire.sources.SOURCES`).
    territory
        The loaded territory file.
    bounds
        Box of the territory's parcels. Kinds marked ``boxed`` in the registry are
        read through this box widened by :data:`CONTEXT_MARGIN`, those with a
        ``near`` name keep the features within the margin (the others are dropped
        and counted under that name); the zones
        (``zonage``, ``zae``) meeting the box are counted in
        ``report.features_in_territory``. ``None``: the whole file, nothing dropped
        nor counted.
    **options
        Passed to the source's reader (``assign_ids`` for ``zae``).

    Returns
    -------
    ReadResult
        The canonical layer and its report.

    Raises
    ------
    ObservatoireError
        The source cannot be read, with its file, layer and field.
    """
    kind = source.kind
    spec = SOURCE_KINDS[kind]
    read = spec.reader
    if bounds is None:
        return read(source, crs=territory.crs, base=territory.path.parent, **options)
    extent = context_extent(bounds)
    kw = {"bbox": tuple(extent.bounds)} if spec.boxed else {}
    result = read(source, crs=territory.crs, base=territory.path.parent, **kw, **options)
    if spec.near is not None:
        result.frame = keep_near(result.frame, extent, result.report, spec.near)
    if kind == "friches":
        result.extra["friches_surfaces"] = keep_near(result.extra["friches_surfaces"], extent,
                                                     None, "")
    if kind in ("zonage", "zae"):
        result.report.features_in_territory = count_meeting(result.frame, shapely.box(*bounds))
    return result


def count_meeting(frame: gpd.GeoDataFrame, area: shapely.Geometry) -> int:
    """Count the features of ``frame`` that meet ``area`` (an R-tree query, then the test)."""
    if len(frame) == 0:
        return 0
    return len(frame.sindex.query(area, predicate="intersects"))


def zae_overlaps(zae: gpd.GeoDataFrame, parcelles: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return what each zone shares with the parcels of each commune.

    Parameters
    ----------
    zae
        Zones (rows numbered by position).
    parcelles
        Parcels (``code_insee``, polygons), any part of the territory's.

    Returns
    -------
    pandas.DataFrame
        One row per zone and commune met: ``zone`` (position in ``zae``),
        ``code_insee``, ``surface_m2`` (area of the zone on the commune's parcels)
        and ``part_parcelle`` (the largest share of one of these parcels inside the
        zone, 0–1).
    """
    from observatoire.analysis.zae_inventory import overlap_areas

    columns = {"zone": pd.Series([], dtype=np.int64), "code_insee": pd.Series([], dtype=object),
               "surface_m2": pd.Series([], dtype=float),
               "part_parcelle": pd.Series([], dtype=float)}
    if len(zae) == 0 or len(parcelles) == 0:
        return pd.DataFrame(columns)
    geoms = np.asarray(parcelles.geometry.values)
    iz, ip, area = overlap_areas(np.asarray(zae.geometry.values), geoms)
    pairs = pd.DataFrame({"zone": iz, "code_insee": parcelles["code_insee"].to_numpy(
        dtype=object)[ip], "surface_m2": area, "part_parcelle": area / shapely.area(geoms[ip])})
    if len(pairs) == 0:
        return pd.DataFrame(columns)
    return pairs.groupby(["zone", "code_insee"], sort=True).agg(
        surface_m2=("surface_m2", "sum"), part_parcelle=("part_parcelle", "max")).reset_index()


def place_zae(zae: gpd.GeoDataFrame, parcelles: Iterable[gpd.GeoDataFrame], *,
              report: SourceReport | None = None, part_min: float = 0.5) -> gpd.GeoDataFrame:
    """Keep the zones in the territory, and give those without a commune the one they lie on.

    A métropole's ZAE layer holds every zone of the métropole: a zone is in the
    territory when its parcels and the zone share at least ``part_min`` of one
    of them — a parcel of the territory lies mostly in the zone (it can belong to
    it, as the inventory's ``part_min_zae`` says), or the territory's parcels
    cover most of the zone. A zone that only touches the territory, or overlaps
    it by a digitising sliver, is left out with the others. A zone without
    ``comm_insee`` gets the commune whose parcels hold the largest part of it.

    Parameters
    ----------
    zae
        The zones read (``comm_insee`` possibly empty).
    parcelles
        The territory's parcels (``code_insee``, polygons), whole or in parts
        (each parcel in one part): the result does not depend on the cut.
    report
        Counts ``zones hors du territoire`` and ``communes des zones déduites des
        parcelles``.
    part_min
        The share (0–1) described above.

    Returns
    -------
    geopandas.GeoDataFrame
        The zones kept, in their order, ``comm_insee`` filled where it can be.
    """
    parts = [zae_overlaps(zae, frame) for frame in parcelles]
    shared = (pd.concat(parts, ignore_index=True) if parts else zae_overlaps(zae, zae.iloc[:0]))
    shared = shared.groupby(["zone", "code_insee"], sort=True).agg(
        surface_m2=("surface_m2", "sum"), part_parcelle=("part_parcelle", "max")).reset_index()
    by_zone = shared.groupby("zone")
    positions = pd.RangeIndex(len(zae))
    covered = by_zone["surface_m2"].sum().reindex(positions, fill_value=0.0).to_numpy()
    parcel_part = by_zone["part_parcelle"].max().reindex(positions, fill_value=0.0).to_numpy()
    zone_area = shapely.area(np.asarray(zae.geometry.values))
    with np.errstate(divide="ignore", invalid="ignore"):
        zone_part = np.where(zone_area > 0, covered / zone_area, 0.0)
    keep = (parcel_part >= part_min) | (zone_part >= part_min)
    # The commune holding the largest area of the zone (ties: the smallest code).
    main = shared.sort_values(["zone", "surface_m2", "code_insee"],
                              ascending=[True, False, True], kind="stable"
                              ).drop_duplicates("zone").set_index("zone")["code_insee"]
    out = zae.copy()
    given = out["comm_insee"] if "comm_insee" in out else pd.Series(None, index=out.index,
                                                                    dtype=object)
    found = pd.Series(main.reindex(positions).to_numpy(), index=out.index, dtype=object)
    filled = given.isna() & found.notna() & keep
    out["comm_insee"] = given.astype(object).where(~filled, found)
    if report is not None:
        report.count("zones hors du territoire", int((~keep).sum()))
        report.count("communes des zones déduites des parcelles", int(filled.sum()))
    if (~keep).any():
        log.info("%s : %d zone(s) hors du territoire écartée(s) sur %d",
                 report.kind if report else "zae", int((~keep).sum()), len(zae))
    return out[keep].reset_index(drop=True)


def context_extent(bounds: tuple[float, float, float, float]) -> shapely.Geometry:
    """Return the area of the context layers: the parcels' box widened by the margin."""
    return shapely.box(*bounds).buffer(CONTEXT_MARGIN)


def keep_near(frame: gpd.GeoDataFrame, extent: shapely.Geometry, report: SourceReport | None,
              what: str) -> gpd.GeoDataFrame:
    """Keep the features meeting ``extent``; count the others in ``report``.

    The report's ``features_kept`` loses the features dropped: it says what the
    layer holds.
    """
    if len(frame) == 0:
        return frame
    keep = frame.intersects(extent)
    if report is not None:
        dropped = int((~keep).sum())
        report.count(f"{what} hors du territoire (à plus de 5 km) écartées", dropped)
        report.features_kept = max(report.features_kept - dropped, 0)
    return frame[keep].reset_index(drop=True)


def empty_friches(crs: str, *, surfaces: bool = False) -> gpd.GeoDataFrame:
    """Empty ``friches`` (or ``friches_surfaces``) layer."""
    from observatoire.schema import FRICHES, FRICHES_SURFACES

    return empty_layer(FRICHES_SURFACES if surfaces else FRICHES, crs)


def source_paths(territory: Territory) -> list[Path]:
    """Every input file of the territory (for the Makefile's dependencies)."""
    return [p for s in territory.all_sources() for p in s.paths]
