"""Compare the zonal slope method of the observatory with exactextract: speed and accuracy.

The observatory computes the slope grid once (Horn, percent), then takes, for each
parcel, the mean and maximum over the cells whose centre lies inside (vectorised
scanline; the cell under a representative point for parcels smaller than a cell).
exactextract weights every cell by the exact fraction of it covered by the parcel:
it is the accuracy reference. Both read the same slope grid, so the comparison
isolates the zonal step. The brief's first idea (``rasterio.features.rasterize``
of parcel indices + ``np.bincount``) is timed too.

Usage::

    .venv/bin/python scripts/compare_slope_exactextract.py --parcels 100000 --res 5
    .venv/bin/python scripts/compare_slope_exactextract.py --parcels 20000 --res 25
    .venv/bin/python scripts/compare_slope_exactextract.py --real tests/data/MNT.asc

Synthetic parcels are jittered quadrilaterals of about ``--size`` metres over a
smooth synthetic terrain; with ``--real``, parcels are laid over the valid area of
a real DEM (ESRI ASCII grid in Lambert-93).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from observatoire.analysis.slope import (  # noqa: E402
    cell_size,
    masked_elevation,
    slope_percent,
    zonal_stats,
)


def jittered_parcels(n: int, *, size: float, x0: float, y0: float, seed: int) -> np.ndarray:
    """About ``n`` quadrilateral parcels of ``size`` metres sharing their vertices."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    gx, gy = np.meshgrid(x0 + np.arange(side + 1) * size, y0 + np.arange(side + 1) * size)
    gx = gx + rng.uniform(-0.3, 0.3, gx.shape) * size
    gy = gy + rng.uniform(-0.3, 0.3, gy.shape) * size
    j, i = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    j, i = j.ravel()[:n], i.ravel()[:n]
    ring = np.stack([np.stack([gx[j, i], gy[j, i]], -1), np.stack([gx[j, i + 1], gy[j, i + 1]], -1),
                     np.stack([gx[j + 1, i + 1], gy[j + 1, i + 1]], -1),
                     np.stack([gx[j + 1, i], gy[j + 1, i]], -1),
                     np.stack([gx[j, i], gy[j, i]], -1)], axis=1)
    return shapely.polygons(ring)


def synthetic_dem(extent: float, *, res: float, x0: float, y0: float, seed: int
                  ) -> tuple[np.ndarray, Affine]:
    """A smooth hilly terrain (m) covering ``extent`` metres, with a margin."""
    rng = np.random.default_rng(seed)
    n = int(np.ceil((extent + 200) / res))
    x = np.arange(n) * res
    z = (40 * np.sin(x[None, :] / 900) + 25 * np.cos(x[:, None] / 500)
         + 8 * np.sin((x[None, :] + x[:, None]) / 130) + rng.normal(0, 0.3, (n, n)))
    return z.astype("float32"), Affine(res, 0, x0 - 100, 0, -res, y0 - 100 + n * res)


def ours(geoms: np.ndarray, slope: np.ndarray, transform: Affine) -> tuple[np.ndarray, ...]:
    stats = zonal_stats(geoms, slope, transform=transform)
    return stats.mean, stats.max


