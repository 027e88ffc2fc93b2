"""Business zones (ZAE): CNIG Sites Économiques, a polygon layer, or zones derived from the PLU.

The CNIG GeoPackage's layer ``site_eco`` or any polygon layer with a field
mapping; when no ZAE source is configured, candidate zones are derived from the
PLU's activity zones.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from observatoire.config import Source
from observatoire.errors import SourceError, where
from observatoire.readers.crs import to_territory_crs
from observatoire.readers.fields import map_fields, text
from observatoire.readers.gdal import ensure_geometry, layer_is_empty, pick_layer, read_vector
from observatoire.readers.geometry import clean_geometries
from observatoire.readers.layers import stable_sort
from observatoire.readers.lineage import ReadResult, SourceReport, new_report, relative_name
from observatoire.readers.provenance import note_provenance
from observatoire.readers.tiles import BBox, bbox_in_file_crs, clip_to_bbox
from observatoire.schema import LINEAGE, ZAE, conform

ZAE_FIELDS = {
    "zae_id": ["site_id", "zae_id", "id"],
    "zae_nom": ["site_nom", "zae_nom", "nom"],
    "zae_type": ["site_type", "type"],
    "zae_vocation": ["site_vocadomi", "vocation"],
    "comm_insee": ["site_comm_insee", "comm_insee", "insee"],
}


def read_zae(source: Source, *, crs: str, base: Path | None = None,
             bbox: BBox | None = None, assign_ids: bool = True) -> ReadResult:
    """Read ZAE perimeters (CNIG ``site_eco`` or a mapped polygon layer) into ``zae``.

    Parameters
    ----------
    source
        The ``zae`` source.
    crs
        The territory CRS.
    base
        Folder against which lineage names are written.
    bbox
        Only the zones intersecting this box (territory CRS), read through the
        file's spatial index. When some zones have no identifier, the whole layer
        is read, since their numbering (``[INSEE]_SITE-ECO_[n]``) depends on every
        zone of the commune.
    assign_ids
        Give the zones without an identifier one (``[INSEE]_SITE-ECO_[n]``). The
        build leaves them without, places the zones on the territory
        (:func:`observatoire.ingest.place_zae`: zones outside it are left out,
        their commune found from the parcels) and numbers them then
        (:func:`assign_zae_ids`).

    Returns
    -------
    ReadResult
        The canonical ``zae`` layer.

    Raises
    ------
    SourceError
        An empty layer, or two zones with the same identifier.
    """
    frame, report = _read_zae_files(source, crs=crs, base=base, bbox=bbox)
    if bbox is not None and ("zae_id" not in frame or frame["zae_id"].isna().any()):
        frame, report = _read_zae_files(source, crs=crs, base=base, bbox=None)
    if assign_ids:
        frame = assign_zae_ids(frame)
    elif "zae_id" not in frame:
        frame["zae_id"] = pd.Series(None, index=frame.index, dtype=object)
    dup = frame["zae_id"].duplicated() & frame["zae_id"].notna()
    if dup.any():
        raise SourceError(
            f"{where(source.path, report.layer, 'zae_id')} : identifiant de zone en double "
            f"({frame.loc[dup, 'zae_id'].iloc[0]!r}) ; chaque zone doit avoir un identifiant unique"
        )
    frame = stable_sort(clip_to_bbox(frame, bbox), ["zae_id"])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, ZAE), report)


def _read_zae_files(source: Source, *, crs: str, base: Path | None, bbox: BBox | None
                    ) -> tuple[gpd.GeoDataFrame, SourceReport]:
    """Read every file of a ZAE source (features meeting ``bbox`` and a few more)."""
    report = new_report("zae", source.paths, source.format, source.layer)
    frames = []
    for path in source.paths:
        layer = pick_layer(path, source.layer, prefer=("site_eco",))
        origin = "cnig" if layer == "site_eco" or source.format == "cnig" else "couche"
        report.format, report.layer = origin, layer
        file_bbox = (bbox_in_file_crs(path, layer, bbox, crs=crs, declared=source.crs)
                     if bbox is not None else None)
        raw = ensure_geometry(read_vector(path, layer, encoding=source.encoding,
                                          key=source.key or None, bbox=file_bbox),
                              path=path, layer=layer)
        report.features_read += len(raw)
        note_provenance(report, raw, path=path, producer_field="source_producteur")
        if len(raw) == 0 and (bbox is None or layer_is_empty(path, layer)):
            # The CNIG template ships an empty site_eco: say so rather than build an
            # inventory of nothing.
            raise SourceError(
                f"{where(path, layer)} : couche vide (aucune zone d'activité) ; remplissez-la "
                f"(modèle CNIG vierge ?) ou retirez « {source.key or 'sources.zae'} » pour "
                f"dériver les zones des zones d'activité du PLU"
            )
        raw = to_territory_crs(raw, target=crs, declared=source.crs, path=path, layer=layer,
                               report=report, key=source.key or None)
        raw = clean_geometries(raw, geometry_type="MultiPolygon", report=report, path=path,
                               layer=layer)
        frame = map_fields(raw, ZAE_FIELDS, source.fields, path=path, layer=layer,
                           key=source.key or None)
        for col in ("zae_id", "zae_nom", "zae_type", "zae_vocation", "comm_insee"):
            if col in frame:
                frame[col] = text(frame[col])
        if "comm_insee" in frame:
            # A code stored as a number lost its leading zero (01015 → 1015).
            code = frame["comm_insee"].astype(object)
            short = code.map(lambda c: isinstance(c, str) and len(c) == 4 and c.isdigit())
            frame["comm_insee"] = code.where(~short, code.str.zfill(5))
            report.count("codes INSEE complétés d'un zéro initial", int(short.sum()))
        frame["zae_origine"] = origin
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)
    return frame, report


def derive_zae_from_zonage(zonage: gpd.GeoDataFrame, *, report: SourceReport | None = None,
                           assign_ids: bool = True) -> gpd.GeoDataFrame:
    """Derive candidate ZAE from the PLU's activity zones (marked ``derivee_plu``).

    Touching activity zones are merged into one candidate zone; each gets an id
    ``[INSEE]_SITE-ECO_[n]`` numbered from west to east.

    Parameters
    ----------
    zonage
        The canonical ``zonage`` layer.
    report
        Counts how many zones were derived.
    assign_ids
        Number the zones; ``False`` leaves ``zae_id`` empty (see :func:`read_zae`).

    Returns
    -------
    geopandas.GeoDataFrame
        The canonical ``zae`` layer (possibly empty).
    """
    act = zonage[zonage["zone_activite"]]
    if len(act) == 0:
        return conform(gpd.GeoDataFrame({c: [] for c in ZAE.columns},
                                        geometry=gpd.GeoSeries([], crs=zonage.crs),
                                        crs=zonage.crs), ZAE)
    merged = shapely.union_all(act.geometry.values)
    parts = [p for p in shapely.get_parts(merged) if p.area > 0]
    polys = gpd.GeoSeries(parts, crs=zonage.crs)
    # Group touching parts: dissolve by connected component through a small buffer.
    groups = gpd.GeoSeries(shapely.get_parts(shapely.union_all(polys.buffer(0.5).values)),
                           crs=zonage.crs)
    joined = gpd.sjoin(gpd.GeoDataFrame(geometry=polys), gpd.GeoDataFrame(geometry=groups),
                       predicate="within", how="left")
    zones = joined.dissolve(by="index_right")
    out = gpd.GeoDataFrame(geometry=zones.geometry.values, crs=zonage.crs)
    labels = []
    insee = []
    for geom in out.geometry:
        inside = act[act.intersects(geom)]
        labels.append(", ".join(sorted(set(inside["libelle"].dropna()))))
        insee.append(inside["insee"].dropna().mode().iloc[0] if inside["insee"].notna().any()
                     else None)
    out["zae_nom"] = [f"Zone d'activité du PLU ({lab})" for lab in labels]
    out["zae_type"] = "zone d'activité économique"
    out["zae_vocation"] = None
    out["comm_insee"] = insee
    out["zae_origine"] = "derivee_plu"
    out[LINEAGE] = "zonage (" + ", ".join(sorted(set(act[LINEAGE]))) + ")"
    out = out.set_geometry(out.geometry.map(
        lambda g: g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g])))
    out = assign_zae_ids(out) if assign_ids else out.assign(zae_id=None)
    if report is not None:
        report.count("zones dérivées du PLU", len(out))
    return conform(out, ZAE)


def assign_zae_ids(frame: gpd.GeoDataFrame, *, prefix: str = "SITE-ECO") -> gpd.GeoDataFrame:
    """Give the zones without ``zae_id`` the CNIG pattern ``[INSEE]_SITE-ECO_[n]``.

    Zones are numbered per commune (``comm_insee``; ``00000`` when unknown) from
    west to east; given identifiers are kept.
    """
    out = frame.copy()
    c = out.geometry.centroid
    order = pd.DataFrame({"x": c.x.round(1), "y": c.y.round(1)}).sort_values(["x", "y"]).index
    insee = out["comm_insee"] if "comm_insee" in out else pd.Series(None, index=out.index)
    ids = pd.Series(index=out.index, dtype=object)
    counters: dict[str, int] = {}
    for i in order:
        code = insee.loc[i] if isinstance(insee.loc[i], str) else "00000"
        counters[code] = counters.get(code, 0) + 1
        ids.loc[i] = f"{code}_{prefix}_{counters[code]:05d}"
    existing = out["zae_id"] if "zae_id" in out else pd.Series(None, index=out.index)
    out["zae_id"] = existing.where(existing.notna(), ids)
    return out
