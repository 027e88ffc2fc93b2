"""Etalab cadastre, per commune: parcels, commune outlines, and buildings as a fallback.

Layout (datagouv/cadastre.data.gouv.fr, ``lib/cadastre-etalab.mjs`` and the download
assistant): ``{base}/{millesime}/geojson/communes/{dep}/{insee}/cadastre-{insee}-{layer}
.json.gz``. The vintages are the dated folders of the HTML index of ``{base}/``;
``latest`` is resolved to the newest of them, so that the cache is filed under the
real date and a new vintage is seen by ``--verifier``.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from pathlib import Path

import shapely
from shapely.geometry import shape

from observatoire.acquisition.contexte import MARGE_M, Context, Fetched
from observatoire.acquisition.http import DownloadError

logger = logging.getLogger(__name__)

SOURCE = "cadastre"
PRODUCER = "DGFiP, Etalab (cadastre.data.gouv.fr)"
#: Layers fetched per commune: outlines give the territory's box.
LAYERS = ("communes", "parcelles", "batiments")
_DATED_FOLDER = re.compile(r'href="(?:\./)?(\d{4}-\d{2}-\d{2})/"')


def published_millesimes(ctx: Context) -> list[str]:
    """Return the vintages listed by the publisher's index, oldest first.

    Raises
    ------
    DownloadError
        The index cannot be read, or lists no vintage.
    """
    assert ctx.client is not None
    url = ctx.urls.cadastre_listing()
    page = ctx.client.get(url).text
    found = sorted(set(_DATED_FOLDER.findall(page)))
    if not found:
        raise DownloadError(f"{url} : aucun millésime daté dans l'index du cadastre Etalab",
                            url=url, status=200)
    return found


def resolve_millesime(ctx: Context) -> str:
    """Return the dated vintage to fetch: asked, else the newest published (cached offline)."""
    if ctx.millesime != "latest":
        return ctx.millesime
    if ctx.offline:
        cached = ctx.cache.millesimes(SOURCE)
        if not cached:
            raise DownloadError(f"{ctx.urls.cadastre_listing()} : aucun millésime du cadastre "
                                f"en cache ; relancez sans --hors-ligne",
                                url=ctx.urls.cadastre_listing())
        return cached[-1]
    return published_millesimes(ctx)[-1]


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch the parcels, outlines and buildings of every commune; set ``ctx.bbox_wgs84``.

    Returns
    -------
    list of Fetched
        ``parcelles`` (Etalab format) and ``batiments`` (Etalab buildings, used
        when no BD TOPO buildings are fetched).

    Raises
    ------
    DownloadError
        The first file that could not be had (after the others were tried).
    """
    millesime = resolve_millesime(ctx)
    jobs = [(insee, layer) for insee in ctx.communes for layer in LAYERS]

    def one(job: tuple[str, str]) -> Path | DownloadError:
        insee, layer = job
        url = ctx.urls.cadastre_commune(millesime, insee, layer)
        try:
            return ctx.cache.fetch(ctx.client, url, source=SOURCE, millesime=millesime,
                                   name=f"{insee}/{url.rsplit('/', 1)[1]}", expect="gzip",
                                   producer=PRODUCER)
        except DownloadError as exc:
            return exc

    results = dict(zip(jobs, ctx.map(one, jobs), strict=True))
    errors = [r for r in results.values() if isinstance(r, DownloadError)]
    if errors:
        raise errors[0]
    paths = {job: r for job, r in results.items() if isinstance(r, Path)}
    ctx.bbox_wgs84 = territory_box([paths[(c, "communes")] for c in ctx.communes],
                                   crs=ctx.crs)
    buildings = tuple(gunzipped(ctx, paths[(c, "batiments")]) for c in ctx.communes)
    return [
        Fetched("parcelles", tuple(paths[(c, "parcelles")] for c in ctx.communes), "etalab",
                PRODUCER, millesime),
        Fetched("batiments", buildings, None, PRODUCER, millesime, fallback=True),
    ]


def gunzipped(ctx: Context, path: Path) -> Path:
    """Return the decompressed copy of a cached ``.json.gz`` (a ``.geojson`` beside it).

    The buildings reader opens its files with GDAL, which does not read a gzip
    GeoJSON by its name; the copy gets its own manifest (same URL and vintage).
    """
    plain = path.with_name(path.name.removesuffix(".json.gz") + ".geojson")
    source = ctx.cache.manifest(path)
    if ctx.cache.manifest(plain) is not None or source is None:
        return plain
    with gzip.open(path, "rb") as f:
        data = f.read()
    ctx.cache.store(data, url=source.url, source=SOURCE, millesime=source.millesime,
                    name=str(plain.relative_to(ctx.cache.path(SOURCE, source.millesime, ""))),
                    producer=PRODUCER)
    return plain


def territory_box(outlines: list[Path], *, crs: str, margin: float = MARGE_M
                  ) -> tuple[float, float, float, float]:
    """Return the longitude/latitude box of the communes' outlines plus ``margin`` metres.

    The margin is taken in the territory's legal CRS (metres), then the box is
    brought back to WGS84, as the publishers' box queries expect.
    """
    from pyproj import Transformer

    geoms = []
    for path in outlines:
        with gzip.open(path, "rb") as f:
            doc = json.load(f)
        geoms += [shape(feat["geometry"]) for feat in doc.get("features", [])
                  if feat.get("geometry")]
    if not geoms:
        raise DownloadError(f"{outlines[0]} : contour de commune vide ; impossible de situer "
                            f"le territoire", url=str(outlines[0]))
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    to_legal = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x0, y0, x1, y1 = to_legal.transform_bounds(xmin, ymin, xmax, ymax)
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon0, lat0, lon1, lat1 = back.transform_bounds(x0 - margin, y0 - margin, x1 + margin,
                                                   y1 + margin)
    return (lon0, lat0, lon1, lat1)


def check(ctx: Context) -> tuple[str | None, str]:
    """Return the newest vintage cached and the newest published (``--verifier``)."""
    cached = ctx.cache.millesimes(SOURCE)
    return (cached[-1] if cached else None), published_millesimes(ctx)[-1]
