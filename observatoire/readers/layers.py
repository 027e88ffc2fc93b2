"""Generic vector sources: PLU zoning (CNIG zone_urba), buildings, roads, and any mapped layer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.config import Source
from observatoire.errors import GeometryError, SourceError, where
from observatoire.readers.crs import to_territory_crs
from observatoire.readers.fields import map_fields, numbers, text
from observatoire.readers.gdal import ensure_geometry, layer_is_empty, pick_layer, read_vector
from observatoire.readers.geometry import clean_geometries, layer_declares
from observatoire.readers.lineage import (
    ReadResult,
    SourceReport,
    new_report,
    new_tile_report,
    relative_name,
)
from observatoire.readers.provenance import note_provenance
from observatoire.readers.tiles import BBox, Tile, bbox_in_file_crs, clip_to_bbox, read_tile_vector
from observatoire.schema import BATIMENTS, LINEAGE, ROUTES, ZONAGE, LayerSchema, conform

ZONAGE_FIELDS = {
    "libelle": ["libelle", "LIBELLE"],
    "libelong": ["libelong"],
    "typezone": ["typezone"],
    "destdomi": ["destdomi"],
    "insee": ["insee", "DEPCOM", "code_insee"],
    "idurba": ["idurba"],
}
BATIMENTS_FIELDS = {
    "bati_id": ["cleabs", "ID", "id"],
    "nature": ["nature", "NATURE", "usage1"],
    "hauteur": ["hauteur", "HAUTEUR"],
}
ROUTES_FIELDS = {
    "route_id": ["cleabs", "ID", "id"],
    "nature": ["nature", "NATURE"],
    "importance": ["importance", "IMPORTANCE"],
    "numero": ["numero", "NUMERO", "ref"],
    "classe": ["classe"],
}

#: Zoning labels of activity zones: UX, UY, UZ, UI, UE… and their AU forms (1AUx, AUy).
ACTIVITY_LABEL = re.compile(r"^(\d?AU|U)[XYZIE]", re.IGNORECASE)
#: CNIG zone_urba ``destdomi`` code of a zone dedicated to economic activity: 02 « Activité ».
#: (00 sans objet, 01 habitat, 03 mixte habitat/activité, 04 loisirs et tourisme,
#: 05 équipement, 07 activité agricole, 08 espace naturel… are not business zones.)
ACTIVITY_DESTDOMI = {"02"}


def read_simple(source: Source, schema: LayerSchema, mapping: Mapping[str, list[str]], *,
                crs: str, base: Path | None, required: tuple[str, ...] = (),
                bbox: BBox | None = None, tile: Tile | None = None
                ) -> tuple[gpd.GeoDataFrame, SourceReport]:
    """Read a single-layer source and map its fields (shared by the generic readers).

    Parameters
    ----------
    source
        The source (one or several files).
    schema
        The canonical layer (its geometry type).
    mapping
        Canonical name → candidate source names.
    crs
        The territory CRS.
    base
        Folder against which lineage names are written.
    required
        Canonical fields that must be found.
    bbox
        Only the features intersecting this box (territory CRS): GDAL reads the
        box (R-tree of a GeoPackage), then the features are clipped exactly;
        features without geometry are not read.
    tile
        Only the features assigned to this tile of a :func:`~observatoire.readers.
        tiles.tile_grid` (the lower-left corner of their bounds, territory CRS, in
        its assignment box): GDAL reads around the tile, the features are
        reprojected, and those of other tiles dropped before any repair, so that
        the tiles of a grid read, between them, each feature once, and their
        reports (:func:`~observatoire.readers.lineage.merge_reports`) count each
        feature and repair once. Features dropped for absurd coordinates and the
        per-file counts are reported by the first tile. With ``bbox`` as well, the
        union over the tiles equals the read of ``bbox``.

    Returns
    -------
    tuple
        The mapped GeoDataFrame in the territory CRS (geometries repaired), and the
        :class:`SourceReport`.
    """
    if tile is None:
        report = new_report(source.kind, source.paths, source.format, source.layer)
    else:
        report = new_tile_report(source.kind, source.paths, source.format, source.layer)
    frames = []
    for path in source.paths:
        layer = pick_layer(path, source.layer)
        if tile is None:
            file_bbox = (bbox_in_file_crs(path, layer, bbox, crs=crs, declared=source.crs)
                         if bbox is not None else None)
            raw = read_vector(path, layer, encoding=source.encoding, key=source.key or None,
                              bbox=file_bbox)
        else:
            raw = read_tile_vector(path, layer, tile, crs=crs, bbox=bbox, declared=source.crs,
                                   encoding=source.encoding, key=source.key or None)
        raw = ensure_geometry(raw, path=path, layer=layer)
        report.layer = layer
        note_provenance(report, raw, path=path)
        if len(raw) == 0 and ((bbox is None and tile is None) or layer_is_empty(path, layer)):
            raise SourceError(f"{where(path, layer)} : couche vide ; vérifiez le fichier")
        if bbox is not None:
            # A feature without geometry meets no box, but GDAL's Arrow reader of a
            # GeoPackage returns it when the box holds the layer's whole extent.
            geoms = raw.geometry.values
            raw = raw[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        if tile is None:
            report.features_read += len(raw)
            raw = to_territory_crs(raw, target=crs, declared=source.crs, path=path,
                                   layer=layer, report=report, key=source.key or None)
        else:
            raw = _assigned(raw, tile, source=source, crs=crs, path=path, layer=layer,
                            report=report)
        geometry_type = schema.geometry_type or "MultiPolygon"
        try:
            raw = clean_geometries(raw, geometry_type=geometry_type, report=report, path=path,
                                   layer=layer)
        except GeometryError:
            # A tile may hold nothing but a few stray or collapsed geometries of a layer
            # of the right type: they are dropped (and counted) as in a whole read.
            if tile is None or not layer_declares(path, layer, geometry_type):
                raise
            raw = raw.iloc[:0]
        frame = map_fields(clip_to_bbox(raw, bbox), mapping, source.fields, path=path,
                           layer=layer, required=required, key=source.key or None)
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=crs), report


def _assigned(raw: gpd.GeoDataFrame, tile: Tile, *, source: Source, crs: str, path: Path,
              layer: str | None, report: SourceReport) -> gpd.GeoDataFrame:
    """Reproject the features a tile read and keep those assigned to it, counted once.

    The screening of coordinates runs on all the features read (its verdict on the
    CRS needs them); what it drops has no position, and is counted by the first tile
    with the per-file counts (declared CRS replacing the file's).
    """
    seen = SourceReport(kind=report.kind, paths=report.paths, format=report.format)
    projected = to_territory_crs(raw, target=crs, declared=source.crs, path=path, layer=layer,
                                 report=seen, key=source.key or None)
    report.crs_in = seen.crs_in
    if tile.is_first:
        report.features_read += len(raw) - len(projected)
        for what, n in seen.repairs.items():
            report.count(what, n)
    kept = projected[tile.owns(projected.geometry.values)]
    report.features_read += len(kept)
    return kept


def is_activity_zone(libelle: pd.Series, destdomi: pd.Series | None = None) -> pd.Series:
    """Whether each PLU zone is dedicated to economic activity.

    A zone is an activity zone when its label reads UX, UY, UZ, UI, UE or 1AUx…, or
    its CNIG ``destdomi`` is an activity code.
    """
    lab = text(libelle).fillna("")
    out = lab.str.match(ACTIVITY_LABEL)
    if destdomi is not None:
        out = out | text(destdomi).fillna("").str.zfill(2).isin(ACTIVITY_DESTDOMI)
    return out.astype(bool)


def read_zonage(source: Source, *, crs: str, base: Path | None = None,
                bbox: BBox | None = None, tile: Tile | None = None) -> ReadResult:
    """Read PLU zoning (CNIG zone_urba or a mapped layer) into ``zonage``.

    ``bbox`` (territory CRS): only the zones intersecting it; ``tile``: only the
    zones assigned to this tile (see :func:`read_simple`).
    """
    frame, report = read_simple(source, ZONAGE, ZONAGE_FIELDS, crs=crs, base=base,
                                required=("libelle",), bbox=bbox, tile=tile)
    frame["libelle"] = text(frame["libelle"])
    if "typezone" not in frame:
        frame["typezone"] = frame["libelle"].map(_typezone_from_label)
    else:
        frame["typezone"] = text(frame["typezone"]).fillna(frame["libelle"].map(
            _typezone_from_label))
    frame["zone_activite"] = is_activity_zone(frame["libelle"], frame.get("destdomi"))
    frame = _sorted(frame, ["libelle"])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, ZONAGE), report)


def _typezone_from_label(label: str | None) -> str | None:
    if not label:
        return None
    m = re.match(r"^\d?(AU|U|A|N)", label.upper())
    return m.group(1) if m else None


def read_batiments(source: Source, *, crs: str, base: Path | None = None,
                   bbox: BBox | None = None, tile: Tile | None = None) -> ReadResult:
    """Read building footprints into ``batiments``.

    ``bbox`` (territory CRS): only the buildings intersecting it; ``tile``: only
    the buildings assigned to this tile (see :func:`read_simple`): the tiles of a
    grid read, between them, what a read of ``bbox`` does, each building once.
    """
    frame, report = read_simple(source, BATIMENTS, BATIMENTS_FIELDS, crs=crs, base=base,
                                bbox=bbox, tile=tile)
    if "hauteur" in frame:
        frame["hauteur"] = numbers(frame["hauteur"], report=report, field_name="hauteur")
    frame = _sorted(frame, [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, BATIMENTS), report)


#: BD TOPO road importance (1–5) → observatory road class.
IMPORTANCE_CLASSES = {1: "principale", 2: "principale", 3: "secondaire", 4: "locale",
                      5: "locale", 6: "locale"}


def road_class(nature: pd.Series, importance: pd.Series, numero: pd.Series) -> pd.Series:
    """Class of each road: ``autoroute``, ``principale``, ``secondaire`` or ``locale``.

    Motorways are recognised by their nature (« Type autoroutier ») or number (A…);
    the others by BD TOPO's importance.
    """
    nat = text(nature).fillna("").str.lower()
    num = text(numero).fillna("").str.upper()
    imp = pd.to_numeric(importance, errors="coerce")
    cls = imp.map(IMPORTANCE_CLASSES).astype(object)
    motorway = nat.str.contains("autorout") | num.str.match(r"^A\d")
    cls = cls.where(~motorway, "autoroute")
    return cls.fillna("locale")


def read_routes(source: Source, *, crs: str, base: Path | None = None,
                bbox: BBox | None = None, tile: Tile | None = None) -> ReadResult:
    """Read roads into ``routes`` with their class.

    ``bbox`` (territory CRS): only the road sections intersecting it; ``tile``: only
    the sections assigned to this tile (see :func:`read_simple`).
    """
    frame, report = read_simple(source, ROUTES, ROUTES_FIELDS, crs=crs, base=base, bbox=bbox,
                                tile=tile)
    n = len(frame)
    empty = pd.Series([None] * n, index=frame.index, dtype=object)
    if "importance" in frame:
        frame["importance"] = numbers(frame["importance"], report=report,
                                      field_name="importance")
    if "classe" not in frame:
        frame["classe"] = road_class(frame.get("nature", empty), frame.get("importance", empty),
                                     frame.get("numero", empty))
    frame = _sorted(frame, [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, ROUTES), report)


def _sorted(frame: gpd.GeoDataFrame, keys: list[str]) -> gpd.GeoDataFrame:
    """Sort features in a stable order independent of the input files' order.

    By ``keys`` (as text), then the geometry's bounding box (xmin, ymin, xmax,
    ymax); features still tied are ordered by their normalised geometry's bytes,
    then a hash of every attribute, so that two features with the same geometry
    also come out in a fixed order. Only the tied features pay for the bytes and
    the hash.
    """
    if len(frame) == 0:
        return frame
    geoms = np.asarray(frame.geometry.array, dtype=object)
    bounds = shapely.bounds(geoms)
    order = pd.DataFrame({k: frame[k].astype(str).to_numpy() for k in keys}
                         | {"_xmin": bounds[:, 0], "_ymin": bounds[:, 1],
                            "_xmax": bounds[:, 2], "_ymax": bounds[:, 3]})
    tied = order.duplicated(keep=False).to_numpy()
    if tied.any():
        wkb = np.full(len(frame), b"", dtype=object)
        wkb[tied] = shapely.to_wkb(shapely.normalize(geoms[tied]))
        attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name)).iloc[tied].astype(str)
        row = np.zeros(len(frame), dtype=np.uint64)
        row[tied] = pd.util.hash_pandas_object(attrs, index=False).to_numpy()
        order["_wkb"], order["_row"] = wkb, row
    idx = order.sort_values(list(order.columns), kind="stable").index.to_numpy()
    return frame.iloc[idx].reset_index(drop=True)


def stable_sort(frame: gpd.GeoDataFrame, keys: list[str]) -> gpd.GeoDataFrame:
    """Public alias of the stable, order-independent sort used by every reader."""
    return _sorted(frame, keys)


__all__ = ["is_activity_zone", "read_batiments", "read_routes", "read_simple", "read_zonage",
           "road_class", "stable_sort"]
