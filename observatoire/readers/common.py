"""Shared reading steps: open a file, check its CRS, repair geometries, map fields.

The functions here are the only ones in the readers that touch GDAL; each turns
GDAL's failures into :class:`SourceError` / :class:`CRSError` messages that name
the file and layer and say what to do.

What is refused, and what is repaired and counted in the source's report (the
``reparations`` column of the ``sources`` table, the CLI and ``validate``):

========================================  =============================================
Input                                     Behaviour
========================================  =============================================
missing, 0-byte, folder, not a GIS file,  refused (:class:`SourceError`)
truncated or corrupt (.json, .gz, .tar…)
empty layer                               refused (:class:`SourceError`)
no CRS and no ``crs`` key                 refused (:class:`CRSError`, names the key)
most coordinates outside the CRS's        refused (:class:`CRSError`, with a hint:
domain (Lambert-93 numbers said 4326)     metres or degrees), fixed by the ``crs`` key
a few NaN or absurd coordinates           features dropped, counted
nothing of the layer's geometry type      refused (:class:`GeometryError`)
invalid geometries (bow-tie, ring         repaired with ``make_valid``, counted
touching itself)
null, empty, collapsed (to a line) or     features dropped, counted
other-type geometries
Z / M coordinates, unclosed rings         dropped to 2D, closed
text that is not in the file's encoding   refused, names the ``encodage`` key
numbers stored as text (``"1 234,5"``)    parsed; unreadable ones set to NULL, counted
========================================  =============================================
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely
from pyproj import CRS, Transformer

from observatoire.errors import (
    ConfigError,
    CRSError,
    GeometryError,
    SchemaError,
    SourceError,
    where,
)

log = logging.getLogger(__name__)

#: Plausible bounds (x_min, y_min, x_max, y_max) of each CRS over French territory,
#: with a margin; coordinates outside mean the declared CRS is wrong.
CRS_BOUNDS: dict[int, tuple[float, float, float, float]] = {
    4326: (-180.0, -90.0, 180.0, 90.0),
    4171: (-180.0, -90.0, 180.0, 90.0),
    2154: (-400_000.0, 5_900_000.0, 1_600_000.0, 7_300_000.0),
    5490: (300_000.0, 1_400_000.0, 900_000.0, 2_000_000.0),
    2972: (-100_000.0, 100_000.0, 700_000.0, 700_000.0),
    2975: (200_000.0, 7_500_000.0, 500_000.0, 7_800_000.0),
    4471: (400_000.0, 8_500_000.0, 600_000.0, 8_700_000.0),
}


@dataclass
class SourceReport:
    """What reading one source did, for the ``sources`` table and the CLI.

    Attributes
    ----------
    kind
        Source family.
    paths
        Files read.
    format
        Format recognised.
    layer
        Layer read, if any.
    checksum
        SHA-256 of the files' bytes (sorted by path).
    features_read
        Features in the files.
    features_kept
        Features in the canonical layer.
    crs_in
        CRS of the files (or the one assumed).
    repairs
        What was repaired or dropped, and how many: ``{"géométries réparées": 3}``.
    read_at
        When the source was read (ISO 8601, UTC).
    producer
        Producer of the data, to credit (Licence Ouverte 2.0); see
        :mod:`observatoire.readers.provenance`.
    data_date
        Date of the data (``AAAA-MM-JJ``), and ``data_date_origin``: where it was
        found (a field of the file, its metadata, the territory file, or the
        file's modification date).
    features_in_territory
        Features that can serve the territory's parcels, when fewer than
        ``features_kept`` may (a layer read whole: zones meeting the parcels' box,
        lines and points within 5 km of it, owner rows of the territory's communes);
        ``None``: ``features_kept``.
    """

    kind: str
    paths: list[Path]
    format: str
    layer: str | None = None
    checksum: str = ""
    features_read: int = 0
    features_kept: int = 0
    crs_in: str | None = None
    repairs: dict[str, int] = field(default_factory=dict)
    read_at: str = ""
    producer: str = ""
    data_date: str = ""
    data_date_origin: str = ""
    features_in_territory: int | None = None

    @property
    def in_territory(self) -> int:
        """Features that can serve the territory's parcels (see ``features_in_territory``)."""
        if self.features_in_territory is None:
            return self.features_kept
        return self.features_in_territory

    def count(self, what: str, n: int) -> None:
        """Add ``n`` to the repair counter ``what`` (nothing when ``n`` is 0)."""
        if n:
            self.repairs[what] = self.repairs.get(what, 0) + int(n)


@dataclass
class ReadResult:
    """A canonical layer and the report of how it was read."""

    frame: gpd.GeoDataFrame
    report: SourceReport
    extra: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)


def checksum_files(paths: Iterable[Path]) -> str:
    """Return the SHA-256 of the files' bytes, in path order."""
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def new_report(kind: str, paths: Iterable[Path], fmt: str, layer: str | None = None
               ) -> SourceReport:
    """Start the report of a source, with its checksum and the reading time."""
    paths = list(paths)
    for p in paths:
        check_file(p)
    return SourceReport(
        kind=kind,
        paths=paths,
        format=fmt,
        layer=layer,
        checksum=checksum_files(paths),
        read_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )


def new_tile_report(kind: str, paths: Iterable[Path], fmt: str, layer: str | None = None
                    ) -> SourceReport:
    """Start the report of one piece (tile) of a source read in pieces.

    As :func:`new_report`, but a file's checksum is computed once per state of the
    file (path, size, modification time) and remembered: a partitioned build reads
    the same national file hundreds of times.
    """
    paths = list(paths)
    for p in paths:
        check_file(p)
    state = tuple((str(p), st.st_size, st.st_mtime_ns) for p, st in
                  ((p, p.stat()) for p in paths))
    return SourceReport(
        kind=kind,
        paths=paths,
        format=fmt,
        layer=layer,
        checksum=_checksum_of_state(state),
        read_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )


@functools.lru_cache(maxsize=64)
def _checksum_of_state(state: tuple[tuple[str, int, int], ...]) -> str:
    return checksum_files(Path(path) for path, _, _ in state)


def merge_reports(reports: Sequence[SourceReport]) -> SourceReport:
    """Return one report for a source read in pieces (the tiles of a partitioned build).

    Parameters
    ----------
    reports
        The reports of the pieces, in reading order.

    Returns
    -------
    SourceReport
        Kind, format, checksum of the first report; its layer and input CRS (the
        first known, when a piece read nothing); the files of all, each once, in
        order; features read and kept and each repair counter summed; the earliest
        reading time; the first producer found and the latest data date.

    Raises
    ------
    ValueError
        When ``reports`` is empty.
    """
    if not reports:
        raise ValueError("merge_reports : aucun rapport à fusionner (liste vide)")
    first = reports[0]
    paths: list[Path] = []
    repairs: dict[str, int] = {}
    for r in reports:
        paths.extend(p for p in r.paths if p not in paths)
        for what, n in r.repairs.items():
            repairs[what] = repairs.get(what, 0) + int(n)
    times = [r.read_at for r in reports if r.read_at]
    latest = max(reports, key=lambda r: r.data_date)
    return SourceReport(
        kind=first.kind,
        paths=paths,
        format=first.format,
        layer=next((r.layer for r in reports if r.layer is not None), None),
        checksum=first.checksum,
        features_read=sum(r.features_read for r in reports),
        features_kept=sum(r.features_kept for r in reports),
        crs_in=next((r.crs_in for r in reports if r.crs_in is not None), None),
        repairs=repairs,
        read_at=min(times, key=dt.datetime.fromisoformat) if times else "",
        producer=next((r.producer for r in reports if r.producer), ""),
        data_date=latest.data_date,
        data_date_origin=latest.data_date_origin,
        features_in_territory=None if all(r.features_in_territory is None for r in reports)
        else sum(r.in_territory for r in reports),
    )


def check_file(path: Path) -> None:
    """Raise :class:`SourceError` unless ``path`` is a non-empty readable file."""
    try:
        exists, is_dir = path.exists(), path.is_dir()
        size = path.stat().st_size if exists else 0
    except (OSError, ValueError) as exc:  # name too long, NUL byte, permission denied
        raise SourceError(
            f"{path} : chemin inaccessible ({first_line(exc)}) ; vérifiez le chemin dans le "
            f"fichier de territoire"
        ) from None
    if not exists:
        raise SourceError(
            f"{path} : fichier introuvable ; vérifiez le chemin dans le fichier de territoire "
            f"(il est relatif au dossier de ce fichier)"
        )
    if is_dir:
        raise SourceError(f"{path} : c'est un dossier, pas un fichier ; indiquez le fichier")
    if size == 0:
        raise SourceError(f"{path} : fichier vide (0 octet) ; téléchargez-le à nouveau")


def list_layers(path: Path) -> list[str]:
    """Return the vector layers of ``path``, or raise a readable :class:`SourceError`."""
    check_file(path)
    try:
        with gdal_notes(path, None):
            return [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # GDAL raises several types for the same unreadable file.
        raise SourceError(
            f"{path} : fichier illisible ou format non reconnu ({gdal_reason(exc, path)}) ; "
            f"vérifiez qu'il est complet (téléchargement interrompu ?) et de format vectoriel"
        ) from None


def pick_layer(path: Path, layer: str | None, *, prefer: Iterable[str] = ()) -> str:
    """Choose the layer to read: the one asked for, a preferred one, or the only one."""
    layers = list_layers(path)
    vector = [n for n in layers if n not in ("layer_styles", "qgis_projects")]
    if layer is not None:
        if layer not in layers:
            raise SourceError(
                f"{where(path, layer)} : couche absente ; couches disponibles : "
                f"{', '.join(layers) or 'aucune'} (clé « couche » du fichier de territoire)"
            )
        return layer
    for name in prefer:
        if name in vector:
            return name
    if not vector:
        raise SourceError(f"{path} : aucune couche vectorielle dans ce fichier")
    if len(vector) > 1:
        log.info("%s : plusieurs couches, lecture de « %s »", path, vector[0])
    return vector[0]


@contextlib.contextmanager
def gdal_notes(path: Path, layer: str | None) -> Iterator[None]:
    """Turn GDAL's and pyogrio's warnings into debug log lines.

    GDAL warns about things the readers then handle and count (unclosed rings,
    measured geometries, field types); they must not reach the user as Python
    warnings, nor become errors where warnings are errors (the test suite).
    """
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        yield
    for note in notes:
        log.debug("%s : %s", where(path, layer), note.message)


def gdal_encoding(name: str) -> str:
    """Return the GDAL (iconv) name of an encoding given in Python's spelling.

    GDAL ignores names it does not know (``latin-1``), so the territory file's
    ``encodage`` is translated: ``latin-1`` → ``ISO-8859-1``, ``cp1252`` → ``CP1252``.

    Parameters
    ----------
    name
        Any name :func:`codecs.lookup` accepts.

    Returns
    -------
    str
        The name to pass to GDAL.

    Raises
    ------
    SourceError
        When the encoding is unknown.
    """
    try:
        canon = codecs.lookup(name).name
    except LookupError:
        raise SourceError(
            f"encodage inconnu « {name} » ; utilisez par ex. \"utf-8\", \"latin-1\" ou "
            f"\"cp1252\""
        ) from None
    if canon.startswith("iso8859-"):
        return "ISO-8859-" + canon.removeprefix("iso8859-")
    return canon.upper()  # utf-8 → UTF-8, cp1252 → CP1252


def read_vector(path: Path, layer: str | None = None, *, encoding: str | None = None,
                columns: list[str] | None = None, bbox: tuple[float, ...] | None = None,
                key: str | None = None, **kwargs: Any) -> gpd.GeoDataFrame:
    """Read a vector layer with pyogrio (Arrow when possible), with readable errors.

    Text fields are returned as Python strings (``object`` columns). A shapefile
    without ``.cpg`` is decoded with the encoding GDAL detects (ISO-8859-1 by
    default); ``encoding`` forces another. Geometries GDAL cannot express as valid
    WKB (unclosed rings) are fixed when possible, otherwise read as NULL.

    Parameters
    ----------
    path
        The file.
    layer
        The layer (``None``: the first one).
    encoding
        Attribute encoding to force (Python or GDAL spelling: ``latin-1``, ``cp1252``).
    columns
        Subset of fields to read.
    bbox
        Only features intersecting this box (in the file's CRS).
    key
        The TOML key of the source (``sources.zonage``), for messages.
    **kwargs
        Passed to :func:`pyogrio.read_dataframe`.

    Returns
    -------
    geopandas.GeoDataFrame
        The layer as stored (no reprojection, no repair); a plain DataFrame when
        the layer has no geometry.

    Raises
    ------
    SourceError
        When GDAL cannot read the file, or its text is not in the expected encoding.
    """
    check_file(path)
    opts: dict[str, Any] = dict(layer=layer, columns=columns, bbox=bbox, on_invalid="fix")
    opts.update(kwargs)
    if encoding:
        opts["encoding"] = gdal_encoding(encoding)
    try:
        with gdal_notes(path, layer):
            try:
                frame = pyogrio.read_dataframe(path, use_arrow=True, **opts)
                return python_text(frame)
            except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
                raise
            except Exception:
                # Arrow refuses a few drivers and undecodable text (a latin-1 shapefile
                # without .cpg); the classic path decodes with the detected encoding.
                frame = pyogrio.read_dataframe(path, use_arrow=False, **opts)
                return python_text(frame)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{where(path, layer)} : texte illisible en {encoding or exc.encoding} (octet "
            f"0x{exc.object[exc.start]:02x}) ; déclarez l'encodage des attributs avec "
            f"« {key + '.' if key else ''}encodage = \"latin-1\" » (ou \"cp1252\") dans le "
            f"fichier de territoire (fichier .cpg absent ou faux ?)"
        ) from None
    except Exception as exc:
        raise SourceError(
            f"{where(path, layer)} : lecture impossible ({gdal_reason(exc, path)}) ; vérifiez "
            f"que le fichier est complet et non corrompu (téléchargez-le à nouveau)"
        ) from None


#: A bounding box pushed down to GDAL is enlarged by this margin (m, territory CRS),
#: or by this share of its larger side when more, so that reprojecting it to the
#: file's CRS never loses a feature; the exact filter comes after reprojection.
BBOX_MARGIN_M = 50.0
BBOX_MARGIN_SHARE = 0.01

BBox = tuple[float, float, float, float]


def bbox_in_file_crs(path: Path, layer: str | None, bbox: BBox, *, crs: str,
                     declared: str | None = None) -> BBox | None:
    """Return a box of the file's CRS holding ``bbox`` (territory CRS), to pass to GDAL.

    The box is enlarged (:data:`BBOX_MARGIN_M`, :data:`BBOX_MARGIN_SHARE`) then
    transformed with densified edges, so that every feature whose reprojected
    geometry meets ``bbox`` is read; :func:`clip_to_bbox` then keeps exactly those.

    Parameters
    ----------
    path, layer
        The file and layer to read.
    bbox
        (xmin, ymin, xmax, ymax) in the territory CRS.
    crs
        The territory CRS.
    declared
        The CRS declared for the source (it overrides the file's).

    Returns
    -------
    tuple or None
        The box in the file's CRS; ``None`` when the file's CRS is unknown, its
        extent contradicts its CRS (a full read then refuses it, or drops the
        absurd features, as without a box) or the box cannot be transformed: then
        read everything and clip after.
    """
    try:
        with gdal_notes(path, layer):
            info = pyogrio.read_info(path, layer=layer)
    except Exception:  # read_vector reports unreadable files with a clear message
        return None
    file_crs = declared if declared is not None else info.get("crs")
    if not file_crs:
        return None
    xmin, ymin, xmax, ymax = (float(v) for v in bbox)
    margin = max(BBOX_MARGIN_M, BBOX_MARGIN_SHARE * max(xmax - xmin, ymax - ymin))
    wide = (xmin - margin, ymin - margin, xmax + margin, ymax + margin)
    try:
        src, dst = CRS.from_user_input(crs), CRS.from_user_input(file_crs)
        limits = CRS_BOUNDS.get(epsg_code(dst) or 0)
        extent = info.get("total_bounds")
        if limits is not None and extent is not None and not (
                np.isfinite(extent).all() and extent[0] >= limits[0] and extent[1] >= limits[1]
                and extent[2] <= limits[2] and extent[3] <= limits[3]):
            return None
        if _same_crs(src, dst):
            return wide
        out = Transformer.from_crs(src, dst, always_xy=True).transform_bounds(
            *wide, densify_pts=51)
    except Exception:  # pyproj refuses the CRS or the transformation
        return None
    return tuple(float(v) for v in out) if np.isfinite(out).all() else None  # type: ignore[return-value]


def clip_to_bbox(frame: gpd.GeoDataFrame, bbox: BBox | None) -> gpd.GeoDataFrame:
    """Keep the features whose geometry intersects ``bbox`` (same CRS); all when ``None``."""
    if bbox is None:
        return frame
    keep = shapely.intersects(np.asarray(frame.geometry.array, dtype=object),
                              shapely.box(*bbox))
    return frame[keep]


def layer_is_empty(path: Path, layer: str | None) -> bool:
    """Whether a layer holds no feature at all (GDAL's count, forced when unknown)."""
    try:
        with gdal_notes(path, layer):
            return int(pyogrio.read_info(path, layer=layer, force_feature_count=True)
                       ["features"]) == 0
    except Exception:
        return False


# --- tiles: a large source read piece by piece, each feature once ---------------------------

#: More tiles than this in one grid means the tile size was given in the wrong unit.
MAX_TILES = 1_000_000


@dataclass(frozen=True)
class Tile:
    """One square of a :func:`tile_grid`, and the features it answers for.

    Attributes
    ----------
    bounds
        The square (xmin, ymin, xmax, ymax), territory CRS.
    assignment
        The half-open box ``[x0, x1) × [y0, y1)`` holding the lower-left corner
        ``(minx, miny)`` of the bounds of the features assigned to the tile: the
        square, extended to −∞ in the first column and row and to +∞ in the last,
        so that every feature is assigned to exactly one tile of the grid.
    column, row
        Position in the grid, (0, 0) being the lower-left tile.
    """

    bounds: BBox
    assignment: BBox
    column: int = 0
    row: int = 0

    @property
    def is_first(self) -> bool:
        """Whether the tile reaches −∞ on both axes (it also answers for null geometries)."""
        return self.assignment[0] == -math.inf and self.assignment[1] == -math.inf

    def owns(self, geometries: Any) -> np.ndarray:
        """Whether each geometry is assigned to this tile.

        Parameters
        ----------
        geometries
            Geometries (array, GeoSeries) in the territory CRS.

        Returns
        -------
        numpy.ndarray
            Booleans: the lower-left corner of the geometry's bounds lies in
            :attr:`assignment`; null and empty geometries, which have no corner,
            belong to the first tile.
        """
        geoms = np.asarray(geometries, dtype=object)
        if len(geoms) == 0:
            return np.zeros(0, dtype=bool)
        corner = shapely.bounds(geoms)[:, :2]
        x, y = corner[:, 0], corner[:, 1]
        x0, y0, x1, y1 = self.assignment
        with np.errstate(invalid="ignore"):
            mine = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        if self.is_first:
            mine |= np.isnan(x) | np.isnan(y)
        return mine


def tile_grid(bounds: BBox, *, size: float) -> list[Tile]:
    """Cover a box with square tiles, each feature being assigned to exactly one.

    Parameters
    ----------
    bounds
        The box to cover (xmin, ymin, xmax, ymax), territory CRS.
    size
        Side of the squares (territory CRS units: metres). The squares start at the
        lower-left corner of ``bounds``; the last column and row may reach beyond it.

    Returns
    -------
    list of Tile
        Row by row from the bottom, column by column from the left; the first one
        (:attr:`Tile.is_first`) is the lower-left tile. A feature belongs to the tile
        whose :attr:`Tile.assignment` holds the lower-left corner of its bounds,
        including a feature whose corner lies outside ``bounds``.

    Raises
    ------
    ConfigError
        When ``size`` is not a positive number, ``bounds`` is not a finite box, or
        the grid would hold more than :data:`MAX_TILES` tiles.
    """
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    if not (math.isfinite(xmin + ymin + xmax + ymax) and xmin <= xmax and ymin <= ymax):
        raise ConfigError(
            f"grille de tuiles : emprise {tuple(bounds)} invalide ; donnez (xmin, ymin, xmax, "
            f"ymax) finis, avec xmin ≤ xmax et ymin ≤ ymax, dans le CRS du territoire"
        )
    if not (isinstance(size, int | float) and math.isfinite(size) and size > 0):
        raise ConfigError(
            f"grille de tuiles : taille {size!r} invalide ; donnez une longueur positive, en "
            f"unités du CRS du territoire (mètres)"
        )
    columns = max(1, math.ceil((xmax - xmin) / size))
    rows = max(1, math.ceil((ymax - ymin) / size))
    if columns * rows > MAX_TILES:
        raise ConfigError(
            f"grille de tuiles : {columns} × {rows} tuiles de {size:g} m pour une emprise de "
            f"{xmax - xmin:.0f} × {ymax - ymin:.0f} m ; choisissez des tuiles plus grandes"
        )
    # Neighbours share the very same float edge, so no corner falls between two tiles.
    xs = [xmin + size * i for i in range(columns + 1)]
    ys = [ymin + size * j for j in range(rows + 1)]
    cut_x = [-math.inf, *xs[1:-1], math.inf]
    cut_y = [-math.inf, *ys[1:-1], math.inf]
    return [Tile(bounds=(xs[i], ys[j], xs[i + 1], ys[j + 1]),
                 assignment=(cut_x[i], cut_y[j], cut_x[i + 1], cut_y[j + 1]), column=i, row=j)
            for j in range(rows) for i in range(columns)]


def max_feature_extent(path: Path, layer: str | None, *, crs: str,
                       declared: str | None = None) -> float:
    """Return the largest width or height of a feature's bounds, in the territory CRS.

    A GeoPackage's R-tree answers without reading the geometries; other formats
    are scanned once (:func:`pyogrio.read_bounds`). The answer is remembered per
    state of the file (path, size, modification time).

    Parameters
    ----------
    path, layer
        The file and layer.
    crs
        The territory CRS.
    declared
        The CRS declared for the source (it overrides the file's).

    Returns
    -------
    float
        The extent (0 for a layer without geometry); ``inf`` when it cannot be
        known (unreadable file, no CRS).
    """
    try:
        state = path.stat()
    except OSError:
        return math.inf
    return _max_feature_extent(str(path), layer, state.st_size, state.st_mtime_ns, crs,
                               declared)


@functools.lru_cache(maxsize=64)
def _max_feature_extent(path: str, layer: str | None, size: int, mtime: int, crs: str,
                        declared: str | None) -> float:
    file = Path(path)
    try:
        with gdal_notes(file, layer):
            info = pyogrio.read_info(file, layer=layer)
            file_crs = declared if declared is not None else info.get("crs")
            if not file_crs:
                return math.inf
            same = _same_crs(file_crs, crs)
            envelopes = _feature_envelopes(file, layer, info, widest_only=same)
            if not same:
                envelopes = _envelopes_in_crs(envelopes, file_crs, crs)
    except Exception:  # read_vector reports unreadable files with a clear message
        return math.inf
    extents = np.concatenate([envelopes[:, 2] - envelopes[:, 0],
                              envelopes[:, 3] - envelopes[:, 1]])
    extents = extents[np.isfinite(extents)]
    if len(extents) == 0:
        return 0.0
    widest = float(extents.max())
    # Corners and edge midpoints of a reprojected box bound it to a hair: keep a margin.
    return widest if same else widest * 1.01 + 1.0


def _feature_envelopes(path: Path, layer: str | None, info: Mapping[str, Any], *,
                       widest_only: bool) -> np.ndarray:
    """Bounds of the features (n × 4), or only the widest width and height (1 × 4)."""
    geometry = info.get("geometry_name")
    if info.get("driver") == "GPKG" and geometry:
        table = f"rtree_{info['layer_name']}_{geometry}".replace('"', '""')
        columns = ("0 AS minx, 0 AS miny, max(maxx - minx) AS maxx, max(maxy - miny) AS maxy"
                   if widest_only else "minx, miny, maxx, maxy")
        try:
            rows = pyogrio.read_dataframe(path, sql=f'SELECT {columns} FROM "{table}"')
            return rows[["minx", "miny", "maxx", "maxy"]].to_numpy(dtype="float64",
                                                                  na_value=np.nan)
        except Exception:  # no spatial index: scan the geometries
            pass
    _, bounds = pyogrio.read_bounds(path, layer=layer)
    return np.asarray(bounds, dtype="float64").T.reshape(-1, 4)


def _envelopes_in_crs(envelopes: np.ndarray, src: Any, dst: Any) -> np.ndarray:
    """Bounds in ``dst`` of boxes of ``src``, from their corners and edge midpoints."""
    x0, y0, x1, y1 = envelopes.T
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xs = np.stack([x0, x1, x0, x1, xm, xm, x0, x1], axis=1)
    ys = np.stack([y0, y0, y1, y1, y0, y1, ym, ym], axis=1)
    tx, ty = Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst),
                                  always_xy=True).transform(xs, ys)
    tx, ty = np.asarray(tx, dtype="float64"), np.asarray(ty, dtype="float64")
    return np.column_stack([tx.min(axis=1), ty.min(axis=1), tx.max(axis=1), ty.max(axis=1)])


