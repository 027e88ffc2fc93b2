"""Opening a vector file through pyogrio / GDAL: checks, layer choice, readable errors.

The readers open files through these functions (the other shared modules ask GDAL
only for a layer's metadata: bounds, envelopes, declared geometry type); each turns
GDAL's failures into :class:`SourceError` messages that name the file and layer and
say what to do (missing, 0-byte, folder, not a GIS file, truncated or corrupt file;
empty layer; text that is not in the file's encoding, which names the ``encodage``
key).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from observatoire.errors import GeometryError, SourceError, where

log = logging.getLogger(__name__)


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


def layer_is_empty(path: Path, layer: str | None) -> bool:
    """Whether a layer holds no feature at all (GDAL's count, forced when unknown)."""
    try:
        with gdal_notes(path, layer):
            return int(pyogrio.read_info(path, layer=layer, force_feature_count=True)
                       ["features"]) == 0
    except Exception:
        return False



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
