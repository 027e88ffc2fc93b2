"""Mesure de l'historique des observations : taille et temps, N observations de P parcelles.

Chaque observation change une part des parcelles (``--changement``, 2 % par défaut) :
la moitié divisées en deux, l'autre moitié bâties (part bâtie, scores et classes
modifiés). Les colonnes sont celles que garde une observation réelle
(:mod:`observatoire.observation.capture`, deux profils de score).

    PYTHONPATH=. python scripts/mesure_historique.py --parcelles 100000 --observations 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatoire.observation import evolution, history

CRITERES = ("zonage", "surface", "largeur", "forme", "pente", "bati", "desserte", "friche",
            "contraintes", "electricite")


def parcelles_initiales(n: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """``n`` parcelles de 40 m × 40 m (contours à 5 sommets par côté) et leurs attributs."""
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    x0, y0 = 900_000 + (i % side) * 40.0, 6_700_000 + (i // side) * 40.0
    t = np.linspace(0, 1, 6)[:-1]
    ring = np.concatenate([np.c_[t * 40, 0 * t], np.c_[40 + 0 * t, t * 40],
                           np.c_[40 - t * 40, 40 + 0 * t], np.c_[0 * t, 40 - t * 40]])
    coords = ring[None, :, :] + np.c_[x0, y0][:, None, :]
    geometry = shapely.polygons(coords)
    frame = gpd.GeoDataFrame({"idu": [f"25267000AB{k:06d}" for k in i]}, geometry=geometry,
                             crs="EPSG:2154")
    return with_attributes(frame, rng)


def with_attributes(frame: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    n = len(frame)
    out = frame.copy()
    out["code_insee"] = "25267"
    out["surface_m2"] = out.area.round(2)
    out["uf_id"] = "UF-" + out["idu"]
    out["part_batie"] = np.where(rng.random(n) < 0.6, rng.random(n).round(4), 0.0)
    out["nb_batiments"] = (out["part_batie"] > 0).astype(int)
    out["zae_id"] = np.where(rng.random(n) < 0.1, "25267_SITE-ECO_00001", None)
    out["part_zae"] = np.where(out["zae_id"].notna(), 1.0, np.nan)
    out["friche_id"] = None
    out["friche_statut"] = None
    out["zone_typezone"] = rng.choice(["U", "AU", "A", "N"], n)
    for name in ("compacite", "largeur_utile_m", "pente_moy_pct", "dist_route_principale_m"):
        out[name] = (rng.random(n) * 100).round(2)
    for profile in ("industrie", "logistique"):
        out[f"exclu_{profile}"] = rng.random(n) < 0.3
        out[f"score_{profile}"] = (rng.random(n) * 100).round(1)
        out[f"classe_{profile}"] = rng.choice(list("ABCDE"), n)
        for c in CRITERES:
            out[f"contrib_{profile}_{c}"] = (rng.random(n) * 10).round(2)
    out["gisement_id"] = None
    return out


def vintage(previous: gpd.GeoDataFrame, share: float, step: int,
            rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Le millésime suivant : ``share`` des parcelles changent (moitié divisées, moitié bâties)."""
    n = len(previous)
    changed = rng.choice(n, int(n * share), replace=False)
    split, built = changed[: len(changed) // 2], changed[len(changed) // 2:]
    out = previous.copy()
    out.loc[out.index[built], "part_batie"] = 0.8
    out.loc[out.index[built], "classe_industrie"] = "E"
    parents = out.iloc[split]
    keep = out.drop(out.index[split])
    bounds = shapely.bounds(parents.geometry.values)
    mid = (bounds[:, 0] + bounds[:, 2]) / 2
    halves = []
    for side, box in ((1, np.c_[bounds[:, 0], bounds[:, 1], mid, bounds[:, 3]]),
                      (2, np.c_[mid, bounds[:, 1], bounds[:, 2], bounds[:, 3]])):
        piece = parents.copy()
        piece["idu"] = [f"25267000S{step:02d}{k:06d}{side}" for k in range(len(parents))]
        piece["geometry"] = shapely.intersection(parents.geometry.values,
                                                 shapely.box(*box.T))
        halves.append(piece)
    out = pd.concat([keep, *halves], ignore_index=True)
    out["surface_m2"] = out.area.round(2)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=previous.crs)


def size(folder: Path, name: str) -> int:
    return sum(p.stat().st_size for p in (folder / name).glob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcelles", type=int, default=100_000)
    parser.add_argument("--observations", type=int, default=10)
    parser.add_argument("--changement", type=float, default=0.02)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    empty = pd.DataFrame({"zae_id": ["25267_SITE-ECO_00001"], "nb_unites": [10]})
    friches = pd.DataFrame({"site_id": ["25056_1"], "site_statut": ["friche sans projet"]})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "historique"
        parcels = parcelles_initiales(args.parcelles, rng)
        dates = [dt.date(2016 + k, 1, 1) for k in range(args.observations)]
        for k, date in enumerate(dates):
            if k:
                parcels = vintage(parcels, args.changement, k, rng)
            t = time.perf_counter()
            history.append_observation(folder, date, parcelles=parcels, zae=empty,
                                       friches=friches)
            spent = time.perf_counter() - t
            print(f"{date} : {len(parcels):>8} parcelles, ajout {spent:5.2f} s ; formes "
                  f"{size(folder, 'geometries') / 1e6:6.2f} Mo, lignes d'attributs "
                  f"{size(folder, 'lignes') / 1e6:6.2f} Mo, listes "
                  f"{size(folder, 'parcelles') / 1e6:6.2f} Mo, total "
                  f"{sum(size(folder, n) for n in history.TABLES) / 1e6:6.2f} Mo")
        t = time.perf_counter()
        # As the build and `observatoire evolution` do: only the parcels that differ.
        old, new = history.read_changes(folder, dates[-2], dates[-1])
        read = time.perf_counter() - t
        t = time.perf_counter()
        changes = evolution.evolution_parcelles(old, new, seuil_bati=0.1)
        spent = time.perf_counter() - t
        print(f"lecture des parcelles qui diffèrent {read:.2f} s ; évolution {spent:.2f} s "
              f"({len(changes)} parcelles changées : "
              f"{changes['evolution'].value_counts().to_dict()})")


if __name__ == "__main__":
    main()