def _box_intersection(a: BBox, b: BBox) -> BBox | None:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] <= box[2] and box[1] <= box[3] else None


def _box_in_territory_crs(path: Path, layer: str | None, box: BBox, *, crs: str,
                          declared: str | None) -> BBox | None:
    """Return a territory-CRS box holding ``box`` (file CRS), or ``None`` when unknown."""
    try:
        with gdal_notes(path, layer):
            file_crs = declared if declared is not None else pyogrio.read_info(
                path, layer=layer).get("crs")
        if not file_crs:
            return None
        if _same_crs(file_crs, crs):
            return box
        out = Transformer.from_crs(CRS.from_user_input(file_crs), CRS.from_user_input(crs),
                                   always_xy=True).transform_bounds(*box, densify_pts=51)
    except Exception:  # pyproj refuses the CRS or the transformation
        return None
    return tuple(float(v) for v in out) if np.isfinite(out).all() else None  # type: ignore[return-value]


def _bbox_read_boxes(path: Path, layer: str | None, bbox: BBox, *, crs: str,
                     declared: str | None) -> tuple[BBox | None, BBox | None]:
    """Return the box a read of ``bbox`` passes to GDAL, and a territory-CRS box holding it.

    The same for every tile of a grid: remembered per state of the file.
    """
    try:
        state = path.stat()
    except OSError:
        return None, None
    return _bbox_read_boxes_of(str(path), layer, tuple(float(v) for v in bbox), crs, declared,
                               state.st_size, state.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _bbox_read_boxes_of(path: str, layer: str | None, bbox: BBox, crs: str,
                        declared: str | None, size: int, mtime: int
                        ) -> tuple[BBox | None, BBox | None]:
    file = Path(path)
    whole = bbox_in_file_crs(file, layer, bbox, crs=crs, declared=declared)
    if whole is None:
        return None, None
    return whole, _box_in_territory_crs(file, layer, whole, crs=crs, declared=declared)


def tile_read_box(path: Path, layer: str | None, tile: Tile, *, crs: str,
                  bbox: BBox | None = None, declared: str | None = None
                  ) -> BBox | None | Literal[False]:
    """Return the box of the file's CRS that GDAL must read for one tile.

    GDAL keeps the features whose geometry meets its box, and a feature assigned
    to a tile (by the corner of its bounds) need not meet the tile's square: the
    box reaches beyond the square, up and right, by :func:`max_feature_extent`.
    With ``bbox``, it is also cut to the box a read of ``bbox`` passes to GDAL
    (:func:`bbox_in_file_crs`), so that the tiles read, between them, exactly the
    features that read does, each feature being read by the tile it is assigned
    to (and perhaps by neighbours, which :meth:`Tile.owns` drops).

    Parameters
    ----------
    path, layer
        The file and layer.
    tile
        The tile.
    crs
        The territory CRS.
    bbox
        The territory's box (territory CRS), if the read is limited to it.
    declared
        The CRS declared for the source (it overrides the file's).

    Returns
    -------
    tuple, None or False
        The box; ``None`` to read the whole layer (a tile of the edge of the grid
        without ``bbox``, or a file whose CRS or extent forbids a box, as for
        :func:`bbox_in_file_crs`); ``False`` when no feature of ``bbox`` can be
        assigned to the tile (a tile outside the box).
    """
    reach = max_feature_extent(path, layer, crs=crs, declared=declared)
    x0, y0, x1, y1 = tile.assignment
    region: BBox = (x0, y0, x1 + reach, y1 + reach)
    if bbox is None:
        if not np.isfinite(region).all():
            return None
        return bbox_in_file_crs(path, layer, region, crs=crs, declared=declared)
    whole, seen = _bbox_read_boxes(path, layer, bbox, crs=crs, declared=declared)
    if whole is None:
        return None
    if seen is None:
        return whole
    near = _box_intersection(region, seen)
    if near is None:
        return False
    box = bbox_in_file_crs(path, layer, near, crs=crs, declared=declared)
    if box is None:
        return whole
    part = _box_intersection(box, whole)
    return part if part is not None else False


def read_tile_vector(path: Path, layer: str | None, tile: Tile, *, crs: str,
                     bbox: BBox | None = None, declared: str | None = None,
                     encoding: str | None = None, key: str | None = None
                     ) -> gpd.GeoDataFrame:
    """Read what one tile of a layer needs (see :func:`tile_read_box`).

    Parameters
    ----------
    path, layer
        The file and layer.
    tile
        The tile.
    crs
        The territory CRS.
    bbox
        The territory's box (territory CRS), if the read is limited to it.
    declared
        The CRS declared for the source.
    encoding, key
        As for :func:`read_vector`.

    Returns
    -------
    geopandas.GeoDataFrame
        As stored (file CRS, no repair): every feature a read of ``bbox`` (the
        whole layer without it) would return and that is assigned to ``tile``,
        among others that :meth:`Tile.owns` drops after reprojection.

    Raises
    ------
    SourceError
        As :func:`read_vector`.
    """
    box = tile_read_box(path, layer, tile, crs=crs, bbox=bbox, declared=declared)
    if box is False:
        # No feature of the box can be assigned to this tile: only the fields are needed.
        return read_vector(path, layer, encoding=encoding, key=key, max_features=1).iloc[:0]
    return read_vector(path, layer, encoding=encoding, key=key, bbox=box)


def layer_declares(path: Path, layer: str | None, geometry_type: str) -> bool:
    """Whether GDAL declares the layer's geometries of the family of ``geometry_type``.

    ``Polygon`` and ``MultiPolygon Z`` are of the ``MultiPolygon`` family; a layer of
    mixed or unknown type is not.
    """
    try:
        with gdal_notes(path, layer):
            declared = pyogrio.read_info(path, layer=layer).get("geometry_type") or ""
    except Exception:
        return False
    return declared.split(" ")[0] in _FAMILY.get(geometry_type, ())


def python_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn Arrow-backed text columns into Python strings (decoding them now, not later).

    Parameters
    ----------
    frame
        A frame read through Arrow; modified in place.

    Returns
    -------
    pandas.DataFrame
        ``frame``, its text columns as ``object``.
    """
    geom = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    for col in frame.columns:
        if col != geom and pd.api.types.is_string_dtype(frame[col].dtype):
            frame[col] = frame[col].astype(object)
    return frame


def ensure_geometry(frame: pd.DataFrame, *, path: Path, layer: str | None
                    ) -> gpd.GeoDataFrame:
    """Return ``frame`` when it has a geometry column, else raise :class:`GeometryError`."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise GeometryError(
            f"{where(path, layer)} : table sans géométrie ; indiquez une couche géographique "
            f"(clé « couche ») ou un fichier qui en contient"
        )
    return frame


