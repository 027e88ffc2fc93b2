"""The atlas of the ZAE in the QGIS project: a print layout with an atlas over ``zae``.

:func:`atlas_parts` gives :func:`observatoire.publish.qgis.project_xml` what it
adds to the project stored in the GeoPackage, as QGIS 3.22 writes them:

- a second style, ``atlas``, for ``zae`` (the current zone's boundary, the other
  zones dashed) and ``zae_unites`` (land units coloured by vacancy status), beside
  their default style;
- a map theme « Atlas des ZAE » showing, with these styles, the land units, the
  zones, the candidate sites (``gisements``), the friches and the roads;
- a print layout « Atlas des ZAE » (*Projet ▸ Mises en page*), A4 portrait, one
  sheet per zone: an atlas over ``zae`` sorted by identifier, the zone's name and
  commune as title, the map of the zone (driven by the atlas, 12 % margin) with a
  north arrow and a scale bar, the legend of what the map shows, the zone's key
  figures (expressions over its fields and its units), the table of its land
  units (``zae_unites`` filtered on ``zae_id`` = the current zone, continued on
  the next pages when long), and the sources with the date of their data.

Natural persons are never named: the owner column names legal entities only
(``proprietaire_type`` « personne morale »), and the occupants of a unit are
counted, not listed.

The XML is written without QGIS (the build machine may not have it); the tests
load it in QGIS 3.22 and print a sheet to PDF.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from observatoire import __version__
from observatoire.communes import commune_names
from observatoire.config import Territory
from observatoire.publish.assets import VACANCY_STATUTS, ZAE_COLOUR, french_date
from observatoire.publish.fields import value_map
from observatoire.publish.qgis import (
    QGIS_VERSION,
    LayerStyle,
    SpatialTable,
    _dd_properties,
    _field,
    _layer_id,
    _literal,
    _rgba,
    categorized_renderer,
    fill_symbol,
    line_symbol,
    rule_renderer,
    single_renderer,
)

#: Name of the print layout and of the map theme of its map.
ATLAS_NAME = "Atlas des ZAE"
#: Name of the second style of the layers drawn differently on the atlas map.
ATLAS_STYLE = "atlas"
#: Layers of the atlas map, in the project's order (top to bottom), with their legend title.
ATLAS_LAYERS: dict[str, str] = {
    "friches": "Friches",
    "friches_surfaces": "Friches (périmètres)",
    "gisements": "Gisements fonciers (sites candidats)",
    "zae": "Zones d'activités",
    "zae_unites": "Unités foncières (statut de vacance)",
    "routes": "Routes",
}

#: Page (A4 portrait), margin and map margin around the zone (share of its extent).
PAGE_MM = (210.0, 297.0)
MARGIN_MM = 11.0
#: Space between the pages of a layout (QGIS's).
PAGE_SPACING_MM = 10.0
#: Height of the map on the first page.
MAP_HEIGHT_MM = 165.0
#: Cell margin and grid width of the table of land units.
CELL_MARGIN_MM = 0.8
GRID_MM = 0.15
MAP_MARGIN = 0.12
#: Font of the sheet (shipped with QGIS on Debian as on Windows installers).
FONT = "DejaVu Sans"

# QgsLayoutItemRegistry item types.
_PAGE, _MAP, _PICTURE, _LABEL, _LEGEND, _SCALEBAR, _FRAME, _TABLE = (
    65638, 65639, 65640, 65641, 65642, 65646, 65647, 65649)
_UUIDS = uuid.UUID("5d1c6f0e-3c1b-4c41-9a51-6f6273657276")


@dataclass(frozen=True)
class AtlasContext:
    """What the sheets say beside the zones' own fields.

    Attributes
    ----------
    territory
        Name of the territory.
    communes
        Name of each commune (INSEE code → name), for the titles.
    sources
        ``(kind, producer, date of the data)`` of each source read.
    read_on
        Date the sources were read (ISO 8601), or ``None``.
    """

    territory: str
    communes: Mapping[str, str]
    sources: tuple[tuple[str, str | None, str | None], ...] = ()
    read_on: str | None = None


@dataclass(frozen=True)
class AtlasParts:
    """What the atlas adds to a project."""

    #: The ``atlas`` style of each layer drawn differently on the atlas map.
    styles: dict[str, LayerStyle]
    #: ``<visibility-presets>``: the map theme of the atlas map.
    themes: ET.Element
    #: ``<Layouts>``: the print layout.
    layouts: ET.Element


def atlas_context(con: sqlite3.Connection, territory: Territory) -> AtlasContext:
    """Read the communes of the zones and the sources from an open GeoPackage.

    Parameters
    ----------
    con
        Connection to the GeoPackage.
    territory
        The territory (name, communes, ``[options.noms_communes]``).

    Returns
    -------
    AtlasContext
        Names of the territory's communes and of the zones' communes, and the
        sources of the ``sources`` table (producer and date of the data when
        the table has them).
    """
    tables = {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")}
    codes = list(territory.communes)
    if "zae" in tables and "comm_insee" in _columns(con, "zae"):
        codes += [r[0] for r in con.execute(
            "SELECT DISTINCT comm_insee FROM zae WHERE comm_insee IS NOT NULL "
            "ORDER BY comm_insee")]
    names = commune_names(codes, overrides=territory.options.noms_communes)
    sources: list[tuple[str, str | None, str | None]] = []
    read_on = None
    if "sources" in tables:
        columns = _columns(con, "sources")
        credit = ("producteur, date_donnees" if {"producteur", "date_donnees"} <= columns
                  else "NULL, NULL")
        for kind, producer, data_date, read in con.execute(
                f"SELECT type_source, {credit}, date_lecture FROM sources ORDER BY fid"):
            sources.append((str(kind), producer or None, data_date or None))
            if read and (read_on is None or read[:10] > read_on):
                read_on = read[:10]
    return AtlasContext(territory.name, names, tuple(sources), read_on)


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info(\"{table}\")")}


def atlas_parts(tables: Sequence[SpatialTable], *, context: AtlasContext, gpkg_name: str,
                extent: tuple[float, float, float, float] | None) -> AtlasParts | None:
    """Return the styles, map theme and print layout of the atlas of the ZAE.

    Parameters
    ----------
    tables
        The spatial tables of the project (those it holds as layers).
    context
        Communes and sources (:func:`atlas_context`).
    gpkg_name
        File name of the GeoPackage (layers are ``./<gpkg_name>|layername=<table>``).
    extent
        Extent of the map before an atlas feature is shown (that of the project).

    Returns
    -------
    AtlasParts or None
        ``None`` when the project has no ``zae`` layer (nothing to cover); an empty
        ``zae`` layer still gets its layout, whose atlas then has no sheet.
    """
    by_name = {t.name: t for t in tables}
    zae = by_name.get("zae")
    if zae is None:
        return None
    units = by_name.get("zae_unites")
    if units is not None and not {"zae_id", "uf_id"} <= set(units.columns):
        units = None
    styles = {"zae": _zae_atlas_style()}
    if units is not None:
        styles["zae_unites"] = _units_atlas_style(units)
    layers = [by_name[name] for name in ATLAS_LAYERS if name in by_name]
    if units is None:
        layers = [t for t in layers if t.name != "zae_unites"]
    sheet = _Sheet(zae, units, by_name.get("gisements"), layers, context, gpkg_name,
                   extent or zae.extent)
    return AtlasParts(styles, _themes(layers, styles), sheet.layouts())


# --------------------------------------------------------------------------- styles


def _zae_atlas_style() -> LayerStyle:
    current = fill_symbol("", None, ZAE_COLOUR, width=1.0)
    others = fill_symbol("", None, ZAE_COLOUR, width=0.5, outline_style="dash")
    renderer = rule_renderer([("$id = @atlas_featureid", "Limite de la zone", current),
                              ("ELSE", "Autre zone d'activités", others)])
    return LayerStyle(renderer, None, _field("zae_id"))


def _units_atlas_style(table: SpatialTable) -> LayerStyle:
    unknown = fill_symbol("", VACANCY_STATUTS["inconnue"][0], "#252525", fill_alpha=210, width=0.2)
    if "statut_vacance" not in table.columns:
        return LayerStyle(single_renderer(unknown), None, _field("uf_id"))
    labels = value_map("zae_unites", "statut_vacance") or {}
    cats = [(value, labels.get(value, value),
             fill_symbol("", colour, "#252525", fill_alpha=210, width=0.2))
            for value, (colour, _) in VACANCY_STATUTS.items() if value != "inconnue"]
    cats.append(("", "Statut inconnu", unknown))
    return LayerStyle(categorized_renderer("statut_vacance", cats), None, _field("uf_id"))


def style_document(style: LayerStyle) -> ET.Element:
    """Return a style as the ``<qgis>`` element a ``<map-layer-style>`` holds."""
    root = ET.Element("qgis", {
        "version": QGIS_VERSION, "styleCategories": "AllStyleCategories",
        "labelsEnabled": "1" if style.labeling is not None else "0",
        "hasScaleBasedVisibilityFlag": "0", "minScale": "100000000", "maxScale": "0",
    })
    for el in style.elements():
        root.append(el)
    return root


def _themes(layers: Sequence[SpatialTable], styles: Mapping[str, LayerStyle]) -> ET.Element:
    presets = ET.Element("visibility-presets")
    preset = ET.SubElement(presets, "visibility-preset", name=ATLAS_NAME)
    for table in layers:
        ET.SubElement(preset, "layer", id=_layer_id(table.name), visible="1", expanded="1",
                      style=ATLAS_STYLE if table.name in styles else "default")
    return presets


# --------------------------------------------------------------------------- layout


def _uuid(name: str) -> str:
    # Stable identifiers: the same GeoPackage gives the same project.
    return "{" + str(uuid.uuid5(_UUIDS, name)) + "}"


def _font(size: float, *, bold: bool = False) -> str:
    """Return the ``QFont::toString()`` description of the sheet's font (Qt 5)."""
    return f"{FONT},{size:g},-1,5,{75 if bold else 50},0,0,0,0,0"


