"""Reader of the constraint layers (``contraintes``): flood zones, protected areas, etc.

Polygons, one source per layer, mapped to the canonical ``contraintes`` schema; the
share of each parcel they cover becomes a ``part_contrainte_*`` indicator.
"""

from __future__ import annotations

from pathlib import Path

from observatoire.config import Source
from observatoire.readers.fields import text
from observatoire.readers.layers import read_simple, stable_sort
from observatoire.readers.lineage import ReadResult
from observatoire.readers.tiles import BBox
from observatoire.schema import LINEAGE, Field, LayerSchema, conform

CONTRAINTES = LayerSchema(
    "contraintes",
    "MultiPolygon",
    (
        Field("contrainte_nom", "str", True, "Nom de la contrainte (fichier de territoire)"),
        Field("contrainte_type", "str", True, "Type : inondation, nature, patrimoine…"),
        Field("contrainte_stricte", "bool", True, "Une parcelle à l'intérieur est exclue"),
        Field("libelle", "str", False, "Libellé de la zone dans la source"),
        Field(LINEAGE, "str", True, "Fichier source"),
    ),
    "Contraintes réglementaires déclarées par le territoire",
)


CONTRAINTES_FIELDS = {"libelle": ["libelle", "nom", "zone", "codezone", "typezone", "NOM",
                                  "nom_site", "NOM_SITE"]}


def read_contrainte(source: Source, *, crs: str, base: Path | None = None,
                    bbox: BBox | None = None) -> ReadResult:
    """Read one constraint layer (polygons) with its name, kind and strictness.

    Parameters
    ----------
    source
        The constraint source (``[[sources.contraintes]]``).
    crs
        The territory CRS.
    base
        Folder against which lineage names are written.
    bbox
        Only the zones intersecting this box (territory CRS).

    Returns
    -------
    ReadResult
        ``contrainte_nom``, ``contrainte_type``, ``contrainte_stricte``, ``libelle``.
    """
    frame, report = read_simple(source, CONTRAINTES, CONTRAINTES_FIELDS, crs=crs, base=base,
                                bbox=bbox)
    frame["contrainte_nom"] = source.name or source.key
    frame["contrainte_type"] = source.constraint_type or "autre"
    frame["contrainte_stricte"] = bool(source.strict)
    if "libelle" in frame:
        frame["libelle"] = text(frame["libelle"])
    frame = stable_sort(frame, [])
    report.features_kept = len(frame)
    return ReadResult(conform(frame, CONTRAINTES), report)