def gdal_reason(exc: BaseException, path: Path) -> str:
    """Return GDAL's reason for a failure, short and without repeating the path."""
    reason = first_line(exc).split("; It might help")[0].replace(f"'{path}'", "").strip()
    if "not recognized as being in a supported file format" in reason:
        return "format non reconnu par GDAL"
    return reason


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (at most 200 characters)."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def to_territory_crs(frame: gpd.GeoDataFrame, *, target: str, declared: str | None,
                     path: Path, layer: str | None, report: SourceReport,
                     key: str | None = None) -> gpd.GeoDataFrame:
    """Bring a layer to the territory CRS after checking its own CRS.

    The CRS declared in the territory file (the source's ``crs`` key) wins over
    the file's own: it is how a user fixes a missing or wrong ``.prj``. A layer
    with no CRS and none declared is refused. Coordinates are checked against the
    domain of the source CRS and, after reprojection, of the territory CRS: when
    most features fall outside, the CRS is wrong and the layer is refused; a few
    features with absurd or non-finite (NaN) coordinates are dropped and counted.

    Parameters
    ----------
    frame
        The layer as read.
    target
        The territory's CRS.
    declared
        The CRS declared for the source, if any.
    path, layer
        For messages.
    report
        Receives the CRS read and the features dropped.
    key
        The TOML key of the source (``sources.parcelles``), for messages.

    Returns
    -------
    geopandas.GeoDataFrame
        The layer in ``target``.

    Raises
    ------
    CRSError
        No CRS and none declared, or coordinates that contradict the CRS.
    """
    crs_key = f"{key}.crs" if key else "crs"
    if declared is not None:
        declared_crs = CRS.from_user_input(declared)
        if frame.crs is not None and not _same_crs(frame.crs, declared_crs):
            log.info("%s : CRS du fichier (%s) remplacé par %s (%s)", where(path, layer),
                     _crs_label(CRS.from_user_input(frame.crs)), declared, crs_key)
            report.count("CRS du fichier remplacé par celui déclaré (fichiers)", 1)
        frame = frame.set_crs(declared_crs, allow_override=True)
    elif frame.crs is None:
        raise CRSError(
            f"{where(path, layer)} : aucun système de coordonnées (pas de .prj ?) ; "
            f"déclarez-le avec la clé « {crs_key} » du fichier de territoire "
            f"(ex. crs = \"EPSG:2154\")"
        )
    src = CRS.from_user_input(frame.crs)
    report.crs_in = _crs_label(src)
    frame = screen_coordinates(frame, path=path, layer=layer, report=report, key=crs_key)
    target_crs = CRS.from_user_input(target)
    if _same_crs(src, target_crs):
        # Same CRS described differently (IGNF WKT of EDIGEO, ESRI .prj): relabel only.
        return frame.set_crs(target_crs, allow_override=True)
    try:
        with gdal_notes(path, layer):
            out = frame.to_crs(target_crs)
    except Exception as exc:  # pyproj refuses some transformations outright
        raise CRSError(
            f"{where(path, layer)} : reprojection de {_crs_label(src)} vers {target} impossible "
            f"({first_line(exc)}) ; vérifiez le système de coordonnées (clé « {crs_key} »)"
        ) from None
    return screen_coordinates(out, path=path, layer=layer, report=report, key=crs_key,
                              source_crs=src)


