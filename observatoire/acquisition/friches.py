"""Cartofriches (Cerema): the friches of the territory and of its 5 km margin.

Asked of the Cerema's API (CEREMA/apifoncier ``endpoints/cartofriches.py``):
``/cartofriches/geofriches/?in_bbox=lon0,lat0,lon1,lat1&page_size=500`` answers
GeoJSON pages linked by ``next``; a box may not exceed 1° by 1°, so a larger
territory is asked tile by tile, and a friche seen by two tiles is kept once
(by ``site_id``). The margin matters: the observatory measures the distance of each
parcel to the nearest friche, which may lie in the next commune.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import Client, DownloadError
from observatoire.acquisition.urls import CARTOFRICHES_MAX_BBOX, CARTOFRICHES_PAGE_SIZE, Urls

SOURCE = "cartofriches"
logger = logging.getLogger(__name__)

PRODUCER = "Cerema, Cartofriches"
NAME = "cartofriches.geojson"

Box = tuple[float, float, float, float]


def tiles(bbox: Box, *, side: float = CARTOFRICHES_MAX_BBOX) -> list[Box]:
    """Split a box into tiles no larger than ``side`` degrees (row by row, west to east)."""
    lon0, lat0, lon1, lat1 = bbox
    nx = max(1, math.ceil((lon1 - lon0) / side))
    ny = max(1, math.ceil((lat1 - lat0) / side))
    dx, dy = (lon1 - lon0) / nx, (lat1 - lat0) / ny
    return [(lon0 + i * dx, lat0 + j * dy, lon0 + (i + 1) * dx, lat0 + (j + 1) * dy)
            for j in range(ny) for i in range(nx)]


def geofriches(client: Client, urls: Urls, bbox: Box, *,
               page_size: int = CARTOFRICHES_PAGE_SIZE) -> list[dict[str, Any]]:
    """Every friche inside ``bbox``, following the ``next`` links, each site once.

    Raises
    ------
    DownloadError
        A page that could not be had.
    """
    seen: dict[str, dict[str, Any]] = {}
    for tile in tiles(bbox):
        url: str | None
        url, params = urls.cartofriches_geofriches(tile, page_size=page_size)
        query: dict[str, str] | None = params
        while url:
            page = client.get_json(url, params=query)
            features = page.get("features") if isinstance(page, dict) else None
            if not isinstance(features, list):
                raise DownloadError(f"{url} : réponse Cartofriches sans « features » ; l'API a "
                                    f"peut-être changé", url=url, status=200)
            for feature in features:
                props = feature.get("properties") or {}
                key = str(props.get("site_id") or feature.get("id") or len(seen))
                seen.setdefault(key, feature)
            url, query = page.get("next"), None  # the next link carries the query
    return [seen[k] for k in sorted(seen)]


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch the friches of the territory's box (the cadastre must come first).

    Raises
    ------
    DownloadError
        A page failed, or the territory's box is unknown (the cadastre failed).
    """
    base = ctx.urls.base("cartofriches")
    page_size = ctx.page_size or CARTOFRICHES_PAGE_SIZE
    if ctx.client is None:
        path = ctx.cache.newest(SOURCE, NAME)
        if path is None:
            raise DownloadError(f"{base} : aucune donnée Cartofriches en cache ; relancez "
                                f"sans --hors-ligne", url=base)
        return [Fetched("friches", (path,), "cartofriches", PRODUCER, path.parent.name)]
    box_wgs84 = ctx.box(base)
    features = geofriches(ctx.client, ctx.urls, box_wgs84, page_size=page_size)
    url, params = ctx.urls.cartofriches_geofriches(box_wgs84, page_size=page_size)
    if not features:
        logger.warning("Cartofriches : aucune friche recensée dans l'emprise du territoire "
                       "(marge de 5 km comprise) ; pas de source friches")
        return []
    doc = {"type": "FeatureCollection", "name": "cartofriches", "features": features}
    path = ctx.cache.store(json.dumps(doc, ensure_ascii=False).encode(),
                           url=f"{url}?in_bbox={params['in_bbox']}", source=SOURCE,
                           millesime=ctx.today, name=NAME, producer=PRODUCER)
    return [Fetched("friches", (path,), "cartofriches", PRODUCER, ctx.today)]
