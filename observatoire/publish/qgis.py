"""QGIS styles and project stored inside the observatory GeoPackage.

:func:`finalize_gpkg` is given to :meth:`GeoPackageWriter.commit
<observatoire.geopackage.GeoPackageWriter.commit>` and, on the still unpublished
file:

- writes a QML style for every spatial layer into ``layer_styles``, the table
  QGIS reads default styles from (score classes, friche statuses, ZAE vacancy,
  occupation of ZAE land units, zoning types, road classes, labels where
  useful); the table is created as QGIS/GDAL create it, registered as an
  attribute table, with ``f_table_catalog`` and ``f_table_schema`` set to
  ``''`` (with NULL, QGIS ignores the row) and ``useAsDefault`` = 1;
- stores a QGIS project in ``qgis_projects`` (as QGIS does: the hex text of a
  ``.qgz`` archive, with ``last_modified_time`` metadata), with groups, layer
  order, visibility and the same styles, its layers pointing at
  ``./observatoire.gpkg|layername=…`` (relative to the GeoPackage's folder, as
  QGIS writes them), so that *Project ▸ Open from ▸ GeoPackage* shows the
  finished map;
- completes ``gpkg_contents.description`` with the lineage of each layer
  (sources, formats, reading date, version of the observatory).

The XML is built with :mod:`xml.etree.ElementTree`: every value (layer names,
category labels, descriptions) is escaped.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import sqlite3
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import geopandas as gpd
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError

from observatoire import __version__
from observatoire.config import Territory
from observatoire.errors import BuildError
from observatoire.publish.assets import (
    EVOLUTIONS,
    EXCLUDED_COLOUR,
    EXCLUDED_LABEL,
    FRICHE_OTHER_COLOUR,
    FRICHE_STATUTS,
    GISEMENT_COLOUR,
    OCCUPATIONS,
    PROPRIETAIRE_TYPES,
    ROAD_CLASSES,
    SCORE_CLASSES,
    VACANCY_CLASSES,
    VACANCY_UNKNOWN_COLOUR,
    ZAE_COLOUR,
    ZONE_TYPES,
    ProfileTexts,
    profile_texts,
    scoring_profiles,
)
from observatoire.publish.fields import field_alias, value_map

if TYPE_CHECKING:
    from observatoire.publish.qgis_atlas import AtlasContext

log = logging.getLogger(__name__)

#: QGIS version written in styles and project (Debian 12's QGIS reads them).
QGIS_VERSION = "3.22.16-Białowieża"
#: Name of the project stored in the GeoPackage.
PROJECT_NAME = "observatoire"
#: Name of the default style of each layer.
STYLE_NAME = "observatoire"

_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"

#: French names of the layers in the project, their group and initial visibility.
PROJECT_LAYERS: dict[str, tuple[str, str, bool]] = {
    "friches": ("Friches", "Friches", True),
    "gisements": ("Gisements fonciers", "Analyse", True),
    "zae": ("Zones d'activités — vacance", "Zones d'activités", True),
    "zae_unites": ("Unités foncières des ZAE — occupation", "Zones d'activités", False),
    "friches_surfaces": ("Friches (périmètres)", "Friches", True),
    "unites_foncieres": ("Unités foncières — propriétaires", "Analyse", False),
    "parcelles": ("Parcelles", "Analyse", True),
    "evolution_parcelles": ("Parcelles — changements", "Évolution", False),
    "evolution_gisements": ("Gisements — changements", "Évolution", False),
    "evolution_zae": ("Zones d'activités — changements", "Évolution", False),
    "evolution_friches": ("Friches — changements", "Évolution", False),
    "routes": ("Routes", "Référentiels", True),
    "batiments": ("Bâtiments", "Référentiels", True),
    "zonage": ("Zonage du PLU", "Référentiels", False),
}
#: Groups of the project, from top to bottom.
PROJECT_GROUPS = ("Friches", "Analyse", "Zones d'activités", "Évolution", "Référentiels",
                  "Autres couches")

#: Descriptions of the layers the canonical schema does not describe.
LAYER_DESCRIPTIONS: dict[str, str] = {
    "gisements": "Gisements fonciers : sites candidats formés de parcelles contiguës "
                 "favorables (surface, parcelles, propriétaires, score moyen et minimal)",
    "unites_foncieres": "Unités foncières : parcelles contiguës d'un même propriétaire "
                        "(catégorie de propriétaire ; nom des seules personnes morales)",
    "zae_unites": "Unités foncières des zones d'activités et leur occupation "
                  "(inventaire des ZAE, loi Climat et résilience)",
}

#: Style of the evolution layers: the column categorised, value → colour and label.
EVOLUTION_STYLES: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "evolution_parcelles": ("evolution", EVOLUTIONS),
    "evolution_gisements": ("statut", {
        "nouveau": ("#1a9850", "Gisement nouveau"),
        "agrandi": ("#91cf60", "Gisement agrandi"),
        "réduit": ("#fc8d59", "Gisement réduit"),
        "disparu": ("#d73027", "Gisement disparu"),
    }),
    "evolution_zae": ("changement", {
        "modifiée": ("#fdae61", "Zone modifiée"),
        "nouvelle": ("#1a9850", "Zone nouvelle"),
        "disparue": ("#d73027", "Zone disparue"),
        "inchangée": ("#f0f0f0", "Zone inchangée"),
    }),
    "evolution_friches": ("changement", {
        "statut modifié": ("#ff7f00", "Statut modifié"),
        "nouvelle": ("#e31a1c", "Friche nouvelle"),
        "disparue": ("#33a02c", "Friche disparue"),
    }),
}

#: Source kinds feeding each layer (lineage).
_LINEAGE: dict[str, tuple[str, ...]] = {
    "parcelles": ("parcelles", "zonage", "batiments", "routes", "mnt", "voies_ferrees",
                  "postes_electriques", "contraintes", "friches", "zae"),
    "friches": ("friches",),
    "friches_surfaces": ("friches",),
    "zae": ("zae", "zonage", "parcelles", "etablissements"),
    "zonage": ("zonage",),
    "batiments": ("batiments",),
    "routes": ("routes",),
    "gisements": ("parcelles", "proprietaires"),
    "unites_foncieres": ("parcelles", "proprietaires"),
    "zae_unites": ("zae", "parcelles", "proprietaires", "etablissements"),
}


@dataclass(frozen=True)
class SpatialTable:
    """A spatial table of the GeoPackage, as its metadata tables describe it."""

    name: str
    geometry_column: str
    geometry_type: str
    srs_id: int
    columns: tuple[str, ...]
    extent: tuple[float, float, float, float] | None
    count: int

    @property
    def kind(self) -> str:
        """``point``, ``line`` or ``polygon``."""
        t = self.geometry_type.upper()
        if "POINT" in t:
            return "point"
        if "LINE" in t or ("CURVE" in t and "POLYGON" not in t):
            return "line"
        return "polygon"


def finalize_gpkg(con: sqlite3.Connection, layers: Mapping[str, gpd.GeoDataFrame],
                  territory: Territory) -> None:
    """Write styles, the QGIS project and the lineage into an open GeoPackage.

    Parameters
    ----------
    con
        Connection to the GeoPackage being built (committed by the caller).
    layers
        The layers written, by name (their columns choose the styles).
    territory
        The territory: name, CRS, profiles, sources and output file name.

    Raises
    ------
    BuildError
        When the file holds no spatial layer.
    """
    tables = spatial_tables(con)
    if not tables:
        raise BuildError(f"{territory.gpkg_path} : aucune couche spatiale à styler")
    texts = profile_texts(territory)
    constraints = constraint_names(territory)
    styles = {t.name: layer_style(t, profiles=texts, constraints=constraints) for t in tables}
    write_layer_styles(con, tables, styles)
    from observatoire.publish.qgis_atlas import atlas_context

    project = project_xml(tables, styles, title=f"Observatoire du foncier économique — "
                                                f"{territory.name}",
                          gpkg_name=territory.gpkg_path.name, crs=territory.crs,
                          atlas=atlas_context(con, territory))
    write_project(con, project, name=PROJECT_NAME)
    write_lineage(con, territory)
    log.info("Styles QGIS (%d couches) et projet « %s » écrits", len(tables), PROJECT_NAME)


def spatial_tables(con: sqlite3.Connection) -> list[SpatialTable]:
    """List the spatial tables of a GeoPackage with their columns, extent and size."""
    rows = con.execute(
        "SELECT g.table_name, g.column_name, g.geometry_type_name, g.srs_id, "
        "c.min_x, c.min_y, c.max_x, c.max_y FROM gpkg_geometry_columns g "
        "JOIN gpkg_contents c ON c.table_name = g.table_name ORDER BY g.table_name"
    ).fetchall()
    tables = []
    for name, geom, gtype, srs, *ext in rows:
        columns = tuple(r[1] for r in con.execute(f"PRAGMA table_info({_quote(name)})"))
        count = con.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0]
        extent = None if None in ext else (float(ext[0]), float(ext[1]), float(ext[2]),
                                           float(ext[3]))
        tables.append(SpatialTable(name, geom, gtype, int(srs), columns, extent, int(count)))
    return tables


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --------------------------------------------------------------------------- symbols


def _rgba(colour: str, alpha: int = 255) -> str:
    colour = colour.lstrip("#")
    r, g, b = (int(colour[i:i + 2], 16) for i in (0, 2, 4))
    return f"{r},{g},{b},{alpha}"


def _dd_properties(tag: str = "data_defined_properties") -> ET.Element:
    dd = ET.Element(tag)
    opt = ET.SubElement(dd, "Option", type="Map")
    ET.SubElement(opt, "Option", name="name", value="", type="QString")
    ET.SubElement(opt, "Option", name="properties")
    ET.SubElement(opt, "Option", name="type", value="collection", type="QString")
    return dd


def _symbol_layer(cls: str, props: Mapping[str, str]) -> ET.Element:
    # QGIS 3.22 writes both the Option map and the legacy <prop> list: so do we.
    layer = ET.Element("layer", {"class": cls, "enabled": "1", "locked": "0", "pass": "0"})
    options = ET.SubElement(layer, "Option", type="Map")
    for k, v in sorted(props.items()):
        ET.SubElement(options, "Option", name=k, value=v, type="QString")
    for k, v in sorted(props.items()):
        ET.SubElement(layer, "prop", k=k, v=v)
    layer.append(_dd_properties())
    return layer


def _symbol(kind: str, name: str, layers: Sequence[ET.Element]) -> ET.Element:
    sym = ET.Element("symbol", {"type": kind, "name": name, "alpha": "1",
                                "clip_to_extent": "1", "force_rhr": "0"})
    sym.append(_dd_properties())
    for layer in layers:
        sym.append(layer)
    return sym


def fill_symbol(name: str, fill: str | None, outline: str, *, fill_alpha: int = 255,
                width: float = 0.26, outline_style: str = "solid") -> ET.Element:
    """Return a QGIS fill symbol (``fill`` ``None``: outline only)."""
    return _symbol("fill", name, [_symbol_layer("SimpleFill", {
        "color": _rgba(fill or "#ffffff", fill_alpha if fill else 0),
        "style": "solid" if fill else "no",
        "outline_color": _rgba(outline),
        "outline_style": outline_style,
        "outline_width": f"{width:g}",
        "outline_width_unit": "MM",
        "joinstyle": "bevel",
        "offset": "0,0",
        "offset_unit": "MM",
    })])


def line_symbol(name: str, colour: str, width: float) -> ET.Element:
    """Return a QGIS line symbol."""
    return _symbol("line", name, [_symbol_layer("SimpleLine", {
        "line_color": _rgba(colour),
        "line_style": "solid",
        "line_width": f"{width:g}",
        "line_width_unit": "MM",
        "capstyle": "round",
        "joinstyle": "round",
        "offset": "0",
        "offset_unit": "MM",
    })])


def marker_symbol(name: str, fill: str, *, size: float = 3.2,
                  outline: str = "#000000") -> ET.Element:
    """Return a QGIS circle marker symbol."""
    return _symbol("marker", name, [_symbol_layer("SimpleMarker", {
        "name": "circle",
        "color": _rgba(fill),
        "outline_color": _rgba(outline),
        "outline_style": "solid",
        "outline_width": "0.3",
        "outline_width_unit": "MM",
        "size": f"{size:g}",
        "size_unit": "MM",
        "angle": "0",
        "offset": "0,0",
        "offset_unit": "MM",
        "scale_method": "diameter",
    })])


def _symbol_for(kind: str, name: str, colour: str, *, outline: str = "#4d4d4d",
                fill_alpha: int = 200, width: float = 0.2) -> ET.Element:
    if kind == "point":
        return marker_symbol(name, colour)
    if kind == "line":
        return line_symbol(name, colour, max(width, 0.4))
    return fill_symbol(name, colour, outline, fill_alpha=fill_alpha, width=width)


# --------------------------------------------------------------------------- renderers


def _renderer(kind: str, **attrs: str) -> ET.Element:
    return ET.Element("renderer-v2", {"type": kind, "symbollevels": "0", "forceraster": "0",
                                      "enableorderby": "0", "referencescale": "-1", **attrs})


def categorized_renderer(attr: str, categories: Sequence[tuple[str, str, ET.Element]]
                         ) -> ET.Element:
    """Return a categorised renderer on ``attr``; a category ``""`` also matches NULL."""
    renderer = _renderer("categorizedSymbol", attr=attr)
    cats = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (value, label, symbol) in enumerate(categories):
        ET.SubElement(cats, "category", render="true", symbol=str(i), value=value, label=label)
        symbol.set("name", str(i))
        symbols.append(symbol)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    return renderer


def rule_renderer(rules: Sequence[tuple[str, str, ET.Element]]) -> ET.Element:
    """Return a rule-based renderer; a filter ``ELSE`` catches the other features."""
    renderer = _renderer("RuleRenderer")
    root = ET.SubElement(renderer, "rules", key="root")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (expr, label, symbol) in enumerate(rules):
        ET.SubElement(root, "rule", key=f"rule{i}", filter=expr, label=label, symbol=str(i))
        symbol.set("name", str(i))
        symbols.append(symbol)
    return renderer


def single_renderer(symbol: ET.Element) -> ET.Element:
    """Return a single-symbol renderer."""
    renderer = _renderer("singleSymbol")
    symbols = ET.SubElement(renderer, "symbols")
    symbol.set("name", "0")
    symbols.append(symbol)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    return renderer


def simple_labeling(expression: str, *, placement: int, size: float = 8.0,
                    colour: str = "#1a1a1a", bold: bool = False) -> ET.Element:
    """Labels from a QGIS expression, with a white halo.

    ``placement`` follows ``QgsPalLayerSettings.Placement`` (0 around a point,
    1 over the point, 2 along a line, 4 horizontal inside a polygon).
    """
    labeling = ET.Element("labeling", type="simple")
    settings = ET.SubElement(labeling, "settings", calloutType="simple")
    style = ET.SubElement(settings, "text-style", {
        "fieldName": expression, "isExpression": "1", "fontFamily": "DejaVu Sans",
        "namedStyle": "Bold" if bold else "Book", "fontWeight": "75" if bold else "50",
        "fontItalic": "0", "fontSize": f"{size:g}", "fontSizeUnit": "Point",
        "textColor": _rgba(colour), "textOpacity": "1", "multilineHeight": "1",
        "blendMode": "0", "capitalization": "0", "previewBkgrdColor": "255,255,255,255",
    })
    ET.SubElement(style, "text-buffer", {
        "bufferDraw": "1", "bufferSize": "0.8", "bufferSizeUnits": "MM",
        "bufferColor": "255,255,255,255", "bufferOpacity": "0.85", "bufferNoFill": "1",
        "bufferJoinStyle": "128", "bufferBlendMode": "0",
    })
    ET.SubElement(settings, "text-format", {
        "wrapChar": "", "multilineAlign": "3", "autoWrapLength": "0",
        "useMaxLineLengthForAutoWrap": "1", "formatNumbers": "0", "decimals": "3",
        "plussign": "0",
    })
    ET.SubElement(settings, "placement", {
        "placement": str(placement), "placementFlags": "10", "dist": "1", "distUnits": "MM",
        "priority": "5", "centroidInside": "1", "centroidWhole": "0",
        "overrunDistance": "0", "overrunDistanceUnit": "MM", "fitInPolygonOnly": "0",
        "polygonPlacementFlags": "2", "offsetType": "0", "quadOffset": "4",
    })
    ET.SubElement(settings, "rendering", {
        "drawLabels": "1", "scaleVisibility": "0", "obstacle": "1", "obstacleFactor": "1",
        "displayAll": "0", "upsidedownLabels": "0", "labelPerPart": "0",
        "mergeLines": "0", "limitNumLabels": "0", "maxNumLabels": "2000",
        "minFeatureSize": "0", "fontLimitPixelSize": "0", "zIndex": "0",
    })
    settings.append(_dd_properties("dd_properties"))
    return labeling


def _field(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class LayerStyle:
    """The style of a layer: renderer, labels, display expression, opacity.

    ``title``, when set, names the layer in the project instead of :data:`PROJECT_LAYERS`.
    """

    renderer: ET.Element
    labeling: ET.Element | None
    display: str
    opacity: float = 1.0
    description: str = ""
    title: str | None = None
    fields: tuple[ET.Element, ...] = ()

    def elements(self) -> list[ET.Element]:
        """Return the children of a QML document or of a project's ``maplayer``."""
        out = [self.renderer]
        if self.labeling is not None:
            out.append(self.labeling)
        for tag, text in (("blendMode", "0"), ("featureBlendMode", "0"),
                          ("layerOpacity", f"{self.opacity:g}")):
            el = ET.Element(tag)
            el.text = text
            out.append(el)
        out.extend(self.fields)
        preview = ET.Element("previewExpression")
        preview.text = self.display
        out.append(preview)
        return out


