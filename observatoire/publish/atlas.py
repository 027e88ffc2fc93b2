"""Atlas of the business zones (ZAE): one printable sheet per zone, and a cover sheet.

Article L318-8-2 of the code de l'urbanisme has the intercommunality send its
inventory of business zones to the owners and occupants for 30 days, then adopt
it in council. The atlas is that inventory as a document: in ``atlas/`` of the
outputs, one sheet per zone, the same for every zone —

- a map extract of the zone: land units coloured by vacancy status, candidate
  sites (``gisements``), friches, the zone's boundary, roads, a scale bar and an
  arrow to true north;
- key figures: area, land units, vacant units, vacancy rates by count and by
  area, available area and largest available plot, establishments, candidate
  sites and friches;
- the table of land units (numbered as on the map): parcels, area, owner
  category, legal entities by name and SIREN, occupants, vacancy status and its
  reason;
- the friches and candidate sites inside the zone;
- the data sources with their dates;

and a cover sheet for the territory (all zones on one map, coloured by vacancy
rate, and a summary table linking to each sheet). Natural persons are never
named: an owner is named only when the inventory says it is a legal entity, and
occupants come as the inventory wrote them (entrepreneurs individuels and
non-diffusible establishments unnamed, see
:func:`observatoire.analysis.zae_inventory.occupant_label`).

Each sheet is a self-contained HTML page (map as an embedded PNG, CSS inline)
with print CSS for A4 portrait, and its PDF twin, laid out by ReportLab from the
same content (:mod:`observatoire.publish.atlas_pdf`).

Maps are drawn with matplotlib's object API on the Agg canvas: each layer's
features are indexed once (``STRtree``); a sheet draws only the features in its
extent, turned into matplotlib paths by vectorised shapely calls.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import shapely
from jinja2 import Environment, FunctionLoader, select_autoescape
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from pyproj import Transformer

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

from observatoire import __version__
from observatoire.analysis.zae_inventory import observation_date
from observatoire.config import Territory
from observatoire.outputs import StagedFile
from observatoire.progress import Progress, track
from observatoire.publish.assets import (
    FRICHE_STATUTS,
    GISEMENT_COLOUR,
    ROAD_CLASSES,
    VACANCY_CLASSES,
    VACANCY_STATUTS,
    VACANCY_UNKNOWN_COLOUR,
    ZAE_COLOUR,
    french_date,
    hectares,
    number,
    percent,
    surface_m2,
    template_text,
    vacancy_colour,
)
from observatoire.publish.atlas_pdf import write_cover_pdf, write_sheet_pdf
from observatoire.publish.consultation import safe_file_name
from observatoire.publish.fond import STYLES
from observatoire.readers.lineage import SourceReport, relative_name

log = logging.getLogger(__name__)

#: Folder of the atlas in the outputs.
ATLAS_FOLDER = "atlas"
#: Name of the cover sheet's files (``couverture.html``, ``couverture.pdf``).
COVER = "couverture"

#: Vacancy status of a land unit: colour and label.
STATUTS = VACANCY_STATUTS
#: Colour of friches on the maps.
FRICHE_COLOUR = FRICHE_STATUTS["friche sans projet"][0]
#: Colour of roads on the maps.
ROAD_COLOUR = "#8c8c8c"

#: Size of a zone's map on the sheet (inches: 185 × 115 mm) and its resolution.
MAP_SIZE = (7.28, 4.53)
COVER_MAP_SIZE = (7.28, 6.2)
MAP_DPI = 150
#: Margin around a zone on its map: share of its extent, and at least this many metres.
MAP_MARGIN = 0.12
MAP_MARGIN_MIN_M = 40.0
#: Units of a zone numbered on its map (and in its table) up to this many.
MAX_LABELS = 150
#: Smallest width (pixels) of a unit numbered on the map.
LABEL_MIN_PX = 18
#: Zones numbered on the cover map up to this many.
MAX_COVER_LABELS = 80
#: Local roads drawn on the territory map up to this many roads in all (beyond, the
#: main classes only: a national road network would hide everything else).
MAX_LOCAL_ROADS = 30_000
#: Roads and commune outlines of the territory map: the colours of ``carte.html``'s background.
BACKGROUND_ROAD_COLOURS = {c: STYLES[c]["color"] for c in ROAD_CLASSES}
COMMUNE_COLOUR = STYLES["commune"]["color"]

_RC: dict[RcKeyType, Any] = {
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 8,
}


# --------------------------------------------------------------------------- the sheets


@dataclass
class KeyFigure:
    """A key figure of a sheet: label, value as shown, detail, and its source.

    Attributes
    ----------
    champ
        The column of the ``zae`` layer it shows (or a name for a computed one).
    brut
        The raw value, as text (``""`` when missing), for readers that check it.
    """

    label: str
    value: str
    detail: str
    champ: str
    brut: str


@dataclass
class Table:
    """A table of a sheet: headers, rows of display text, numeric columns."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    #: Per row, the vacancy status colour of the row's swatch (units table only).
    swatches: list[str | None] = field(default_factory=list)


@dataclass
class Sheet:
    """What one zone's sheet shows."""

    zae_id: str
    name: str
    subtitle: list[str]
    figures: list[KeyFigure]
    map_png: bytes
    map_alt: str
    rule: str
    units: Table
    friches: Table | None
    sites: Table | None
    notes: list[str] = field(default_factory=list)
    #: The map's pixels (RGBA), when drawn here: the PDF takes them rather than decode the PNG.
    map_pixels: np.ndarray | None = None

    @property
    def map_uri(self) -> str:
        """The map as a ``data:`` URI."""
        return png_uri(self.map_png)


@dataclass
class Cover:
    """What the cover sheet shows: every zone on a map, key figures, one row per zone."""

    map_png: bytes
    figures: list[KeyFigure]
    columns: list[str]
    rows: list[list[str]]
    files: list[str]
    vacancy: list[tuple[str, str]]

    @property
    def map_uri(self) -> str:
        """The map as a ``data:`` URI."""
        return png_uri(self.map_png)


@dataclass(frozen=True)
class AtlasContext:
    """What every sheet shares: territory, dates, sources."""

    territory: str
    epci: str | None
    observation: str
    produced: str
    sources: Table
    legend: list[tuple[str, str, str]]


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    return str(value)