def rasterize_bincount(geoms: np.ndarray, slope: np.ndarray, transform: Affine
                       ) -> tuple[np.ndarray, ...]:
    """The first idea of the brief: a label raster burnt by GDAL, then bincount."""
    labels = rasterio.features.rasterize(zip(geoms, np.arange(1, len(geoms) + 1), strict=True),
                                         out_shape=slope.shape, transform=transform,
                                         fill=0, all_touched=False, dtype="int32")
    ok = (labels > 0) & np.isfinite(slope)
    lab = labels[ok] - 1
    total = np.bincount(lab, weights=slope[ok], minlength=len(geoms))
    count = np.bincount(lab, minlength=len(geoms))
    vmax = np.full(len(geoms), -np.inf)
    np.maximum.at(vmax, lab, slope[ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, np.where(np.isfinite(vmax), vmax, np.nan)


def exact(geoms: np.ndarray, slope: np.ndarray, transform: Affine) -> tuple[np.ndarray, ...]:
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    rows, cols = slope.shape
    xmin, ymax = transform.c, transform.f
    xmax, ymin = xmin + cols * transform.a, ymax + rows * transform.e
    filled = np.where(np.isfinite(slope), slope, -9999.0)
    raster = NumPyRasterSource(filled, xmin, ymin, xmax, ymax, nodata=-9999.0)
    frame = gpd.GeoDataFrame(geometry=geoms, crs="EPSG:2154")
    out = exact_extract(raster, frame, ["mean", "max"], output="pandas")
    return out["mean"].to_numpy(float), out["max"].to_numpy(float)


def timed(fn, *args) -> tuple[float, tuple[np.ndarray, ...]]:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def errors(value: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(value) & np.isfinite(ref)
    d = np.abs(value[ok] - ref[ok])
    return {"n": int(ok.sum()), "ecart_moyen": float(d.mean()), "ecart_p95": float(
        np.percentile(d, 95)), "ecart_max": float(d.max()),
        "ecart_relatif_moyen": float((d / np.maximum(np.abs(ref[ok]), 0.1)).mean())}


def compare(geoms: np.ndarray, slope: np.ndarray, transform: Affine, label: str,
            *, with_rasterize: bool) -> dict:
    cells = shapely.area(geoms) / (abs(transform.a) * abs(transform.e))
    result: dict = {"cas": label, "parcelles": len(geoms),
                    "cellules_par_parcelle_mediane": float(np.median(cells))}
    t_ours, (m_ours, x_ours) = timed(ours, geoms, slope, transform)
    t_ee, (m_ee, x_ee) = timed(exact, geoms, slope, transform)
    result["temps_s"] = {"observatoire": round(t_ours, 3), "exactextract": round(t_ee, 3)}
    if with_rasterize:
        t_rb, _ = timed(rasterize_bincount, geoms, slope, transform)
        result["temps_s"]["rasterize_bincount"] = round(t_rb, 3)
    per = 100_000 / len(geoms)
    result["temps_par_100k_s"] = {k: round(v * per, 2) for k, v in result["temps_s"].items()}
    result["pente_moyenne_vs_exactextract"] = errors(m_ours, m_ee)
    result["pente_max_vs_exactextract"] = errors(x_ours, x_ee)
    small = cells < 4
    if small.any():
        result["petites_parcelles_moins_de_4_cellules"] = {
            "n": int(small.sum()), **{k: v for k, v in errors(m_ours[small], m_ee[small]).items()
                                      if k != "n"}}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--size", type=float, default=50.0, help="parcel side (m)")
    parser.add_argument("--res", type=float, default=5.0, help="DEM cell size (m)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", type=Path, help="a real DEM (ESRI ASCII, Lambert-93)")
    parser.add_argument("--no-rasterize", action="store_true",
                        help="skip the rasterize + bincount timing")
    parser.add_argument("--json", type=Path, help="write the results there")
    args = parser.parse_args(argv)
    results = []
    if args.real:
        from observatoire.config import Source
        from observatoire.readers.mnt import read_mnt

        dem = read_mnt(Source(kind="mnt", paths=(args.real,), crs="EPSG:2154",
                              key="--real"), crs="EPSG:2154")
        t = time.perf_counter()
        slope = slope_percent(masked_elevation(dem), cell_size=cell_size(dem.transform))
        t_slope = time.perf_counter() - t
        xmin, ymin, xmax, ymax = dem.bounds
        n = int((xmax - xmin) * (ymax - ymin) / args.size**2 * 0.8)
        geoms = jittered_parcels(n, size=args.size, x0=xmin + args.size, y0=ymin + args.size,
                                 seed=args.seed)
        geoms = geoms[shapely.within(geoms, shapely.box(xmin, ymin, xmax, ymax))]
        res = compare(geoms, slope, dem.transform, f"MNT réel {args.real.name}",
                      with_rasterize=not args.no_rasterize)
        res["grille_pente_s"] = round(t_slope, 3)
        results.append(res)
    else:
        x0, y0 = 900_000.0, 6_700_000.0
        geoms = jittered_parcels(args.parcels, size=args.size, x0=x0, y0=y0, seed=args.seed)
        extent = np.sqrt(args.parcels) * args.size + args.size
        z, transform = synthetic_dem(extent, res=args.res, x0=x0, y0=y0, seed=args.seed)
        t = time.perf_counter()
        slope = slope_percent(z, cell_size=cell_size(transform))
        t_slope = time.perf_counter() - t
        res = compare(geoms, slope, transform,
                      f"synthétique {args.parcels} parcelles de {args.size:g} m, "
                      f"MNT {args.res:g} m", with_rasterize=not args.no_rasterize)
        res["grille_pente_s"] = round(t_slope, 3)
        res["cellules_mnt"] = int(z.size)
        results.append(res)
    text = json.dumps(results, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
