"""PLU and PLUi zoning (CNIG ``zone_urba``) from the Géoportail de l'Urbanisme.

A commune's document is filed under the GPU partition ``DU_{insee}`` (PLU, carte
communale) and an intercommunal one under ``DU_{siren}`` (PLUi). Both are asked of
the Géoplateforme WFS (``wfs_du:zone_urba``), page after page (``COUNT`` at most
5,000, ``STARTINDEX``): API Carto's ``/api/gpu/zone-urba`` caps its answer and does
not page (IGNF/apicarto ``controllers/gpu/index.js``). A page that fails fails the
source: a partial zoning is never cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import Client, DownloadError
from observatoire.acquisition.urls import WFS_MAX_COUNT, Urls

logger = logging.getLogger(__name__)

SOURCE = "zonage"
PRODUCER = "Géoportail de l'Urbanisme (IGN)"
NAME = "zone_urba.geojson"
#: Partitions per request: keeps the CQL filter (in the URL) short.
PARTITIONS_PER_REQUEST = 40


def partitions(communes: Sequence[str], epci_siren: str | None) -> list[str]:
    """Return the GPU partitions of a territory: each commune's, then its EPCI's (PLUi)."""
    out = [f"DU_{c}" for c in communes]
    return out + [f"DU_{epci_siren}"] if epci_siren else out


def zone_urba(client: Client, urls: Urls, parts: Sequence[str], *,
              page_size: int = WFS_MAX_COUNT) -> list[dict[str, Any]]:
    """Every ``zone_urba`` feature of ``parts``, paging through the WFS.

    Raises
    ------
    DownloadError
        A page that could not be had (the others are dropped).
    """
    features: list[dict[str, Any]] = []
    for i in range(0, len(parts), PARTITIONS_PER_REQUEST):
        group = parts[i:i + PARTITIONS_PER_REQUEST]
        start = 0
        while True:
            url, params = urls.gpu_zone_urba(group, start=start, count=page_size)
            page = client.get_json(url, params=params)
            got = page.get("features") if isinstance(page, dict) else None
            if not isinstance(got, list):
                raise DownloadError(f"{url} : réponse WFS sans « features » (partitions "
                                    f"{', '.join(group)}) ; le service a peut-être changé",
                                    url=url, status=200)
            features += got
            matched = page.get("numberMatched")
            start += len(got)
            if len(got) < page_size or (isinstance(matched, int) and start >= matched):
                break
    return features


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch the zoning of the territory's documents into one GeoJSON file.

    Offline, the newest cached zoning is used.

    Raises
    ------
    DownloadError
        A page failed, or no zone was found for any partition.
    """
    parts = partitions(ctx.communes, ctx.epci_siren)
    page_size = ctx.page_size or WFS_MAX_COUNT
    if ctx.client is None:
        path = ctx.cache.newest(SOURCE, NAME)
        if path is None:
            raise DownloadError(f"{ctx.urls.base('wfs')} : aucun zonage en cache ; relancez "
                                f"sans --hors-ligne", url=ctx.urls.base("wfs"))
        return [Fetched("zonage", (path,), None, PRODUCER, path.parent.name)]
    features = zone_urba(ctx.client, ctx.urls, parts, page_size=page_size)
    url, _ = ctx.urls.gpu_zone_urba(parts[:1], start=0, count=page_size)
    if not features:
        raise DownloadError(f"{url} : aucune zone de PLU/PLUi publiée au Géoportail de "
                            f"l'Urbanisme pour {', '.join(parts)} (communes au RNU ou en carte "
                            f"communale sans zonage ?)", url=url, status=200)
    found = sorted({str(f.get("properties", {}).get("partition")) for f in features})
    missing = [p for p in parts if p not in found]
    if missing:
        logger.info("zonage : pas de document au GPU pour %s", ", ".join(missing))
    doc = {"type": "FeatureCollection", "name": "zone_urba", "features": features}
    path = ctx.cache.store(json.dumps(doc, ensure_ascii=False).encode(), url=url,
                           source=SOURCE, millesime=ctx.today, name=NAME, producer=PRODUCER)
    return [Fetched("zonage", (path,), None, PRODUCER, ctx.today)]