def epsg_code(crs: Any) -> int | None:
    """Return the EPSG code of a CRS (70 % confidence), or ``None``.

    Matching a WKT against the EPSG database takes a tenth of a second (EDIGEO's
    IGNF:LAMB93, ESRI ``.prj``); the answer is cached per WKT.
    """
    return _epsg_of_wkt(CRS.from_user_input(crs).to_wkt())


@functools.lru_cache(maxsize=64)
def _epsg_of_wkt(wkt: str) -> int | None:
    return CRS.from_wkt(wkt).to_epsg(min_confidence=70)


def _same_crs(a: Any, b: Any) -> bool:
    ca, cb = CRS.from_user_input(a), CRS.from_user_input(b)
    ea, eb = epsg_code(ca), epsg_code(cb)
    if ea is not None and eb is not None:
        return bool(ea == eb)
    return bool(ca == cb)


def _crs_label(crs: CRS) -> str:
    epsg = epsg_code(crs)
    return f"EPSG:{epsg}" if epsg else crs.name


def _coordinate_problems(frame: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray,
                                                             tuple[float, ...] | None]:
    """Per feature: non-finite coordinates, and coordinates outside the CRS's domain."""
    geoms = frame.geometry.values
    n = len(geoms)
    nonfinite = np.zeros(n, dtype=bool)
    outside = np.zeros(n, dtype=bool)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return nonfinite, outside, None
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    nonfinite[np.unique(idx[~np.isfinite(coords).all(axis=1)])] = True
    epsg = epsg_code(frame.crs) if frame.crs is not None else None
    bounds = CRS_BOUNDS.get(epsg) if epsg else None
    if bounds is not None:
        ok = present & ~nonfinite
        b = shapely.bounds(geoms[ok])
        out_ok = ((b[:, 0] < bounds[0]) | (b[:, 1] < bounds[1]) | (b[:, 2] > bounds[2])
                  | (b[:, 3] > bounds[3]))
        outside[np.flatnonzero(ok)[out_ok]] = True
    return nonfinite, outside, bounds


