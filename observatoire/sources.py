"""The source registry: every kind of ``[sources.<kind>]`` table, in one place.

One :class:`SourceKind` per kind says what the territory file may declare (its
formats, whether it is a list, whether it is required), which reader turns it into
its canonical layer and that layer's schema, when the build reads it (the
parcels, the context layers, the analysis inputs or the mutabilité's town halls),
how a partition of the analysis sees it, and which indicators it feeds. The
territory file (:mod:`observatoire.config`), ``validate``
(:mod:`observatoire.validate`), the build (:mod:`observatoire.ingest`,
:mod:`observatoire.readers.extra`) and the analysis
(:mod:`observatoire.analysis.indicators`) all read this table: a new source is a
new line here and its reader; a new indicator, its name here and its function
(``docs/recettes.md``).

Readers and schemas are named ``"module:attribut"`` and imported when first used:
the readers import :class:`observatoire.config.Source`, and the territory file
reads this table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: When the build reads a kind: ``parcelles`` (staged commune by commune),
#: ``contexte`` (:func:`observatoire.ingest.ingest`), ``analyse`` (the analysis inputs,
#: :func:`observatoire.readers.extra.read_extra_sources`) or ``mutabilite`` (read by
#: :mod:`observatoire.mutabilite`).
Stage = Literal["parcelles", "contexte", "analyse", "mutabilite"]

#: How a partition of the analysis sees a kind: ``parcelles`` (its own parcels),
#: ``boite`` (the features meeting its box, whole), ``entiere`` (the whole layer,
#: for distances: the nearest feature may lie far away), ``table`` (rows by IDU) or
#: ``aucune`` (not read by the partitions).
PartitionView = Literal["parcelles", "boite", "entiere", "table", "aucune"]


def _resolve(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class SourceKind:
    """One kind of source of the territory file.

    Attributes
    ----------
    name
        The kind: the key of ``[sources.<name>]``.
    formats
        Values of its ``format`` key (``auto`` guesses from the file).
    reader_ref
        Its reader, ``"module:function"``, called ``(source, *, crs, base, …)``.
    schema_ref
        Its canonical schema, ``"module:NAME"`` (a
        :class:`~observatoire.schema.LayerSchema` or a list of columns); ``None``
        for a raster.
    stage
        When the build reads it (see :data:`Stage`).
    partition
        How a partition of the analysis sees it (see :data:`PartitionView`).
    indicators
        The indicators of the ``parcelles`` layer it feeds (NULL without it).
    distance
        The indicator measuring the distance from each parcel to its nearest
        feature, when it feeds one (also in ``indicators``): computed on the whole
        layer by :func:`observatoire.analysis.indicators.compute_indicators`.
    is_list
        Declared as ``[[sources.<name>]]``, several layers.
    required
        The territory file must declare it.
    boxed
        Read through the box of the context (an R-tree query on a GeoPackage).
    near
        Features beyond the context margin are dropped and counted under this
        name; ``None``: all kept.
    empty
        What a source holding nothing for the territory costs the results (French,
        for ``validate`` and the build's warnings); ``None``: nothing said.
    missing
        What the results lose when the territory does not give this source at all
        (French, a warning of ``validate`` and the build); ``None``: not a key
        source, its absence is not said.
    """

    name: str
    formats: tuple[str, ...]
    reader_ref: str
    schema_ref: str | None
    stage: Stage
    partition: PartitionView
    indicators: tuple[str, ...] = ()
    distance: str | None = None
    is_list: bool = False
    required: bool = False
    boxed: bool = False
    near: str | None = None
    empty: str | None = None
    missing: str | None = None

    @property
    def reader(self) -> Callable[..., Any]:
        """Return the reader of this kind."""
        return _resolve(self.reader_ref)

    @property
    def schema(self) -> Any:
        """Return the canonical schema of this kind (``None`` for a raster)."""
        return None if self.schema_ref is None else _resolve(self.schema_ref)


_R = "observatoire.readers."

#: Every source kind, in the order of the territory file's checks and reports.
SOURCES: tuple[SourceKind, ...] = (
    SourceKind("parcelles", ("auto", "etalab", "bdparcellaire", "edigeo", "couche"),
               _R + "cadastre:read_parcelles", "observatoire.schema:PARCELLES",
               "parcelles", "parcelles", required=True,
               indicators=("surface_m2", "compacite", "largeur_utile_m", "emprise_50m")),
    SourceKind("zonage", ("auto", "cnig", "couche"), _R + "layers:read_zonage",
               "observatoire.schema:ZONAGE", "contexte", "boite", boxed=True,
               indicators=("zone_libelle", "zone_typezone", "zone_activite"),
               empty="le zonage ne s'applique à aucune parcelle (zones A et N non exclues, "
                     "critère zonage non noté)",
               missing="les zones A et N du PLU ne sont pas exclues et le critère zonage "
                       "n'est pas noté"),
    SourceKind("friches", ("auto", "cnig_csv", "cartofriches", "couche"),
               _R + "friches:read_friches", "observatoire.schema:FRICHES", "contexte", "boite",
               near="friches", indicators=("friche_id", "friche_statut", "friche_type"),
               empty="aucune parcelle n'est reconnue comme friche"),
    SourceKind("zae", ("auto", "cnig", "couche"), _R + "zae:read_zae", "observatoire.schema:ZAE",
               "contexte", "boite", indicators=("zae_id", "part_zae", "dist_zae_m"),
               distance="dist_zae_m", empty="aucune zone d'activités n'est inventoriée"),
    SourceKind("batiments", ("auto", "couche"), _R + "layers:read_batiments",
               "observatoire.schema:BATIMENTS", "contexte", "boite", boxed=True,
               near="bâtiments", indicators=("part_batie", "nb_batiments"),
               empty="aucun bâtiment n'est compté sur les parcelles",
               missing="les parcelles déjà bâties ne sont pas exclues, le bâti existant "
                       "n'est pas noté et les gisements ne testent pas la part bâtie"),
    SourceKind("routes", ("auto", "couche"), _R + "layers:read_routes",
               "observatoire.schema:ROUTES", "contexte", "entiere", boxed=True, near="routes",
               empty="toutes les parcelles sont notées loin des routes",
               missing="la desserte routière (routes principales, autoroutes) n'est pas "
                       "notée"),
    SourceKind("mnt", ("auto", "geotiff", "ascii"), _R + "mnt:read_mnt", None, "analyse",
               "boite", indicators=("pente_moy_pct", "pente_max_pct"),
               missing="la pente n'est pas notée"),
    SourceKind("voies_ferrees", ("auto", "couche"), _R + "reseaux:read_voies_ferrees",
               _R + "reseaux:VOIES_FERREES", "analyse", "entiere",
               indicators=("dist_voie_ferree_m",), distance="dist_voie_ferree_m",
               empty="toutes les parcelles sont notées loin d'une voie ferrée"),
    SourceKind("postes_electriques", ("auto", "couche"), _R + "reseaux:read_postes_electriques",
               _R + "reseaux:POSTES_ELECTRIQUES", "analyse", "entiere",
               indicators=("dist_poste_electrique_m",), distance="dist_poste_electrique_m",
               empty="toutes les parcelles sont notées loin d'un poste électrique"),
    SourceKind("proprietaires", ("auto", "personnes_morales", "table"),
               _R + "proprietaires:read_proprietaires", _R + "proprietaires:PROPRIETAIRES_COLUMNS",
               "analyse", "table",
               empty="aucune parcelle n'a de propriétaire connu : chacune forme sa propre "
                     "unité foncière"),
    SourceKind("etablissements", ("auto", "sirene", "couche"),
               _R + "etablissements:read_etablissements", _R + "etablissements:ETABLISSEMENTS",
               "contexte", "aucune", near="établissements",
               empty="aucun établissement n'occupe les zones d'activités (vacance "
                     "surestimée)"),
    SourceKind("mairies", ("auto", "couche"), _R + "mairies:read_mairies",
               _R + "mairies:MAIRIES_COLUMNS", "mutabilite", "aucune"),
    SourceKind("chefs_lieux", ("auto", "couche"), _R + "mairies:read_mairies",
               _R + "mairies:MAIRIES_COLUMNS", "mutabilite", "aucune"),
    SourceKind("contraintes", ("auto", "couche"), _R + "contraintes:read_contrainte",
               _R + "contraintes:CONTRAINTES", "analyse", "boite", is_list=True,
               empty="cette contrainte n'exclut ni ne pénalise aucune parcelle",
               missing="aucune contrainte réglementaire (zone inondable, espace protégé…) "
                       "n'exclut ni ne pénalise de parcelle"),
)

#: The kinds by name.
SOURCE_KINDS: dict[str, SourceKind] = {k.name: k for k in SOURCES}

#: Indicator → the source kind it needs (``parcelles`` ones are always available).
INDICATOR_SOURCES: dict[str, str] = {i: k.name for k in SOURCES for i in k.indicators}

#: Source kind → its nearest-feature distance indicator, in registry order.
DISTANCE_INDICATORS: dict[str, str] = {k.name: k.distance for k in SOURCES
                                       if k.distance is not None}


def source_kind(name: str) -> SourceKind:
    """Return the kind ``name`` of the registry.

    Raises
    ------
    KeyError
        ``name`` is not a kind of source.
    """
    return SOURCE_KINDS[name]


def kinds_read_at(stage: Stage) -> tuple[str, ...]:
    """Return the kinds the build reads at ``stage``, in registry order."""
    return tuple(k.name for k in SOURCES if k.stage == stage)


__all__ = ["DISTANCE_INDICATORS", "INDICATOR_SOURCES", "SOURCES", "SOURCE_KINDS", "PartitionView",
           "SourceKind", "Stage", "kinds_read_at", "source_kind"]
