"""Mesure du suivi des établissements dans l'historique : temps de capture, taille, lecture.

Un GeoPackage de P parcelles (40 m × 40 m, colonnes d'une observation réelle, comme
``mesure_historique.py``) et E établissements actifs (un point dans une parcelle tirée
au hasard). Trois observations dans un même historique :

1. sans couche ``etablissements`` (comme avant) ;
2. avec la couche : chaque ligne de parcelle gagne ``nb_etablissements_actifs`` ;
3. avec 1 % des établissements déplacés (fermés ici, ouverts ailleurs).

Le script mesure, dans le même processus, la capture (lecture du GeoPackage, empreintes,
écriture) sans puis avec la couche, la taille ajoutée à ``lignes/`` par chaque
observation, et la lecture des observations d'établissements par l'inventaire
(``history.read_establishments``) suivie du rattachement aux unités des ZAE
(``zae_inventory.observed_occupation``, les parcelles des ZAE prises pour unités).

    PYTHONPATH=. python scripts/mesure_vacance_historique.py --parcelles 100000 \\
        --etablissements 10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from observatoire.analysis.zae_inventory import observed_occupation
from observatoire.observation import capture, history


def _mesure_historique():  # the sibling script (parcels and their attributes)
    path = Path(__file__).with_name("mesure_historique.py")
    spec = importlib.util.spec_from_file_location("mesure_historique", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def etablissements(parcelles: gpd.GeoDataFrame, n: int, rng: np.random.Generator
                   ) -> gpd.GeoDataFrame:
    """``n`` établissements actifs, chacun au centre d'une parcelle tirée au hasard."""
    where = rng.choice(len(parcelles), n, replace=False)
    return gpd.GeoDataFrame({
        "siret": [f"{k:014d}" for k in range(n)], "etat": "A", "date_creation": "2010-01-01",
        "naf": "25.11Z"}, geometry=shapely.centroid(parcelles.geometry.values[where]),
        crs=parcelles.crs)


def capture_once(gpkg: Path, folder: Path, date: dt.date) -> float:
    t = time.perf_counter()
    staged = capture.stage_capture(gpkg, folder, date)
    try:
        staged.publish()
    finally:
        staged.discard()
    return time.perf_counter() - t


def lignes_bytes(folder: Path, date: dt.date) -> int:
    return sum(p.stat().st_size for p in (folder / "lignes").glob(f"{date.isoformat()}.*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcelles", type=int, default=100_000)
    parser.add_argument("--etablissements", type=int, default=10_000)
    parser.add_argument("--graine", type=int, default=42)
    args = parser.parse_args()
    rng = np.random.default_rng(args.graine)
    parcelles = _mesure_historique().parcelles_initiales(args.parcelles, rng)
    etabs = etablissements(parcelles, args.etablissements, rng)
    moved = etabs.copy()
    k = max(1, len(etabs) // 100)
    free = np.setdiff1d(np.arange(len(parcelles)),
                        parcelles.sindex.query(etabs.geometry.values, predicate="within")[1])
    moved.loc[moved.index[:k], "geometry"] = shapely.centroid(
        parcelles.geometry.values[rng.choice(free, k, replace=False)])
    dates = [dt.date(2022, 1, 1), dt.date(2023, 1, 1), dt.date(2024, 1, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "historique"
        gpkg = root / "observatoire.gpkg"
        pyogrio.write_dataframe(parcelles, gpkg, layer="parcelles")
        with_layer = root / "avec.gpkg"
        pyogrio.write_dataframe(parcelles, with_layer, layer="parcelles")
        pyogrio.write_dataframe(etabs, with_layer, layer="etablissements")
        # A first observation in a fresh history, without then with the layer, alternated
        # three times (the best of each): the cost of counting the establishments.
        first: dict[str, list[float]] = {"sans": [], "avec": []}
        for turn in range(3):
            for label, path in (("sans", gpkg), ("avec", with_layer)):
                first[label].append(capture_once(path, root / f"h-{label}-{turn}", dates[0]))
        seconds = {"sans": capture_once(gpkg, folder, dates[0])}
        pyogrio.write_dataframe(etabs, gpkg, layer="etablissements")
        seconds["avec"] = capture_once(gpkg, folder, dates[1])
        pyogrio.write_dataframe(moved, gpkg, layer="etablissements")
        seconds["avec, 1 % déplacés"] = capture_once(gpkg, folder, dates[2])
        t = time.perf_counter()
        read = history.read_establishments(folder, before=dt.date(2025, 1, 1))
        lecture = time.perf_counter() - t
        assert read is not None
        units = parcelles[parcelles["zae_id"].notna()]
        t = time.perf_counter()
        seen = observed_occupation(units, read.observations)
        rattachement = time.perf_counter() - t
        print(f"{args.parcelles} parcelles, {args.etablissements} établissements, "
              f"{len(units)} parcelles de ZAE prises pour unités")
        best = {label: min(values) for label, values in first.items()}
        print(f"première observation (meilleure de 3) : sans couche {best['sans']:.2f} s, "
              f"avec {best['avec']:.2f} s, rapport {best['avec'] / best['sans']:.2f}")
        for (label, s), date in zip(seconds.items(), dates, strict=True):
            print(f"observation {date.isoformat()} {label:<20} {s:6.2f} s ; "
                  f"lignes/ + {lignes_bytes(folder, date) / 1e6:.2f} Mo")
        lues = [o.date.isoformat() for o in read.observations]
        print(f"observations d'établissements lues : {lues}"
              f" ({sum(len(o.parcelles) for o in read.observations)} parcelles occupées) "
              f"en {lecture:.2f} s ; rattachement aux unités {rattachement:.2f} s ; "
              f"unités occupées par observation : {seen.sum().tolist()}")


if __name__ == "__main__":
    main()