def _raw(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def _m2(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{number(value)}\u00a0m²"


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def zone_figures(zone: Mapping[str, Any], units: pd.DataFrame, *, area_m2: float,
                 n_sites: int, sites_m2: float, n_friches: int) -> list[KeyFigure]:
    """Return the key figures of a zone, from its row of the ``zae`` layer.

    Parameters
    ----------
    zone
        The zone's row (``nb_unites``, ``taux_vacance``…).
    units
        Its rows of ``zae_unites`` (``nb_occupants``: establishments active on each).
    area_m2
        The zone's area.
    n_sites, sites_m2
        Candidate sites in the zone and their area.
    n_friches
        Friches in the zone.

    Returns
    -------
    list of KeyFigure
        In the sheet's order.
    """
    n = _int_or_none(zone.get("nb_unites"))
    vac = _int_or_none(zone.get("nb_unites_vacantes"))
    occupants = pd.to_numeric(units["nb_occupants"], errors="coerce") if "nb_occupants" in \
        units else pd.Series(dtype=float)
    known = occupants.notna().any()
    n_etab = int(occupants.sum()) if known else None
    largest = zone.get("plus_grande_surface_dispo_m2")
    return [
        KeyFigure("Surface de la zone", hectares(area_m2), _m2(area_m2), "surface_zone_m2",
                _raw(area_m2)),
        KeyFigure("Unités foncières", number(n), "rattachées à la zone", "nb_unites", _raw(n)),
        KeyFigure("Unités vacantes", number(vac),
                "vacantes ou présumées vacantes" if vac is not None else "statut inconnu",
                "nb_unites_vacantes", _raw(vac)),
        KeyFigure("Taux de vacance (nombre)", percent(zone.get("taux_vacance")),
                "des unités dont le statut est connu", "taux_vacance",
                _raw(zone.get("taux_vacance"))),
        KeyFigure("Taux de vacance (surface)", percent(zone.get("taux_vacance_surface")),
                "de la surface des unités dans la zone", "taux_vacance_surface",
                _raw(zone.get("taux_vacance_surface"))),
        KeyFigure("Surface disponible", hectares(zone.get("surface_disponible_m2")),
                _m2(zone.get("surface_disponible_m2")) + " vacants", "surface_disponible_m2",
                _raw(zone.get("surface_disponible_m2"))),
        KeyFigure("Plus grand lot disponible", hectares(largest),
                _m2(largest) + " d'un seul tenant", "plus_grande_surface_dispo_m2",
                _raw(largest)),
        KeyFigure("Établissements", number(n_etab),
                "actifs sur les unités (Sirene)" if known
                else "pas de couche d'établissements", "nb_etablissements", _raw(n_etab)),
        KeyFigure("Gisements fonciers", number(n_sites),
                f"{hectares(sites_m2)} de sites candidats" if n_sites else "aucun site candidat",
                "nb_gisements", _raw(n_sites)),
        KeyFigure("Friches", number(n_friches), "recensées dans la zone", "nb_friches",
                _raw(n_friches)),
    ]


def units_table(units: pd.DataFrame) -> Table:
    """Return the table of a zone's land units, numbered in ``uf_id`` order.

    Owners are named only when the inventory says they are legal entities
    (``proprietaire_type`` « personne morale »), whatever the input holds.
    """
    rows: list[list[str]] = []
    swatches: list[str | None] = []
    for k, u in enumerate(units.itertuples(index=False), start=1):
        kind = getattr(u, "proprietaire_type", None)
        kind = kind if kind in ("personne morale", "personne physique") else "inconnu"
        proprietaire = kind
        if kind == "personne morale":
            name = getattr(u, "proprietaire_nom", None)
            siren = getattr(u, "proprietaire_siren", None)
            if name is not None and not pd.isna(name):
                proprietaire += f" : {name}"
            if siren is not None and not pd.isna(siren):
                proprietaire += f" (SIREN {siren})"
        idus = _text(getattr(u, "idus", None)).replace("|", ", ")
        share = getattr(u, "part_dans_zae", None)
        area = f"{_m2(getattr(u, 'surface_m2', None))}"
        if share is not None and not pd.isna(share) and share < 0.995:
            area += f" ({percent(share)} dans la zone)"
        status = getattr(u, "statut_vacance", None)
        colour, label = STATUTS.get(status, STATUTS["inconnue"]) if isinstance(
            status, str) else STATUTS["inconnue"]
        rows.append([str(k), f"{u.uf_id} — {idus}", area, proprietaire,
                     _text(getattr(u, "occupants", None)),
                     label if isinstance(status, str) and status in STATUTS else _text(status),
                     _text(getattr(u, "raison_vacance", None))])
        swatches.append(colour)
    return Table(["N°", "Unité foncière — parcelles", "Surface", "Propriétaire", "Occupants",
                  "Statut de vacance", "Motif"], rows,
                 [True, False, True, False, False, False, False], swatches)


def friches_table(friches: pd.DataFrame) -> Table | None:
    """Return the table of the friches in a zone (``None`` when there is none)."""
    if not len(friches):
        return None
    rows = [[_text(f.get("site_id")), _text(f.get("site_nom")), _text(f.get("site_statut")),
             _text(f.get("site_type")), _text(f.get("source_nom"))]
            for f in friches.to_dict("records")]
    return Table(["Identifiant", "Nom", "Statut", "Type", "Origine de la donnée"], rows,
                 [False] * 5)


def sites_table(sites: pd.DataFrame) -> Table | None:
    """Return the table of the candidate sites in a zone (``None`` when there is none)."""
    if not len(sites):
        return None
    area = surface_m2(sites)
    rows = [[_text(s.get("gisement_id")), hectares(a), number(s.get("nb_parcelles")),
             number(s.get("score_moyen"), 1), _text(s.get("friche_id"))]
            for s, a in zip(sites.to_dict("records"), area, strict=True)]
    return Table(["Gisement", "Surface", "Parcelles", "Score moyen", "Friche"], rows,
                 [False, True, True, True, False])


#: Files of a source named in the table of the sources; beyond, they are counted.
MAX_FILES_NAMED = 5


def sources_table(reports: Sequence[SourceReport], base: Path | None) -> Table:
    """Return the table of the sources read: files, format, file date, date read.

    A source of many files (one per commune) names its first
    :data:`MAX_FILES_NAMED` and counts the others: the cell of 289 names would not
    fit on a page.
    """
    rows = []
    for r in reports:
        dates = []
        for p in r.paths:
            try:
                dates.append(dt.datetime.fromtimestamp(Path(p).stat().st_mtime, dt.UTC).date())
            except OSError:
                continue
        names = [relative_name(Path(p), base) for p in r.paths[:MAX_FILES_NAMED]]
        if len(r.paths) > MAX_FILES_NAMED:
            names.append(f"… ({len(r.paths)} fichiers)")
        rows.append([r.kind, " ; ".join(names),
                     r.format, french_date(max(dates)) if dates else "—",
                     french_date(r.read_at) if r.read_at else "—", number(r.features_kept)])
    return Table(["Source", "Fichier", "Format", "Fichier daté du", "Lu le", "Entités"], rows,
                 [False, False, False, True, True, True])


def legend() -> list[tuple[str, str, str]]:
    """``(kind, colour, label)`` of the zone maps' symbols (kind: fill, line, point…)."""
    items = [("fill", colour, label) for colour, label in STATUTS.values()]
    items += [("outline", ZAE_COLOUR, "Limite de la zone"),
              ("dashed", ZAE_COLOUR, "Autre zone d'activités"),
              ("outline", GISEMENT_COLOUR, "Gisement foncier (site candidat)"),
              ("hatch", FRICHE_COLOUR, "Friche (périmètre)"),
              ("point", FRICHE_COLOUR, "Friche (localisation)"),
              ("line", ROAD_COLOUR, "Route")]
    return items


# --------------------------------------------------------------------------- maps


def polygon_paths(geoms: np.ndarray) -> list[MplPath]:
    """Turn (multi)polygons into matplotlib paths, one per geometry, holes kept.

    Vectorised: every ring's coordinates are read at once, then split.
    """
    if len(geoms) == 0:
        return []
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    # Exterior anticlockwise, holes clockwise: matplotlib fills by the non-zero rule.
    parts = shapely.orient_polygons(parts)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    codes = np.full(len(coords), MplPath.LINETO, dtype=MplPath.code_type)
    if len(coords):
        starts = np.flatnonzero(np.r_[True, coord_of[1:] != coord_of[:-1]])
        ends = np.r_[starts[1:] - 1, len(coords) - 1]
        codes[starts] = MplPath.MOVETO
        codes[ends] = MplPath.CLOSEPOLY
    geom_of = part_of[ring_of][coord_of] if len(coords) else np.zeros(0, dtype=np.int64)
    cuts = np.searchsorted(geom_of, np.arange(len(geoms) + 1))
    # The paths as ``MplPath(vertices, codes)`` makes them (closed rings: never
    # simplified), without its checks of the arrays made above: a map of the
    # territory holds some 100,000.
    like = vars(MplPath(np.zeros((2, 2)), [MplPath.MOVETO, MplPath.CLOSEPOLY]))
    paths = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        path = object.__new__(MplPath)
        path.__dict__.update(like, _vertices=coords[a:b], _codes=codes[a:b])
        paths.append(path)
    return paths


def line_segments(geoms: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Coordinates of each part of (multi)lines, and the geometry each part belongs to."""
    if len(geoms) == 0:
        return [], np.zeros(0, dtype=np.int64)
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    coords, coord_of = shapely.get_coordinates(parts, return_index=True)
    cuts = np.searchsorted(coord_of, np.arange(len(parts) + 1))
    return ([coords[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)], part_of)


def nice_length(width_m: float, *, share: float = 0.25) -> float:
    """Length of a scale bar: 1, 2 or 5 × 10ⁿ metres, at most ``share`` of the map's width."""
    target = max(width_m * share, 1e-9)
    power = 10 ** math.floor(math.log10(target))
    return max((m * power for m in (1, 2, 5) if m * power <= target), default=power)


def length_label(metres: float) -> str:
    """``500 m``, ``2 km``."""
    return f"{number(metres / 1000, 0 if metres % 1000 == 0 else 1)} km" if metres >= 1000 \
        else f"{number(metres)} m"


def north_angles(points: np.ndarray, crs: Any) -> np.ndarray:
    """Angle (degrees, clockwise) from the map's grid north to true north at each point.

    The meridian convergence of the projection: 0 on the central meridian, about
    2.3° at Besançon in Lambert-93.
    """
    if len(points) == 0:
        return np.zeros(0)
    to_geo = Transformer.from_crs(crs, 4326, always_xy=True)
    to_map = Transformer.from_crs(4326, crs, always_xy=True)
    x, y = shapely.get_x(points), shapely.get_y(points)
    lon, lat = to_geo.transform(x, y)
    x2, y2 = to_map.transform(lon, np.asarray(lat) + 0.01)
    return np.degrees(np.arctan2(np.asarray(x2) - x, np.asarray(y2) - y))


#: The columns of the layers that the maps read (colours, numbers, labels).
DRAWN_COLUMNS = ("zae_id", "uf_id", "statut_vacance", "taux_vacance", "classe", "code_insee")


@dataclass(frozen=True)
class MapImage:
    """A map drawn: its PNG (the HTML sheet's) and its pixels (RGBA, the PDF's)."""

    png: bytes
    pixels: np.ndarray


@dataclass
class _Layer:
    geoms: np.ndarray
    tree: shapely.STRtree
    frame: pd.DataFrame


class MapDrawer:
    """Draws the map extracts of the atlas from the observatory's layers.

    Each layer is indexed once; a map draws only the features meeting its extent.

    Parameters
    ----------
    layers
        ``zae``, ``zae_unites``, ``gisements``, ``friches``, ``friches_surfaces``,
        ``routes`` and ``limites_communes`` (any may be absent), in the territory CRS.
    crs
        The territory CRS.
    dpi
        Resolution of the PNG images.
    """

    def __init__(self, layers: Mapping[str, gpd.GeoDataFrame | None], *, crs: Any,
                 dpi: int = MAP_DPI) -> None:
        self.crs = crs
        self.dpi = dpi
        self.layers: dict[str, _Layer] = {}
        for name in ("zae", "zae_unites", "gisements", "friches", "friches_surfaces", "routes",
                     "limites_communes"):
            frame = layers.get(name)
            if frame is None or not len(frame):
                continue
            geoms = np.asarray(frame.geometry.values)
            keep = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
            geoms = geoms[keep]
            # Only the columns the maps read: each map takes the rows of its extent.
            columns = [c for c in DRAWN_COLUMNS if c in frame.columns]
            self.layers[name] = _Layer(geoms, shapely.STRtree(geoms), pd.DataFrame(
                frame[columns]).iloc[keep].reset_index(drop=True))

    def _in(self, name: str, box: shapely.Geometry) -> tuple[np.ndarray, pd.DataFrame]:
        layer = self.layers.get(name)
        if layer is None:
            return np.zeros(0, dtype=object), pd.DataFrame()
        idx = np.sort(layer.tree.query(box))
        return layer.geoms[idx], layer.frame.iloc[idx]

    @staticmethod
    def extent(bounds: Sequence[float], size: tuple[float, float]) -> tuple[float, ...]:
        """Extent of a map showing ``bounds`` with a margin, at the figure's aspect ratio."""
        x0, y0, x1, y1 = bounds
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        mx = max(w * MAP_MARGIN, MAP_MARGIN_MIN_M)
        my = max(h * MAP_MARGIN, MAP_MARGIN_MIN_M)
        x0, x1, y0, y1 = x0 - mx, x1 + mx, y0 - my, y1 + my
        aspect = size[0] / size[1]
        w, h = x1 - x0, y1 - y0
        if w / h < aspect:
            grow = (h * aspect - w) / 2
            x0, x1 = x0 - grow, x1 + grow
        else:
            grow = (w / aspect - h) / 2
            y0, y1 = y0 - grow, y1 + grow
        return x0, y0, x1, y1

    def _figure(self, size: tuple[float, float], ext: Sequence[float]) -> tuple[Figure, Any]:
        fig = Figure(figsize=size, dpi=self.dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(ext[0], ext[2])
        ax.set_ylim(ext[1], ext[3])
        ax.set_aspect("equal", adjustable="box")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor("#555555")
            spine.set_linewidth(0.8)
        return fig, ax

    def _roads(self, ax: Any, box: shapely.Geometry, *, classes: Sequence[str] | None = None,
               colours: Mapping[str, str] | None = None) -> None:
        """Draw the roads meeting ``box``: grey, or by class with ``colours``."""
        geoms, frame = self._in("routes", box)
        if not len(geoms):
            return
        cls = frame["classe"].to_numpy() if "classe" in frame else np.full(len(frame), "locale")
        cls = np.where(np.isin(cls, list(ROAD_CLASSES)), cls, "locale")
        if classes is not None:
            keep = np.isin(cls, classes)
            geoms, cls = geoms[keep], cls[keep]
        segments, part_of = line_segments(geoms)
        if not segments:
            return
        widths = np.array([ROAD_CLASSES[c][1] for c in cls])
        ax.add_collection(LineCollection(
            segments, colors=ROAD_COLOUR if colours is None else
            [colours[c] for c in cls[part_of]], linewidths=widths[part_of] * 1.6, zorder=1,
            capstyle="round"))

    def _finish(self, fig: Figure, ax: Any, ext: Sequence[float], angle: float) -> MapImage:
        length = nice_length(ext[2] - ext[0])
        bar = AnchoredSizeBar(ax.transData, length, length_label(length), "lower left",
                              pad=0.6, borderpad=0.6, sep=3, frameon=True, size_vertical=0,
                              fontproperties={"size": 8})
        bar.patch.set_alpha(0.85)
        bar.patch.set_edgecolor("none")
        ax.add_artist(bar)
        # An arrow to true north, its « N » above it.
        x, y, r = 0.955, 0.83, 0.075
        dx, dy = math.sin(math.radians(angle)) * r, math.cos(math.radians(angle)) * r
        ax.annotate("", xy=(x + dx / 2, y + dy / 2), xytext=(x - dx / 2, y - dy / 2),
                    xycoords="axes fraction",
                    arrowprops={"arrowstyle": "-|>,head_length=0.8,head_width=0.45",
                                "color": "#222222", "linewidth": 1.6,
                                "shrinkA": 0, "shrinkB": 0}, zorder=10)
        ax.text(x + dx * 0.85, y + dy * 0.85, "N", transform=ax.transAxes, ha="center",
                va="center", fontsize=10, fontweight="bold", color="#222222", zorder=10,
                path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi, facecolor="white",
                    metadata={"Software": None}, pil_kwargs={"compress_level": 1})
        # The canvas still holds the pixels the PNG was made of.
        canvas = fig.canvas
        assert isinstance(canvas, FigureCanvasAgg)
        return MapImage(buffer.getvalue(), np.asarray(canvas.buffer_rgba()).copy())

    def zone_map(self, zone: shapely.Geometry, zae_id: str, *, angle: float = 0.0,
                 labels: Mapping[str, str] | None = None) -> bytes:
        """Draw the map extract of one zone (PNG): :meth:`zone_image`'s PNG."""
        return self.zone_image(zone, zae_id, angle=angle, labels=labels).png

    def zone_image(self, zone: shapely.Geometry, zae_id: str, *, angle: float = 0.0,
                   labels: Mapping[str, str] | None = None) -> MapImage:
        """Draw the map extract of one zone: its PNG, and its pixels.

        Parameters
        ----------
        zone
            The zone's polygon.
        zae_id
            Its identifier: its own units are numbered (``labels``), other zones
            are drawn dashed.
        angle
            Direction of true north (:func:`north_angles`).
        labels
            Number of each of the zone's units on the map, by ``uf_id``.

        Returns
        -------
        MapImage
            The PNG image and its pixels.
        """
        ext = self.extent(shapely.bounds(zone), MAP_SIZE)
        box = shapely.box(*ext)
        with matplotlib.rc_context(_RC):
            fig, ax = self._figure(MAP_SIZE, ext)
            self._roads(ax, box)
            geoms, units = self._in("zae_unites", box)
            if len(geoms):
                status = units["statut_vacance"] if "statut_vacance" in units else pd.Series(
                    "inconnue", index=units.index)
                colours = [STATUTS.get(s, STATUTS["inconnue"])[0] if isinstance(s, str)
                           else STATUTS["inconnue"][0] for s in status]
                ax.add_collection(PathCollection(
                    polygon_paths(geoms), facecolors=colours, edgecolors="white",
                    linewidths=0.6, zorder=2))
            geoms, frame = self._in("friches_surfaces", box)
            if len(geoms):
                ax.add_collection(PathCollection(
                    polygon_paths(geoms), facecolors="none", edgecolors=FRICHE_COLOUR,
                    linewidths=1.1, hatch="xxx", zorder=3))
            geoms, frame = self._in("gisements", box)
            if len(geoms):
                ax.add_collection(PathCollection(
                    polygon_paths(geoms), facecolors="none", edgecolors=GISEMENT_COLOUR,
                    linewidths=1.5, zorder=4))
            geoms, frame = self._in("zae", box)
            if len(geoms):
                own = (frame["zae_id"] == zae_id).to_numpy()
                others = geoms[~own]
                if len(others):
                    ax.add_collection(PathCollection(
                        polygon_paths(others), facecolors="none", edgecolors=ZAE_COLOUR,
                        linewidths=1.2, linestyles=(0, (4, 2)), zorder=5))
            ax.add_collection(PathCollection(
                polygon_paths(np.array([zone], dtype=object)), facecolors="none",
                edgecolors=ZAE_COLOUR, linewidths=2.4, zorder=6))
            geoms, frame = self._in("friches", box)
            if len(geoms):
                ax.scatter(shapely.get_x(geoms), shapely.get_y(geoms), marker="^", s=55,
                           c=FRICHE_COLOUR, edgecolors="black", linewidths=0.6, zorder=7)
            if labels:
                self._unit_labels(ax, box, zae_id, labels)
            return self._finish(fig, ax, ext, angle)

    def _unit_labels(self, ax: Any, box: shapely.Geometry, zae_id: str,
                     labels: Mapping[str, str]) -> None:
        geoms, units = self._in("zae_unites", box)
        if not len(geoms) or "uf_id" not in units:
            return
        mine = units["uf_id"].isin(list(labels)).to_numpy()
        if "zae_id" in units:
            mine = mine & (units["zae_id"] == zae_id).to_numpy()
        # Only units wide enough on the map to hold their number (about 4 mm).
        px = self.dpi * MAP_SIZE[0] / (shapely.bounds(box)[2] - shapely.bounds(box)[0])
        b = shapely.bounds(geoms)
        mine = mine & (np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * px >= LABEL_MIN_PX)
        points = shapely.point_on_surface(shapely.intersection(geoms[mine], box))
        status = units["statut_vacance"].to_numpy()[mine] if "statut_vacance" in units else \
            np.full(int(mine.sum()), "inconnue", dtype=object)
        # White on dark fills, black on light ones.
        colours = [label_colour(STATUTS.get(st, STATUTS["inconnue"])[0] if isinstance(st, str)
                                else STATUTS["inconnue"][0]) for st in status]
        texts = [labels[uf] for uf in units["uf_id"].to_numpy()[mine]]
        _draw_labels(ax, points, texts, colours, size=self._label_size(box))

    def _label_size(self, box: shapely.Geometry, points: float = 7.0) -> float:
        """Height of a ``points``-point font in map units."""
        x0, _, x1, _ = shapely.bounds(box)
        return points / 72 * (x1 - x0) / MAP_SIZE[0]

    def cover_map(self, *, angle: float = 0.0, labels: Mapping[str, str] | None = None
                  ) -> bytes:
        """Draw the map of every zone, coloured by vacancy rate (PNG)."""
        zae = self.layers["zae"]
        ext = self.extent(shapely.total_bounds(zae.geoms), COVER_MAP_SIZE)
        box = shapely.box(*ext)
        with matplotlib.rc_context(_RC):
            fig, ax = self._figure(COVER_MAP_SIZE, ext)
            self._roads(ax, box, classes=("autoroute", "principale", "secondaire"))
            rate = pd.to_numeric(zae.frame["taux_vacance"], errors="coerce") \
                if "taux_vacance" in zae.frame else pd.Series(np.nan, index=zae.frame.index)
            colours = [vacancy_colour(v) for v in rate]
            ax.add_collection(PathCollection(
                polygon_paths(zae.geoms), facecolors=colours, edgecolors=ZAE_COLOUR,
                linewidths=1.0, zorder=3))
            if labels:
                named = zae.frame["zae_id"].isin(list(labels)).to_numpy()
                x0, _, x1, _ = ext
                _draw_labels(ax, shapely.point_on_surface(zae.geoms[named]),
                             [labels[z] for z in zae.frame["zae_id"][named]],
                             [label_colour(c) for c in np.asarray(colours)[named]],
                             size=8 / 72 * (x1 - x0) / COVER_MAP_SIZE[0])
            return self._finish(fig, ax, ext, angle).png


    def _territory_roads(self) -> tuple[str, ...]:
        """Road classes drawn on the territory map (local ones only while few)."""
        roads = self.layers.get("routes")
        if roads is None:
            return ()
        cls = roads.frame["classe"] if "classe" in roads.frame else pd.Series(["locale"])
        present = set(cls.where(cls.isin(list(ROAD_CLASSES)), "locale"))
        if len(roads.geoms) > MAX_LOCAL_ROADS:
            present.discard("locale")
        return tuple(c for c in ROAD_CLASSES if c in present)

    def territory_legend(self) -> list[tuple[str, str, str]]:
        """Legend of :meth:`territory_map`, what it draws only: (kind of symbol, colour, label)."""
        legend = []
        if "limites_communes" in self.layers:
            legend.append(("tirets", COMMUNE_COLOUR, "Limite de commune"))
        legend += [("ligne", BACKGROUND_ROAD_COLOURS[c], STYLES[c]["libelle"])
                   for c in self._territory_roads()]
        if "gisements" in self.layers:
            legend.append(("contour", GISEMENT_COLOUR, "Gisement foncier (site candidat)"))
        if "friches" in self.layers:
            legend.append(("triangle", FRICHE_COLOUR, "Friche"))
        if "zae" in self.layers:
            legend += [("surface", colour, f"Zone d'activités : vacance {label}")
                       for _, colour, label in VACANCY_CLASSES]
            legend.append(("surface", VACANCY_UNKNOWN_COLOUR,
                           "Zone d'activités : vacance inconnue"))
        return legend

    def territory_map(self, *, angle: float = 0.0, names: Mapping[str, str] | None = None
                      ) -> bytes:
        """Draw the map of the whole territory on the map's offline background (PNG).

        The background of ``carte.html`` (:mod:`observatoire.publish.fond`): commune
        outlines and roads by class with the same colours; local roads only up to
        :data:`MAX_LOCAL_ROADS` of them. On it, the zones coloured by vacancy rate,
        the candidate sites and the friches of the territory.

        Parameters
        ----------
        angle
            Direction of true north on the map.
        names
            INSEE code → commune name, written on each commune (``limites_communes``
            with a ``code_insee`` column).
        """
        bounds = [shapely.total_bounds(self.layers[n].geoms) for n in
                  ("limites_communes", "zae", "gisements") if n in self.layers]
        if not bounds:
            raise ValueError("rien à dessiner : ni communes, ni zones, ni gisements")
        b = np.array(bounds)
        ext = self.extent((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()),
                          COVER_MAP_SIZE)
        box = shapely.box(*ext)
        with matplotlib.rc_context(_RC):
            fig, ax = self._figure(COVER_MAP_SIZE, ext)
            self._roads(ax, box, classes=self._territory_roads(),
                        colours=BACKGROUND_ROAD_COLOURS)
            geoms, frame = self._in("limites_communes", box)
            if len(geoms):
                segments, _ = line_segments(shapely.boundary(geoms))
                ax.add_collection(LineCollection(segments, colors=COMMUNE_COLOUR,
                                                 linewidths=1.0, linestyles=(0, (6, 3, 1.5, 3)),
                                                 zorder=2))
            zae = self.layers.get("zae")
            if zae is not None:
                rate = pd.to_numeric(zae.frame["taux_vacance"], errors="coerce") \
                    if "taux_vacance" in zae.frame else pd.Series(np.nan, index=zae.frame.index)
                ax.add_collection(PathCollection(
                    polygon_paths(zae.geoms), facecolors=[vacancy_colour(v) for v in rate],
                    edgecolors=ZAE_COLOUR, linewidths=0.9, zorder=3))
            geoms, _ = self._in("gisements", box)
            if len(geoms):
                ax.add_collection(PathCollection(
                    polygon_paths(geoms), facecolors="none", edgecolors=GISEMENT_COLOUR,
                    linewidths=1.0, zorder=4))
            geoms, _ = self._in("friches", box)
            if len(geoms):
                ax.scatter(shapely.get_x(geoms), shapely.get_y(geoms), marker="^", s=30,
                           c=FRICHE_COLOUR, edgecolors="black", linewidths=0.5, zorder=7)
            communes = self.layers.get("limites_communes")
            if names and communes is not None and "code_insee" in communes.frame:
                for point, code in zip(shapely.point_on_surface(communes.geoms),
                                       communes.frame["code_insee"], strict=True):
                    ax.text(shapely.get_x(point), shapely.get_y(point), names.get(code, code),
                            ha="center", va="center", fontsize=8, color="#333333",
                            zorder=9, clip_on=True, path_effects=[
                                patheffects.withStroke(linewidth=2.5, foreground="white")])
            return self._finish(fig, ax, ext, angle).png


@functools.cache
def _glyphs(text: str) -> MplPath:
    """Return the outline of ``text`` in DejaVu Sans Bold, of size 1, centred on (0, 0)."""
    path = TextPath((0, 0), text, size=1.0, prop=FontProperties(family="DejaVu Sans",
                                                                 weight="bold"))
    e = path.get_extents()
    return path.transformed(Affine2D().translate(-(e.x0 + e.x1) / 2, -(e.y0 + e.y1) / 2))


def _draw_labels(ax: Any, points: np.ndarray, texts: Sequence[str], colours: Sequence[str],
                 *, size: float) -> None:
    """Write ``texts`` centred on ``points``, as one collection of glyph outlines.

    Much cheaper than one matplotlib text per label: the outline of each number
    is made once, then moved.
    """
    paths, fills = [], []
    for p, text, colour in zip(points, texts, colours, strict=True):
        if p is None or shapely.is_empty(p):
            continue
        paths.append(_glyphs(text).transformed(
            Affine2D().scale(size).translate(shapely.get_x(p), shapely.get_y(p))))
        fills.append(colour)
    if paths:
        ax.add_collection(PathCollection(paths, facecolors=fills, edgecolors="none",
                                         zorder=8))


def label_colour(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (``#rrggbb``)."""
    r, g, b = (int(fill[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "#ffffff"


def png_uri(png: bytes) -> str:
    """Return the ``data:`` URI of a PNG image."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------- pages


@functools.cache
def _template(name: str) -> Any:
    # The loader lets a sheet include the parts it shares with the cover.
    env = Environment(loader=FunctionLoader(template_text),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    return env.get_template(name)


def render_sheet(sheet: Sheet, context: AtlasContext) -> str:
    """Return the HTML of a zone's sheet."""
    return _template("atlas_fiche.html").render(
        sheet=sheet, ctx=context, css=template_text("atlas.css"), cover=f"{COVER}.html",
        version=__version__)


def render_cover(cover: Cover, context: AtlasContext) -> str:
    """Return the HTML of the cover sheet."""
    return _template("atlas_couverture.html").render(
        cover=cover, ctx=context, css=template_text("atlas.css"), version=__version__)


# --------------------------------------------------------------------------- atlas


def _zone_name(zone: Mapping[str, Any]) -> str:
    name = zone.get("zae_nom")
    return str(zone["zae_id"]) if name is None or pd.isna(name) or not str(name).strip() \
        else str(name)


def _subtitle(zone: Mapping[str, Any], commune: str | None) -> list[str]:
    lines = [f"Identifiant : {zone['zae_id']}"]
    if commune:
        lines.append(f"Commune : {commune}")
    origin = zone.get("zae_origine")
    if origin == "derivee_plu":
        lines.append("Périmètre dérivé des zones d'activité du document d'urbanisme, "
                     "à confirmer par l'intercommunalité")
    return lines


def _within(frame: gpd.GeoDataFrame | None, zone: shapely.Geometry,
            tree: shapely.STRtree | None) -> pd.DataFrame:
    if frame is None or tree is None or not len(frame):
        return pd.DataFrame()
    return frame.iloc[np.sort(tree.query(zone, predicate="intersects"))]


def _tree(frame: gpd.GeoDataFrame | None) -> shapely.STRtree | None:
    if frame is None or not len(frame):
        return None
    return shapely.STRtree(np.asarray(frame.geometry.values))


#: Zones from which the atlas is made by worker processes (when the machine has cores).
PARALLEL_MIN_ZONES = 40
#: Zones handed to a worker at once.
CHUNK_ZONES = 25
#: Layers the maps and the lists of a sheet read.
MAP_LAYERS = ("zae", "zae_unites", "gisements", "friches", "friches_surfaces", "routes")


#: The columns of each layer that a sheet reads besides those drawn (its lists of
#: friches and candidate sites); the others are not handed to the workers.
SHEET_COLUMNS = {
    "gisements": ("gisement_id", "surface_m2", "nb_parcelles", "score_moyen", "friche_id"),
    "friches": ("site_id", "site_nom", "site_statut", "site_type", "source_nom"),
    "friches_surfaces": ("site_id", "site_nom", "site_statut", "site_type", "source_nom"),
}


def _slim(name: str, frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """Keep the columns of ``frame`` that the sheets draw or list (and its geometry)."""
    if frame is None:
        return None
    wanted = {*DRAWN_COLUMNS, *SHEET_COLUMNS.get(name, ())}
    return frame[[c for c in frame.columns if c in wanted or c == frame.geometry.name]]


@dataclass
class _Chunk:
    """Zones whose sheets one task writes, with the features their maps and lists need."""

    zones: gpd.GeoDataFrame
    angles: list[float]
    units: pd.DataFrame
    layers: dict[str, gpd.GeoDataFrame]
    names: dict[str, str]
    targets: list[tuple[Path, Path]]


def stage_atlas(layers: Mapping[str, gpd.GeoDataFrame | None],
                reports: Sequence[SourceReport], territory: Territory, *,
                communes: Mapping[str, str] | None = None,
                progress: Progress | None = None, workers: int | None = None
                ) -> list[StagedFile]:
    """Write the atlas of the zones to staged files: a sheet per zone and a cover sheet.

    Parameters
    ----------
    layers
        The observatory's layers: ``zae`` and ``zae_unites`` (the inventory),
        ``gisements``, ``friches``, ``friches_surfaces`` and ``routes`` (drawn and
        listed when present).
    reports
        What reading each source did: the sources and their dates.
    territory
        The territory: name, EPCI, output folder, CRS, observation date.
    communes
        INSEE code → commune name.
    progress
        The build's progress: counts the groups of zones.
    workers
        Processes writing the sheets; default: every core available from
        :data:`PARALLEL_MIN_ZONES` zones on, else this process alone.

    Returns
    -------
    list of StagedFile
        ``atlas/couverture.html`` and ``.pdf``, then ``atlas/<zae_id>.html`` and
        ``.pdf`` for each zone.
    """
    from observatoire.executor import ProcessExecutor, available_cores

    zae = layers["zae"]
    assert zae is not None
    zu = layers.get("zae_unites")
    zu = zu if zu is not None else gpd.GeoDataFrame({"zae_id": [], "uf_id": []},
                                                   geometry=[], crs=zae.crs)
    folder = Path(territory.output_dir) / ATLAS_FOLDER
    obs, default_date = observation_date(territory.options.date_observation)
    context = AtlasContext(
        territory=territory.name, epci=territory.epci_nom,
        observation=french_date(obs) + (" (date du jour)" if default_date else ""),
        produced=french_date(dt.date.today()),
        sources=sources_table(reports, territory.path.parent), legend=legend())
    names = dict(communes or {})
    zones = zae.sort_values("zae_id", kind="stable").reset_index(drop=True)
    geoms = np.asarray(zones.geometry.values)
    angles = north_angles(shapely.point_on_surface(geoms), zae.crs) if zae.crs else \
        np.zeros(len(zones))
    units = pd.DataFrame(zu.drop(columns=zu.geometry.name)).sort_values(
        ["zae_id", "uf_id"], kind="stable")
    drawn = {name: _slim(name, layers.get(name)) for name in MAP_LAYERS}
    drawn["zae_unites"] = _slim("zae_unites", zu)

    files = sheet_names(zones["zae_id"])
    staged: list[StagedFile] = []
    try:
        targets = []
        for name in files:
            html, pdf = StagedFile(folder / f"{name}.html"), StagedFile(folder / f"{name}.pdf")
            staged += [html, pdf]
            targets.append((html.tmp, pdf.tmp))
        n = workers if workers is not None else (
            available_cores() if len(zones) >= PARALLEL_MIN_ZONES else 1)
        if n <= 1:
            _render_zones(_Chunk(zones, list(angles), units, {
                k: v for k, v in drawn.items() if v is not None}, names, targets), context)
        else:
            chunks = list(_chunks(zones, angles, units, drawn, names, targets))
            with ProcessExecutor(n) as pool:
                for _ in track(progress, pool.imap(_render_zones, chunks, shared=context),
                               total=len(chunks), label="groupes de zones (atlas)"):
                    pass
        cover = cover_sheet(zones, geoms, files,
                            MapDrawer({"zae": zae, "routes": drawn["routes"]}, crs=zae.crs), names,
                            angle=float(np.mean(angles)) if len(angles) else 0.0)
        staged[:0] = _write(folder, COVER, render_cover(cover, context),
                            lambda path: write_cover_pdf(cover, context, path))
    except BaseException:
        for s in staged:
            s.discard()
        raise
    log.info("atlas des ZAE : %d fiche(s) et une couverture", len(zones))
    return staged


def sheet_names(zae_ids: Iterable[str]) -> list[str]:
    """Name of each zone's sheet in ``atlas/`` (without extension), in the order given.

    The zone's identifier made safe as a file name, unique (``_`` appended) and
    never the cover's.
    """
    files: list[str] = []
    used = {COVER}
    for zid in zae_ids:
        name = safe_file_name(zid)
        while name in used:
            name += "_"
        used.add(name)
        files.append(name)
    return files


def _chunks(zones: gpd.GeoDataFrame, angles: np.ndarray,
            units: pd.DataFrame, layers: Mapping[str, gpd.GeoDataFrame | None],
            names: dict[str, str], targets: list[tuple[Path, Path]]) -> Iterator[_Chunk]:
    """Cut the atlas into tasks of :data:`CHUNK_ZONES` zones, each with the features it draws."""
    trees = {k: shapely.STRtree(np.asarray(v.geometry.values)) for k, v in layers.items()
             if v is not None and len(v)}
    for lo in range(0, len(zones), CHUNK_ZONES):
        part = zones.iloc[lo:lo + CHUNK_ZONES]
        boxes = shapely.box(*np.array([MapDrawer.extent(b, MAP_SIZE) for b in
                                       shapely.bounds(np.asarray(part.geometry.values))]).T)
        subset = {}
        for k, tree in trees.items():
            frame = layers[k]
            assert frame is not None
            subset[k] = frame.iloc[np.unique(tree.query(boxes)[1])]
        ids = set(part["zae_id"])
        yield _Chunk(part, list(angles[lo:lo + CHUNK_ZONES]),
                     units[units["zae_id"].isin(ids)], subset,
                     {k: v for k, v in names.items() if k in set(part.get("comm_insee", []))},
                     targets[lo:lo + CHUNK_ZONES])


def _render_zones(chunk: _Chunk, context: AtlasContext) -> int:
    """Write the HTML and PDF sheets of a chunk's zones to their staged paths."""
    drawer = MapDrawer(chunk.layers, crs=chunk.zones.crs)
    geoms = np.asarray(chunk.zones.geometry.values)
    # Rows of each zone's units, taken for the chunk's zones only (one take each).
    rows_of = chunk.units.groupby("zae_id", sort=False).indices
    friches = [f for f in (chunk.layers.get("friches"), chunk.layers.get("friches_surfaces"))
               if f is not None and len(f)]
    friche_trees = [_tree(f) for f in friches]
    sites = chunk.layers.get("gisements")
    sites_tree = _tree(sites)
    for i, (_, zone) in enumerate(chunk.zones.iterrows()):
        geom = geoms[i]
        rows = rows_of.get(zone["zae_id"])
        zone_units = chunk.units.iloc[rows] if rows is not None else chunk.units.iloc[:0]
        in_friches = pd.concat([_within(f, geom, t) for f, t in
                                zip(friches, friche_trees, strict=True)]) \
            if friches else pd.DataFrame()
        if len(in_friches):
            in_friches = pd.DataFrame(in_friches).drop_duplicates("site_id").sort_values(
                "site_id", kind="stable")
        in_sites = _within(sites, geom, sites_tree)
        if len(in_sites) and "zae_id" in in_sites:
            in_sites = in_sites[in_sites["zae_id"] == zone["zae_id"]]
        labels = ({uf: str(k) for k, uf in enumerate(zone_units["uf_id"], start=1)}
                  if len(zone_units) <= MAX_LABELS else {})
        insee = zone.get("comm_insee")
        commune = (f"{chunk.names[insee]} ({insee})" if insee in chunk.names else insee) \
            if isinstance(insee, str) else None
        image = drawer.zone_image(geom, zone["zae_id"], angle=float(chunk.angles[i]),
                                  labels=labels)
        sheet = Sheet(
            zae_id=str(zone["zae_id"]), name=_zone_name(zone),
            subtitle=_subtitle(zone, commune),
            figures=zone_figures(zone, zone_units, area_m2=float(shapely.area(geom)),
                                 n_sites=len(in_sites),
                                 sites_m2=float(surface_m2(in_sites).sum())
                                 if len(in_sites) else 0.0,
                                 n_friches=len(in_friches)),
            map_png=image.png, map_pixels=image.pixels,
            map_alt=f"Carte de la zone {_zone_name(zone)} : unités foncières colorées "
                    f"selon leur statut de vacance",
            rule=_text(zone.get("regle_vacance")), units=units_table(zone_units),
            friches=friches_table(in_friches), sites=sites_table(in_sites),
            notes=[] if labels or not len(zone_units) else [
                f"{number(len(zone_units))} unités : trop nombreuses pour être numérotées "
                f"sur la carte."])
        html, pdf = chunk.targets[i]
        html.write_text(render_sheet(sheet, context), encoding="utf-8")
        write_sheet_pdf(sheet, context, pdf)
    return len(chunk.zones)


def _write(folder: Path, name: str, page: str, pdf: Callable[[Path], Any]) -> list[StagedFile]:
    """Stage ``<name>.html`` (``page``) and ``<name>.pdf`` (written by ``pdf``)."""
    out = [StagedFile(folder / f"{name}.html")]
    try:
        out[0].tmp.write_text(page, encoding="utf-8")
        out.append(StagedFile(folder / f"{name}.pdf"))
        pdf(out[1].tmp)
    except BaseException:
        for s in out:
            s.discard()
        raise
    return out


def cover_sheet(zones: gpd.GeoDataFrame, geoms: np.ndarray, files: list[str],
                drawer: MapDrawer, names: Mapping[str, str], *, angle: float) -> Cover:
    """Return the cover sheet: every zone on one map, key figures, the summary table.

    Parameters
    ----------
    zones
        The ``zae`` layer, in the atlas' order.
    geoms
        Their polygons.
    files
        Name of each zone's sheet (without extension).
    drawer
        Draws the map.
    names
        INSEE code → commune name.
    angle
        Direction of true north on the map.
    """
    labels = ({zid: str(k) for k, zid in enumerate(zones["zae_id"], start=1)}
              if len(zones) <= MAX_COVER_LABELS else {})

    def num(col: str) -> pd.Series:
        values = zones[col] if col in zones else pd.Series(np.nan, index=zones.index)
        return pd.to_numeric(values, errors="coerce")

    area = pd.Series(shapely.area(geoms), index=zones.index)
    cols = {c: num(c) for c in ("nb_unites", "nb_unites_vacantes", "taux_vacance",
                                "taux_vacance_surface", "surface_disponible_m2",
                                "plus_grande_surface_dispo_m2")}
    rows = []
    for k, (idx, z) in enumerate(zones.iterrows(), start=1):
        insee = z.get("comm_insee")
        rows.append([str(k), _zone_name(z),
                     names.get(insee, insee) if isinstance(insee, str) else "—",
                     hectares(area[idx]), number(cols["nb_unites"][idx]),
                     number(cols["nb_unites_vacantes"][idx]),
                     percent(cols["taux_vacance"][idx]),
                     percent(cols["taux_vacance_surface"][idx]),
                     hectares(cols["surface_disponible_m2"][idx]),
                     hectares(cols["plus_grande_surface_dispo_m2"][idx])])
    n_units, vacant = cols["nb_unites"].sum(), cols["nb_unites_vacantes"].sum()
    free = float(cols["surface_disponible_m2"].sum())
    figures = [
        KeyFigure("Zones d'activités", number(len(zones)), "inventoriées", "nb_zae",
                  str(len(zones))),
        KeyFigure("Surface des zones", hectares(area.sum()), "au total", "surface_zones_m2",
                  _raw(float(area.sum()))),
        KeyFigure("Unités foncières", number(n_units), f"dont {number(vacant)} vacantes",
                  "nb_unites", _raw(n_units)),
        KeyFigure("Taux de vacance", percent(vacant / n_units) if n_units else "—",
                  "des unités foncières, toutes zones", "taux_vacance",
                  _raw(vacant / n_units) if n_units else ""),
        KeyFigure("Surface disponible", hectares(free), "vacante, toutes zones",
                  "surface_disponible_m2", _raw(free)),
    ]
    vacancy = [(colour, label) for _, colour, label in VACANCY_CLASSES]
    vacancy.append((VACANCY_UNKNOWN_COLOUR, "vacance inconnue"))
    return Cover(map_png=drawer.cover_map(angle=angle, labels=labels), figures=figures,
                 columns=["N°", "Zone (fiche)", "Commune", "Surface", "Unités", "Vacantes",
                          "Vacance", "Vacance (surface)", "Disponible", "Plus grand lot"],
                 rows=rows, files=files, vacancy=vacancy)