def layer_style(table: SpatialTable, *, profiles: ProfileTexts | None = None,
                constraints: Mapping[str, str] | None = None) -> LayerStyle:
    """Choose the style of one spatial table from its name and columns.

    Parameters
    ----------
    table
        The table (name, geometry type, columns).
    profiles
        Order and labels of the scoring profiles: parcels are coloured by the
        first one found.
    constraints
        Name of each constraint by its ``part_contrainte_<…>`` column (aliases).

    Returns
    -------
    LayerStyle
        A categorised, rule-based or single-symbol style, with labels where useful,
        the French alias of every field and the labels of coded values
        (:func:`field_elements`).
    """
    return replace(_symbology(table, profiles),
                   fields=field_elements(table, profiles=profiles, constraints=constraints))


def _symbology(table: SpatialTable, profiles: ProfileTexts | None) -> LayerStyle:
    cols = set(table.columns)
    kind = table.kind
    name = table.name

    def first(*candidates: str) -> str:
        return next((c for c in candidates if c in cols), "fid")

    if name == "parcelles":
        return _parcel_style(table, profiles)
    if name in ("friches", "friches_surfaces") and "site_statut" in cols:
        cats = [(value, label,
                 _symbol_for(kind, "", colour, outline=colour, fill_alpha=90, width=0.6))
                for value, (colour, label) in FRICHE_STATUTS.items()]
        cats.append(("", "Statut non renseigné",
                     _symbol_for(kind, "", FRICHE_OTHER_COLOUR, outline=FRICHE_OTHER_COLOUR,
                                 fill_alpha=90, width=0.6)))
        labels = simple_labeling(f'coalesce({_field("site_nom")}, {_field("site_id")})',
                                 placement=0 if kind == "point" else 1, size=7.5)
        return LayerStyle(categorized_renderer("site_statut", cats), labels,
                          first("site_nom", "site_id"))
    if name == "zae":
        return _zae_style(table)
    if name in EVOLUTION_STYLES and EVOLUTION_STYLES[name][0] in cols:
        column, values = EVOLUTION_STYLES[name]
        cats = [(value, label, _symbol_for(kind, "", colour, outline="#252525",
                                           fill_alpha=170, width=0.3))
                for value, (colour, label) in values.items()]
        key = first("idu", "gisement_id", "zae_id", "site_id")
        return LayerStyle(categorized_renderer(column, cats), None, _field(key))
    if name == "gisements":
        symbol = fill_symbol("", GISEMENT_COLOUR, GISEMENT_COLOUR, fill_alpha=40, width=0.8,
                             outline_style="dash")
        label = _field("gisement_id")
        if "surface_m2" in cols:
            label = (f"{label} || '\\n' || format_number({_field('surface_m2')} / 10000, 1)"
                     f" || ' ha'")
        return LayerStyle(single_renderer(symbol),
                          simple_labeling(f"coalesce({label}, '')", placement=1, size=8,
                                          colour=GISEMENT_COLOUR, bold=True),
                          first("gisement_id"))
    if name == "zae_unites" and "occupation" in cols:
        cats = [(value, label, fill_symbol("", colour, "#252525", fill_alpha=200, width=0.2))
                for value, (colour, label) in OCCUPATIONS.items()]
        cats.append(("", "Occupation inconnue",
                     fill_symbol("", "#f0f0f0", "#252525", fill_alpha=200, width=0.2)))
        return LayerStyle(categorized_renderer("occupation", cats), None, first("uf_id"))
    if name == "unites_foncieres" and "proprietaire_type" in cols:
        cats = [(value, label, fill_symbol("", colour, "#525252", fill_alpha=150, width=0.2))
                for value, (colour, label) in PROPRIETAIRE_TYPES.items()]
        cats.append(("", "Non renseigné", fill_symbol("", "#f0f0f0", "#525252", fill_alpha=150)))
        return LayerStyle(categorized_renderer("proprietaire_type", cats), None,
                          first("uf_id"))
    if name == "zonage" and "typezone" in cols:
        cats = [(value, label, fill_symbol("", colour, "#8c6d31", fill_alpha=70, width=0.3))
                for value, (colour, label) in ZONE_TYPES.items()]
        cats.append(("", "Autre", fill_symbol("", "#dddddd", "#8c6d31", fill_alpha=70,
                                              width=0.3)))
        return LayerStyle(categorized_renderer("typezone", cats),
                          simple_labeling(_field("libelle") if "libelle" in cols
                                          else _field("typezone"), placement=1, size=7,
                                          colour="#5a4620"),
                          first("libelle", "typezone"))
    if name == "routes" and "classe" in cols:
        cats = [(value, value, line_symbol("", colour, width))
                for value, (colour, width) in ROAD_CLASSES.items()]
        cats.append(("", "Autre", line_symbol("", "#bdbdbd", 0.26)))
        return LayerStyle(categorized_renderer("classe", cats), None, first("numero", "nature"))
    if name == "batiments":
        return LayerStyle(single_renderer(fill_symbol("", "#8c8c8c", "#595959", fill_alpha=230,
                                                      width=0.1)), None,
                          first("bati_id", "nature"))
    colour = "#636363"
    return LayerStyle(single_renderer(_symbol_for(kind, "", colour, outline=colour,
                                                  fill_alpha=60, width=0.4)), None,
                      first("nom", "libelle", "id"))