def screen_coordinates(frame: gpd.GeoDataFrame, *, path: Path, layer: str | None,
                       report: SourceReport, key: str = "crs",
                       source_crs: CRS | None = None) -> gpd.GeoDataFrame:
    """Drop a few features with absurd coordinates, or refuse a layer in the wrong CRS.

    Parameters
    ----------
    frame
        A layer with its CRS set.
    path, layer, key
        For messages (``key`` is the TOML key of the source's CRS).
    report
        Counts the features dropped.
    source_crs
        When ``frame`` was reprojected, the CRS it came from (for messages).

    Returns
    -------
    geopandas.GeoDataFrame
        ``frame`` without the features whose coordinates are non-finite or outside
        the CRS's domain over French territory.

    Raises
    ------
    CRSError
        In the source CRS, when more than half of the features are concerned (the
        declared CRS is wrong); after reprojection (``source_crs`` given), when all
        are (a national file legitimately holds features outside the territory's
        projection, e.g. overseas sites for a metropolitan territory).
    """
    nonfinite, outside, bounds = _coordinate_problems(frame)
    bad = nonfinite | outside
    if not bad.any():
        return frame
    geoms = frame.geometry.values
    present = int((~(shapely.is_missing(geoms) | shapely.is_empty(geoms))).sum())
    epsg = epsg_code(frame.crs)
    first = frame.index[np.flatnonzero(bad)[0]]
    n_bad = int(bad.sum())
    refused = n_bad >= present if source_crs is not None else 2 * n_bad > present
    if refused:
        if nonfinite.sum() >= outside.sum() and source_crs is None:
            raise CRSError(
                f"{where(path, layer)} : coordonnées non finies (NaN ou infinies) pour "
                f"{int(nonfinite.sum())} entité(s) sur {present} (ex. entité {first}) ; "
                f"le fichier est corrompu — corrigez-le ou téléchargez-le à nouveau"
            )
        xmin, ymin, xmax, ymax = shapely.total_bounds(geoms[~nonfinite])
        if source_crs is not None:
            hint = (f"une fois reprojetées depuis {_crs_label(source_crs)}, elles tombent hors "
                    f"du domaine de la projection du territoire ; vérifiez le CRS de la source "
                    f"(clé « {key} » ; axes inversés ?) et « territoire.crs »")
        elif epsg in (4326, 4171, 4258) and max(abs(xmax), abs(ymax)) > 1000:
            hint = (f"ces nombres ressemblent à des mètres (Lambert-93 ?) ; déclarez "
                    f"« {key} = \"EPSG:2154\" » dans le fichier de territoire ou corrigez le "
                    f".prj du fichier")
        elif max(abs(xmin), abs(xmax), abs(ymin), abs(ymax)) <= 360:
            hint = (f"ces nombres ressemblent à des degrés (WGS 84 ?) ; déclarez "
                    f"« {key} = \"EPSG:4326\" » dans le fichier de territoire ou corrigez le "
                    f".prj du fichier")
        else:
            hint = (f"vérifiez le système de coordonnées du fichier ou déclarez le bon avec "
                    f"« {key} »")
        raise CRSError(
            f"{where(path, layer)} : coordonnées incompatibles avec EPSG:{epsg} pour "
            f"{int(bad.sum())} entité(s) sur {present} (emprise {xmin:.6g}, {ymin:.6g}, "
            f"{xmax:.6g}, {ymax:.6g}) : {hint}"
        )
    report.count("entités aux coordonnées non finies (NaN) écartées", int(nonfinite.sum()))
    if source_crs is None:
        report.count(f"entités aux coordonnées hors du domaine de EPSG:{epsg} écartées",
                     int(outside.sum()))
    else:
        report.count(f"entités hors du domaine de la projection du territoire (EPSG:{epsg}) "
                     f"écartées", int(outside.sum()))
    log.warning("%s : %d entité(s) aux coordonnées non finies ou hors du domaine de EPSG:%s "
                "écartée(s), ex. entité %s", where(path, layer), int(bad.sum()), epsg, first)
    return frame[~bad]


