"""Exception types of the observatory.

Every error a user can cause derives from :class:`ObservatoireError` and from the
matching builtin, so that callers can catch either. Messages name the file, the
layer, the field or row, and say how to fix the problem; the CLI prints them as
one line.
"""

from __future__ import annotations

from pathlib import Path


class ObservatoireError(Exception):
    """Root of the observatory's errors.

    The message is always one line: line breaks coming from GDAL, tarfile or
    another library quoted in it are folded, so the CLI prints one readable line.
    """

    def __str__(self) -> str:
        return " ".join(line.strip() for line in super().__str__().splitlines() if line.strip())


class ConfigError(ObservatoireError, ValueError):
    """The territory file is missing a key, has an unknown key or a bad value."""


class SourceError(ObservatoireError, OSError):
    """A source file is missing, unreadable, corrupt or of an unknown format."""


class SchemaError(ObservatoireError, ValueError):
    """A layer lacks a required field or holds values of the wrong type."""


class CRSError(ObservatoireError, ValueError):
    """A layer has no CRS, or its coordinates contradict the declared CRS."""


class GeometryError(ObservatoireError, ValueError):
    """Geometries that cannot be repaired (all empty, wrong type for the layer)."""


class BuildError(ObservatoireError, RuntimeError):
    """The build could not produce an output."""


def where(path: str | Path | None, layer: str | None = None, field: str | None = None) -> str:
    """Format the location of a problem: ``file.gpkg, couche « x », champ « y »``.

    Parameters
    ----------
    path
        The file concerned, if any.
    layer
        The layer inside the file, if any.
    field
        The field concerned, if any.

    Returns
    -------
    str
        A French location prefix for an error message.
    """
    parts = []
    if path is not None:
        parts.append(str(path))
    if layer:
        parts.append(f"couche « {layer} »")
    if field:
        parts.append(f"champ « {field} »")
    return ", ".join(parts)