def _parcel_style(table: SpatialTable, texts: ProfileTexts | None) -> LayerStyle:
    cols = list(table.columns)
    profiles = [p for p in scoring_profiles(cols, texts) if p.classe]
    display = '"idu"' if "idu" in cols else '"fid"'
    if not profiles:
        symbol = fill_symbol("", None, "#636363", width=0.15)
        return LayerStyle(single_renderer(symbol), None, display)
    profile = profiles[0]
    assert profile.classe is not None  # profiles without a class column were left out
    cats = [(value, label, fill_symbol("", colour, "#4d4d4d", fill_alpha=190, width=0.1))
            for value, (colour, label) in SCORE_CLASSES.items()]
    cats.append(("", EXCLUDED_LABEL,
                 fill_symbol("", EXCLUDED_COLOUR, "#4d4d4d", fill_alpha=190, width=0.1)))
    return LayerStyle(categorized_renderer(profile.classe, cats), None, display,
                      description=f"Classe de score du profil « {profile.label} »",
                      title=f"Parcelles — score « {profile.label} »")


def _zae_style(table: SpatialTable) -> LayerStyle:
    cols = set(table.columns)
    name_expr = (f"coalesce({_field('zae_nom')}, {_field('zae_id')})" if "zae_nom" in cols
                 else _field("zae_id"))
    if "taux_vacance" not in cols:
        renderer = single_renderer(fill_symbol("", ZAE_COLOUR, ZAE_COLOUR, fill_alpha=40,
                                               width=0.8))
        return LayerStyle(renderer, simple_labeling(name_expr, placement=1, size=8.5,
                                                    colour=ZAE_COLOUR, bold=True), name_expr)
    rules = []
    lower = 0.0
    rate = _field("taux_vacance")
    for upper, colour, label in VACANCY_CLASSES:
        expr = f"{rate} >= {lower:g} AND {rate} < {upper:g}"
        if upper >= 1.0:
            expr = f"{rate} >= {lower:g}"
        rules.append((expr, f"Vacance {label}",
                      fill_symbol("", colour, ZAE_COLOUR, fill_alpha=170, width=0.8)))
        lower = upper
    rules.append(("ELSE", "Vacance non calculée",
                  fill_symbol("", VACANCY_UNKNOWN_COLOUR, ZAE_COLOUR, fill_alpha=60, width=0.8)))
    label = (f"{name_expr} || coalesce('\\n' || 'vacance ' || "
             f"format_number({rate} * 100, 0) || ' %', '')")
    return LayerStyle(rule_renderer(rules), simple_labeling(label, placement=1, size=8.5,
                                                            colour=ZAE_COLOUR, bold=True),
                      name_expr)


