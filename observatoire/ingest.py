"""Ingestion: read every configured source into the canonical layers of the territory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import shapely

from observatoire.config import Territory
from observatoire.readers.cadastre import read_parcelles
from observatoire.readers.common import ReadResult, SourceReport, new_report
from observatoire.readers.etablissements import read_etablissements
from observatoire.readers.friches import read_friches
from observatoire.readers.layers import read_batiments, read_routes, read_zonage
from observatoire.readers.zae import derive_zae_from_zonage, read_zae
from observatoire.schema import BATIMENTS, ROUTES, ZAE, ZONAGE, empty_layer

log = logging.getLogger(__name__)

#: Context layers are kept within this distance of the territory's parcels (m).
CONTEXT_MARGIN = 5_000.0


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
           streamed: tuple[str, ...] = ()) -> Layers:
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
    zae = run("zae", read_zae)
    if zae is not None:
        zae_frame = zae.frame
    elif zonage is not None:
        zae_frame = derive_zae_from_zonage(zonage_frame, report=zonage.report)
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
