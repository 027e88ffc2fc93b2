"""Each build's observation, and the evolution between two observations.

:func:`observe` is called by the build on its unpublished GeoPackage: it stages
the observation in the history (committed with the build's other outputs), and
writes the evolution since the previous observation into the GeoPackage (layers
``evolution_parcelles``, ``evolution_zae``, ``evolution_friches``,
``evolution_gisements``) with ``evolution.csv``. :func:`evolve` does the same
between any two observations, for ``observatoire evolution``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from observatoire.config import Territory
from observatoire.errors import BuildError
from observatoire.geopackage import GeoPackageWriter, reading_unpublished
from observatoire.observation import capture, evolution, history
from observatoire.outputs import StagedFile
from observatoire.progress import Progress

log = logging.getLogger(__name__)

#: Evolution layers: French description and the GeoPackage layer giving their shapes.
LAYERS: dict[str, str] = {
    "evolution_parcelles": "Évolution des parcelles depuis l'observation précédente : "
                           "divisions, fusions, renumérotations, parcelles nouvellement "
                           "bâties, entrées et sorties de gisement, changements de classe",
    "evolution_zae": "Évolution des zones d'activités : foncier consommé (ha, par commune), "
                     "unités libérées ou occupées, surface disponible",
    "evolution_friches": "Évolution des friches : nouvelles, disparues, changements de statut",
    "evolution_gisements": "Évolution des gisements fonciers : nouveaux, disparus, réduits, "
                           "agrandis",
}
#: French headers of ``evolution.csv`` (the parcels' evolution), in order.
CSV_HEADERS: dict[str, str] = {
    "idu": "Parcelle (IDU)",
    "idu_precedents": "Parcelles précédentes (IDU)",
    "changement": "Changement cadastral",
    "evolution": "Évolution principale",
    "code_insee": "Commune (code INSEE)",
    "zae_id": "Zone d'activités (identifiant)",
    "surface_m2": "Surface (m²)",
    "part_batie_avant": "Part bâtie avant",
    "part_batie": "Part bâtie",
    "nouveaux_batiments": "Nouveaux bâtiments",
    "nouvellement_batie": "Nouvellement bâtie",
    "surface_consommee_m2": "Surface consommée (m²)",
    "gisement_avant": "Gisement avant",
    "gisement": "Gisement",
}


@dataclass
class Evolution:
    """Two observations compared.

    Attributes
    ----------
    depuis, jusqua
        Dates of the two observations.
    layers
        Evolution layer name → frame.
    """

    depuis: dt.date
    jusqua: dt.date
    layers: dict[str, gpd.GeoDataFrame]

    def counts(self) -> dict[str, int | float]:
        """French label → number of changes."""
        parcelles = self.layers["evolution_parcelles"]
        kinds = parcelles["changement"].value_counts()  # the lineage
        classes = np.zeros(len(parcelles), dtype=bool)
        for column in parcelles.columns:
            if column.startswith("avant_classe_"):
                now = parcelles[column.removeprefix("avant_")]
                classes |= (now.fillna("") != parcelles[column].fillna("")).to_numpy()
        classes &= (parcelles["changement"] != "supprimée").to_numpy()
        zae = self.layers["evolution_zae"]
        friches = self.layers["evolution_friches"]["changement"].value_counts()
        sites = self.layers["evolution_gisements"]["statut"].value_counts()
        return {
            # A parcel split in two gives two rows « divisée »: the parcels split are counted.
            "parcelles divisées": int(parcelles.loc[parcelles["changement"] == "divisée",
                                                    "idu_precedents"].nunique()),
            "parcelles fusionnées": int(kinds.get("fusionnée", 0)),
            "parcelles renumérotées": int(kinds.get("renumérotée", 0)),
            "parcelles créées": int(kinds.get("créée", 0)),
            "parcelles supprimées": int(kinds.get("supprimée", 0)),
            "parcelles nouvellement bâties": int(parcelles["nouvellement_batie"]
                                                 .fillna(False).astype(bool).sum()),
            "changements de classe": int(classes.sum()),
            "gisements nouveaux": int(sites.get(evolution.GISEMENT_NOUVEAU, 0)),
            "gisements disparus": int(sites.get(evolution.GISEMENT_DISPARU, 0)),
            "gisements réduits": int(sites.get(evolution.GISEMENT_REDUIT, 0)),
            "foncier consommé en ZAE (ha)": round(float(zae["surface_consommee_ha"].sum()), 2)
            if len(zae) else 0.0,
            "unités de ZAE libérées": int(zae["unites_liberees"].sum()) if len(zae) else 0,
            "unités de ZAE occupées": int(zae["unites_occupees"].sum()) if len(zae) else 0,
            "friches nouvelles": int(friches.get(evolution.FRICHE_NOUVELLE, 0)),
            "friches disparues": int(friches.get(evolution.FRICHE_DISPARUE, 0)),
            "friches de statut modifié": int(friches.get(evolution.FRICHE_STATUT_MODIFIE, 0)),
        }


@dataclass
class Observed:
    """What :func:`observe` made: the staged observation and outputs, the evolution."""

    date: dt.date
    staged: list[StagedFile] = field(default_factory=list)
    evolution: Evolution | None = None
    observation: history.StagedObservation | None = None


def observe(territory: Territory, writer: GeoPackageWriter, *,
            say: Progress | None = None) -> Observed:
    """Stage the build's observation; write the evolution since the previous one.

    Parameters
    ----------
    territory
        The territory (date of observation, built-share threshold, output folder).
    writer
        The build's GeoPackage, every layer written, not yet published.
    say
        Progress messages.

    Returns
    -------
    Observed
        The staged files (the history's commit and ``evolution.csv``), to publish with
        the build's outputs, and the evolution (``None`` for a first observation).
    """
    with reading_unpublished():
        return _observe(territory, writer, say or (lambda msg: log.info(msg)))


def _observe(territory: Territory, writer: GeoPackageWriter, say: Progress) -> Observed:
    folder = history.history_folder(territory.gpkg_path)
    date = capture.observation_date(writer.tmp, territory.options.date_observation)
    say(f"Observation du {date.strftime('%d/%m/%Y')} ajoutée à l'historique…")
    observed = Observed(date=date)
    staged = capture.stage_capture(writer.tmp, folder, date, rule=territory.options.vacance)
    observed.staged.append(staged)
    observed.observation = staged
    earlier = [d for d in history.observation_dates(folder) if d < date]
    if not earlier:
        return observed
    say(f"Évolution depuis l'observation du {earlier[-1].strftime('%d/%m/%Y')}…")
    old, new = history.read_changes(folder, earlier[-1], date, manifest=staged.manifest())
    result = compare(old, new, writer.tmp,
                     seuil_bati=territory.options.analysis.seuil_bati_gisement)
    write_layers(writer, result)
    observed.staged.append(stage_csv(result, territory.output_dir / "evolution.csv"))
    observed.evolution = result
    return observed


@dataclass(frozen=True)
class FirstSeen:
    """Date (ISO) of the first observation where each zone and each land unit appears.

    Made from the history by :func:`first_seen`; the CNIG export's identification
    dates (:mod:`observatoire.publish.cnig`).
    """

    zae: Mapping[str, str]
    unites: Mapping[str, str]


def first_seen(observation: history.StagedObservation) -> FirstSeen:
    """Date of the first observation where each ZAE and each land unit appears.

    Over every observation of the history and ``observation`` (committed or not):
    the CNIG export's ``site_identif_date`` and ``terr_identif_date``.
    """
    manifest = observation.manifest()

    def first(name: str, key: str) -> dict[str, str]:
        table = history.read_table(observation.folder, name, columns=[key], manifest=manifest)
        if key not in table:
            return {}
        table = table.dropna(subset=[key])
        # The first date of each identifier: a stable sort on the date, first row kept
        # (a group-by ``min`` on date objects compares them one by one in Python).
        iso = pd.Series(pd.to_datetime(table["date_observation"]).to_numpy(), index=table.index)
        table = table.assign(_t=iso).sort_values("_t", kind="stable")
        table = table.drop_duplicates(key)
        days = table["_t"].dt.strftime("%Y-%m-%d")
        return dict(zip(table[key].astype(str), days, strict=True))

    return FirstSeen(zae=first("zae", "zae_id"), unites=first("parcelles", "uf_id"))


def evolve(territory: Territory, *, depuis: dt.date | None = None,
           jusqua: dt.date | None = None) -> tuple[Evolution, list[Path]]:
    """Compare two observations of the history; write the layers and ``evolution.csv``.

    The layers are added to (or replaced in) the published GeoPackage, atomically.

    Parameters
    ----------
    territory
        The territory file (output folder, built-share threshold).
    depuis
        The earlier observation; ``None``: the one before ``jusqua``.
    jusqua
        The later observation; ``None``: the latest.

    Returns
    -------
    tuple
        The evolution, and the files published.

    Raises
    ------
    BuildError
        When the observatory or the history is missing, has fewer than two
        observations, or not the dates asked (the message lists those available).
    """
    gpkg = territory.gpkg_path
    if not gpkg.exists():
        raise BuildError(f"{gpkg} : observatoire absent ; lancez d'abord « observatoire build "
                         f"--config {territory.path} »")
    folder = history.history_folder(gpkg)
    dates = history.observation_dates(folder)
    listed = ", ".join(d.isoformat() for d in dates) or "aucune"
    if len(dates) < 2:
        raise BuildError(f"{folder} : il faut au moins deux observations pour une évolution "
                         f"(observations : {listed}) ; reconstruisez avec des sources d'une "
                         f"autre date (date_observation dans [territoire])")
    for asked, option in ((depuis, "--depuis"), (jusqua, "--jusqua")):
        if asked is not None and asked not in dates:
            raise BuildError(f"{option} {asked.isoformat()} : pas d'observation à cette date "
                             f"dans {folder} (observations : {listed})")
    jusqua = jusqua or dates[-1]
    if depuis is None:
        before = [d for d in dates if d < jusqua]
        if not before:
            raise BuildError(f"--jusqua {jusqua.isoformat()} : aucune observation avant "
                             f"(observations : {listed})")
        depuis = before[-1]
    if depuis >= jusqua:
        raise BuildError(f"--depuis ({depuis.isoformat()}) doit précéder --jusqua "
                         f"({jusqua.isoformat()}) ; observations : {listed}")
    old, new = history.read_changes(folder, depuis, jusqua)
    result = compare(old, new, gpkg, seuil_bati=territory.options.analysis.seuil_bati_gisement)
    csv = stage_csv(result, territory.output_dir / "evolution.csv")
    try:
        with GeoPackageWriter(gpkg) as writer, reading_unpublished():
            writer.start_from(gpkg)
            write_layers(writer, result)
            from observatoire.publish.qgis import finalize_gpkg

            writer.commit(finalize=lambda con: finalize_gpkg(con, {}, territory))
        published = [gpkg, csv.publish()]
    finally:
        csv.discard()
    log.info("Évolution du %s au %s publiée", depuis, jusqua)
    return result, published


def compare(old: history.Observation, new: history.Observation, gpkg: Path, *,
            seuil_bati: float) -> Evolution:
    """Compute the evolution layers between two observations.

    ``gpkg`` (the observatory of ``new``) gives the shapes of the ZAE and friches.
    """
    parcelles = evolution.evolution_parcelles(old, new, seuil_bati=seuil_bati)
    sites = evolution.evolution_gisements(old, new, parcelles)
    return Evolution(depuis=old.date, jusqua=new.date, layers={
        "evolution_parcelles": parcelles,
        "evolution_zae": _with_shapes(gpkg, "zae", "zae_id",
                                      evolution.evolution_zae(old, new, parcelles)),
        "evolution_friches": _with_shapes(gpkg, "friches", "site_id",
                                          evolution.evolution_friches(old, new)),
        "evolution_gisements": _site_shapes(sites, old, new),
    })


def write_layers(writer: GeoPackageWriter, result: Evolution) -> None:
    """Write (or replace) the evolution layers in the GeoPackage of ``writer``."""
    period = (f" (du {result.depuis.strftime('%d/%m/%Y')} au "
              f"{result.jusqua.strftime('%d/%m/%Y')})")
    for name, frame in result.layers.items():
        frame = frame.copy()
        frame.insert(0, "date_depuis", result.depuis.isoformat())
        frame.insert(1, "date_jusqua", result.jusqua.isoformat())
        writer.write(name, frame, description=LAYERS[name] + period,
                     geometry_type="Point" if _points(frame) else "MultiPolygon")


def stage_csv(result: Evolution, dest: Path) -> StagedFile:
    """Write the parcels' evolution to ``dest`` (French headers, ``;``, decimal comma)."""
    table = pd.DataFrame(result.layers["evolution_parcelles"].drop(columns="geometry"))
    headers = dict(CSV_HEADERS)
    for column in table.columns:
        if column.startswith("avant_classe_"):
            profile = column.removeprefix("avant_classe_")
            headers[column] = f"Classe {profile} avant"
            headers[f"classe_{profile}"] = f"Classe {profile}"
            headers[f"critere_{profile}"] = f"Critère ayant le plus changé ({profile})"
    table = table[[c for c in headers if c in table.columns]].rename(columns=headers)
    table.insert(0, "Observation précédente", result.depuis.isoformat())
    table.insert(1, "Observation", result.jusqua.isoformat())
    staged = StagedFile(dest)
    table.to_csv(staged.tmp, index=False, sep=";", decimal=",", encoding="utf-8-sig")
    return staged


def _points(frame: gpd.GeoDataFrame) -> bool:
    types = set(frame.geometry.dropna().geom_type)
    return bool(types) and types <= {"Point", "MultiPoint"}


def _with_shapes(gpkg: Path, layer: str, key: str, table: pd.DataFrame) -> gpd.GeoDataFrame:
    """Give an evolution table the current shapes of its ZAE or friches (by identifier)."""
    if layer not in {n for n, _ in pyogrio.list_layers(gpkg)}:
        return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries([None] * len(table)),
                                crs=None)
    shapes = pyogrio.read_dataframe(gpkg, layer=layer, columns=[key])
    shapes = shapes.drop_duplicates(key).set_index(key)
    geometry = shapes.geometry.reindex(table[key]).to_numpy()
    return gpd.GeoDataFrame(table.reset_index(drop=True), geometry=geometry, crs=shapes.crs)


