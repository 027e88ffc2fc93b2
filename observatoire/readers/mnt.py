"""Reader of the digital elevation model (``mnt``) for the slope indicators.

A GeoTIFF or an ESRI ASCII grid (several tiles are mosaicked), read with rasterio
into a :class:`RasterResult` in the territory CRS, over the territory's window only;
nodata cells become NaN; a raster without CRS takes the ``crs`` key of the source or
is refused; a raster that does not cover the territory is refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS

from observatoire.config import Source
from observatoire.errors import CRSError, SourceError
from observatoire.readers.crs import CRS_BOUNDS
from observatoire.readers.lineage import SourceReport, new_report


@dataclass
class RasterResult:
    """A raster read into memory, north-up, in the territory CRS.

    Attributes
    ----------
    array
        Values (float32), NaN where the source had no data.
    transform
        Affine transform of the array.
    crs
        The territory CRS.
    nodata
        The source's nodata value (already replaced by NaN in ``array``).
    report
        How the source was read.
    """

    array: np.ndarray
    transform: Affine
    crs: str
    nodata: float | None
    report: SourceReport

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the raster."""
        rows, cols = self.array.shape
        t = self.transform
        x0, y0 = t.c, t.f
        x1, y1 = t.c + t.a * cols + t.b * rows, t.f + t.d * cols + t.e * rows
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _raster_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".asc", ".grd", ".txt"):
        return "ascii"
    return "geotiff"


def read_mnt(source: Source, *, crs: str, base: Path | None = None,
             bounds: tuple[float, float, float, float] | None = None) -> RasterResult:
    """Read a DEM (GeoTIFF or ESRI ASCII grid; several files are mosaicked).

    Parameters
    ----------
    source
        The ``mnt`` source.
    crs
        The territory CRS.
    base
        Folder of the territory file (unused: paths are already resolved).
    bounds
        Read only this window (xmin, ymin, xmax, ymax, in the territory CRS), plus
        one cell of margin so that the slope is exact up to the window's edge.

    Returns
    -------
    RasterResult
        Elevations in the territory CRS, NaN for nodata.

    Raises
    ------
    SourceError
        The file cannot be read by GDAL.
    CRSError
        The raster declares no CRS and the source gives none, or its coordinates
        cannot belong to its CRS.
    """
    import rasterio
    import rasterio.merge
    from rasterio.errors import RasterioIOError
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    fmt = source.format if source.format != "auto" else _raster_format(source.path)
    report = new_report(source.kind, source.paths, fmt, source.layer)
    datasets = []
    try:
        for path in source.paths:
            try:
                datasets.append(rasterio.open(path))
            except RasterioIOError as exc:
                raise SourceError(
                    f"{path} : raster illisible ({str(exc).splitlines()[0][:200]}) ; indiquez "
                    f"un GeoTIFF ou une grille ASCII ESRI (.asc) complète") from None
        src_crs = _raster_crs(datasets, source)
        report.crs_in = _crs_label(src_crs)
        for ds, path in zip(datasets, source.paths, strict=True):
            _check_raster_bounds(ds, src_crs, path)
            if ds.count < 1:
                raise SourceError(f"{path} : raster sans bande ; indiquez un MNT")
            if ds.transform.b != 0 or ds.transform.d != 0:
                raise SourceError(f"{path} : raster tourné (non orienté nord) ; "
                                  f"réorientez-le (gdalwarp) avant de l'utiliser")
        nodata = datasets[0].nodata
        target = CRS.from_user_input(crs)
        window_src = None
        if bounds is not None:
            window_src = _to_crs_bounds(bounds, target, src_crs, margin=_cell(datasets[0]) * 2)
            _check_covers(datasets, window_src, source, bounds)
        if len(datasets) == 1 and window_src is None:
            ds = datasets[0]
            data = ds.read(1, masked=True)
            transform = ds.transform
        else:
            with warnings.catch_warnings():
                # rasterio 1.4 multiplies Affine objects with ``*`` (affine 3 deprecates it).
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                merged, transform = rasterio.merge.merge(datasets, bounds=window_src,
                                                         masked=True, nodata=nodata)
            data = merged[0]
    finally:
        for ds in datasets:
            ds.close()
    array = np.ma.filled(np.ma.masked_invalid(data).astype("float32"), np.nan)
    report.features_read = int(array.size)
    if src_crs.to_epsg(min_confidence=70) != target.to_epsg():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            dst_transform, width, height = calculate_default_transform(
                src_crs, target, array.shape[1], array.shape[0],
                *rasterio.transform.array_bounds(array.shape[0], array.shape[1], transform))
            out = np.full((height, width), np.nan, dtype="float32")
            reproject(array, out, src_transform=transform, src_crs=src_crs,
                      dst_transform=dst_transform, dst_crs=target, src_nodata=np.nan,
                      dst_nodata=np.nan, resampling=Resampling.bilinear)
        array, transform = out, dst_transform
        report.count("raster reprojeté dans le CRS du territoire", 1)
    valid = int(np.isfinite(array).sum())
    report.features_kept = valid
    report.count("cellules sans donnée (nodata)", int(array.size - valid))
    if valid == 0:
        raise SourceError(f"{source.path} : aucune cellule valide dans le MNT (tout est nodata) ; "
                          f"vérifiez le fichier et son emprise")
    return RasterResult(array=array, transform=transform, crs=crs,
                        nodata=float(nodata) if nodata is not None else None, report=report)