_MULTI = {"Polygon": "MultiPolygon", "LineString": "MultiLineString", "Point": "Point"}
_FAMILY = {
    "MultiPolygon": ("Polygon", "MultiPolygon"),
    "MultiLineString": ("LineString", "MultiLineString"),
    "Point": ("Point",),
}


def clean_geometries(frame: gpd.GeoDataFrame, *, geometry_type: str, report: SourceReport,
                     path: Path, layer: str | None, keep_missing: bool = False
                     ) -> gpd.GeoDataFrame:
    """Repair and unify geometries: drop Z, ``make_valid``, keep one type, promote to multi.

    Every repair and every dropped feature is counted in ``report``. Features whose
    geometry is null, empty or of another dimension (a polygon collapsed to a line)
    are dropped unless ``keep_missing``.

    Raises
    ------
    GeometryError
        When the layer holds geometries but none of the expected type.
    """
    geoms = frame.geometry.values
    if len(geoms) and (shapely.has_z(geoms).any() or shapely.has_m(geoms).any()):
        geoms = shapely.force_2d(geoms)
    missing = shapely.is_missing(geoms)
    empty = shapely.is_empty(geoms) & ~missing
    report.count("géométries nulles", int(missing.sum()))
    report.count("géométries vides", int(empty.sum()))
    present = ~missing & ~empty
    invalid = present & ~shapely.is_valid(geoms)
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid], method="structure",
                                            keep_collapsed=False)
        report.count("géométries réparées (make_valid)", int(invalid.sum()))
    wanted = _FAMILY[geometry_type]
    geoms = _extract_family(geoms, wanted)
    wrong = present & (shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if wrong.any():
        report.count(f"géométries d'un autre type que {geometry_type} écartées", int(wrong.sum()))
    if present.any() and wrong.sum() == present.sum():
        types = sorted(set(shapely.get_type_id(frame.geometry.values[present]).tolist()))
        names = ", ".join(_TYPE_NAMES.get(t, str(t)) for t in types)
        raise GeometryError(
            f"{where(path, layer)} : géométries de type {names}, alors que la couche attend "
            f"{geometry_type} ; indiquez la bonne couche ou le bon fichier"
        )
    geoms = _promote_multi(geoms, geometry_type)
    out = frame.copy()
    out[out.geometry.name] = gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not keep_missing:
        out = out[keep]
    return out


def _promote_multi(geoms: np.ndarray, geometry_type: str) -> np.ndarray:
    """Turn single polygons/lines into one-part multi geometries."""
    single_type = {"MultiPolygon": shapely.GeometryType.POLYGON,
                   "MultiLineString": shapely.GeometryType.LINESTRING}.get(geometry_type)
    if single_type is None:
        return geoms
    single = shapely.get_type_id(geoms) == single_type
    if not single.any():
        return geoms
    build = shapely.multipolygons if geometry_type == "MultiPolygon" else shapely.multilinestrings
    out = geoms.copy()
    out[single] = build(geoms[single], indices=np.arange(int(single.sum())))
    return out


_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def _extract_family(geoms: np.ndarray, wanted: tuple[str, ...]) -> np.ndarray:
    """Keep only the parts of the wanted family (e.g. polygons of a collection)."""
    ids = shapely.get_type_id(geoms)
    ok = np.isin(ids, [t for t, name in _TYPE_NAMES.items() if name in wanted])
    out = geoms.copy()
    mixed = ~ok & (ids == shapely.GeometryType.GEOMETRYCOLLECTION)
    for i in np.flatnonzero(mixed):
        parts = [p for p in shapely.get_parts(geoms[i]) if p.geom_type in wanted]
        out[i] = _merge_parts(parts, wanted[-1]) if parts else None
    multipoint = ~ok & (ids == shapely.GeometryType.MULTIPOINT) & ("Point" in wanted)
    if multipoint.any():
        # A multipoint site keeps one representative location.
        out[multipoint] = shapely.point_on_surface(geoms[multipoint])
    other = ~ok & ~mixed & ~multipoint
    out[other] = None
    return out


def _merge_parts(parts: list[Any], target: str) -> Any:
    if target == "MultiPolygon":
        polys = [q for p in parts for q in shapely.get_parts(p)]
        return shapely.MultiPolygon(polys)
    if target == "MultiLineString":
        lines = [q for p in parts for q in shapely.get_parts(p)]
        return shapely.MultiLineString(lines)
    return parts[0]


def map_fields(frame: pd.DataFrame, mapping: Mapping[str, str | Iterable[str]],
               overrides: Mapping[str, str], *, path: Path, layer: str | None,
               required: Iterable[str] = (), key: str | None = None) -> pd.DataFrame:
    """Rename source fields to canonical names.

    Parameters
    ----------
    frame
        The layer as read.
    mapping
        Canonical name → candidate source names (case-insensitive), tried in order.
    overrides
        Canonical name → source name from the territory file; wins over ``mapping``.
    path, layer
        For messages.
    required
        Canonical names that must be found.
    key
        The TOML key of the source (``sources.zonage``), for messages.

    Returns
    -------
    pandas.DataFrame
        A frame with canonical columns (those found) and the geometry.

    Raises
    ------
    SchemaError
        When a required field is not found, or an override names a missing field.
    """
    lower = {str(c).lower(): c for c in frame.columns}
    prefix = f"{key}.champs" if key else "champs"
    geom = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    available = ", ".join(str(c) for c in frame.columns[:30] if c != geom) or "aucun"
    data: dict[str, Any] = {}
    for canon, src in overrides.items():
        if src not in frame.columns and src.lower() not in lower:
            raise SchemaError(
                f"{where(path, layer, src)} : champ absent (déclaré dans « {prefix}.{canon} ») ; "
                f"champs disponibles : {available}"
            )
        data[canon] = frame[src if src in frame.columns else lower[src.lower()]]
    for canon, candidates in mapping.items():
        if canon in data:
            continue
        cands = [candidates] if isinstance(candidates, str) else list(candidates)
        for c in cands:
            if c.lower() in lower:
                data[canon] = frame[lower[c.lower()]]
                break
    missing = [c for c in required if c not in data]
    if missing:
        cands = mapping.get(missing[0], missing[0])
        cands = [cands] if isinstance(cands, str) else list(cands)
        raise SchemaError(
            f"{where(path, layer, missing[0])} : champ obligatoire introuvable (cherché : "
            f"{', '.join(cands)}) ; indiquez le champ source avec « {prefix}.{missing[0]} = "
            f"\"NOM_DU_CHAMP\" » dans le fichier de territoire ; champs disponibles : {available}"
        )
    out = pd.DataFrame(data, index=frame.index)
    if isinstance(frame, gpd.GeoDataFrame):
        return gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs)
    return out