def _site_shapes(sites: pd.DataFrame, old: history.Observation,
                 new: history.Observation) -> gpd.GeoDataFrame:
    """Shape of each candidate site: its parcels' union (the old ones for a lost site)."""
    def outlines(obs: history.Observation) -> gpd.GeoSeries:
        parcels = obs.parcelles
        if "gisement_id" not in parcels:
            return gpd.GeoSeries([], crs=parcels.crs)
        parcels = parcels[parcels["gisement_id"].isin(sites["gisement_id"])]
        if obs.inchangees is not None:  # the unchanged parcels of the sites
            kept = obs.inchangees[obs.inchangees["gisement_id"].isin(sites["gisement_id"])]
            parcels = pd.concat([parcels[["gisement_id", parcels.geometry.name]],
                                 kept[["gisement_id", kept.geometry.name]]],
                                ignore_index=True)
            parcels = gpd.GeoDataFrame(parcels, geometry="geometry", crs=obs.parcelles.crs)
        return parcels.dissolve("gisement_id").geometry

    now, before = outlines(new), outlines(old)
    lost = (sites["statut"] == evolution.GISEMENT_DISPARU).to_numpy()
    geometry = now.reindex(sites["gisement_id"]).to_numpy()
    geometry[lost] = before.reindex(sites.loc[lost, "gisement_id"]).to_numpy()
    return gpd.GeoDataFrame(sites.reset_index(drop=True), geometry=list(geometry),
                            crs=new.parcelles.crs)
