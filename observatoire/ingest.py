"""Ingestion: read every configured source into the canonical layers of the territory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.config import Territory
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.common import ReadResult, SourceReport, new_report
from observatoire.readers.etablissements import read_etablissements
from observatoire.readers.friches import read_friches
from observatoire.readers.layers import read_batiments, read_routes, read_zonage, stable_sort
from observatoire.readers.zae import assign_zae_ids, derive_zae_from_zonage, read_zae
from observatoire.schema import BATIMENTS, ROUTES, ZAE, ZONAGE, empty_layer

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

    def run(kind: str, reader, **kw) -> ReadResult | None:  # type: ignore[no-untyped-def]
        source = territory.source(kind)
        if source is None:
            return None
        if kind in streamed:
            reports.append(new_report(kind, source.paths, source.format, source.layer))
            available.add(kind)
            return None
        log.info("lecture de %s (%s)", kind, ", ".join(p.name for p in source.paths))
        result = reader(source, crs=crs, base=base, **kw)
        reports.append(result.report)
        available.add(kind)
        return result

    if parcelles is None:
        parcelles = run("parcelles", read_parcelles, communes=territory.communes)
        assert parcelles is not None  # required by the territory file
        if len(parcelles.frame) == 0:
            from observatoire.errors import SourceError

            raise SourceError(
                f"{territory.source('parcelles').path} : aucune parcelle des communes "  # type: ignore[union-attr]
                f"{', '.join(territory.communes)} ; vérifiez territoire.communes et le fichier"
            )
    else:
        reports.append(parcelles.report)
        available.add("parcelles")
    extent = context_extent(bounds or tuple(parcelles.frame.total_bounds))

    # Context layers are read through the territory's box (an R-tree query on a
    # GeoPackage): a national buildings file costs what the territory holds.
    box = tuple(extent.bounds)
    zonage = run("zonage", read_zonage, bbox=box)
    zonage_frame = zonage.frame if zonage else empty_layer(ZONAGE, crs)
    friches = run("friches", read_friches)

    def on_territory(zones: gpd.GeoDataFrame, report: SourceReport) -> gpd.GeoDataFrame:
        # Zones outside the territory are left out before the others are numbered:
        # ids [INSEE]_SITE-ECO_[n] need the commune, found from the parcels.
        from observatoire.analysis.zae_inventory import vacancy_rule

        parts = (() if len(zones) == 0 else (parcelles.frame,) if parcel_parts is None
                 else parcel_parts(zones.geometry.bounds.to_numpy()))
        placed = place_zae(zones, parts, report=report,
                           part_min=vacancy_rule(territory.options.get("vacance")).part_min_zae)
        return assign_zae_ids(placed)

    zae = run("zae", read_zae, assign_ids=False)
    if zae is not None:
        # In identifier order, as the reader gives zones that have theirs.
        zae_frame = stable_sort(on_territory(zae.frame, zae.report), ["zae_id"])
        zae.report.features_kept = len(zae_frame)
    elif zonage is not None:
        zae_frame = on_territory(derive_zae_from_zonage(zonage_frame, report=zonage.report,
                                                        assign_ids=False), zonage.report)
        available.add("zae")
    else:
        zae_frame = empty_layer(ZAE, crs)
    batiments = run("batiments", read_batiments, bbox=box)
    routes = run("routes", read_routes, bbox=box)
    etablissements = run("etablissements", read_etablissements)

    def near(frame: gpd.GeoDataFrame, report: SourceReport | None, what: str
             ) -> gpd.GeoDataFrame:
        out = keep_near(frame, extent, report, what)
        if len(frame) and not len(out):
            log.warning("%s : aucune entité à moins de 5 km des parcelles : CRS erroné ?", what)
        return out

    fr_report = friches.report if friches else None
    layers = Layers(
        parcelles=parcelles.frame,
        friches=near(friches.frame, fr_report, "friches") if friches
        else empty_friches(crs),
        friches_surfaces=near(friches.extra["friches_surfaces"], None, "") if friches
        else empty_friches(crs, surfaces=True),
        zae=zae_frame,
        zonage=zonage_frame,
        batiments=near(batiments.frame, batiments.report, "bâtiments") if batiments
        else empty_layer(BATIMENTS, crs),
        routes=near(routes.frame, routes.report, "routes") if routes
        else empty_layer(ROUTES, crs),
        etablissements=near(etablissements.frame, etablissements.report, "établissements")
        if etablissements else None,
        reports=reports,
        available=available,
    )
    if friches:
        friches.report.features_kept = len(layers.friches)
    return layers


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
    """Keep the features meeting ``extent``; count the others in ``report``."""
    if len(frame) == 0:
        return frame
    keep = frame.intersects(extent)
    if report is not None:
        report.count(f"{what} hors du territoire (à plus de 5 km) écartées", int((~keep).sum()))
    return frame[keep].reset_index(drop=True)


def empty_friches(crs: str, *, surfaces: bool = False) -> gpd.GeoDataFrame:
    """Empty ``friches`` (or ``friches_surfaces``) layer."""
    from observatoire.schema import FRICHES, FRICHES_SURFACES

    return empty_layer(FRICHES_SURFACES if surfaces else FRICHES, crs)


def source_paths(territory: Territory) -> list[Path]:
    """Every input file of the territory (for the Makefile's dependencies)."""
    return [p for s in territory.all_sources() for p in s.paths]