def _fit(extent: tuple[float, float, float, float], ratio: float
         ) -> tuple[float, float, float, float]:
    """Widen ``extent`` to the ``ratio`` (width / height) of a map item.

    QGIS resizes a map item to the ratio of the extent it reads.
    """
    xmin, ymin, xmax, ymax = extent
    width, height = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    if width / height < ratio:
        width = height * ratio
    else:
        height = width / ratio
    return (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def _colour(tag: str, colour: str, alpha: int = 255) -> ET.Element:
    r, g, b, a = _rgba(colour, alpha).split(",")
    return ET.Element(tag, red=r, green=g, blue=b, alpha=a)


def _text_style(size: float, *, bold: bool = False, colour: str = "#000000") -> ET.Element:
    style = ET.Element("text-style", {
        "fontFamily": FONT, "namedStyle": "Bold" if bold else "Book",
        "fontWeight": "75" if bold else "50", "fontItalic": "0", "fontUnderline": "0",
        "fontStrikeout": "0", "fontKerning": "1", "fontSize": f"{size:g}",
        "fontSizeUnit": "Point", "textColor": _rgba(colour), "textOpacity": "1",
        "multilineHeight": "1", "blendMode": "0", "capitalization": "0", "allowHtml": "0",
        "textOrientation": "horizontal", "fontLetterSpacing": "0", "fontWordSpacing": "0",
        "previewBkgrdColor": "255,255,255,255",
    })
    ET.SubElement(style, "families")
    ET.SubElement(style, "text-buffer", {"bufferDraw": "0", "bufferSize": "1",
                                         "bufferSizeUnits": "MM",
                                         "bufferColor": "255,255,255,255"})
    style.append(_dd_properties("dd_properties"))
    return style


def _wrapped_symbol(tag: str, symbol: ET.Element) -> ET.Element:
    el = ET.Element(tag)
    el.append(symbol)
    return el


def _mm(*values: float) -> str:
    return ",".join(f"{v:g}" for v in values) + ",mm"


class _Sheet:
    """The print layout of the atlas: one A4 portrait sheet per zone."""

    def __init__(self, zae: SpatialTable, units: SpatialTable | None,
                 gisements: SpatialTable | None, layers: Sequence[SpatialTable],
                 context: AtlasContext, gpkg_name: str,
                 extent: tuple[float, float, float, float] | None) -> None:
        self.zae = zae
        self.units = units
        self.gisements = gisements
        self.layers = layers
        self.context = context
        self.gpkg_name = gpkg_name
        self.extent = extent
        self.z = 0

    def layouts(self) -> ET.Element:
        layouts = ET.Element("Layouts")
        layout = ET.SubElement(layouts, "Layout", name=ATLAS_NAME, units="mm",
                               printResolution="300", worldFileMap="")
        ET.SubElement(layout, "Snapper", snapToGrid="0", snapToGuides="1", snapToItems="1",
                      tolerance="5")
        ET.SubElement(layout, "Grid", resolution="10", resUnits="mm", offsetX="0",
                      offsetY="0", offsetUnits="mm")
        pages = 2 if self.units is not None else 1
        layout.append(self._pages(pages))
        width, height = PAGE_MM
        left, inner = MARGIN_MM, width - 2 * MARGIN_MM
        map_uuid = _uuid("carte")
        # Page 1: the zone, its map, key figures, legend and sources.
        layout.append(self._label("atlas", (left, 6, inner, 4.5),
                                  "Atlas des zones d'activités — "
                                  f"{_static(self.context.territory)}", size=7.5,
                                  colour="#444444"))
        layout.append(self._label("titre", (left, 10.5, inner, 9), self._title(),
                                  size=14, bold=True))
        layout.append(self._label("sous-titre", (left, 20, inner, 6), self._subtitle(),
                                  size=9, colour="#444444"))
        layout.append(self._map(map_uuid, (left, 27, inner, MAP_HEIGHT_MM)))
        layout.append(self._north_arrow(map_uuid, (left + inner - 12, 29, 10, 13)))
        layout.append(self._scale_bar(map_uuid, (left, 29 + MAP_HEIGHT_MM)))
        top = 38 + MAP_HEIGHT_MM
        layout.append(self._label("titre-chiffres", (left, top, 95, 6), "Chiffres clés",
                                  size=10, bold=True))
        layout.append(self._label("chiffres", (left, top + 6, 95, height - 24 - top),
                                  self._key_figures(), size=8))
        layout.append(self._legend(map_uuid, (left + 99, top, inner - 99, height - 24 - top)))
        layout.append(self._label("sources", (left, height - 19, inner, 15), self._sources(),
                                  size=6.5, colour="#444444"))
        # Page 2 (and more when needed): the zone's land units.
        if self.units is not None:
            layout.append(self._label("titre-unites", (left, 9, inner, 8), self._units_title(),
                                      size=11, bold=True, page=1))
            frame, table = self._units_table((left, 19, inner, height - 19 - MARGIN_MM))
            layout.append(frame)
            layout.append(table)
        # The layout's default for PDF export in QGIS: text as text objects (1), not as
        # paths (0): the sheets can be searched and copied, like the HTML atlas.
        props = ET.SubElement(ET.SubElement(layout, "customproperties"), "Option", type="Map")
        ET.SubElement(props, "Option", name="pdfTextFormat", type="int", value="1")
        layout.append(self._atlas())
        return layouts

    # ------------------------------------------------------------------ items

    def _pages(self, count: int) -> ET.Element:
        pages = ET.Element("PageCollection")
        pages.append(fill_symbol("", "#ffffff", "#232323", outline_style="no"))
        for number in range(count):
            page = self._item(_PAGE, f"page-{number + 1}", (0, 0, *PAGE_MM), page=number,
                              background=True, z=0)
            page.append(fill_symbol("", "#ffffff", "#232323", outline_style="no"))
            pages.append(page)
        ET.SubElement(pages, "GuideCollection", visible="1")
        return pages

    def _item(self, kind: int, name: str, rect: Sequence[float], *, page: int = 0,
              background: bool = False, frame: bool = False, z: int | None = None,
              **attrs: str) -> ET.Element:
        self.z += 1
        x, y = rect[0], rect[1]
        # Pages are stacked in the layout, PAGE_SPACING_MM apart.
        offset = page * (PAGE_MM[1] + PAGE_SPACING_MM)
        item = ET.Element("LayoutItem", {
            "type": str(kind), "uuid": _uuid(name), "templateUuid": _uuid(name),
            "id": name if kind != _PAGE else "", "position": _mm(x, y + offset),
            "positionOnPage": _mm(x, y), "referencePoint": "0",
            "itemRotation": "0", "zValue": str(self.z if z is None else z), "opacity": "1",
            "blendMode": "0", "visibility": "1", "positionLock": "false",
            "excludeFromExports": "0", "groupUuid": "",
            "frame": "true" if frame else "false", "frameJoinStyle": "miter",
            "outlineWidthM": "0.3,mm", "background": "true" if background else "false",
            **attrs,
        })
        if len(rect) == 4:
            item.set("size", _mm(rect[2], rect[3]))
        item.append(_colour("FrameColor", "#000000"))
        item.append(_colour("BackgroundColor", "#ffffff"))
        obj = ET.SubElement(item, "LayoutObject")
        obj.append(_dd_properties("dataDefinedProperties"))
        ET.SubElement(obj, "customproperties")
        return item

    def _label(self, name: str, rect: Sequence[float], text: str, *, size: float,
               bold: bool = False, colour: str = "#000000", page: int = 0) -> ET.Element:
        item = self._item(_LABEL, name, rect, page=page, labelText=text, htmlState="0",
                          marginX="0", marginY="0", halign="1", valign="32")
        ET.SubElement(item, "LabelFont", description=_font(size, bold=bold), style="")
        item.append(_colour("FontColor", colour))
        return item

    def _map(self, map_uuid: str, rect: Sequence[float]) -> ET.Element:
        item = self._item(_MAP, "carte", rect, background=True, frame=True,
                          drawCanvasItems="true", keepLayerSet="false", followPreset="true",
                          followPresetName=ATLAS_NAME, mapRotation="0", mapFlags="0",
                          isTemporal="0", labelMargin="0,mm")
        item.set("uuid", map_uuid)
        item.set("templateUuid", map_uuid)
        ext = _fit(self.extent or (0.0, 0.0, 1.0, 1.0), rect[2] / rect[3])
        ET.SubElement(item, "Extent", xmin=repr(ext[0]), ymin=repr(ext[1]), xmax=repr(ext[2]),
                      ymax=repr(ext[3]))
        ET.SubElement(item, "LayerSet")
        # scalingMode 2 = Auto: the zone and a margin of MAP_MARGIN around it.
        ET.SubElement(item, "AtlasMap", atlasDriven="1", scalingMode="2",
                      margin=f"{MAP_MARGIN:g}")
        ET.SubElement(item, "labelBlockingItems")
        clip = ET.SubElement(item, "atlasClippingSettings", enabled="0", clippingType="1",
                             forceLabelsInside="0", restrictLayers="0")
        ET.SubElement(clip, "layersToClip")
        ET.SubElement(item, "itemClippingSettings", enabled="0", clippingType="1",
                      forceLabelsInside="0", clipSource="")
        return item

    def _north_arrow(self, map_uuid: str, rect: Sequence[float]) -> ET.Element:
        # mode 2 = SVG; northMode 0 = grid north of the linked map.
        return self._item(_PICTURE, "nord", rect, background=True,
                          file=":/images/north_arrows/layout_default_north_arrow.svg",
                          mode="2", pictureWidth=f"{rect[2]:g}", pictureHeight=f"{rect[3]:g}",
                          resizeMode="3", anchorPoint="4", pictureRotation="0",
                          mapUuid=map_uuid, northMode="0", northOffset="0",
                          svgFillColor="255,255,255,255", svgBorderColor="0,0,0,255",
                          svgBorderWidth="0.2")

    def _scale_bar(self, map_uuid: str, position: Sequence[float]) -> ET.Element:
        # segmentSizeMode 1 = fit width: the bar finds a round length for every zone.
        item = self._item(_SCALEBAR, "echelle", position, background=False,
                          mapUuid=map_uuid, style="Single Box", unitType="meters",
                          unitLabel="m", numMapUnitsPerScaleBarUnit="1", numSegments="2",
                          numSegmentsLeft="0", numSubdivisions="1", subdivisionsHeight="1.5",
                          segmentSizeMode="1", numUnitsPerSegment="100", segmentMillimeters="20",
                          minBarWidth="30", maxBarWidth="60", height="2", labelBarSpace="2",
                          boxContentSpace="1", alignment="0", labelVerticalPlacement="0",
                          labelHorizontalPlacement="0", outlineWidth="0.3",
                          lineJoinStyle="miter", lineCapStyle="square")
        item.append(_text_style(7))
        # French numbers: « 1 000 m ».
        number = ET.SubElement(ET.SubElement(item, "numericFormat", id="basic"), "Option",
                               type="Map")
        for key, kind, value in (("decimal_separator", "QChar", ","), ("decimals", "int", "6"),
                                 ("rounding_type", "int", "0"), ("show_plus", "bool", "false"),
                                 ("show_thousand_separator", "bool", "true"),
                                 ("show_trailing_zeros", "bool", "false"),
                                 ("thousand_separator", "QChar", "\u202f")):
            ET.SubElement(number, "Option", name=key, type=kind, value=value)
        item.append(_wrapped_symbol("lineSymbol", line_symbol("", "#000000", 0.3)))
        item.append(_wrapped_symbol("divisionLineSymbol", line_symbol("", "#000000", 0.3)))
        item.append(_wrapped_symbol("subdivisionLineSymbol", line_symbol("", "#000000", 0.3)))
        item.append(_wrapped_symbol("fillSymbol1", fill_symbol("", "#000000", "#000000",
                                                               outline_style="no")))
        item.append(_wrapped_symbol("fillSymbol2", fill_symbol("", "#ffffff", "#000000",
                                                               outline_style="no")))
        return item

    def _legend(self, map_uuid: str, rect: Sequence[float]) -> ET.Element:
        # Filtered by the map: only what the zone's map shows is listed.
        item = self._item(_LEGEND, "legende", rect, title="Légende", map_uuid=map_uuid,
                          legendFilterByMap="1", legendFilterByAtlas="0",
                          resizeToContents="1", columnCount="2", splitLayer="1",
                          equalColumnWidth="0", columnSpace="3", boxSpace="0",
                          symbolWidth="5", symbolHeight="3", symbolAlignment="1",
                          titleAlignment="1", lineSpacing="0.8", wrapChar="",
                          fontColor="#000000", rasterBorder="1", rasterBorderWidth="0",
                          rasterBorderColor="0,0,0,255", wmsLegendWidth="50",
                          wmsLegendHeight="25", minSymbolSize="0", maxSymbolSize="0")
        styles = ET.SubElement(item, "styles")
        for name, size, bold, top in (("title", 10, True, 0), ("group", 8, True, 2),
                                      ("subgroup", 7.5, True, 2), ("symbol", 7, False, 1.2),
                                      ("symbolLabel", 7, False, 1.2)):
            style = ET.SubElement(styles, "style", name=name, alignment="1", indent="0",
                                  marginTop=f"{top:g}")
            if name == "title":
                style.set("marginBottom", "2")
            if name == "symbolLabel":
                style.set("marginLeft", "1.5")
            ET.SubElement(style, "styleFont", description=_font(size, bold=bold), style="")
        tree = ET.SubElement(item, "layer-tree-group")
        ET.SubElement(tree, "customproperties")
        for table in self.layers:
            node = ET.SubElement(tree, "layer-tree-layer", {
                "id": _layer_id(table.name), "name": ATLAS_LAYERS[table.name],
                "source": f"./{self.gpkg_name}|layername={table.name}", "providerKey": "ogr",
                "checked": "Qt::Checked", "expanded": "1", "legend_exp": "",
                "patch_size": "0,0", "legend_split_behavior": "0",
            })
            # The legend's own name of the layer (QGIS's « legend/title-label »).
            props = ET.SubElement(ET.SubElement(node, "customproperties"), "Option",
                                  type="Map")
            ET.SubElement(props, "Option", name="legend/title-label", type="QString",
                          value=ATLAS_LAYERS[table.name])
        ET.SubElement(tree, "custom-order", enabled="0")
        return item

    def _units_table(self, rect: Sequence[float]) -> tuple[ET.Element, ET.Element]:
        assert self.units is not None
        table_uuid, frame_uuid = _uuid("unites"), _uuid("unites-cadre")
        frame = self._item(_FRAME, "unites-cadre", rect, page=1, multiFrame=table_uuid,
                           multiFrameTemplateUuid=table_uuid, sectionX="0", sectionY="0",
                           sectionWidth=f"{rect[2]:g}", sectionHeight=f"{rect[3]:g}",
                           hidePageIfEmpty="0", hideBackgroundIfEmpty="0")
        frame.set("uuid", frame_uuid)
        frame.set("templateUuid", frame_uuid)
        source = f"./{self.gpkg_name}|layername=zae_unites"
        # resizeMode 3 = repeat until finished: a long table continues on new pages, in
        # frames placed as the first one (within the margins; « extend to next page »
        # would fill the next pages from edge to edge); headerMode 1 = headers on
        # every frame; wrapBehavior 1 = wrap text.
        table = ET.Element("LayoutMultiFrame", {
            "type": str(_TABLE), "uuid": table_uuid, "templateUuid": table_uuid,
            "resizeMode": "3", "source": "0", "relationId": "",
            "vectorLayer": _layer_id("zae_unites"), "vectorLayerSource": source,
            "vectorLayerName": ATLAS_LAYERS["zae_unites"], "vectorLayerProvider": "ogr",
            "maxFeatures": "100000", "filterFeatures": "true",
            "featureFilter": "\"zae_id\" = attribute(@atlas_feature, 'zae_id')",
            "filterToAtlasIntersection": "0", "showOnlyVisibleFeatures": "0",
            "showUniqueRowsOnly": "0", "useConditionalStyling": "0", "wrapString": "",
            "cellMargin": f"{CELL_MARGIN_MM:g}", "headerMode": "1", "headerHAlignment": "0",
            "emptyTableMode": "2",
            "emptyTableMessage": "Aucune unité foncière rattachée à la zone.",
            "showEmptyRows": "0", "wrapBehavior": "1", "showGrid": "1",
            "gridStrokeWidth": f"{GRID_MM:g}", "gridColor": "128,128,128,255",
            "horizontalGrid": "1", "verticalGrid": "1", "backgroundColor": "255,255,255,255",
        })
        ET.SubElement(table, "childFrame", uuid=frame_uuid, templateUuid=frame_uuid)
        obj = ET.SubElement(table, "LayoutObject")
        obj.append(_dd_properties("dataDefinedProperties"))
        ET.SubElement(obj, "customproperties")
        ET.SubElement(table, "headerTextFormat").append(_text_style(7, bold=True))
        ET.SubElement(table, "contentTextFormat").append(_text_style(7))
        columns = ET.SubElement(table, "displayColumns")
        spec = self._unit_columns()
        # The last column takes the width the others, the cell margins and the grid leave.
        rest = rect[2] - sum(w for _, _, w, _ in spec[:-1]) - len(spec) * 2 * CELL_MARGIN_MM \
            - (len(spec) + 1) * GRID_MM
        widths = [w for _, _, w, _ in spec[:-1]] + [max(rest, 15.0)]
        for (heading, expression, _, right), width in zip(spec, widths, strict=True):
            column = ET.SubElement(columns, "column", {
                "heading": heading, "attribute": expression, "width": f"{width:.1f}",
                "hAlignment": "2" if right else "1", "vAlignment": "32",
                "sortByRank": "0", "sortOrder": "0"})
            column.append(_colour("backgroundColor", "#000000", 0))
        order = ET.SubElement(table, "sortColumns")
        column = ET.SubElement(order, "column", {
            "heading": "", "attribute": _field("uf_id"), "width": "0", "hAlignment": "1",
            "vAlignment": "128", "sortByRank": "1", "sortOrder": "0"})
        column.append(_colour("backgroundColor", "#000000", 0))
        cells = ET.SubElement(table, "cellStyles")
        for name in ("oddColumns", "evenColumns", "oddRows", "evenRows", "firstColumn",
                     "lastColumn", "headerRow", "firstRow", "lastRow"):
            ET.SubElement(cells, name, enabled="1" if name == "headerRow" else "0",
                          cellBackgroundColor="235,235,235,255" if name == "headerRow"
                          else "255,255,255,255")
        return frame, table

    # ------------------------------------------------------------------ texts

    def _has(self, column: str) -> bool:
        return column in self.zae.columns

    def _title(self) -> str:
        if self._has("zae_nom"):
            return "[% coalesce(\"zae_nom\", \"zae_id\") %]"
        return "[% \"zae_id\" %]"

    def _subtitle(self) -> str:
        parts = []
        if self._has("comm_insee"):
            names = ", ".join(f"{_text_literal(code)}, {_text_literal(name)}"
                              for code, name in sorted(self.context.communes.items()))
            commune = (f"coalesce(map_get(map({names}), \"comm_insee\") || ' ('"
                       f" || \"comm_insee\" || ')', \"comm_insee\", 'non renseignée')")
            parts.append(f"Commune : [% {commune} %]")
        parts.append("zone [% \"zae_id\" %]")
        return " — ".join(parts)

    def _key_figures(self) -> str:
        def number(expr: str, digits: int = 0) -> str:
            return f"coalesce(format_number({expr}, {digits}, 'fr'), '—')"

        def hectares(expr: str) -> str:
            return f"coalesce(format_number({expr} / 10000, 2, 'fr') || ' ha', '—')"

        def percent(expr: str) -> str:
            return f"coalesce(format_number({expr} * 100, 1, 'fr') || ' %', '—')"

        zone = "\"zae_id\" = attribute(@parent, 'zae_id')"
        lines = [("Surface de la zone", hectares("area(@atlas_geometry)"))]
        for column, label, fmt in (
                ("nb_unites", "Unités foncières", number),
                ("nb_unites_vacantes", "Unités vacantes ou présumées vacantes", number),
                ("taux_vacance", "Taux de vacance (unités au statut connu)", percent),
                ("taux_vacance_surface", "Taux de vacance (surface)", percent),
                ("surface_disponible_m2", "Surface disponible (vacante)", hectares),
                ("plus_grande_surface_dispo_m2", "Plus grand lot disponible d'un seul tenant",
                 hectares)):
            if self._has(column):
                lines.append((label, fmt(_field(column))))
        if self.units is not None and "nb_occupants" in self.units.columns:
            layer = _literal(_layer_id("zae_unites"))
            known = f"aggregate({layer}, 'count', \"nb_occupants\", {zone})"
            total = f"aggregate({layer}, 'sum', \"nb_occupants\", {zone})"
            lines.append(("Établissements actifs sur les unités (Sirene)",
                          f"CASE WHEN {known} > 0 THEN {number(total)} "
                          f"ELSE 'non renseigné' END"))
        if self.gisements is not None and {"zae_id", "gisement_id"} <= set(
                self.gisements.columns):
            layer = _literal(_layer_id("gisements"))
            count = f"aggregate({layer}, 'count', \"gisement_id\", {zone})"
            area = ""
            if "surface_m2" in self.gisements.columns:
                area = (f" || coalesce(' (' || format_number(aggregate({layer}, 'sum', "
                        f"\"surface_m2\", {zone}) / 10000, 2, 'fr') || ' ha)', '')")
            lines.append(("Gisements fonciers (sites candidats)",
                          f"format_number(coalesce({count}, 0), 0, 'fr'){area}"))
        if self._has("nb_friches"):
            area = (" || coalesce(' (' || format_number(\"surface_friches_m2\" / 10000, 2, "
                    "'fr') || ' ha)', '')") if self._has("surface_friches_m2") else ""
            lines.append(("Friches", f"coalesce(format_number(\"nb_friches\", 0, 'fr'){area}, "
                                     "'—')"))
        if self._has("zae_origine"):
            lines.append(("Origine du périmètre",
                          "coalesce(represent_value(\"zae_origine\"), '—')"))
        return "\n".join(f"{label} : [% {expr} %]" for label, expr in lines)

    def _units_title(self) -> str:
        return f"Unités foncières de la zone — {self._title()}"

    def _unit_columns(self) -> list[tuple[str, str, float, bool]]:
        assert self.units is not None
        cols = set(self.units.columns)
        out: list[tuple[str, str, float, bool]] = [("Unité foncière", _field("uf_id"), 27, False)]
        if "idus" in cols:
            out.append(("Parcelles", "replace(\"idus\", '|', ', ')", 26, False))
        if "surface_m2" in cols:
            share = (" || CASE WHEN \"part_dans_zae\" < 0.995 THEN ' (' || "
                     "format_number(\"part_dans_zae\" * 100, 0, 'fr') || ' % dans la zone)' "
                     "ELSE '' END") if "part_dans_zae" in cols else ""
            out.append(("Surface", f"coalesce(format_number(\"surface_m2\", 0, 'fr') || ' m²'"
                                   f"{share}, '—')", 22, True))
        if "proprietaire_type" in cols:
            # A name only for legal entities, whatever the layer holds.
            name = (" || coalesce(' : ' || \"proprietaire_nom\", '')"
                    if "proprietaire_nom" in cols else "")
            siren = (" || coalesce(' (SIREN ' || \"proprietaire_siren\" || ')', '')"
                     if "proprietaire_siren" in cols else "")
            out.append(("Propriétaire",
                        "CASE WHEN \"proprietaire_type\" = 'personne morale' THEN "
                        f"'personne morale'{name}{siren} "
                        "WHEN \"proprietaire_type\" = 'personne physique' "
                        "THEN 'personne physique' ELSE 'inconnu' END", 24, False))
        if "nb_occupants" in cols:
            out.append(("Établissements", "coalesce(to_string(\"nb_occupants\"), '—')", 21,
                        True))
        if "statut_vacance" in cols:
            out.append(("Statut de vacance",
                        "coalesce(represent_value(\"statut_vacance\"), 'inconnu')", 19, False))
        if "raison_vacance" in cols:
            out.append(("Motif", "coalesce(\"raison_vacance\", '')", 0, False))
        return out

    def _sources(self) -> str:
        credits = []
        for kind, producer, date in self.context.sources:
            text = f"{kind} : {producer}" if producer else kind
            credits.append(f"{text}, données du {_date(date)}" if date else text)
        lines = [f"Sources : {' ; '.join(credits)}." if credits else "Sources : non renseignées."]
        stamp = f"Observatoire du foncier économique {__version__}"
        if self.context.read_on:
            stamp += f", données lues le {_date(self.context.read_on)}"
        lines.append(f"{stamp}. Les personnes physiques ne sont jamais nommées "
                     "(propriétaires et occupants).")
        return "\n".join(_static(line) for line in lines)

    def _atlas(self) -> ET.Element:
        title = "coalesce(\"zae_nom\", \"zae_id\")" if self._has("zae_nom") else "\"zae_id\""
        atlas = ET.Element("Atlas", {
            "enabled": "1", "hideCoverage": "0", "coverageLayer": _layer_id("zae"),
            "coverageLayerName": ATLAS_LAYERS["zae"],
            "coverageLayerSource": f"./{self.gpkg_name}|layername=zae",
            "coverageLayerProvider": "ogr", "pageNameExpression": title,
            "filenamePattern": "'atlas_zae_' || \"zae_id\"", "sortFeatures": "1",
            "sortKey": _field("zae_id"), "sortAscending": "1", "filterFeatures": "0",
        })
        return atlas


def _date(value: str) -> str:
    """Return ``3 décembre 2026`` for an ISO 8601 date, any other text as it is."""
    try:
        return french_date(value)
    except ValueError:
        return value


def _text_literal(text: str) -> str:
    """Return a QGIS string literal for use inside ``[% … %]``.

    QGIS ends an expression at the first ``%]`` (and starts one at ``[%``), even
    inside a string: the literal is cut between ``[`` and ``%``, and between
    ``%`` and ``]``, and its pieces concatenated.
    """
    pieces = re.split(r"(?<=\[)(?=%)|(?<=%)(?=\])", text)
    return " || ".join(_literal(piece) for piece in pieces)


def _static(text: str) -> str:
    """Return text shown as is in a label (as an expression when it holds ``[%``)."""
    return f"[% {_text_literal(text)} %]" if "[%" in text else text
