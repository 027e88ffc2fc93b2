"""Readers: one module per source family, each turning a real format into a canonical layer.

Every reader returns a :class:`~observatoire.readers.common.ReadResult`: the
canonical GeoDataFrame in the territory's CRS and a :class:`SourceReport` for the
``sources`` table.
"""

from __future__ import annotations

from observatoire.readers.common import ReadResult, SourceReport

__all__ = ["ReadResult", "SourceReport"]
