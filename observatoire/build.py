"""The whole build: ingest → analyse → GeoPackage → maps and report, published atomically.

Every output is written to a temporary file next to its destination; they replace
the previous outputs only once all of them are complete, so a failed or killed
build leaves the previous observatory intact.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from observatoire import __version__
from observatoire.config import Territory
from observatoire.errors import BuildError
from observatoire.geopackage import GeoPackageWriter, layer_checksum
from observatoire.ingest import Layers, ingest
from observatoire.outputs import StagedFile
from observatoire.publish.qgis import finalize_gpkg
from observatoire.readers.common import SourceReport, checksum_files
from observatoire.schema import LAYERS

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
    """The ``sources`` table: one row per source, with checksum, counts, CRS and repairs."""
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
        })
    return pd.DataFrame(rows, columns=["type_source", "chemin", "format", "couche", "sha256",
                                       "entites_lues", "entites_gardees", "crs_origine",
                                       "reparations", "date_lecture"])


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def build(territory: Territory, *, progress: Progress | None = None) -> BuildResult:
    """Build the observatory of ``territory``.

    Parameters
    ----------
    territory
        The loaded territory file.
    progress
        Called with a French message at each stage.

    Returns
    -------
    BuildResult
        Paths, layer counts and content checksums of the outputs.

    Raises
    ------
    ObservatoireError
        On bad input; no output is replaced.
    """
    say = progress or (lambda msg: log.info(msg))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    say("Lecture et normalisation des sources…")
    layers = ingest(territory)
    timings["lecture"] = time.perf_counter() - t0

    outputs = _analyse(layers, territory, say, timings)

    t = time.perf_counter()
    say("Écriture du GeoPackage…")
    dest = territory.gpkg_path
    checksums = {name: layer_checksum(frame) for name, frame in outputs.items()}
    base = territory.path.parent
    with GeoPackageWriter(dest) as writer:
        for name, frame in outputs.items():
            schema = LAYERS.get(name)
            writer.write(name, frame, description=_description(name, schema),
                         geometry_type=schema.geometry_type if schema else None)
        writer.write("sources", sources_table(layers.reports, base),
                     description="Sources lues : chemin, format, empreinte SHA-256, "
                                 "entités lues et gardées, CRS d'origine, réparations")
        writer.write("execution", _run_table(territory, checksums),
                     description="Exécution : date, version, territoire, empreintes des couches")
        timings["ecriture"] = time.perf_counter() - t

        t = time.perf_counter()
        extra: list[StagedFile] = []
        try:
            _publish(layers, outputs, territory, say, extra)
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
    for name in outputs:
        log.debug("%s : %d entités, empreinte %s", name, len(outputs[name]), checksums[name])
    return BuildResult(
        gpkg=dest,
        outputs=[dest, *[s.dest for s in extra]],
        layer_counts={name: len(frame) for name, frame in outputs.items()},
        checksums=checksums,
        reports=layers.reports,
        timings=timings,
    )


def _analyse(layers: Layers, territory: Territory, say: Progress,
             timings: dict[str, float]) -> dict[str, gpd.GeoDataFrame]:
    outputs = dict(layers.spatial())
    return outputs


def _publish(layers: Layers, outputs: dict[str, gpd.GeoDataFrame], territory: Territory,
             say: Progress, staged: list[StagedFile]) -> None:
    """Write maps and report to staged files (appended to ``staged`` as they are made)."""
    from observatoire.publish.carte import stage_map
    from observatoire.publish.rapport import stage_report

    if territory.options.get("carte", True):
        say("Carte interactive…")
        staged.append(stage_map(outputs, territory))
    if territory.options.get("rapport", True):
        say("Rapport…")
        staged.append(stage_report(outputs, layers.reports, territory))


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
