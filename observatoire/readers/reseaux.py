"""Readers of the networks a site is measured against: railways and electrical substations.

``voies_ferrees``: lines; ``postes_electriques``: points (polygons are reduced to a
point on their surface). Both feed distance indicators.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.config import Source
from observatoire.errors import GeometryError, SourceError, where
from observatoire.readers.crs import to_territory_crs
from observatoire.readers.fields import map_fields
from observatoire.readers.gdal import layer_is_empty, pick_layer, read_vector
from observatoire.readers.geometry import clean_geometries
from observatoire.readers.layers import read_simple, stable_sort
from observatoire.readers.lineage import ReadResult, new_report, relative_name
from observatoire.readers.tiles import BBox, bbox_in_file_crs, clip_to_bbox
from observatoire.schema import LINEAGE, Field, LayerSchema, conform

VOIES_FERREES = LayerSchema(
    "voies_ferrees",
    "MultiLineString",
    (
        Field("nature", "str", False, "Nature du tronçon"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Voies ferrées",
)


POSTES_ELECTRIQUES = LayerSchema(
    "postes_electriques",
    "Point",
    (
        Field("nom", "str", False, "Nom du poste"),
        Field("tension", "str", False, "Tension"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Postes électriques",
)


VOIES_FERREES_FIELDS = {"nature": ["nature", "NATURE", "railway"]}


POSTES_FIELDS = {"nom": ["nom", "name", "NOM", "toponyme"],
                 "tension": ["tension", "voltage", "TENSION"]}


def read_voies_ferrees(source: Source, *, crs: str, base: Path | None = None,
                       bbox: BBox | None = None) -> ReadResult:
    """Read railway lines into ``voies_ferrees``.

    ``bbox`` (territory CRS): only the sections intersecting it.
    """
    frame, report = read_simple(source, VOIES_FERREES, VOIES_FERREES_FIELDS, crs=crs, base=base,
                                bbox=bbox)
    frame = stable_sort(frame, [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, VOIES_FERREES), report)


def read_postes_electriques(source: Source, *, crs: str, base: Path | None = None,
                            bbox: BBox | None = None) -> ReadResult:
    """Read electrical substations (points, or polygons reduced to a point on their surface).

    ``bbox`` (territory CRS): only the substations whose point lies in it.
    """
    report = new_report(source.kind, source.paths, source.format, source.layer)
    frames = []
    for path in source.paths:
        layer = pick_layer(path, source.layer)
        report.layer = layer
        file_bbox = (bbox_in_file_crs(path, layer, bbox, crs=crs, declared=source.crs)
                     if bbox is not None else None)
        raw = read_vector(path, layer, encoding=source.encoding, bbox=file_bbox)
        if not isinstance(raw, gpd.GeoDataFrame):
            raise GeometryError(f"{where(path, layer)} : couche sans géométrie ; indiquez une "
                                f"couche de points ou de polygones (clé « couche »)")
        report.features_read += len(raw)
        if len(raw) == 0 and (bbox is None or layer_is_empty(path, layer)):
            raise SourceError(f"{where(path, layer)} : couche vide ; vérifiez le fichier")
        raw = to_territory_crs(raw, target=crs, declared=source.crs, path=path, layer=layer,
                               report=report)
        g = np.asarray(raw.geometry.array, dtype=object)
        surfaces = shapely.get_dimensions(g) == 2
        if surfaces.any():
            g = g.copy()
            g[surfaces] = shapely.point_on_surface(shapely.make_valid(g[surfaces]))
            report.count("postes surfaciques réduits à un point", int(surfaces.sum()))
        raw = raw.set_geometry(gpd.GeoSeries(g, index=raw.index, crs=raw.crs))
        raw = clean_geometries(raw, geometry_type="Point", report=report, path=path,
                               layer=layer)
        frame = map_fields(clip_to_bbox(raw, bbox), POSTES_FIELDS, source.fields, path=path,
                           layer=layer)
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = stable_sort(gpd.GeoDataFrame(frame, geometry="geometry", crs=crs), [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, POSTES_ELECTRIQUES), report)
