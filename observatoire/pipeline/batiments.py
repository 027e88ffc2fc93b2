"""Buildings streamed tile by tile into the GeoPackage being written.

A territory's buildings can outnumber its parcels: they are read by tiles of
:data:`TILE_SIZE` (in a worker process while this one writes), appended to the
``batiments`` layer as they come, then read back by each partition through the
GeoPackage's R-tree (:func:`observatoire.geopackage.layer_reader`).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import shapely

from observatoire.config import Source, Territory
from observatoire.executor import Executor, SerialExecutor
from observatoire.geopackage import GeoPackageWriter, LayerBuffer, LayerSum
from observatoire.ingest import keep_near
from observatoire.pipeline.staging import portable
from observatoire.progress import Progress, track
from observatoire.readers.layers import read_batiments
from observatoire.readers.lineage import SourceReport, merge_reports
from observatoire.readers.tiles import BBox, Tile, as_bbox, tile_grid

TILE_SIZE = 20_000.0

#: What every tile's reading shares: the source, the territory's CRS and folder, the
#: box read and the extent the buildings must meet.
TileShared = tuple[Source, str, Path, BBox, shapely.Geometry]


def read_tile(tile: Tile, shared: TileShared) -> tuple[gpd.GeoDataFrame, SourceReport]:
    """Read the buildings of ``tile`` kept near the territory, and their report.

    The work of the executor's workers while streaming the buildings; ``shared``
    is the source, the territory's CRS and folder, the box read and the extent.
    """
    source, crs, base, box, extent = shared
    result = read_batiments(source, crs=crs, base=base, bbox=box, tile=tile)
    return keep_near(result.frame, extent, result.report, "bâtiments"), result.report


def stream_batiments(territory: Territory, writer: GeoPackageWriter, extent: shapely.Geometry,
                     total: LayerSum, *, executor: Executor | None = None,
                     progress: Progress | None = None) -> SourceReport:
    """Read the buildings tile by tile into the ``batiments`` layer; return their report.

    Each building is read once (the tile holding the corner of its box), kept when
    it meets ``extent`` (as the one-pass build does) and appended as it comes. The
    tiles are read through ``executor`` (a worker process reads the next tiles
    while this one writes), serially when ``None``. ``progress`` counts the tiles.
    """
    source = territory.source("batiments")
    assert source is not None
    box = as_bbox(extent.bounds)
    out = LayerBuffer(writer, "batiments", total)
    reports = []
    executor = executor or SerialExecutor()
    shared: TileShared = (portable(source), territory.crs, territory.path.parent, box, extent)
    tiles = tile_grid(box, size=TILE_SIZE)
    for frame, report in track(progress, executor.imap(read_tile, tiles, shared=shared),
                               total=len(tiles), label="tuiles de bâtiments"):
        out.add(frame)
        reports.append(report)
    executor.release()
    out.flush()
    return merge_reports(reports)