def text(series: pd.Series) -> pd.Series:
    """Return ``series`` as text (``None`` for missing), numbers without ``.0``.

    Text is stripped and an empty string is missing; an integer-valued number is
    written without decimal part (``22.0`` → ``"22"``), another number as Python
    writes it. Vectorised for text (Arrow) and numeric columns; other columns
    (mixed types, booleans, dates) are converted value by value.

    Parameters
    ----------
    series
        Any column.

    Returns
    -------
    pandas.Series
        Text with the index and name of ``series``, in the dtype pandas infers for
        strings (``str`` in pandas 3, ``object`` before; ``object`` when all missing).
    """
    dtype = series.dtype
    if pd.api.types.is_object_dtype(dtype) or (pd.api.types.is_string_dtype(dtype)
                                               and not isinstance(dtype, pd.CategoricalDtype)):
        stripped = _strip_text(series)
        if stripped is not None:
            if stripped.null_count == len(stripped):
                values = np.full(len(stripped), None, dtype=object)
            elif pd.api.types.is_object_dtype(TEXT_DTYPE):
                values = stripped.to_numpy(zero_copy_only=False)
            else:
                return pd.Series(pd.array(stripped, dtype=TEXT_DTYPE), index=series.index,
                                 name=series.name)
            return pd.Series(values, index=series.index, name=series.name, dtype=object)
    values = _text_values(series)
    return pd.Series(values, index=series.index, name=series.name, dtype=object).infer_objects()


