"""Readers: one module per source family, each turning a real format into a canonical layer.

Every reader returns a :class:`~observatoire.readers.lineage.ReadResult`: the
canonical GeoDataFrame in the territory's CRS and a :class:`SourceReport` for the
``sources`` table. The shared reading steps have one module each: :mod:`.gdal` (open
a file, pick its layer), :mod:`.tiles` (a bounding box, tiles), :mod:`.crs` (check
and reproject), :mod:`.geometry` (repair), :mod:`.fields` (map fields, normalise
values) and :mod:`.lineage` (the source's report and checksum).

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

from observatoire.readers.lineage import ReadResult, SourceReport

__all__ = ["ReadResult", "SourceReport"]