def field_elements(table: SpatialTable, *, profiles: ProfileTexts | None = None,
                   constraints: Mapping[str, str] | None = None
                   ) -> tuple[ET.Element, ...]:
    """Return the ``fieldConfiguration`` and ``aliases`` elements of a layer.

    Every field gets its French alias (:func:`observatoire.publish.fields.field_alias`);
    coded fields (score classes, vacancy status, ZAE origin…) get a *value map*
    widget, so that QGIS shows the label of each value. A field without alias is
    logged (and left to its name).
    """
    found = (scoring_profiles(table.columns, profiles)
             if table.name in ("parcelles", "evolution_parcelles") else [])
    columns = [c for c in table.columns if c != table.geometry_column]
    configuration = ET.Element("fieldConfiguration")
    aliases = ET.Element("aliases")
    missing = []
    for index, column in enumerate(columns):
        alias = field_alias(table.name, column, profiles=found, constraints=constraints)
        if alias is None:
            missing.append(column)
        ET.SubElement(aliases, "alias", field=column, index=str(index), name=alias or "")
        values = value_map(table.name, column)
        if values:
            field = ET.SubElement(configuration, "field", name=column,
                                  configurationFlags="None")
            widget = ET.SubElement(field, "editWidget", type="ValueMap")
            options = ET.SubElement(ET.SubElement(widget, "config"), "Option", type="Map")
            entries = ET.SubElement(options, "Option", type="List", name="map")
            for value, label in values.items():
                entry = ET.SubElement(entries, "Option", type="Map")
                ET.SubElement(entry, "Option", type="QString", name=label, value=value)
    if missing:
        log.warning("couche %s : champ(s) sans alias français : %s", table.name,
                    ", ".join(missing))
    return configuration, aliases


