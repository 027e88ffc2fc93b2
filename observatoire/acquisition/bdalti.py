"""IGN BD ALTI 25 m per département: its ASC tiles mosaicked and cut to the territory.

The current edition of a département is read from the Géoplateforme's Atom listing
(``resource/BDALTI?zone=D025``): its entries name the archives
``BDALTIV2_2-0_25M_ASC_{projection}_{zone}_{date}`` (``LAMB93-IGN69`` on the
mainland, ``LAMB93-IGN78C`` in Corsica, local systems overseas; the 75 m and RGE
ALTI entries are other names). The 7z archive (``download/BDALTI/{name}/{name}.7z``,
some 30 MB) is cached under that date, checked whole before it is kept. Its
elevation tiles (:data:`~observatoire.acquisition.urls.BDALTI_TILES`: 25 km by
25 km ESRI ASCII grids of 1,000 × 1,000 cells, without ``.prj``, nodata -99999)
that meet the territory's box plus 5 km are extracted, mosaicked with
``rasterio.merge`` (a tile shared by two départements: its first valid value) and
cut, on the tiles' own grid (no resampling), into one GeoTIFF in the projection of
the archive — the ``mnt`` source of the build (:mod:`observatoire.readers.mnt`).
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import DownloadError
from observatoire.acquisition.urls import BDALTI_NAME, BDALTI_TILES, ign_zone

SOURCE = "bdalti"
PRODUCER = "IGN, BD ALTI 25 m"
NAME = "bdalti_territoire.tif"
#: Side of a BD ALTI 25 m tile, in metres (1,000 cells of 25 m).
TILE_SIDE = 25_000.0
_TILE_NAME = re.compile(r"_(\d{4})_(\d{4})_MNT_")


def edition(ctx: Context, departement: str) -> tuple[str, str]:
    """Return the newest BD ALTI 25 m edition of a département: (date, projection).

    Offline, the newest archive of the département in the cache.

    Raises
    ------
    DownloadError
        The listing cannot be read or names no 25 m ASC edition (offline: none cached).
    """
    url = ctx.urls.ign_resource("BDALTI", departement)
    pattern = re.compile(BDALTI_NAME.format(zone=ign_zone(departement)))
    if ctx.client is None:
        for millesime in reversed(ctx.cache.millesimes(SOURCE)):
            folder = ctx.cache.path(SOURCE, millesime, "")
            for archive in sorted(folder.glob("*.7z")):
                m = pattern.fullmatch(archive.stem)
                if m and ctx.cache.manifest(archive) is not None:
                    return m["date"], m["projection"]
        raise DownloadError(f"{url} : aucune BD ALTI de {departement} en cache ; relancez sans "
                            f"--hors-ligne", url=url)
    text = ctx.client.get(url).text
    found = sorted({(m["date"], m["projection"]) for m in pattern.finditer(text)})
    if not found:
        raise DownloadError(f"{url} : aucune édition de la BD ALTI 25 m (ASC) listée pour "
                            f"{departement}", url=url, status=200)
    return found[-1]


def _crs(projection: str, territory_crs: str) -> str:
    """Return the CRS of a BD ALTI archive's tiles: Lambert-93, else the legal CRS."""
    return "EPSG:2154" if projection.startswith("LAMB93") else territory_crs


def _meets(name: str, box: tuple[float, float, float, float]) -> bool:
    """Whether a tile, by its name (``…_{xmin km}_{ymax km}_MNT_…``), meets ``box``."""
    m = _TILE_NAME.search(Path(name).name)
    if m is None:
        return True  # an unexpected name: extracted, and its header decides
    x0, y1 = int(m[1]) * 1000.0, int(m[2]) * 1000.0
    # Cell centres lie on the kilometre: the tile reaches half a cell beyond.
    return not (x0 - 12.5 > box[2] or x0 + TILE_SIDE + 12.5 < box[0]
                or y1 - TILE_SIDE - 12.5 > box[3] or y1 + 12.5 < box[1])


def _extract_tiles(archive: Path, folder: Path, url: str,
                   box: tuple[float, float, float, float]) -> list[Path]:
    """Extract the elevation tiles of a BD ALTI archive that meet ``box`` into ``folder``."""
    import py7zr

    tiles = re.compile(BDALTI_TILES)
    with py7zr.SevenZipFile(archive) as z:
        names = [n for n in z.getnames() if tiles.search(n)]
        if not names:
            raise DownloadError(f"{url} : pas de dalle MNT (1_DONNEES_LIVRAISON…/"
                                f"BDALTIV2_MNT_25M_ASC_…/*.asc) dans l'archive BD ALTI",
                                url=url, status=200)
        wanted = [n for n in names if _meets(n, box)]
        if wanted:
            z.extract(path=folder, targets=wanted)
    return [folder / n for n in sorted(wanted)]


