"""Observatoire du foncier économique.

Ingests real open data (cadastre, friches, ZAE, PLU zoning, buildings, roads,
terrain model, constraints) for a territory, scores every parcel for industrial
reuse and publishes one GeoPackage, maps and a report.
"""

from __future__ import annotations

import logging

from observatoire.errors import (
    ConfigError,
    CRSError,
    GeometryError,
    ObservatoireError,
    SchemaError,
    SourceError,
)

__version__ = "0.1.0"

__all__ = [
    "CRSError",
    "ConfigError",
    "GeometryError",
    "ObservatoireError",
    "SchemaError",
    "SourceError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