def constraint_names(territory: Territory) -> dict[str, str]:
    """Name of each constraint layer of ``territory`` by its ``part_contrainte_<…>`` column."""
    from observatoire.analysis.indicators import identifier

    return {f"part_contrainte_{identifier(c.name)}": c.name for c in territory.constraints
            if c.name}


# --------------------------------------------------------------------------- QML, styles


def qml_document(style: LayerStyle, table: SpatialTable) -> str:
    """Return the QML text of a style (a QGIS ``.qml`` file)."""
    root = ET.Element("qgis", {
        "version": QGIS_VERSION, "styleCategories": "AllStyleCategories",
        "labelsEnabled": "1" if style.labeling is not None else "0",
        "hasScaleBasedVisibilityFlag": "0", "minScale": "100000000", "maxScale": "0",
    })
    for el in style.elements():
        root.append(el)
    geom = ET.SubElement(root, "layerGeometryType")
    geom.text = {"point": "0", "line": "1", "polygon": "2"}[table.kind]
    return _DOCTYPE + ET.tostring(root, encoding="unicode")


_LAYER_STYLES_DDL = (
    'CREATE TABLE "layer_styles" ( "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
    '"f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256), '
    '"f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT, '
    '"useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
    '"update_time" DATETIME DEFAULT (strftime(\'%Y-%m-%dT%H:%M:%fZ\',\'now\')))'
)