def _check_covers(datasets: list[Any], window: tuple[float, float, float, float],
                  source: Source, bounds: tuple[float, float, float, float]) -> None:
    """Refuse a DEM none of whose files meets the parcels' box (``window``, file CRS)."""
    for ds in datasets:
        b = ds.bounds
        if b.left < window[2] and b.right > window[0] and b.bottom < window[3] \
                and b.top > window[1]:
            return
    b = datasets[0].bounds
    raise SourceError(
        f"{source.path} : le MNT ne couvre pas les parcelles du territoire (emprise du MNT "
        f"{b.left:.0f}, {b.bottom:.0f}, {b.right:.0f}, {b.top:.0f} ; parcelles {bounds[0]:.0f}, "
        f"{bounds[1]:.0f}, {bounds[2]:.0f}, {bounds[3]:.0f}) ; indiquez les dalles du MNT qui "
        f"couvrent les communes du territoire, ou vérifiez son système de coordonnées "
        f"(clé « {source.key or 'sources.mnt'}.crs »)")


def _raster_crs(datasets: list[Any], source: Source) -> CRS:
    crs = datasets[0].crs
    if crs is None or not crs.to_wkt():
        if source.crs is None:
            raise CRSError(
                f"{source.path} : le raster ne déclare aucun système de coordonnées (pas de "
                f".prj ?) ; déclarez-le avec la clé « {source.key or 'sources.mnt'}.crs » du "
                f"fichier de territoire (ex. crs = \"EPSG:2154\")")
        return CRS.from_user_input(source.crs)
    return CRS.from_user_input(crs.to_wkt())


def _crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else crs.name


def _cell(ds: Any) -> float:
    return max(abs(ds.transform.a), abs(ds.transform.e))


def _check_raster_bounds(ds: Any, crs: CRS, path: Path) -> None:
    epsg = crs.to_epsg(min_confidence=70)
    limits = CRS_BOUNDS.get(epsg) if epsg else None
    if limits is None:
        return
    b = ds.bounds
    if b.left < limits[0] or b.bottom < limits[1] or b.right > limits[2] or b.top > limits[3]:
        raise CRSError(
            f"{path} : emprise du raster ({b.left:.6g}, {b.bottom:.6g}, {b.right:.6g}, "
            f"{b.top:.6g}) incompatible avec EPSG:{epsg} ; vérifiez le système de coordonnées "
            f"déclaré (clé « crs » de la source)")


def _to_crs_bounds(bounds: tuple[float, float, float, float], src: CRS, dst: CRS, *,
                   margin: float) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    if src.to_epsg(min_confidence=70) == dst.to_epsg(min_confidence=70):
        out = bounds
    else:
        out = transform_bounds(src, dst, *bounds)
    return out[0] - margin, out[1] - margin, out[2] + margin, out[3] + margin
