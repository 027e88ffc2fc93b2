"""Time the publication stages alone, from the output of an earlier build.

A build at a million parcels takes minutes; its publication (consultation files,
CNIG export) is measured here without building again: the layers it publishes
are read back from the build's GeoPackage, then each stage function is called as
the build calls it (:mod:`observatoire.pipeline.publication`) and timed.

- ``consultation``: :func:`~observatoire.publish.consultation.stage_consultation`
  (one XLSX and one CSV per ZAE);
- ``cnig``: :func:`~observatoire.publish.cnig.stage_cnig_export` then
  :func:`~observatoire.publish.cnig_csv.stage_cnig_csv` (GeoPackage of the standard
  and its CSV files, each validated);
- ``atlas``, ``fond``, ``carte``, ``rapport``: the rows « atlas des ZAE », « fond de
  carte », « carte », « mémoire rendue » and « rapport » of
  :data:`~observatoire.pipeline.publication.OUTPUTS`, called on a
  :class:`~observatoire.pipeline.publication.Publication` made from the build's
  GeoPackage (see :func:`map_publication`); ``fond`` (the background of the map and
  the report, read once) is run before ``carte`` or ``rapport`` when they are asked.
  The atlas is made only when the territory file asks for it (``[options] atlas``).

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
import dataclasses
import functools
import json
import resource
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from observatoire.analysis.limites import commune_outlines
from observatoire.config import Territory, load_territory
from observatoire.geopackage import report_columns
from observatoire.ingest import Layers
from observatoire.outputs import StagedFile
from observatoire.pipeline.publication import (
    OUTPUTS,
    Publication,
    commune_names,
    territory_epci,
)
from observatoire.publish.carte_selection import MAP_MAX_PARCELS, TopScores
from observatoire.publish.cnig import stage_cnig_export
from observatoire.publish.cnig_csv import cartofriches_files, stage_cnig_csv
from observatoire.publish.consultation import stage_consultation
from observatoire.publish.fond import read_background
from observatoire.readers.lineage import SourceReport

if TYPE_CHECKING:
    from observatoire.pipeline.partitions import Views

STAGES = ("consultation", "cnig", "atlas", "fond", "carte", "rapport")
#: Stages made from :func:`map_publication`, by their rows of ``OUTPUTS``.
MAP_STAGES = {"atlas": ("atlas des ZAE",), "fond": ("fond de carte",), "carte": ("carte",),
              "rapport": ("mémoire rendue", "rapport")}


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


#: Layers of the GeoPackage that are not publication outputs (read apart, or never).
NOT_OUTPUTS = {"parcelles", "unites_foncieres", "batiments", "routes", "sources", "execution",
               "layer_styles"}


def map_publication(gpkg: Path, territory: Territory, *, zae: gpd.GeoDataFrame,
                    zae_unites: gpd.GeoDataFrame, layers: Layers) -> Publication:
    """What the build hands the map, the report and the atlas, read back from its GeoPackage.

    - ``outputs``: every layer the build writes besides the parcels, land units,
      buildings and roads (``zae``, ``zae_unites``, ``gisements``, ``friches``…);
    - ``layers``: ``routes``, the friches, and the sources' reports (``sources`` table);
    - views: ``carte``, the parcels of :class:`TopScores` (the best scored of the
      first profile, ties to the smallest IDU), every column; ``nb_parcelles``;
      ``fond`` and ``rapport`` read back when called, as the build reads them; the
      commune outlines of the background are made from the parcels once and kept
      next to the GeoPackage (``bench-limites-communes.gpkg``).
    """
    present = [str(name) for name, _ in pyogrio.list_layers(gpkg)]
    outputs: dict[str, gpd.GeoDataFrame] = {"zae": zae, "zae_unites": zae_unites}
    for name in present:
        if name not in NOT_OUTPUTS and name not in outputs:
            frame = _read(gpkg, name)
            assert frame is not None
            outputs[name] = frame
    routes = _read(gpkg, "routes")
    reports = _reports(gpkg, territory)
    built = dataclasses.replace(layers, routes=routes if routes is not None else layers.routes,
                                reports=reports)
    score = f"score_{territory.profiles[0].name}"
    scores = _read(gpkg, "parcelles", columns=["idu", score], read_geometry=False,
                   fid_as_index=True)
    assert scores is not None
    top = TopScores(score, MAP_MAX_PARCELS)
    order = np.argsort(scores["idu"].to_numpy(dtype=str), kind="stable")
    top.add(scores.iloc[order], np.arange(len(scores)))
    fids = scores.index.to_numpy()[order][top.ids()]
    carte = _read(gpkg, "parcelles", fids=fids, fid_as_index=True)
    assert carte is not None
    carte = carte.loc[fids].reset_index(drop=True)
    views: Views = {"carte": carte, "nb_parcelles": len(scores),
                    "rapport": functools.partial(report_columns, gpkg),
                    "fond": functools.partial(read_background, gpkg,
                                              limites=_outlines(gpkg)),
                    "zae": None}
    return Publication(layers=built, outputs=outputs, tables={}, views=views,
                       territory=territory, say=lambda message: print(message, flush=True),
                       communes=commune_names(territory, built, outputs))


def _outlines(gpkg: Path) -> gpd.GeoDataFrame:
    """The outlines of the communes, made from the parcels once and kept beside ``gpkg``."""
    kept = gpkg.parent / "bench-limites-communes.gpkg"
    if kept.exists():
        frame = _read(kept, "limites_communes")
        assert frame is not None
        return frame
    parcelles = _read(gpkg, "parcelles", columns=["idu", "code_insee"])
    assert parcelles is not None
    parts = [commune_outlines(group) for _, group in parcelles.groupby("code_insee", sort=True)]
    outlines = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parcelles.crs)
    pyogrio.write_dataframe(outlines, kept, layer="limites_communes")
    return outlines


def _reports(gpkg: Path, territory: Territory) -> list[SourceReport]:
    """The sources' reports, from the ``sources`` table the build wrote.

    Its paths are relative to the territory file of the build: each is found among
    the territory's sources by its end (the territory file may be a copy elsewhere).
    """
    table = _read(gpkg, "sources")
    if table is None:
        return []
    known = [p for source in territory.all_sources() for p in source.paths]

    def path(name: str) -> Path:
        found = [p for p in known if p.as_posix().endswith("/" + name)]
        return found[0] if found else territory.path.parent / name

    def text(value: Any) -> str:
        return "" if value is None or pd.isna(value) else str(value)

    reports = []
    for row in table.to_dict("records"):
        repairs = {}
        for item in text(row["reparations"]).split("; "):
            if " : " in item:
                key, count = item.rsplit(" : ", 1)
                repairs[key] = int(count)
        reports.append(SourceReport(
            kind=text(row["type_source"]),
            paths=[path(p) for p in text(row["chemin"]).split(" | ") if p],
            format=text(row["format"]), layer=text(row["couche"]) or None,
            checksum=text(row["sha256"]), features_read=int(row["entites_lues"] or 0),
            features_kept=int(row["entites_gardees"] or 0),
            crs_in=text(row["crs_origine"]) or None, repairs=repairs,
            read_at=text(row["date_lecture"]), producer=text(row["producteur"]),
            data_date=text(row["date_donnees"]),
            data_date_origin=text(row["date_donnees_origine"])))
    return reports


def run_outputs(pub: Publication, names: tuple[str, ...]) -> list[StagedFile]:
    """Run the rows ``names`` of ``OUTPUTS`` the territory wants, as the build runs them."""
    staged: list[StagedFile] = []
    for output in OUTPUTS:
        if output.name in names and output.wanted(pub):
            staged.extend(output.stage(pub))
    return staged


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
    if {"carte", "rapport"} & set(args.etapes) and "fond" not in args.etapes:
        args.etapes.insert(min(args.etapes.index(s) for s in ("carte", "rapport")
                               if s in args.etapes), "fond")

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
        pub: Publication | None = None
        for stage in args.etapes:
            if stage in MAP_STAGES and pub is None:
                t = time.perf_counter()
                pub = map_publication(gpkg, dataclasses.replace(territory, output_dir=out),
                                      zae=zae, zae_unites=zae_unites, layers=layers)
                print(f"lecture (carte, rapport, atlas) : {time.perf_counter() - t:.1f} s "
                      f"({pub.views['nb_parcelles']} parcelles, "
                      f"{len(pub.views['carte'])} sur la carte)", flush=True)
            profiler = cProfile.Profile() if args.profil else None
            if profiler:
                profiler.enable()
            t, cpu = time.perf_counter(), _cpu_seconds()
            staged: list[StagedFile]
            if stage in MAP_STAGES:
                assert pub is not None
                staged = run_outputs(pub, MAP_STAGES[stage])
            elif stage == "consultation":
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
                if args.garder:
                    s.dest.parent.mkdir(parents=True, exist_ok=True)
                    s.publish()
                else:
                    s.discard()
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