def _register_attribute_table(con: sqlite3.Connection, name: str, description: str) -> None:
    """Register a table as GDAL does: ``gpkg_contents`` and feature-count bookkeeping."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change) VALUES (?, 'attributes', ?, ?, ?)", (name, name, description, now))
    has_ogr = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                          "AND name = 'gpkg_ogr_contents'").fetchone()[0]
    if has_ogr:
        con.execute("INSERT INTO gpkg_ogr_contents (table_name, feature_count) VALUES (?, 0)",
                    (name,))
        quoted = _quote(name)
        literal = name.replace("'", "''")
        con.execute(
            f'CREATE TRIGGER "trigger_insert_feature_count_{name}" AFTER INSERT ON {quoted} '
            f"BEGIN UPDATE gpkg_ogr_contents SET feature_count = feature_count + 1 "
            f"WHERE lower(table_name) = lower('{literal}'); END;")
        con.execute(
            f'CREATE TRIGGER "trigger_delete_feature_count_{name}" AFTER DELETE ON {quoted} '
            f"BEGIN UPDATE gpkg_ogr_contents SET feature_count = feature_count - 1 "
            f"WHERE lower(table_name) = lower('{literal}'); END;")


def write_layer_styles(con: sqlite3.Connection, tables: Sequence[SpatialTable],
                       styles: Mapping[str, LayerStyle]) -> None:
    """Store each style as the default QGIS style of its table.

    The ``layer_styles`` table is created (and registered) when absent; a
    previous style of the same name for the same table is replaced.
    """
    exists = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                         "AND name = 'layer_styles'").fetchone()[0]
    if not exists:
        con.execute(_LAYER_STYLES_DDL)
        _register_attribute_table(con, "layer_styles", "Styles QGIS des couches (QML)")
    for table in tables:
        style = styles[table.name]
        con.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ? "
                    "AND f_geometry_column = ?", (table.name, table.geometry_column))
        con.execute("DELETE FROM layer_styles WHERE f_table_name = ? AND f_geometry_column = ? "
                    "AND styleName = ?", (table.name, table.geometry_column, STYLE_NAME))
        con.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
            "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
            "owner, ui) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL)",
            (table.name, table.geometry_column, STYLE_NAME, qml_document(style, table),
             style.description or f"Style de l'observatoire {__version__}"))


# --------------------------------------------------------------------------- project


def _spatialrefsys(crs: CRS) -> ET.Element:
    srs = ET.Element("spatialrefsys")
    epsg = crs.to_epsg()
    with warnings.catch_warnings():
        # PROJ strings lose datum details: QGIS reads the WKT first, the PROJ string is a hint.
        warnings.simplefilter("ignore", UserWarning)
        proj4 = crs.to_proj4() or ""
    auth = f"EPSG:{epsg}" if epsg else ""
    for tag, text in (
        ("wkt", crs.to_wkt("WKT2_2019")),
        ("proj4", proj4),
        ("srsid", "0"),
        ("srid", str(epsg or 0)),
        ("authid", auth),
        ("description", crs.name),
        ("projectionacronym", ""),
        ("ellipsoidacronym", ""),
        ("geographicflag", "true" if crs.is_geographic else "false"),
    ):
        el = ET.SubElement(srs, tag)
        el.text = text
    return srs


def _extent(tag: str, ext: tuple[float, float, float, float]) -> ET.Element:
    el = ET.Element(tag)
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), ext, strict=True):
        ET.SubElement(el, key).text = repr(float(value))
    return el


def _layer_id(name: str) -> str:
    return "observatoire_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _wkb_type(table: SpatialTable) -> str:
    names = {"POINT": "Point", "MULTIPOINT": "MultiPoint", "LINESTRING": "LineString",
             "MULTILINESTRING": "MultiLineString", "POLYGON": "Polygon",
             "MULTIPOLYGON": "MultiPolygon"}
    return names.get(table.geometry_type.upper(), "Unknown")


def project_xml(tables: Sequence[SpatialTable], styles: Mapping[str, LayerStyle], *, title: str,
                gpkg_name: str, crs: str, atlas: AtlasContext | None = None) -> str:
    """Return the ``.qgs`` XML of the project: groups, order, visibility and styles.

    Parameters
    ----------
    tables
        Spatial tables of the GeoPackage.
    styles
        Style of each table.
    title
        Project title.
    gpkg_name
        File name of the published GeoPackage: layers point at
        ``./<gpkg_name>|layername=<table>``, relative to the GeoPackage's folder.
    crs
        CRS of the project (the territory's).
    atlas
        Communes and sources of the atlas of the ZAE: when given (and the project
        has a ``zae`` layer), the project gets the print layout « Atlas des ZAE »,
        its map theme and the ``atlas`` styles of its layers
        (:mod:`observatoire.publish.qgis_atlas`).

    Returns
    -------
    str
        The project XML.
    """
    project_crs = CRS.from_user_input(crs)
    # An empty table of undeclared geometry type has no renderer in QGIS: left out.
    ordered = _project_order([t for t in tables
                              if t.count or t.geometry_type.upper() != "GEOMETRY"])
    root = ET.Element("qgis", projectname=title, version=QGIS_VERSION)
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "autotransaction", active="0")
    ET.SubElement(root, "evaluateDefaultValues", active="0")
    ET.SubElement(root, "trust", active="0")
    ET.SubElement(root, "projectCrs").append(_spatialrefsys(project_crs))

    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    groups: dict[str, ET.Element] = {}
    for table in ordered:
        label, group, visible = PROJECT_LAYERS.get(table.name,
                                                  (table.name, "Autres couches", True))
        label = styles[table.name].title or label
        if group not in groups:
            groups[group] = ET.SubElement(tree, "layer-tree-group", name=group,
                                          checked="Qt::Checked", expanded="1")
            ET.SubElement(groups[group], "customproperties")
        node = ET.SubElement(groups[group], "layer-tree-layer", {
            "id": _layer_id(table.name), "name": label,
            "source": f"./{gpkg_name}|layername={table.name}", "providerKey": "ogr",
            "checked": "Qt::Checked" if visible and table.count else "Qt::Unchecked",
            "expanded": "1" if table.name in ("parcelles", "zae", "friches") else "0",
        })
        ET.SubElement(node, "customproperties")
    ET.SubElement(tree, "custom-order", enabled="0")

    extents = [t.extent for t in tables if t.extent and t.name == "parcelles"]
    extents = extents or [t.extent for t in tables if t.extent]
    full = (min(e[0] for e in extents), min(e[1] for e in extents),
            max(e[2] for e in extents), max(e[3] for e in extents)) if extents else None
    parts = None
    if atlas is not None:
        from observatoire.publish.qgis_atlas import ATLAS_STYLE, atlas_parts, style_document

        parts = atlas_parts(ordered, context=atlas, gpkg_name=gpkg_name, extent=full)
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    ET.SubElement(canvas, "units").text = "meters"
    if full:
        canvas.append(_extent("extent", full))
    ET.SubElement(canvas, "rotation").text = "0"
    ET.SubElement(canvas, "destinationsrs").append(_spatialrefsys(project_crs))
    ET.SubElement(canvas, "rendermaptile").text = "0"

    layers_el = ET.SubElement(root, "projectlayers")
    for table in ordered:
        style = styles[table.name]
        label = style.title or PROJECT_LAYERS.get(table.name, (table.name, "", True))[0]
        ml = ET.SubElement(layers_el, "maplayer", {
            "type": "vector", "geometry": {"point": "Point", "line": "Line",
                                           "polygon": "Polygon"}[table.kind],
            "wkbType": _wkb_type(table),
            "labelsEnabled": "1" if style.labeling is not None else "0",
            "hasScaleBasedVisibilityFlag": "0", "minScale": "100000000", "maxScale": "0",
            "readOnly": "0", "styleCategories": "AllStyleCategories",
            "simplifyDrawingHints": "1", "simplifyDrawingTol": "1", "simplifyLocal": "1",
            "simplifyAlgorithm": "0", "simplifyMaxScale": "1",
        })
        if table.extent:
            ml.append(_extent("extent", table.extent))
        ET.SubElement(ml, "id").text = _layer_id(table.name)
        ET.SubElement(ml, "datasource").text = f"./{gpkg_name}|layername={table.name}"
        ET.SubElement(ml, "keywordList").append(ET.Element("value"))
        ET.SubElement(ml, "layername").text = label
        ET.SubElement(ml, "srs").append(_spatialrefsys(_table_crs(table, project_crs)))
        ET.SubElement(ml, "provider", encoding="UTF-8").text = "ogr"
        manager = ET.SubElement(ml, "map-layer-style-manager", current="default")
        if parts is not None and table.name in parts.styles:
            # The same aliases and value maps as the default style.
            ET.SubElement(manager, "map-layer-style", name=ATLAS_STYLE).append(
                style_document(replace(parts.styles[table.name], fields=style.fields)))
        ET.SubElement(manager, "map-layer-style", name="default")
        for el in style.elements():
            ml.append(el)

    order = ET.SubElement(root, "layerorder")
    for table in ordered:
        ET.SubElement(order, "layer", id=_layer_id(table.name))
    props = ET.SubElement(root, "properties")
    # QGIS 3.22 reads <projectCrs> only when ProjectionsEnabled is 1: without it the
    # project opens with no CRS and a WGS 84 basemap added by the user is misplaced.
    srs = ET.SubElement(props, "SpatialRefSys")
    ET.SubElement(srs, "ProjectionsEnabled", type="int").text = "1"
    epsg = project_crs.to_epsg()
    if epsg:
        ET.SubElement(srs, "ProjectCrs", type="QString").text = f"EPSG:{epsg}"
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    measure = ET.SubElement(props, "Measurement")
    ET.SubElement(measure, "DistanceUnits", type="QString").text = "meters"
    ET.SubElement(measure, "AreaUnits", type="QString").text = "m2"
    view = ET.SubElement(root, "ProjectViewSettings", UseProjectScales="0", rotation="0")
    ET.SubElement(view, "Scales")
    if full:
        default_view = ET.SubElement(view, "DefaultViewExtent", {
            "xmin": repr(full[0]), "ymin": repr(full[1]), "xmax": repr(full[2]),
            "ymax": repr(full[3])})
        default_view.append(_spatialrefsys(project_crs))
    if parts is not None:
        root.append(parts.themes)
        root.append(parts.layouts)
    return _DOCTYPE + ET.tostring(root, encoding="unicode")


def _table_crs(table: SpatialTable, default: CRS) -> CRS:
    """CRS of a table from its EPSG code; the project's when the code is not EPSG's."""
    if table.srs_id <= 0:
        return default
    try:
        return CRS.from_epsg(table.srs_id)
    except PyprojCRSError:
        return default


def _project_order(tables: Sequence[SpatialTable]) -> list[SpatialTable]:
    """Tables from top to bottom: by group, then as :data:`PROJECT_LAYERS` lists them."""
    rank = {name: i for i, name in enumerate(PROJECT_LAYERS)}

    def key(t: SpatialTable) -> tuple[int, int, str]:
        group = PROJECT_LAYERS.get(t.name, ("", "Autres couches", True))[1]
        return (PROJECT_GROUPS.index(group), rank.get(t.name, len(rank)), t.name)

    return sorted(tables, key=key)


def qgz_bytes(project: str, *, name: str = PROJECT_NAME) -> bytes:
    """Zip a ``.qgs`` document into ``.qgz`` bytes (fixed dates: same input, same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(f"{name}.qgs", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, project.encode("utf-8"))
    return buffer.getvalue()


def write_project(con: sqlite3.Connection, project: str, *, name: str = PROJECT_NAME) -> None:
    """Store a project in ``qgis_projects`` as QGIS does (hex text of the ``.qgz``).

    The table is created when absent (``name TEXT PRIMARY KEY, metadata BLOB,
    content BLOB``, QGIS's own definition); a project of the same name is replaced.
    """
    con.execute("CREATE TABLE IF NOT EXISTS qgis_projects"
                "(name TEXT PRIMARY KEY, metadata BLOB, content BLOB)")
    metadata = json.dumps({
        "last_modified_time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "last_modified_user": "observatoire",
    })
    con.execute("INSERT OR REPLACE INTO qgis_projects (name, metadata, content) VALUES (?, ?, ?)",
                (name, metadata, qgz_bytes(project, name=name).hex()))


def read_project(con: sqlite3.Connection, *, name: str = PROJECT_NAME) -> str:
    """Return the ``.qgs`` XML of a project stored in a GeoPackage.

    Raises
    ------
    BuildError
        When the project is absent or its content is not a ``.qgz`` archive.
    """
    row = con.execute("SELECT content FROM qgis_projects WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise BuildError(f"projet QGIS « {name} » absent de la table qgis_projects")
    try:
        with zipfile.ZipFile(io.BytesIO(bytes.fromhex(row[0]))) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".qgs"))
            return archive.read(member).decode("utf-8")
    except (ValueError, zipfile.BadZipFile, StopIteration) as exc:
        raise BuildError(f"projet QGIS « {name} » illisible : {exc}") from exc


# --------------------------------------------------------------------------- lineage


def write_lineage(con: sqlite3.Connection, territory: Territory) -> None:
    """Complete ``gpkg_contents.description`` with each layer's sources and date.

    The sources come from the ``sources`` table of the GeoPackage (file, format,
    reading date, producer and date of the data); layers without a description get
    one from :data:`LAYER_DESCRIPTIONS`.
    """
    has_sources = con.execute("SELECT count(*) FROM gpkg_contents "
                              "WHERE table_name = 'sources'").fetchone()[0]
    by_kind: dict[str, list[str]] = {}
    if has_sources:
        columns = {r[1] for r in con.execute("PRAGMA table_info(sources)")}
        credit = ("producteur, date_donnees" if {"producteur", "date_donnees"} <= columns
                  else "NULL, NULL")
        for kind, path, fmt, date, producer, data_date in con.execute(
                f"SELECT type_source, chemin, format, date_lecture, {credit} FROM sources"):
            day = (date or "")[:10]
            credited = "".join([f" ; producteur : {producer}" if producer else "",
                                f", données du {data_date}" if data_date else ""])
            by_kind.setdefault(kind, []).append(
                f"{path} ({fmt}{', lu le ' + day if day else ''}{credited})")
    stamp = (f"Produit par l'observatoire {__version__} pour le territoire « {territory.name} »"
             f" ({', '.join(territory.communes)}), système de coordonnées {territory.crs}.")
    rows = con.execute("SELECT table_name, description FROM gpkg_contents "
                       "WHERE data_type = 'features'").fetchall()
    for name, description in rows:
        text = description if description and description != name else (
            LAYER_DESCRIPTIONS.get(name, name))
        sources = [s for kind in _LINEAGE.get(name, ()) for s in by_kind.get(kind, [])]
        lineage = f" Sources : {' ; '.join(sources)}." if sources else ""
        if "Produit par l'observatoire" in text:
            continue
        con.execute("UPDATE gpkg_contents SET description = ? WHERE table_name = ?",
                    (f"{text}.{lineage} {stamp}", name))