#: The dtype pandas gives a column of strings (``str`` in pandas 3, ``object`` before).
TEXT_DTYPE = pd.Series(["a"]).dtype


def _strip_text(series: pd.Series) -> pa.Array | None:
    """Strip a column of strings with Arrow (empty → null), or ``None`` if not all strings."""
    values = series.to_numpy(dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "empty"):
        return None
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError, TypeError):
        return None  # lone surrogates: Python strips them
    # Arrow's Unicode whitespace is Python's (str.isspace), checked code point by code point.
    trimmed = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(pc.utf8_length(trimmed), 0), pa.scalar(None, pa.large_string()),
                      trimmed)


def _text_values(series: pd.Series) -> np.ndarray:
    """Return the values of :func:`text` for a non-text column (``str`` and ``None``)."""
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype):
        missing = series.isna().to_numpy()
        base = getattr(dtype, "numpy_dtype", dtype)
        out = series.to_numpy(dtype=base, na_value=0).astype(str).astype(object)
        out[missing] = None
        return out
    if pd.api.types.is_float_dtype(dtype):
        return _float_text(series.to_numpy(dtype="float64", na_value=np.nan))
    return _text_python(series)


def _float_text(nums: np.ndarray) -> np.ndarray:
    """Floats as text: integers without ``.0`` (``22.0`` → ``"22"``), NaN as ``None``."""
    out = np.full(len(nums), None, dtype=object)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(nums) & (np.abs(nums) < 2.0**63) & (nums == np.trunc(nums))
    out[integral] = nums[integral].astype(np.int64).astype(str)
    rest = ~integral & ~np.isnan(nums)
    if rest.any():
        # Infinities, decimals and integers beyond int64: few, written as Python does.
        out[rest] = [str(int(v)) if v.is_integer() else str(v) for v in nums[rest].tolist()]
    return out


def _text_python(series: pd.Series) -> np.ndarray:
    """:func:`text` value by value, for columns of mixed or unusual types."""
    def conv(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        s = str(v).strip()
        return s or None
    return np.array([conv(v) for v in series.astype(object).tolist()] or [], dtype=object)


def numbers(series: pd.Series, *, report: SourceReport | None = None,
            field_name: str | None = None) -> pd.Series:
    """Parse numbers that may be stored as text (``"1 234,5"``, ``"12.0"``).

    Spaces (also non-breaking) are thousands separators and a comma is a decimal
    separator. Values that are not numbers become NULL and are counted.

    Parameters
    ----------
    series
        Numbers or text.
    report
        Counts the values set to NULL.
    field_name
        Canonical name of the field, for the count.

    Returns
    -------
    pandas.Series
        ``float64`` values, NaN where missing or unreadable.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype):
        values = pd.to_numeric(series, errors="coerce").astype("float64")
        return values.where(np.isfinite(values))
    raw = text(series)
    cleaned = raw.str.replace(r"[\s\u00a0\u202f]", "", regex=True).str.replace(
        ",", ".", regex=False)
    out = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    out = out.where(np.isfinite(out))
    bad = raw.notna() & out.isna() & ~raw.str.upper().isin(["NA", "NAN", "NULL", "N/A"])
    if report is not None and bad.any():
        report.count(f"valeurs non numériques du champ « {field_name or series.name} » mises "
                     f"à NULL", int(bad.sum()))
    return out


def relative_name(path: Path, base: Path | None) -> str:
    """Return the lineage name of a source file: relative to ``base`` when possible."""
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return path.name
