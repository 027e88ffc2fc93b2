"""The whole build: ingest → analyse → GeoPackage → maps and report, published atomically.

Every output is written to a temporary file next to its destination; they replace
the previous outputs only once all of them are complete, so a failed or killed
build leaves the previous observatory intact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from observatoire import __version__
from observatoire.config import Territory
from observatoire.errors import BuildError
from observatoire.geopackage import GeoPackageWriter, layer_checksum
from observatoire.ingest import Layers, ingest
from observatoire.memory import trim
from observatoire.outputs import StagedFile
from observatoire.publish.qgis import finalize_gpkg
from observatoire.readers.etablissements import ETABLISSEMENTS
from observatoire.readers.lineage import SourceReport, checksum_files
from observatoire.readers.provenance import attribute_sources
from observatoire.schema import LAYERS, TABLES

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class BuildResult:
    """What a build produced."""

    gpkg: Path
    outputs: list[Path]
    layer_counts: dict[str, int]
    checksums: dict[str, str]
    reports: list[SourceReport]
    timings: dict[str, float] = field(default_factory=dict)


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


def build(territory: Territory, *, progress: Progress | None = None,
          executor: Any = None) -> BuildResult:
    """Build the observatory of ``territory``.

    Parameters
    ----------
    territory
        The loaded territory file (:func:`observatoire.config.load_territory`: its
        settings are checked).
    progress
        Called with a French message at each stage.
    executor
        An :mod:`observatoire.executor` executor: indicators and scores are then
        computed commune by commune through it (serially, in worker processes or on
        a Dask cluster), with the same results. ``None``: in one pass, or, for a
        build by partition, :func:`observatoire.executor.default_executor` (a
        worker process beside this one on two cores or more).

    Returns
    -------
    BuildResult
        Paths, layer counts and content checksums of the outputs.

    Raises
    ------
    ObservatoireError
        On bad input; no output is replaced.
    """
    from observatoire.checks import missing_source_warnings, warn
    from observatoire.partitioned import by_partition, staging_folder

    warn(missing_source_warnings(territory))
    say = progress or (lambda msg: log.info(msg))
    timings: dict[str, float] = {}
    dest = territory.gpkg_path
    base = territory.path.parent
    partitioned = by_partition(territory)
    with GeoPackageWriter(dest) as writer:
        if partitioned:
            from observatoire.executor import default_executor

            with staging_folder(territory) as folder, \
                    (contextlib.nullcontext(executor) if executor is not None
                     else default_executor()) as runner:
                built = _build_by_partition(territory, writer, Path(folder), say, timings,
                                            runner)
        else:
            built = _build_whole(territory, writer, say, timings, executor)
        layers, outputs = built.layers, built.outputs
        attribute_sources(layers.reports, territory, {
            "zonage": layers.zonage, "friches": layers.friches,
            "etablissements": layers.etablissements})
        writer.write("sources", sources_table(layers.reports, base),
                     description="Sources lues : chemin, format, empreinte SHA-256, "
                                 "entités lues et gardées, CRS d'origine, réparations, "
                                 "producteur et date des données")
        writer.write("execution", _run_table(territory, built.checksums),
                     description="Exécution : date, version, territoire, empreintes des couches")
        timings["ecriture"] = time.perf_counter() - built.write_start

        t = time.perf_counter()
        extra: list[StagedFile] = []
        try:
            _publish(layers, outputs, built.tables, territory, say, extra, views=built.views)
            timings["publication"] = time.perf_counter() - t
            say("Publication des résultats…")
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


@dataclass
class _Built:
    """The layers written by either build, and what the publication needs."""

    layers: Layers
    outputs: dict[str, gpd.GeoDataFrame]
    tables: dict[str, pd.DataFrame]
    counts: dict[str, int]
    checksums: dict[str, str]
    write_start: float
    views: dict[str, Any] | None = None


def _write_layers(writer: GeoPackageWriter, outputs: dict[str, gpd.GeoDataFrame]) -> None:
    for name, frame in outputs.items():
        schema = LAYERS.get(name) or TABLES.get(name) or (
            ETABLISSEMENTS if name == "etablissements" else None)
        writer.write(name, frame, description=_description(name, schema),
                     geometry_type=schema.geometry_type if schema else None)


def _build_whole(territory: Territory, writer: GeoPackageWriter, say: Progress,
                 timings: dict[str, float], executor: Any) -> _Built:
    """Read every source, analyse the whole territory in memory, write every layer."""
    t0 = time.perf_counter()
    say("Lecture et normalisation des sources…")
    layers = ingest(territory)
    timings["lecture"] = time.perf_counter() - t0

    outputs, tables = _analyse(layers, territory, say, timings, executor)
    count_friches(outputs, layers.reports, say)

    t = time.perf_counter()
    say("Écriture du GeoPackage…")
    checksums = {name: layer_checksum(frame) for name, frame in outputs.items()}
    _write_layers(writer, outputs)
    return _Built(layers=layers, outputs=outputs, tables=tables,
                  counts={name: len(frame) for name, frame in outputs.items()},
                  checksums=checksums, write_start=t)


def _build_by_partition(territory: Territory, writer: GeoPackageWriter, folder: Path,
                        say: Progress, timings: dict[str, float], executor: Any) -> _Built:
    """Stage the parcels, analyse and write them commune by commune, then the rest."""
    from observatoire.analysis import extra_inputs
    from observatoire.analysis.zae_inventory import inventory
    from observatoire.ingest import context_extent
    from observatoire.partitioned import (
        LayerSum,
        analyse_partitions,
        layer_reader,
        stage_parcels,
        stream_batiments,
    )
    from observatoire.readers.etablissements import mask_natural_persons
    from observatoire.readers.extra import read_extra_sources
    from observatoire.readers.lineage import ReadResult
    from observatoire.schema import PARCELLES, empty_layer

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
    _warn_sources(layers, territory)

    # Roads are written now: the analysis indexes them once for the distances, and the
    # build need not hold them beside that index (nor, with worker processes, at all).
    written["routes"] = LayerSum()
    _write_layers(writer, {"routes": layers.routes})
    written["routes"].add(layers.routes)

    t = time.perf_counter()
    result = analyse_partitions(
        staged, layers, extra_inputs(
            mnt=extra.mnt, contraintes=extra.contraintes, voies_ferrees=extra.voies_ferrees,
            postes_electriques=extra.postes_electriques, proprietaires=extra.proprietaires),
        territory, writer, executor=executor, buildings=buildings, say=say)
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
        rule=territory.options.vacance)
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
    _mutabilite(outputs, layers, extra, territory, say, timings, gpkg=writer.tmp)
    checksums = {name: total.checksum() for name, total in written.items()}
    checksums.update({name: layer_checksum(frame) for name, frame in outputs.items()})
    counts = {name: total.rows for name, total in written.items()}
    counts.update({name: len(frame) for name, frame in outputs.items()})
    _write_layers(writer, outputs)
    # What the publication does not read is let go: memory for the maps and exports.
    for name in ("zae_unites_candidates", "batiments_zae"):
        result.views.pop(name, None)
    trim()
    return _Built(layers=layers, outputs=outputs, tables=result.tables, counts=counts,
                  checksums=checksums, write_start=t, views=result.views)


def _warn_sources(layers: Layers, territory: Territory) -> None:
    """Warn of the sources read that hold nothing for the territory (all of them read)."""
    from observatoire.checks import source_warnings, warn

    warn(source_warnings(layers.reports, territory))


def _local(executor: Any) -> Any:
    """Return ``executor`` when its workers run on this machine (they read local files)."""
    from observatoire.executor import ProcessExecutor

    return executor if isinstance(executor, ProcessExecutor) else None


def _stager(executor: Any) -> contextlib.AbstractContextManager[Any]:
    """Return the executor that stages the parcel files: every core when the build has workers.

    Staging writes files in a local folder: only processes of this machine do it
    (a Dask cluster's workers may run elsewhere), while this process waits.
    """
    from observatoire.executor import ProcessExecutor, available_cores

    if isinstance(executor, ProcessExecutor):
        return ProcessExecutor(max(executor.workers, available_cores()))
    return contextlib.nullcontext(None)


def _analyse(layers: Layers, territory: Territory, say: Progress, timings: dict[str, float],
             executor: Any = None) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, pd.DataFrame]]:
    """Compute indicators, scores, land units, candidate sites and the ZAE inventory.

    Returns
    -------
    tuple
        The layers to write (by name, in order) and the tables to publish as CSV.
    """
    from observatoire.analysis import analyse, extra_inputs
    from observatoire.analysis.zae_inventory import inventory
    from observatoire.readers.etablissements import mask_natural_persons
    from observatoire.readers.extra import read_extra_sources

    t = time.perf_counter()
    say("Lecture du MNT, des contraintes, des propriétaires…")
    extra = read_extra_sources(territory, bounds=tuple(layers.parcelles.total_bounds))
    layers.reports.extend(extra.reports())
    layers.available |= extra.available()
    timings["lecture_analyse"] = time.perf_counter() - t
    _warn_sources(layers, territory)

    t = time.perf_counter()
    say("Indicateurs, notation, unités foncières et gisements…")
    result = analyse(layers, extra=extra_inputs(
        mnt=extra.mnt, contraintes=extra.contraintes, voies_ferrees=extra.voies_ferrees,
        postes_electriques=extra.postes_electriques, proprietaires=extra.proprietaires),
        profiles=territory.profiles, options=territory.options.analysis, executor=executor,
        communes=territory.communes)
    timings["analyse"] = time.perf_counter() - t
    timings.update({f"analyse.{k}": v for k, v in result.timings.items()})
    outputs = dict(layers.spatial())
    outputs.update(result.layers())
    _mutabilite(outputs, layers, extra, territory, say, timings)

    t = time.perf_counter()
    say("Inventaire des ZAE (art. L318-8-2 du code de l'urbanisme)…")
    zae, zae_unites = inventory(
        outputs["zae"], outputs["unites_foncieres"],
        layers.batiments if "batiments" in layers.available else None,
        layers.etablissements,
        date_observation=territory.options.date_observation,
        rule=territory.options.vacance)
    outputs["zae"], outputs["zae_unites"] = zae, zae_unites
    if layers.etablissements is not None:
        outputs["etablissements"] = mask_natural_persons(layers.etablissements)
    timings["inventaire_zae"] = time.perf_counter() - t
    return outputs, {"meilleurs_sites": result.meilleurs_sites}


def count_friches(outputs: dict[str, gpd.GeoDataFrame], reports: list[SourceReport],
                  say: Progress) -> None:
    """Say how many friches are in the territory and nearby, and count absent parcel ids.

    The parcel ids of the friches that the territory's cadastre lacks (an older
    vintage, renumbered since) are counted in the friches' report (the
    ``reparations`` of the ``sources`` table) and said in the build output.
    """
    from observatoire.analysis.friches import friche_counts

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


def _mutabilite(outputs: dict[str, Any], layers: Layers, extra: Any, territory: Territory,
                say: Progress, timings: dict[str, float], *, gpkg: Path | None = None) -> None:
    """Add the mutabilité (Mutafriches) of friches and candidate sites to ``outputs``.

    Both builds call it once ``friches`` and ``gisements`` are whole; a build by
    partition gives the GeoPackage being written, where its parcels, buildings and
    roads are.
    """
    from observatoire.mutabilite import mutabilite_layers

    t = time.perf_counter()
    outputs.update(mutabilite_layers(outputs, layers, extra, territory, gpkg=gpkg, say=say))
    timings["mutabilite"] = time.perf_counter() - t


def _publish(layers: Layers, outputs: dict[str, gpd.GeoDataFrame],
             tables: dict[str, pd.DataFrame], territory: Territory, say: Progress,
             staged: list[StagedFile], *, views: dict[str, Any] | None = None) -> None:
    """Write maps, report and exports to staged files (appended to ``staged`` as made).

    ``views`` replaces the ``parcelles`` layer when the build went by partition and
    holds no layer of every parcel: ``carte`` (the best scored, for the map),
    ``zae`` (those met by a ZAE, for the CNIG export), ``rapport`` (returns every
    parcel, the report's columns only, read back from the GeoPackage),
    ``fond`` (returns the map's background: outlines of the communes, roads and
    buildings read back) and ``nb_parcelles``.
    """
    from observatoire.analysis.limites import commune_outlines
    from observatoire.publish.carte import stage_map
    from observatoire.publish.carte_selection import map_layers, map_message, map_units_and_sites
    from observatoire.publish.cnig import stage_cnig_export
    from observatoire.publish.cnig_csv import cartofriches_files, stage_cnig_csv
    from observatoire.publish.consultation import stage_consultation
    from observatoire.publish.meilleurs_sites import best_sites_table
    from observatoire.publish.rapport import stage_report

    for name, table in tables.items():
        csv = StagedFile(territory.output_dir / f"{name}.csv")
        if name == "meilleurs_sites":  # French headers with units, rounded values
            table = best_sites_table(table, profile=territory.profiles[0].name,
                                     crs=territory.crs)
        table.to_csv(csv.tmp, index=False, sep=";", decimal=",", encoding="utf-8-sig")
        staged.append(csv)
    names = commune_names(territory, layers, outputs)
    zae = outputs.get("zae")
    if zae is not None and len(zae) and "zae_unites" in outputs:
        date = territory.options.date_observation
        say("Fichiers de consultation des ZAE…")
        staged.extend(stage_consultation(zae, outputs["zae_unites"],
                                         output_dir=territory.output_dir,
                                         territory=territory.name, date_observation=date,
                                         progress=say, communes=names))
        explicit = territory.options.export_cnig is not None
        epci_nom, epci_siren = territory_epci(territory)
        if territory.options.export_cnig is not False:
            if (epci_nom and epci_siren) or explicit:
                say("Export CNIG Sites Économiques…")
                staged.append(stage_cnig_export(
                    zae, outputs["zae_unites"], layers.etablissements,
                    output_dir=territory.output_dir, epci_nom=epci_nom,
                    epci_siren=epci_siren, communes=names,
                    date_observation=date,
                    parcelles=views["zae"] if views else outputs["parcelles"],
                    rule=territory.options.vacance))
                staged.extend(stage_cnig_csv(
                    staged[-1].tmp, output_dir=territory.output_dir,
                    parcelles=views["zae"] if views else outputs["parcelles"],
                    friches=(layers.friches, layers.friches_surfaces),
                    cartofriches=cartofriches_files(territory)))
            else:
                log.warning("export CNIG non produit : %s", _missing_epci(territory))

    if territory.options.atlas and zae is not None and len(zae) \
            and "zae_unites" in outputs:
        from observatoire.publish.atlas import stage_atlas

        say("Atlas des ZAE (une fiche par zone, HTML et PDF)…")
        staged.extend(stage_atlas({**outputs, "routes": layers.routes}, layers.reports,
                                  territory, communes=commune_names(territory, layers),
                                  progress=say))
    fond: dict[str, gpd.GeoDataFrame] = {}
    if territory.options.carte or territory.options.rapport:
        if views is None:
            fond = {"limites_communes": commune_outlines(outputs["parcelles"])}
        else:
            fond = views["fond"]()  # roads and buildings read back from the GeoPackage
    if territory.options.carte:
        say("Carte interactive…")
        if views is None:
            drawn = map_layers(outputs, territory, say)
        else:
            drawn = {**outputs, "parcelles": views["carte"]}
            say(map_message(len(views["carte"]), views["nb_parcelles"], territory))
        staged.append(stage_map(map_units_and_sites(drawn, say), territory,
                                reports=layers.reports, communes=names, background=fond))
        del drawn
    if views is not None:
        # A build by partition lets go what the report does not read: memory for its
        # table of every parcel. (finalize_gpkg reads only the layers' columns.)
        for name in ("carte", "zae"):
            views.pop(name, None)
        if "zae_unites" in outputs:
            outputs["zae_unites"] = outputs["zae_unites"].iloc[:0].copy()
        trim()
    if territory.options.rapport:
        say("Rapport…")
        staged.append(stage_report({**outputs, "parcelles": views["rapport"]()} if views
                                   else outputs, layers.reports, territory, communes=names,
                                   background={"routes": layers.routes, **fond}))


def commune_names(territory: Territory, layers: Layers,
                  outputs: dict[str, gpd.GeoDataFrame] | None = None) -> dict[str, str]:
    """INSEE code → name of the communes the outputs show.

    The territory's communes, the ZAE's and the friches': names from the table of
    communes (:mod:`observatoire.communes`), else the friches' ``comm_nom``;
    ``[options.noms_communes]`` overrides both.
    """
    from observatoire.communes import commune_names as official

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
            from observatoire.communes import suggest_communes

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


def _missing_epci(territory: Territory) -> str:
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


def _description(name: str, schema: object) -> str:
    return getattr(schema, "description", "") or name


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
