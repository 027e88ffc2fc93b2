"""Ingestion: read every configured source into the canonical layers of the territory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import shapely

from observatoire.config import Source, Territory
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

#: Readers of the context sources (everything but the parcels and the analysis inputs).
CONTEXT_READERS: dict[str, Callable[..., ReadResult]] = {
    "zonage": read_zonage,
    "friches": read_friches,
    "zae": read_zae,
    "batiments": read_batiments,
    "routes": read_routes,
    "etablissements": read_etablissements,
}
#: Context sources read through the box of the context (an R-tree query on a GeoPackage):
#: a national buildings file costs what the territory holds.
BOXED = frozenset({"zonage", "batiments", "routes"})
#: Context sources whose features beyond the margin are dropped, and counted under this name.
NEAR = {"friches": "friches", "batiments": "bâtiments", "routes": "routes",
        "etablissements": "établissements"}


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

    def run(kind: str) -> ReadResult | None:
        source = territory.source(kind)
        if source is None:
            return None
        available.add(kind)
        if kind in streamed:
            reports.append(new_report(kind, source.paths, source.format, source.layer))
            return None
        log.info("lecture de %s (%s)", kind, ", ".join(p.name for p in source.paths))
        result = read_context_source(source, territory, bounds=box)
        reports.append(result.report)
        return result

    zonage = run("zonage")
    zonage_frame = zonage.frame if zonage else empty_layer(ZONAGE, crs)
    friches = run("friches")
    zae = run("zae")
    if zae is not None:
        zae_frame = zae.frame
    elif zonage is not None:
        zae_frame = derive_zae_from_zonage(zonage_frame, report=zonage.report)
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
                        bounds: tuple[float, float, float, float] | None) -> ReadResult:
    """Read one context source as the build does, and count what serves the territory.

    The build and ``validate`` both read through here, so that they keep the same
    features and say the same counts.

    Parameters
    ----------
    source
        A source of a kind of :data:`CONTEXT_READERS`.
    territory
        The loaded territory file.
    bounds
        Box of the territory's parcels. Sources of :data:`BOXED` are read through
        this box widened by :data:`CONTEXT_MARGIN`, those of :data:`NEAR` keep the
        features within the margin (the others are dropped and counted); the zones
        (``zonage``, ``zae``) meeting the box are counted in
        ``report.features_in_territory``. ``None``: the whole file, nothing dropped
        nor counted.

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
    read = CONTEXT_READERS[kind]
    if bounds is None:
        return read(source, crs=territory.crs, base=territory.path.parent)
    extent = context_extent(bounds)
    kw = {"bbox": tuple(extent.bounds)} if kind in BOXED else {}
    result = read(source, crs=territory.crs, base=territory.path.parent, **kw)
    if kind in NEAR:
        result.frame = keep_near(result.frame, extent, result.report, NEAR[kind])
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
