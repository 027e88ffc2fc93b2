"""Natura 2000 and ZNIEFF (PatriNat: OFB, MNHN) as constraint layers of the territory.

The four layers of :data:`~observatoire.acquisition.urls.PATRINAT_TYPENAMES`
(ZNIEFF of type I and II, Natura 2000 sites of the Habitats directive — SIC/ZSC —
and of the Birds directive — ZPS) are asked of the Géoplateforme WFS inside the
territory's box plus 5 km, page after page (``COUNT`` at most 5,000,
``STARTINDEX``; IGNF/apicarto ``controllers/nature/index.js`` proxies the same
layers and renames their fields ``id_mnhn``, ``nom_site``, ``url_fiche``: the raw
names are kept here). Each layer with zones becomes one ``[[sources.contraintes]]``
of type ``nature``, not strict: a protected area marks the parcels it covers
(``part_contrainte_*``) without excluding them. A page that fails fails the
source: a partial layer is never cached. The old INPN shapefile downloads are gone
(404 since July 2026).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import Client, DownloadError
from observatoire.acquisition.urls import PATRINAT_TYPENAMES, WFS_MAX_COUNT, Urls

logger = logging.getLogger(__name__)

SOURCE = "patrinat"
PRODUCER = "PatriNat (OFB, MNHN)"
#: Layer → the constraint's name in the territory file.
NAMES = {
    "znieff1": "ZNIEFF de type I",
    "znieff2": "ZNIEFF de type II",
    "natura2000_sic": "Natura 2000, directive Habitats (SIC/ZSC)",
    "natura2000_zps": "Natura 2000, directive Oiseaux (ZPS)",
}


def wfs_features(client: Client, page: Callable[[int, int], tuple[str, dict[str, str]]], *,
                 page_size: int, what: str) -> list[dict[str, Any]]:
    """Every feature of a GeoJSON WFS answer, page after page (``STARTINDEX``).

    ``page(start, count)`` gives the URL and parameters of a page.

    Raises
    ------
    DownloadError
        A page that could not be had, or an answer without features.
    """
    features: list[dict[str, Any]] = []
    start = 0
    while True:
        url, params = page(start, page_size)
        doc = client.get_json(url, params=params)
        got = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(got, list):
            raise DownloadError(f"{url} : réponse WFS sans « features » ({what}) ; le service a "
                                f"peut-être changé", url=url, status=200)
        features += got
        start += len(got)
        matched = doc.get("numberMatched")
        if len(got) < page_size or (isinstance(matched, int) and start >= matched):
            return features


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch the PatriNat layers in the territory's box plus 5 km, one GeoJSON each.

    Offline, the newest cached copy of each layer.

    Raises
    ------
    DownloadError
        A page failed, or the territory's box is unknown (the cadastre failed).
    """
    base = ctx.urls.base("wfs")
    if ctx.client is None:
        cached = ctx.cached(SOURCE, [f"{layer}.geojson" for layer in NAMES],
                            what="couche PatriNat", url=base)
        return [_fetched(layer, path, path.parent.name) for layer in NAMES
                if (path := cached.get(f"{layer}.geojson")) is not None]
    bbox = ctx.box(base)
    out = []
    page_size = ctx.page_size or WFS_MAX_COUNT
    for layer, typename in PATRINAT_TYPENAMES.items():
        features = wfs_features(ctx.client, partial(_page, ctx.urls, typename, bbox),
                                page_size=page_size, what=typename)
        if not features:
            logger.info("PatriNat : pas de zone %s dans l'emprise du territoire (marge de "
                        "5 km comprise)", NAMES[layer])
            continue
        url, params = ctx.urls.wfs_bbox(typename, bbox, start=0, count=page_size)
        doc = {"type": "FeatureCollection", "name": layer, "features": features}
        path = ctx.cache.store(json.dumps(doc, ensure_ascii=False).encode(),
                               url=f"{url}?TYPENAMES={typename}&BBOX={params['BBOX']}",
                               source=SOURCE, millesime=ctx.today, name=f"{layer}.geojson",
                               producer=PRODUCER)
        out.append(_fetched(layer, path, ctx.today))
    return out


def _page(urls: Urls, typename: str, bbox: tuple[float, float, float, float], start: int,
          count: int) -> tuple[str, dict[str, str]]:
    return urls.wfs_bbox(typename, bbox, start=start, count=count)


def _fetched(layer: str, path: Any, date: str) -> Fetched:
    return Fetched("contraintes", (path,), None, PRODUCER, date,
                   extra=(("nom", NAMES[layer]), ("type", "nature")))
