"""Town halls and chefs-lieux: where a commune's centre is, for Mutafriches' town-centre test.

Two optional sources of the territory file:

- ``mairies``: BD TOPO ``zone_d_activite_ou_d_interet`` (or any layer of points or
  polygons); when the layer has a ``nature`` field, only the features whose nature
  says « Mairie » are kept;
- ``chefs_lieux``: ADMIN EXPRESS ``chef_lieu`` / ``chflieu_commune`` (points), used
  for the communes without town hall.

Polygons are reduced to a point on their surface. The commune of each point is its
``code_insee`` field when the layer has one (``insee_com``, ``code_insee``…), else
the commune of the parcel it lies on (given by the caller).
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
from observatoire.readers.fields import map_fields, text
from observatoire.readers.gdal import pick_layer, read_vector
from observatoire.readers.geometry import clean_geometries
from observatoire.readers.lineage import ReadResult, new_report, relative_name
from observatoire.schema import LINEAGE

MAIRIES_FIELDS = {
    "nature": ["nature", "NATURE", "nature_detaillee"],
    "toponyme": ["toponyme", "TOPONYME", "nom", "NOM", "nom_com", "NOM_COM"],
    "code_insee": ["code_insee", "insee_com", "INSEE_COM", "insee", "INSEE", "code_commune",
                   "depcom", "DEPCOM", "insee_commune"],
}
MAIRIES_COLUMNS = ["code_insee", "mairie_type", "toponyme", LINEAGE]


def read_mairies(source: Source, *, crs: str, base: Path | None = None) -> ReadResult:
    """Read town halls (``mairies``) or chefs-lieux (``chefs_lieux``) as points.

    Returns
    -------
    ReadResult
        Points with ``code_insee`` (NULL when the layer has none), ``mairie_type``
        (``mairie`` or ``chef-lieu``), ``toponyme``.

    Raises
    ------
    SourceError
        A file or layer that cannot be read, or a ``mairies`` layer with natures
        but no « Mairie ».
    """
    report = new_report(source.kind, source.paths, source.format, source.layer)
    frames = []
    for path in source.paths:
        layer = pick_layer(path, source.layer, prefer=("zone_d_activite_ou_d_interet",
                                                       "chflieu_commune", "chef_lieu"))
        report.layer = layer
        raw = read_vector(path, layer, encoding=source.encoding, key=source.key or None)
        if not isinstance(raw, gpd.GeoDataFrame):
            raise GeometryError(f"{where(path, layer)} : couche sans géométrie ; indiquez une "
                                f"couche de points ou de polygones (clé « couche »)")
        report.features_read += len(raw)
        fields = map_fields(pd.DataFrame(raw.drop(columns=raw.geometry.name)), MAIRIES_FIELDS,
                            source.fields, path=path, layer=layer, key=source.key or None)
        keep = np.ones(len(raw), dtype=bool)
        kind = "chef-lieu"
        if source.kind == "mairies":
            kind = "mairie"
            if "nature" in fields:
                nature = text(fields["nature"]).fillna("").str.lower()
                keep = nature.str.contains("mairie").to_numpy()
                if len(raw) and not keep.any():
                    raise SourceError(
                        f"{where(path, layer, 'nature')} : aucune entité de nature « Mairie » ; "
                        f"indiquez la couche zone_d_activite_ou_d_interet de la BD TOPO "
                        f"(clé « couche »)")
                report.count("entités d'une autre nature que « Mairie » écartées",
                             int((~keep).sum()))
        raw = to_territory_crs(raw[keep], target=crs, declared=source.crs, path=path,
                               layer=layer, report=report, key=source.key or None)
        g = np.asarray(raw.geometry.array, dtype=object)
        areal = shapely.get_dimensions(g) == 2
        if areal.any():
            g = g.copy()
            g[areal] = shapely.point_on_surface(shapely.make_valid(g[areal]))
        raw = raw.set_geometry(gpd.GeoSeries(g, index=raw.index, crs=raw.crs))
        raw = clean_geometries(raw, geometry_type="Point", report=report, path=path, layer=layer)
        attrs = fields.loc[raw.index]
        insee = (_insee(text(attrs["code_insee"])) if "code_insee" in attrs
                 else pd.Series(None, index=raw.index, dtype=object))
        frames.append(gpd.GeoDataFrame({
            "code_insee": insee.to_numpy(dtype=object),
            "mairie_type": kind,
            "toponyme": (text(attrs["toponyme"]) if "toponyme" in attrs
                         else pd.Series(None, index=raw.index, dtype=object)).to_numpy(
                             dtype=object),
            LINEAGE: relative_name(path, base),
        }, geometry=np.asarray(raw.geometry.array, dtype=object), crs=crs))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)
    report.features_kept = len(frame)
    return ReadResult(frame[[*MAIRIES_COLUMNS, "geometry"]], report)


def _insee(codes: pd.Series) -> pd.Series:
    """INSEE codes on 5 characters (``1053`` → ``01053``); others NULL."""
    c = codes.astype(object).where(codes.notna(), "").astype(str).str.strip().str.upper()
    c = c.where(~c.str.fullmatch(r"\d{4}"), "0" + c)
    return c.where(c.str.fullmatch(r"(\d{2}|2A|2B)\d{3}"), None).astype(object)


__all__ = ["MAIRIES_FIELDS", "read_mairies"]
