"""Mesure de la comparaison de deux observations à l'échelle, sans construction complète.

Les deux millésimes cadastraux d'un territoire généré (``generate_territory.py`` puis
``--millesime-suivant``) sont lus, dotés des colonnes qu'une observation réelle garde
(:func:`mesure_historique.with_attributes`, tirées une fois par IDU : mêmes valeurs pour
une parcelle inchangée dans les deux millésimes ; part bâtie 0,16 sur les parcelles qui
reçoivent un bâtiment) et ajoutés à un historique (``preparer``). ``comparer`` mesure
ensuite, dans son propre processus, la lecture des parcelles qui diffèrent et
l'évolution (parcelles, gisements, ZAE, friches) : durée et mémoire maximale (``VmHWM``).

    PYTHONPATH=. python scripts/mesure_evolution_millesimes.py preparer \\
        bench/work/territoire-1000000-graine42 bench/work/territoire-1000000-graine42-millesime2 \\
        --historique /tmp/historique
    PYTHONPATH=. python scripts/mesure_evolution_millesimes.py comparer \\
        --historique /tmp/historique [--entieres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mesure_historique import with_attributes  # noqa: E402

from observatoire.observation import evolution, history  # noqa: E402

D1, D2 = dt.date(2024, 1, 1), dt.date(2025, 1, 1)


def _peak_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return kb / 1000


def cadastre(folder: Path) -> gpd.GeoDataFrame:
    """Les parcelles Etalab d'un territoire généré, en Lambert-93."""
    frames = [pyogrio.read_dataframe(f"/vsigzip/{p}", columns=["id"], use_arrow=True)
              for p in sorted((folder / "cadastre").glob("*.json.gz"))]
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326).to_crs(2154)
    return out.rename(columns={"id": "idu"})


def attributes(idu: np.ndarray) -> pd.DataFrame:
    """Colonnes d'une observation réelle, tirées une fois pour toutes les IDU, par IDU.

    Une parcelle inchangée a donc les mêmes valeurs dans les deux millésimes.
    """
    frame = gpd.GeoDataFrame({"idu": np.sort(idu)},
                             geometry=gpd.points_from_xy(np.zeros(len(idu)),
                                                         np.zeros(len(idu))), crs=2154)
    out = pd.DataFrame(with_attributes(frame, np.random.default_rng(42))
                       .drop(columns=["geometry", "surface_m2", "code_insee"]))
    return out.set_index("idu")


def observation(parcels: gpd.GeoDataFrame, values: pd.DataFrame,
                built: set[str]) -> gpd.GeoDataFrame:
    """Les parcelles d'un millésime avec leurs colonnes ; part bâtie 0,16 si bâties."""
    frame = parcels.join(values, on="idu")
    frame.insert(1, "code_insee", frame["idu"].str[:5])
    frame.insert(2, "surface_m2", frame.area.round(2))
    new = frame["idu"].isin(built).to_numpy()
    frame.loc[new, "part_batie"] = 0.16
    frame.loc[new, "nb_batiments"] = frame.loc[new, "nb_batiments"] + 1
    site = frame["idu"].str[8:10].isin(["0A", "0B"]) & ~frame["idu"].isin(built)
    frame["gisement_id"] = np.where(site, "G-" + frame["idu"].str[:13], None)
    return frame


def preparer(m1: Path, m2: Path, folder: Path) -> None:
    record = json.loads((m2 / "millesime.json").read_text(encoding="utf-8"))
    vintages = [cadastre(m1), cadastre(m2)]
    values = attributes(np.union1d(vintages[0]["idu"].to_numpy(dtype=str),
                                   vintages[1]["idu"].to_numpy(dtype=str)))
    for date, parcels, built in ((D1, vintages[0], set()),
                                 (D2, vintages[1], set(record["nouveaux_batiments"]))):
        t = time.perf_counter()
        frame = observation(parcels, values, built)
        sites = (frame.dropna(subset=["gisement_id"]).groupby("gisement_id")["surface_m2"]
                 .sum().reset_index())
        sites["zae_id"] = None
        history.append_observation(folder, date, parcelles=frame,
                                   zae=pd.DataFrame({"zae_id": pd.Series([], dtype=object)}),
                                   friches=pd.DataFrame({"site_id": pd.Series([], dtype=object)}),
                                   gisements=sites)
        print(f"{date} : {len(frame)} parcelles, {frame.shape[1]} colonnes, ajoutées en "
              f"{time.perf_counter() - t:.1f} s", flush=True)


def comparer(folder: Path, *, entieres: bool = False) -> None:
    t = time.perf_counter()
    if entieres:  # the two observations whole, as before read_changes
        old, new = history.read_observation(folder, D1), history.read_observation(folder, D2)
    else:
        old, new = history.read_changes(folder, D1, D2)
    read = time.perf_counter() - t
    parcelles = evolution.evolution_parcelles(old, new, seuil_bati=0.1)
    evolution.evolution_gisements(old, new, parcelles)
    evolution.evolution_zae(old, new, parcelles)
    evolution.evolution_friches(old, new)
    total = time.perf_counter() - t
    print(json.dumps({"lecture_s": round(read, 2), "evolution_s": round(total, 2),
                      "memoire_max_mo": round(_peak_mb(), 1),
                      "parcelles_lues": len(old.parcelles) + len(new.parcelles),
                      "changements": parcelles["changement"].value_counts().to_dict()},
                     ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("etape", choices=["preparer", "comparer"])
    parser.add_argument("millesimes", type=Path, nargs="*",
                        help="dossiers des millésimes 1 et 2 (preparer)")
    parser.add_argument("--historique", type=Path, required=True)
    parser.add_argument("--entieres", action="store_true",
                        help="comparer : relire les deux observations entières (référence)")
    args = parser.parse_args()
    if args.etape == "preparer":
        if len(args.millesimes) != 2:
            parser.error("preparer : deux dossiers, millésime 1 puis millésime 2")
        preparer(*args.millesimes, args.historique)
    else:
        comparer(args.historique, entieres=args.entieres)


if __name__ == "__main__":
    main()
