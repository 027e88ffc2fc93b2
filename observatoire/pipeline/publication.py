"""Publication: the files made from the layers, as a table of outputs.

:data:`OUTPUTS` lists every publication in the order it is made, each with the
condition that asks for it (the territory's options, the layers present) and the
function that writes it to staged files (:class:`~observatoire.outputs.StagedFile`,
published by the build once every output is complete). Adding an output is adding
a row (see ``docs/recettes.md``).

The order matters for memory at a million parcels: the map is drawn from the best
scored parcels, then what the report does not read is let go, and the report reads
its columns of every parcel back from the GeoPackage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd

from observatoire.config import Territory
from observatoire.ingest import Layers
from observatoire.memory import trim
from observatoire.outputs import StagedFile
from observatoire.progress import Progress
from observatoire.publish.atlas import stage_atlas
from observatoire.publish.carte import stage_map
from observatoire.publish.carte_selection import map_message, map_units_and_sites
from observatoire.publish.cnig import stage_cnig_export
from observatoire.publish.cnig_csv import cartofriches_files, stage_cnig_csv
from observatoire.publish.consultation import stage_consultation
from observatoire.publish.meilleurs_sites import best_sites_table
from observatoire.publish.rapport import stage_report

if TYPE_CHECKING:
    from observatoire.observation.run import FirstSeen
    from observatoire.pipeline.partitions import Views
    from observatoire.publish.rapport import Section

log = logging.getLogger(__name__)


@dataclass
class Publication:
    """What the outputs are made from.

    Attributes
    ----------
    layers
        The canonical layers read (friches, roads, reports…).
    outputs
        The layers written to the GeoPackage, by name (no layer of every parcel).
    tables
        Tables published as CSV (``meilleurs_sites``).
    views
        The parcels as the publication needs them (see
        :func:`~observatoire.pipeline.partitions.analyse_partitions`): ``carte``
        (the best scored), ``nb_parcelles``, ``zae`` (those met by a ZAE),
        ``rapport`` and ``fond`` (read back from the GeoPackage when called).
    territory, say
        The territory and the progress messages.
    communes
        INSEE code → name of the communes shown.
    fond
        The map's background (commune outlines, roads, buildings), read once for
        the map and the report.
    """

    layers: Layers
    outputs: dict[str, gpd.GeoDataFrame]
    tables: dict[str, pd.DataFrame]
    views: Views
    territory: Territory
    say: Progress
    communes: dict[str, str] = field(default_factory=dict)
    fond: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)

    @property
    def has_zae(self) -> bool:
        """Whether the territory has ZAE with their inventory."""
        zae = self.outputs.get("zae")
        return zae is not None and len(zae) > 0 and "zae_unites" in self.outputs


@dataclass(frozen=True)
class Output:
    """One row of :data:`OUTPUTS`: when an output is made, and how."""

    name: str
    wanted: Callable[[Publication], bool]
    stage: Callable[[Publication], list[StagedFile]]


def publish(layers: Layers, outputs: dict[str, gpd.GeoDataFrame],
            tables: dict[str, pd.DataFrame], views: Views, territory: Territory,
            say: Progress, staged: list[StagedFile]) -> None:
    """Write every output of :data:`OUTPUTS` wanted to staged files, appended to ``staged``.

    Appended as they are made: on an error, the caller discards those already made.
    """
    pub = Publication(layers=layers, outputs=outputs, tables=tables, views=views,
                      territory=territory, say=say,
                      communes=commune_names(territory, layers, outputs))
    for output in OUTPUTS:
        if output.wanted(pub):
            staged.extend(output.stage(pub))


def _tables(pub: Publication) -> list[StagedFile]:
    """Write the tables as CSV (French decimal comma; ``meilleurs_sites`` with French headers)."""
    staged = []
    for name, table in pub.tables.items():
        csv = StagedFile(pub.territory.output_dir / f"{name}.csv")
        if name == "meilleurs_sites":  # French headers with units, rounded values
            table = best_sites_table(table, profile=pub.territory.profiles[0].name,
                                     crs=pub.territory.crs)
        table.to_csv(csv.tmp, index=False, sep=";", decimal=",", encoding="utf-8-sig")
        staged.append(csv)
    return staged


def _consultation(pub: Publication) -> list[StagedFile]:
    pub.say("Fichiers de consultation des ZAE…")
    return stage_consultation(pub.outputs["zae"], pub.outputs["zae_unites"],
                              output_dir=pub.territory.output_dir,
                              territory=pub.territory.name,
                              date_observation=pub.territory.options.date_observation,
                              progress=pub.say, communes=pub.communes)


def _cnig_wanted(pub: Publication) -> bool:
    """Tell whether to export to CNIG: asked for, or not turned off and the EPCI known.

    Not asked for and the EPCI unknown: a warning says why and the fix.
    """
    option = pub.territory.options.export_cnig
    if not pub.has_zae or option is False:
        return False
    nom, siren = territory_epci(pub.territory)
    if (nom and siren) or option is not None:
        return True
    log.warning("export CNIG non produit : %s", missing_epci(pub.territory))
    return False


def _cnig(pub: Publication) -> list[StagedFile]:
    """Write the CNIG Sites Économiques GeoPackage (the standard's template) and its CSV files."""
    pub.say("Export CNIG Sites Économiques…")
    nom, siren = territory_epci(pub.territory)
    template = stage_cnig_export(
        pub.outputs["zae"], pub.outputs["zae_unites"], pub.layers.etablissements,
        output_dir=pub.territory.output_dir, epci_nom=nom, epci_siren=siren,
        communes=pub.communes, date_observation=pub.territory.options.date_observation,
        parcelles=pub.views["zae"], rule=pub.territory.options.vacance,
        first_seen=_first_seen(pub))
    return [template, *stage_cnig_csv(
        template.tmp, output_dir=pub.territory.output_dir, parcelles=pub.views["zae"],
        friches=(pub.layers.friches, pub.layers.friches_surfaces),
        cartofriches=cartofriches_files(pub.territory))]


def _first_seen(pub: Publication) -> FirstSeen | None:
    """Return the first observation of each ZAE and land unit (``None`` without history)."""
    observed = pub.views.get("observation")
    if observed is None or observed.observation is None:
        return None
    from observatoire.observation.run import first_seen

    return first_seen(observed.observation)


def _atlas(pub: Publication) -> list[StagedFile]:
    pub.say("Atlas des ZAE (une fiche par zone, HTML et PDF)…")
    return stage_atlas({**pub.outputs, "routes": pub.layers.routes}, pub.layers.reports,
                       pub.territory, communes=commune_names(pub.territory, pub.layers),
                       progress=pub.say)


def _background(pub: Publication) -> list[StagedFile]:
    """Read the background of the map and the report once (outlines, roads, buildings)."""
    pub.fond = pub.views["fond"]()
    return []


def _map(pub: Publication) -> list[StagedFile]:
    pub.say("Carte interactive…")
    drawn = {**pub.outputs, "parcelles": pub.views["carte"]}
    observed = pub.views.get("observation")
    if observed is not None and observed.evolution is not None:
        changes = observed.evolution.layers["evolution_parcelles"]
        drawn["evolution_parcelles"] = changes.assign(
            date_depuis=observed.evolution.depuis.isoformat())
    pub.say(map_message(len(pub.views["carte"]), pub.views["nb_parcelles"], pub.territory))
    return [stage_map(map_units_and_sites(drawn, pub.say), pub.territory,
                      reports=pub.layers.reports, communes=pub.communes, background=pub.fond)]


def _let_go(pub: Publication) -> list[StagedFile]:
    """Let go what the report does not read: memory for its table of every parcel.

    (:func:`~observatoire.publish.qgis.finalize_gpkg` reads only the layers' columns.)
    """
    pub.views.pop("carte", None)
    pub.views.pop("zae", None)
    if "zae_unites" in pub.outputs:
        pub.outputs["zae_unites"] = pub.outputs["zae_unites"].iloc[:0].copy()
    trim()
    return []


def _report(pub: Publication) -> list[StagedFile]:
    pub.say("Rapport…")
    return [stage_report({**pub.outputs, "parcelles": pub.views["rapport"]()},
                         pub.layers.reports, pub.territory, communes=pub.communes,
                         background={"routes": pub.layers.routes, **pub.fond},
                         evolution=_evolution_section(pub))]


def _evolution_section(pub: Publication) -> Section | None:
    """Return the report's section « Évolution depuis <date> » (None for a first observation)."""
    observed = pub.views.get("observation")
    if observed is None or observed.evolution is None or observed.observation is None:
        return None
    from observatoire.publish.rapport_evolution import evolution_section

    staged = observed.observation
    return evolution_section(staged.folder, staged.manifest(), observed.evolution,
                             profile=pub.territory.profiles[0].name
                             if pub.territory.profiles else None,
                             seuil_bati=pub.territory.options.analysis.seuil_bati_gisement)


#: Every publication, in the order made: name, when, how.
OUTPUTS: tuple[Output, ...] = (
    Output("tableaux CSV", lambda pub: True, _tables),
    Output("consultation des ZAE", lambda pub: pub.has_zae, _consultation),
    Output("export CNIG", _cnig_wanted, _cnig),
    Output("atlas des ZAE", lambda pub: pub.territory.options.atlas and pub.has_zae, _atlas),
    Output("fond de carte",
           lambda pub: pub.territory.options.carte or pub.territory.options.rapport,
           _background),
    Output("carte", lambda pub: pub.territory.options.carte, _map),
    Output("mémoire rendue", lambda pub: True, _let_go),
    Output("rapport", lambda pub: pub.territory.options.rapport, _report),
)


def commune_names(territory: Territory, layers: Layers,
                  outputs: dict[str, gpd.GeoDataFrame] | None = None) -> dict[str, str]:
    """INSEE code → name of the communes the outputs show.

    The territory's communes, the ZAE's and the friches': names from the table of
    communes (:mod:`observatoire.communes`), else the friches' ``comm_nom``;
    ``[options.noms_communes]`` overrides both.
    """
    from observatoire.communes import commune_names as official
    from observatoire.communes import suggest_communes

    codes = list(territory.communes)
    friches: dict[str, str] = {}
    for frame in (layers.friches, layers.friches_surfaces, (outputs or {}).get("zae")):
        if frame is None or "comm_insee" not in frame:
            continue
        codes.extend(frame["comm_insee"].dropna().astype(str).unique())
        if "comm_nom" in frame:
            pairs = frame[["comm_insee", "comm_nom"]].dropna().drop_duplicates("comm_insee")
            for code, name in zip(pairs["comm_insee"].astype(str), pairs["comm_nom"],
                                  strict=True):
                friches.setdefault(code, str(name))
    names = {**friches, **official(codes)}
    names.update(territory.options.noms_communes)
    for code in territory.communes:
        if code not in names:
            close = ", ".join(c.label() for c in suggest_communes(code, n=3))
            log.warning("commune %s absente de la table des communes : désignée par son code "
                        "(nommez-la dans [options.noms_communes])%s", code,
                        f" ; codes proches : {close}" if close else "")
    return names


def territory_epci(territory: Territory) -> tuple[str | None, str | None]:
    """Name and SIREN of the territory's EPCI: the territory file's, the name from the table.

    A SIREN without a name takes the name of the table of EPCI.
    """
    from observatoire.communes import find_epci

    nom, siren = territory.epci_nom, territory.epci_siren
    if siren and not nom:
        found = find_epci(siren)
        nom = found.nom if found else None
    return nom, siren


def missing_epci(territory: Territory) -> str:
    """Why the EPCI of the CNIG export is not known, and the fix (French)."""
    from observatoire.communes import epci_of

    if territory.epci_siren:
        return (f"territoire.epci_nom absent et SIREN {territory.epci_siren} inconnu de la "
                f"table des EPCI ; vérifiez territoire.epci_siren ou ajoutez territoire.epci_nom")
    held = {e.siren: e for e in map(epci_of, territory.communes) if e is not None}
    hint = ""
    if len(held) == 1:
        only = next(iter(held.values()))
        hint = (f" ; les communes du territoire sont dans {only.label()} : ajoutez "
                f"epci_siren = \"{only.siren}\" à [territoire]")
    return f"territoire.epci_siren absent{hint}"
