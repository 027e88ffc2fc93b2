"""The build: stage → read the context → analyse by partitions → GeoPackage → publication.

Every territory goes the same way; a small one is a single partition:

1. **Staging** (:mod:`~observatoire.pipeline.staging`) — the parcel files, read by
   groups and split by commune into GeoParquet files in a temporary folder.
2. **Context** — the other sources (:func:`observatoire.ingest.ingest`, cut to the
   parcels' box plus 5 km) and the analysis inputs (:mod:`observatoire.readers.extra`);
   the buildings are streamed tile by tile into the GeoPackage
   (:mod:`~observatoire.pipeline.batiments`), the roads written at once.
3. **Analysis** (:mod:`~observatoire.pipeline.partitions`) — partitions of
   neighbouring communes through the executor; ``parcelles`` and
   ``unites_foncieres`` appended to the GeoPackage as they come.
4. **ZAE inventory and mutabilité**, then the other layers written.
5. **Publication** (:mod:`~observatoire.pipeline.publication`) — maps, report,
   atlas and exports, each to a staged file.

Every output is written to a temporary file next to its destination; they replace
the previous outputs only once all of them are complete, so a failed or killed
build leaves the previous observatory intact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from observatoire import __version__
from observatoire.analysis import extra_inputs
from observatoire.analysis.friches import friche_counts
from observatoire.analysis.zae_inventory import (
    EstablishmentHistory,
    inventory,
    observation_date,
)
from observatoire.checks import missing_source_warnings, source_warnings, warn
from observatoire.config import Territory
from observatoire.errors import BuildError
from observatoire.executor import Executor, ProcessExecutor, available_cores, default_executor
from observatoire.geopackage import GeoPackageWriter, LayerSum, layer_checksum, layer_reader
from observatoire.ingest import Layers, context_extent, ingest
from observatoire.memory import trim
from observatoire.mutabilite import mutabilite_layers
from observatoire.observation import history
from observatoire.observation.history import history_folder
from observatoire.observation.run import observe
from observatoire.outputs import StagedFile
from observatoire.pipeline.batiments import stream_batiments
from observatoire.pipeline.partitions import Views, analyse_partitions
from observatoire.pipeline.publication import publish
from observatoire.pipeline.staging import stage_parcels, staging_folder
from observatoire.progress import Progress
from observatoire.publish.qgis import finalize_gpkg
from observatoire.readers.etablissements import ETABLISSEMENTS, mask_natural_persons
from observatoire.readers.extra import read_extra_sources
from observatoire.readers.lineage import ReadResult, SourceReport, checksum_files
from observatoire.readers.provenance import attribute_sources
from observatoire.schema import LAYERS, PARCELLES, TABLES, empty_layer

log = logging.getLogger(__name__)

#: Parcel files heavier than this get a worker process beside the build by default
#: (about 200,000 parcels of gzipped Etalab GeoJSON: beyond an intercommunality);
#: a lighter territory is analysed in this process (a worker would cost more than it
#: saves).
WORKER_BYTES = 16 * 2**20


@dataclass
class BuildResult:
    """What a build produced."""

    gpkg: Path
    outputs: list[Path]
    layer_counts: dict[str, int]
    checksums: dict[str, str]
    reports: list[SourceReport]
    timings: dict[str, float] = field(default_factory=dict)


def build(territory: Territory, *, progress: Progress | None = None,
          executor: Executor | None = None) -> BuildResult:
    """Build the observatory of ``territory``.

    Parameters
    ----------
    territory
        The loaded territory file (:func:`observatoire.config.load_territory`: its
        settings are checked).
    progress
        Called with a French message at each stage.
    executor
        An :mod:`observatoire.executor` executor that analyses the partitions
        (serially, in worker processes or on a Dask cluster), with the same
        results. ``None``: a worker process beside this one when the parcel files
        weigh more than :data:`WORKER_BYTES` and the machine has two cores, in this
        process otherwise.

    Returns
    -------
    BuildResult
        Paths, layer counts and content checksums of the outputs.

    Raises
    ------
    ObservatoireError
        On bad input; no output is replaced.
    """
    warn(missing_source_warnings(territory))
    say: Progress = progress or (lambda msg: log.info(msg))
    timings: dict[str, float] = {}
    dest = territory.gpkg_path
    with GeoPackageWriter(dest) as writer:
        with staging_folder(territory) as folder, _runner(territory, executor) as runner:
            built = _analyse(territory, writer, Path(folder), say, timings, runner)
        layers = built.layers
        attribute_sources(layers.reports, territory, {
            "zonage": layers.zonage, "friches": layers.friches,
            "etablissements": layers.etablissements})
        writer.write("sources", sources_table(layers.reports, territory.path.parent),
                     description="Sources lues : chemin, format, empreinte SHA-256, "
                                 "entités lues et gardées, CRS d'origine, réparations, "
                                 "producteur et date des données")
        writer.write("execution", _run_table(territory, built.checksums),
                     description="Exécution : date, version, territoire, empreintes des couches")
        timings["ecriture"] = time.perf_counter() - built.write_start

        t = time.perf_counter()
        extra: list[StagedFile] = []
        try:
            # The observation is staged, and the evolution layers written, before the
            # styles and the report; the history is committed with the other outputs.
            observed = observe(territory, writer, say=say)
            extra.extend(observed.staged)
            built.views["observation"] = observed
            publish(layers, built.outputs, built.tables, built.views, territory, say, extra)
            timings["publication"] = time.perf_counter() - t
            say("Publication des résultats…")
            outputs = built.outputs
            writer.commit(finalize=lambda con: finalize_gpkg(con, outputs, territory))
            published = [dest]
            for stage in extra:
                try:
                    stage.publish()
                except BuildError as exc:
                    raise BuildError(f"{exc} ; déjà publiés : "
                                     f"{', '.join(map(str, published))}") from None
                published.append(stage.dest)
        finally:
            for stage in extra:
                stage.discard()
    for name, count in built.counts.items():
        log.debug("%s : %d entités, empreinte %s", name, count, built.checksums[name])
    return BuildResult(
        gpkg=dest,
        outputs=[dest, *[s.dest for s in extra]],
        layer_counts=built.counts,
        checksums=built.checksums,
        reports=layers.reports,
        timings=timings,
    )


def _runner(territory: Territory, executor: Executor | None
            ) -> contextlib.AbstractContextManager[Executor | None]:
    """Return the executor of the partitions: the one given, else by the parcel files' weight.

    ``None`` (serial, in this process) for a territory whose parcel files weigh
    less than :data:`WORKER_BYTES`.
    """
    if executor is not None:
        return contextlib.nullcontext(executor)
    if wants_worker(territory):
        return default_executor()
    return contextlib.nullcontext(None)


def wants_worker(territory: Territory) -> bool:
    """Whether the parcel files weigh more than :data:`WORKER_BYTES` (a worker by default)."""
    source = territory.source("parcelles")
    return source is not None and sum(p.stat().st_size for p in source.paths) > WORKER_BYTES


@dataclass
class _Built:
    """The layers written, and what the publication needs."""

    layers: Layers
    outputs: dict[str, gpd.GeoDataFrame]
    tables: dict[str, pd.DataFrame]
    counts: dict[str, int]
    checksums: dict[str, str]
    write_start: float
    views: Views


def _analyse(territory: Territory, writer: GeoPackageWriter, folder: Path, say: Progress,
             timings: dict[str, float], executor: Executor | None) -> _Built:
    """Stage the parcels, read the context, analyse and write by partitions, then the rest."""
    t = time.perf_counter()
    say("Lecture et normalisation des parcelles, commune par commune…")
    with _stager(executor) as stager:
        staged = stage_parcels(territory, folder, executor=stager, progress=say)
    timings["lecture_parcelles"] = time.perf_counter() - t
    t = time.perf_counter()
    say("Lecture et normalisation des autres sources…")
    streamed = ("batiments",) if territory.source("batiments") is not None else ()
    layers = ingest(territory, parcelles=ReadResult(empty_layer(PARCELLES, territory.crs),
                                                    staged.report), bounds=staged.bounds,
                    streamed=streamed, parcel_parts=staged.meeting)
    extra = read_extra_sources(territory, bounds=staged.bounds)
    layers.reports.extend(extra.reports())
    layers.available |= extra.available()
    timings["lecture"] = time.perf_counter() - t

    written: dict[str, LayerSum] = {}
    buildings = None
    if streamed:
        t = time.perf_counter()
        say("Bâtiments, tuile par tuile…")
        written["batiments"] = LayerSum()
        report = stream_batiments(territory, writer, context_extent(staged.bounds),
                                  written["batiments"], executor=_local(executor),
                                  progress=say)
        layers.reports[[r.kind for r in layers.reports].index("batiments")] = report
        buildings = layer_reader(writer.tmp, "batiments")
        timings["lecture_batiments"] = time.perf_counter() - t
    warn(source_warnings(layers.reports, territory))

    # Roads are written now: the analysis indexes them once for the distances, and the
    # build need not hold them beside that index (nor, with worker processes, at all).
    written["routes"] = LayerSum()
    _write_layers(writer, {"routes": layers.routes})
    written["routes"].add(layers.routes)

    t = time.perf_counter()
    result = analyse_partitions(
        staged, layers, extra_inputs(extra.read, contraintes=extra.contraintes), territory,
        writer, executor=executor, target=territory.options.parcelles_par_partition,
        buildings=buildings, say=say)
    timings["analyse"] = time.perf_counter() - t
    timings.update({f"analyse.{k}": v for k, v in result.timings.items()})
    written.update(result.written)

    t = time.perf_counter()
    say("Inventaire des ZAE (art. L318-8-2 du code de l'urbanisme)…")
    zae, zae_unites = inventory(
        result.outputs["zae"], result.views["zae_unites_candidates"],
        result.views["batiments_zae"] if streamed else None,
        layers.etablissements,
        date_observation=territory.options.date_observation,
        rule=territory.options.vacance, historique=_establishment_history(territory, layers))
    timings["inventaire_zae"] = time.perf_counter() - t

    t = time.perf_counter()
    say("Écriture du GeoPackage…")
    outputs = {name: frame for name, frame in layers.spatial().items()
               if name not in ("parcelles", "routes") and name not in streamed}
    outputs.update({"zae": zae, "gisements": result.outputs["gisements"],
                    "zae_unites": zae_unites, "friches": result.outputs["friches"],
                    "friches_surfaces": result.outputs["friches_surfaces"]})
    count_friches(outputs, layers.reports, say)
    if layers.etablissements is not None:
        outputs["etablissements"] = mask_natural_persons(layers.etablissements)
    m = time.perf_counter()
    outputs.update(mutabilite_layers(outputs, layers, extra, territory, gpkg=writer.tmp,
                                     say=say))
    timings["mutabilite"] = time.perf_counter() - m
    checksums = {name: total.checksum() for name, total in written.items()}
    checksums.update({name: layer_checksum(frame) for name, frame in outputs.items()})
    counts = {name: total.rows for name, total in written.items()}
    counts.update({name: len(frame) for name, frame in outputs.items()})
    _write_layers(writer, outputs)
    # What the publication does not read is let go: memory for the maps and exports.
    result.views.pop("zae_unites_candidates", None)
    result.views.pop("batiments_zae", None)
    trim()
    return _Built(layers=layers, outputs=outputs, tables=result.tables, counts=counts,
                  checksums=checksums, write_start=t, views=result.views)


def _establishment_history(territory: Territory, layers: Layers) -> EstablishmentHistory | None:
    """Read the earlier observations of the establishments (``None``: not used).

    The inventory is computed before this build's observation is captured: the
    observations read are those of the history dated before the inventory's date.
    Without ``date_observation`` the inventory is dated today and the observation
    by the cadastre's vintage: an earlier build of the same data would pass for an
    earlier observation, so the history is not used (said in the log).
    """
    if layers.etablissements is None:
        return None
    folder = history_folder(territory.gpkg_path)
    if territory.options.date_observation is None:
        if history.observation_dates(folder):
            log.warning("Vacance des ZAE : l'historique n'est pas utilisé sans "
                        "date_observation (dans [territoire]) ; règle des dates de fermeture "
                        "du millésime d'établissements")
        return None
    date, _ = observation_date(territory.options.date_observation)
    return history.read_establishments(folder, before=date)


def _local(executor: Executor | None) -> Executor | None:
    """Return ``executor`` when its workers run on this machine (they read local files)."""
    return executor if isinstance(executor, ProcessExecutor) else None


def _stager(executor: Executor | None) -> contextlib.AbstractContextManager[Executor | None]:
    """Return the executor that stages the parcel files: every core when the build has workers.

    Staging writes files in a local folder: only processes of this machine do it
    (a Dask cluster's workers may run elsewhere), while this process waits.
    """
    if isinstance(executor, ProcessExecutor):
        return ProcessExecutor(max(executor.workers, available_cores()))
    return contextlib.nullcontext(None)


def _write_layers(writer: GeoPackageWriter, outputs: dict[str, gpd.GeoDataFrame]) -> None:
    for name, frame in outputs.items():
        schema = LAYERS.get(name) or TABLES.get(name) or (
            ETABLISSEMENTS if name == "etablissements" else None)
        writer.write(name, frame, description=getattr(schema, "description", "") or name,
                     geometry_type=schema.geometry_type if schema else None)


def count_friches(outputs: dict[str, gpd.GeoDataFrame], reports: list[SourceReport],
                  say: Progress) -> None:
    """Say how many friches are in the territory and nearby, and count absent parcel ids.

    The parcel ids of the friches that the territory's cadastre lacks (an older
    vintage, renumbered since) are counted in the friches' report (the
    ``reparations`` of the ``sources`` table) and said in the build output.
    """
    report = next((r for r in reports if r.kind == "friches"), None)
    if report is None or "friches" not in outputs:
        return
    n = friche_counts(outputs["friches"], outputs["friches_surfaces"])
    say(f"Friches : {n['dans_territoire']} dans le territoire, {n['a_proximite']} à proximité "
        f"(à moins de 5 km, hors du territoire)")
    if not n["idu_absents"]:
        return
    report.count("identifiants de parcelle absents du cadastre", n["idu_absents"])
    report.count("friches listant des parcelles absentes du cadastre",
                 n["friches_idu_absents"])
    how = [f"{n['par_geometrie']} rattachée(s) par géométrie (point ou périmètre)",
           f"{n['par_identifiant']} par leurs autres identifiants",
           f"{n['sans_parcelle']} à aucune parcelle du territoire"]
    kept = [text for text, k in zip(how, ("par_geometrie", "par_identifiant", "sans_parcelle"),
                                    strict=True) if n[k]]
    say(f"friches : {n['idu_absents']} identifiant(s) de parcelle absent(s) du cadastre "
        f"({n['friches_idu_absents']} friche(s)) ; " + ", ".join(kept))


def sources_table(reports: list[SourceReport], base: Path) -> pd.DataFrame:
    """Return the ``sources`` table: one row per source (checksum, counts, CRS, repairs).

    ``producteur``, ``date_donnees`` and ``date_donnees_origine`` credit each source
    (Licence Ouverte 2.0): see :mod:`observatoire.readers.provenance`.
    """
    rows = []
    for r in reports:
        rows.append({
            "type_source": r.kind,
            "chemin": " | ".join(_rel(p, base) for p in r.paths),
            "format": r.format,
            "couche": r.layer,
            "sha256": r.checksum,
            "entites_lues": r.features_read,
            "entites_gardees": r.features_kept,
            "crs_origine": r.crs_in,
            "reparations": "; ".join(f"{k} : {v}" for k, v in sorted(r.repairs.items())) or None,
            "date_lecture": r.read_at,
            "producteur": r.producer or None,
            "date_donnees": r.data_date or None,
            "date_donnees_origine": r.data_date_origin or None,
        })
    return pd.DataFrame(rows, columns=["type_source", "chemin", "format", "couche", "sha256",
                                       "entites_lues", "entites_gardees", "crs_origine",
                                       "reparations", "date_lecture", "producteur",
                                       "date_donnees", "date_donnees_origine"])


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _run_table(territory: Territory, checksums: dict[str, str]) -> pd.DataFrame:
    rows = [{
        "date_execution": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "version": __version__,
        "territoire": territory.name,
        "communes": ",".join(territory.communes),
        "crs": territory.crs,
        "fichier_territoire_sha256": checksum_files([territory.path]),
        "empreintes_couches": "; ".join(f"{k}={v}" for k, v in checksums.items()),
    }]
    return pd.DataFrame(rows)
