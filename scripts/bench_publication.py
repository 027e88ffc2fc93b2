"""Time the publication stages alone, from the output of an earlier build.

A build at a million parcels takes minutes; its publication (consultation files,
CNIG export) is measured here without building again: the layers it publishes
are read back from the build's GeoPackage, then each stage function is called as
the build calls it (:mod:`observatoire.pipeline.publication`) and timed.

- ``consultation``: :func:`~observatoire.publish.consultation.stage_consultation`
  (one XLSX and one CSV per ZAE);
- ``cnig``: :func:`~observatoire.publish.cnig.stage_cnig_export` then
  :func:`~observatoire.publish.cnig_csv.stage_cnig_csv` (GeoPackage of the standard
  and its CSV files, each validated).

The parcels given to the CNIG export are those that meet a ZAE, as the build
gives them (``idu``, ``friche_id``, geometry). With ``--garder DOSSIER`` the files
are published there (to compare two versions of the code on the same build);
otherwise they are discarded. The last line is JSON: seconds by stage, wall clock
and processor time (``<stage>.cpu``: this process and its workers; on a loaded
machine, the figure that compares two versions).

Usage::

    PYTHONPATH=$PWD python scripts/bench_publication.py \\
        --config territoire.toml --sortie /tmp/pub1m [--garder /tmp/pub-a] [--etapes cnig]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from observatoire.config import load_territory
from observatoire.ingest import Layers
from observatoire.outputs import StagedFile
from observatoire.pipeline.publication import commune_names, territory_epci
from observatoire.publish.cnig import stage_cnig_export
from observatoire.publish.cnig_csv import cartofriches_files, stage_cnig_csv
from observatoire.publish.consultation import stage_consultation

STAGES = ("consultation", "cnig")


def _read(gpkg: Path, layer: str, **kwargs: Any) -> gpd.GeoDataFrame | None:
    if layer not in {name for name, _ in pyogrio.list_layers(gpkg)}:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return pyogrio.read_dataframe(gpkg, layer=layer, use_arrow=True, **kwargs)


def _cpu_seconds() -> float:
    """Processor time of this process and of its finished workers (user and system)."""
    own, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def zae_parcels(gpkg: Path, zae: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The parcels that meet a ZAE (``idu``, ``friche_id``, geometry), as the build keeps them."""
    parcelles = _read(gpkg, "parcelles", columns=["idu", "friche_id"],
                      bbox=tuple(zae.total_bounds))
    assert parcelles is not None
    tree = shapely.STRtree(np.asarray(zae.geometry.values))
    hit = np.unique(tree.query(np.asarray(parcelles.geometry.values),
                               predicate="intersects")[0])
    return parcelles.iloc[hit].reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    """Read the build's layers, run each publication stage asked for, print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="fichier de territoire")
    parser.add_argument("--sortie", required=True, type=Path,
                        help="dossier d'une construction (observatoire.gpkg)")
    parser.add_argument("--garder", type=Path, help="publier les fichiers dans ce dossier")
    parser.add_argument("--etapes", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--profil", type=Path,
                        help="profil cProfile de chaque étape : DOSSIER/<étape>.prof")
    args = parser.parse_args(argv)

    territory = load_territory(args.config)
    gpkg = args.sortie / "observatoire.gpkg"
    t = time.perf_counter()
    zae, zae_unites = _read(gpkg, "zae"), _read(gpkg, "zae_unites")
    assert zae is not None and zae_unites is not None, f"{gpkg} : pas de ZAE"
    friches, surfaces = _read(gpkg, "friches"), _read(gpkg, "friches_surfaces")
    etablissements = _read(gpkg, "etablissements")
    parcelles = zae_parcels(gpkg, zae)
    empty = gpd.GeoDataFrame(geometry=[], crs=zae.crs)
    layers = Layers(parcelles=empty, friches=friches if friches is not None else empty,
                    friches_surfaces=surfaces if surfaces is not None else empty, zae=zae,
                    zonage=empty, batiments=empty, routes=empty,
                    etablissements=etablissements)
    communes = commune_names(territory, layers, {"zae": zae})
    print(f"lecture : {time.perf_counter() - t:.1f} s ({len(zae)} zones, {len(zae_unites)} "
          f"unités, {len(parcelles)} parcelles en ZAE)", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.garder or Path(tmp)
        timings: dict[str, float] = {}
        for stage in args.etapes:
            profiler = cProfile.Profile() if args.profil else None
            if profiler:
                profiler.enable()
            t, cpu = time.perf_counter(), _cpu_seconds()
            staged: list[StagedFile]
            if stage == "consultation":
                staged = stage_consultation(
                    zae, zae_unites, output_dir=out, territory=territory.name,
                    date_observation=territory.options.date_observation, communes=communes)
            else:
                nom, siren = territory_epci(territory)
                template = stage_cnig_export(
                    zae, zae_unites, etablissements, output_dir=out, epci_nom=nom,
                    epci_siren=siren, communes=communes,
                    date_observation=territory.options.date_observation,
                    parcelles=parcelles, rule=territory.options.vacance)
                staged = [template, *stage_cnig_csv(
                    template.tmp, output_dir=out, parcelles=parcelles,
                    friches=(friches, surfaces), cartofriches=cartofriches_files(territory))]
            timings[stage] = round(time.perf_counter() - t, 3)
            timings[f"{stage}.cpu"] = round(_cpu_seconds() - cpu, 3)
            if profiler:
                profiler.disable()
                args.profil.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(args.profil / f"{stage}.prof")
            print(f"{stage} : {timings[stage]:.1f} s, {timings[stage + '.cpu']:.1f} s de "
                  f"processeur ({len(staged)} fichiers)", flush=True)
            for s in staged:
                s.publish() if args.garder else s.discard()
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