def mosaic(tiles: list[Path], box: tuple[float, float, float, float], crs: str,
           dest: Path) -> tuple[int, int]:
    """Mosaic ASC tiles and write the cells within ``box`` as a GeoTIFF.

    The window is snapped outwards to the tiles' grid, and kept within the tiles.

    Returns
    -------
    tuple of int
        The GeoTIFF's (rows, columns).

    Raises
    ------
    ValueError
        The tiles do not meet ``box``.
    """
    import warnings

    import numpy as np
    import rasterio
    import rasterio.merge

    datasets = [rasterio.open(p) for p in tiles]
    try:
        first = datasets[0]
        res = first.res[0]
        ox, oy = first.transform.c, first.transform.f
        west = max(min(d.bounds.left for d in datasets), box[0])
        south = max(min(d.bounds.bottom for d in datasets), box[1])
        east = min(max(d.bounds.right for d in datasets), box[2])
        north = min(max(d.bounds.top for d in datasets), box[3])
        if west >= east or south >= north:
            raise ValueError("no overlap")
        west = ox + math.floor((west - ox) / res) * res
        east = ox + math.ceil((east - ox) / res) * res
        north = oy - math.floor((oy - north) / res) * res
        south = oy - math.ceil((oy - south) / res) * res
        nodata = first.nodata if first.nodata is not None else -99999.0
        with warnings.catch_warnings():
            # rasterio 1.4 multiplies Affine objects with ``*`` (affine 3 deprecates it).
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            merged, transform = rasterio.merge.merge(datasets, bounds=(west, south, east, north),
                                                     res=res, nodata=nodata)
    finally:
        for d in datasets:
            d.close()
    band = merged[0].astype(np.float32)
    with rasterio.open(dest, "w", driver="GTiff", width=band.shape[1], height=band.shape[0],
                       count=1, dtype="float32", crs=crs, transform=transform, nodata=nodata,
                       compress="deflate", predictor=3) as out:
        out.write(band, 1)
    return band.shape


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch each département's archive and cut its tiles to the territory plus 5 km.

    Raises
    ------
    DownloadError
        A listing or an archive that could not be had, an archive that does not
        cover the territory, or the territory's box is unknown (the cadastre failed).
    """
    from pyproj import Transformer

    base = ctx.urls.base("telechargement")
    box_wgs84 = ctx.box(base)
    editions: list[str] = []
    urls: list[str] = []
    tiles: list[Path] = []
    crs_of: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for dep in ctx.departements:
            date, projection = edition(ctx, dep)
            url = ctx.urls.bdalti(dep, date, projection=projection)
            crs = _crs(projection, ctx.crs)
            crs_of.add(crs)
            box = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform_bounds(
                *box_wgs84)
            archive = ctx.cache.fetch(ctx.client, url, source=SOURCE, millesime=date,
                                      name=url.rsplit("/", 1)[1], expect="7z",
                                      producer=PRODUCER)
            editions.append(date)
            urls.append(url)
            tiles += _extract_tiles(archive, Path(tmp) / dep, url, box)
        if len(crs_of) > 1:
            raise DownloadError(f"{base} : BD ALTI des départements {', '.join(ctx.departements)} "
                                f"dans des projections différentes ({', '.join(sorted(crs_of))})",
                                url=base)
        crs = crs_of.pop()
        box = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform_bounds(
            *box_wgs84)
        staged = Path(tmp) / NAME
        try:
            if not tiles:
                raise ValueError("no tile")
            mosaic(tiles, box, crs, staged)
        except ValueError:
            url = urls[0]
            raise DownloadError(f"{url} : les dalles de la BD ALTI ne couvrent pas l'emprise du "
                                f"territoire ({', '.join(f'{v:.0f}' for v in box)}, {crs}) ; "
                                f"vérifiez les codes INSEE des communes ([territoire] communes)",
                                url=url, status=200) from None
        data = staged.read_bytes()
    date = max(editions)
    path = ctx.cache.store(data, url=urls[editions.index(date)], source=SOURCE,
                           millesime=date, name=NAME, producer=PRODUCER)
    return [Fetched("mnt", (path,), "geotiff", PRODUCER, date)]
