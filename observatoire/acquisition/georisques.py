"""Géorisques: flood zones of the TRI, polluted-soil sectors (SIS) and classified sites (ICPE).

Three datasets of the ministry of ecological transition and the BRGM:

- **flood hazard of the TRI**, « scénario moyen », strong, medium and weak
  intensities (:data:`~observatoire.acquisition.urls.TRI_TYPENAMES`), asked of
  Géorisques' MapServer WFS inside the territory's box plus 5 km in Lambert-93,
  page after page (``STARTINDEX``/``COUNT``); its GML answers are read with GDAL
  (without downloading their schema). Union of the three intensities: one
  constraint of type ``inondation``. Metropolitan France only (``_FXX`` layers);
- **secteurs d'information sur les sols** (SIS, the regulated polluted-soil
  perimeters, MultiPolygon): Géorisques API v1 ``ssp/conclusions_sis`` per commune,
  pages of ``{results, page, total_pages, data}`` (mutafriches
  ``adapters/georisques/sis``): one constraint of type ``risque_technologique``;
- **installations classées** (ICPE): API v1 ``installations_classees`` per commune,
  same pages, points from ``longitude``/``latitude`` (mutafriches
  ``adapters/georisques/icpe``). Cached as a GeoJSON of points with its manifest;
  not declared in the territory file: a constraint is an area.

No constraint is strict: the share of each parcel covered is an indicator
(``part_contrainte_*``), the choice to exclude is the territory's (``stricte``).
A dataset with nothing in the territory is not declared. A page that fails fails
the source: nothing partial is cached.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import Client, DownloadError, _looks_like_html
from observatoire.acquisition.urls import (
    GEORISQUES_ICPE,
    GEORISQUES_PAGE_SIZE,
    GEORISQUES_SIS,
    GEORISQUES_WFS_COUNT,
    TRI_TYPENAMES,
    Urls,
)

logger = logging.getLogger(__name__)

SOURCE = "georisques"
PRODUCER = "Géorisques (ministère de la Transition écologique, BRGM)"
TRI_NAME = "zones_inondables_tri.gpkg"
TRI_LAYER = "zones_inondables_tri"
SIS_NAME = "sis.geojson"
ICPE_NAME = "icpe.geojson"
#: Constraint names in the territory file.
TRI_CONSTRAINT = "Zones inondables du TRI, scénario moyen (Géorisques)"
SIS_CONSTRAINT = "Secteurs d'information sur les sols (Géorisques)"
_RETURNED = re.compile(rb'numberReturned="(\d+)"')


def api_rows(client: Client, urls: Urls, dataset: str, insee: str, *,
             page_size: int = GEORISQUES_PAGE_SIZE) -> list[dict[str, Any]]:
    """Every row of a Géorisques API v1 dataset for a commune, page after page.

    Raises
    ------
    DownloadError
        A page that could not be had, or an answer without ``data``.
    """
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        url, params = urls.georisques(dataset, insee, page=page, page_size=page_size)
        doc = client.get_json(url, params=params)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise DownloadError(f"{url} : réponse Géorisques sans « data » (commune {insee}, "
                                f"page {page}) ; l'API a peut-être changé", url=url, status=200)
        rows += data
        total = doc.get("total_pages")
        if not data or not isinstance(total, int) or page >= total:
            return rows
        page += 1


def _geometry(geom: Any, url: str, ident: str) -> dict[str, Any] | None:
    """Return the GeoJSON geometry (lon/lat) of a SIS's ``geom``: a geometry, or a feature."""
    if isinstance(geom, str):
        geom = json.loads(geom)
    if not isinstance(geom, dict):
        return None
    crs = ((geom.get("crs") or {}).get("properties") or {}).get("name")
    inner = geom.get("geometry", geom)
    if isinstance(inner, str):
        inner = json.loads(inner)
    if not isinstance(inner, dict) or "coordinates" not in inner:
        return None
    if crs and not re.search(r"(EPSG:+4326|CRS84)$", str(crs)):
        import shapely
        from pyproj import Transformer

        try:
            transform = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
        except Exception:  # noqa: BLE001 (pyproj's errors are several)
            raise DownloadError(f"{url} : SIS {ident} : CRS de « geom » inconnu ({crs})",
                                url=url, status=200) from None
        shape = shapely.from_geojson(json.dumps(inner))
        inner = json.loads(shapely.to_geojson(shapely.transform(shape, transform,
                                                                interleaved=False)))
    import shapely

    x0, y0, x1, y1 = shapely.from_geojson(json.dumps(inner)).bounds
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise DownloadError(f"{url} : SIS {ident} : « geom » sans CRS déclaré et hors des "
                            f"longitudes et latitudes ({x0:.0f}, {y0:.0f}) ; l'API a peut-être "
                            f"changé de projection", url=url, status=200)
    return inner


def sis_features(ctx: Context, client: Client) -> list[dict[str, Any]]:
    """Return the SIS of the territory's communes as GeoJSON features (lon/lat), each once."""
    url, _ = ctx.urls.georisques(GEORISQUES_SIS, ctx.communes[0], page=1)
    size = ctx.page_size or GEORISQUES_PAGE_SIZE
    pages = ctx.map(lambda c: api_rows(client, ctx.urls, GEORISQUES_SIS, c, page_size=size),
                    ctx.communes)
    seen: dict[str, dict[str, Any]] = {}
    for row in (r for rows in pages for r in rows):
        ident = str(row.get("id_sis") or row.get("identifiant_ssp") or len(seen))
        geometry = _geometry(row.get("geom"), url, ident)
        if geometry is None:
            continue
        props = {k: row.get(k) for k in ("id_sis", "nom", "adresse", "superficie",
                                         "statut_classification", "code_insee",
                                         "nom_commune", "fiche_risque", "date_maj")}
        seen.setdefault(ident, {"type": "Feature", "geometry": geometry, "properties": props})
    return [seen[k] for k in sorted(seen)]


def icpe_features(ctx: Context, client: Client) -> list[dict[str, Any]]:
    """Return the classified installations of the territory's communes, as points."""
    size = ctx.page_size or GEORISQUES_PAGE_SIZE
    pages = ctx.map(lambda c: api_rows(client, ctx.urls, GEORISQUES_ICPE, c, page_size=size),
                    ctx.communes)
    seen: dict[str, dict[str, Any]] = {}
    for row in (r for rows in pages for r in rows):
        lon, lat = row.get("longitude"), row.get("latitude")
        if not isinstance(lon, int | float) or not isinstance(lat, int | float):
            continue
        ident = str(row.get("codeAIOT") or len(seen))
        props = {k: row.get(k) for k in ("codeAIOT", "raisonSociale", "siret", "codeInsee",
                                         "commune", "codeNaf", "regime", "statutSeveso",
                                         "etatActivite", "prioriteNationale", "ied",
                                         "date_maj")}
        seen.setdefault(ident, {"type": "Feature", "properties": props,
                                "geometry": {"type": "Point", "coordinates": [lon, lat]}})
    return [seen[k] for k in sorted(seen)]


def wfs_gml(client: Client, urls: Urls, typename: str, bbox: tuple[float, float, float, float],
            *, page_size: int = GEORISQUES_WFS_COUNT) -> list[Any]:
    """Every feature of a Géorisques WFS layer in a Lambert-93 box, as GeoDataFrames.

    Raises
    ------
    DownloadError
        A page that could not be had, an HTML page, an exception report or a GML
        that GDAL cannot read.
    """
    import pyogrio

    frames: list[Any] = []
    start = 0
    while True:
        url, params = urls.georisques_wfs(typename, bbox, start=start, count=page_size)
        response = client.get(url, params=params)
        body = response.content
        if _looks_like_html(body[:512], response.headers.get("Content-Type")):
            raise DownloadError(f"{response.url} : page HTML reçue au lieu de GML (statut "
                                f"{response.status_code}) ; le service est peut-être en "
                                f"maintenance, réessayez plus tard", url=response.url,
                                status=response.status_code)
        if b"ExceptionReport" in body[:2048]:
            text = re.sub(r"\s+", " ", body[:600].decode("utf-8", "replace"))
            raise DownloadError(f"{response.url} : le WFS de Géorisques répond une exception "
                                f"({text})", url=response.url, status=response.status_code)
        returned = _RETURNED.search(body[:4096])
        if returned is not None and int(returned[1]) == 0:
            return frames
        try:
            frame = pyogrio.read_dataframe(io.BytesIO(body), DOWNLOAD_SCHEMA="NO")
            problem = None
        except Exception as exc:  # noqa: BLE001 (GDAL's errors are several)
            problem = str(exc)[:200]
        if problem is None and not hasattr(frame, "geometry"):
            problem = "pas de géométrie"
        elif problem is None and returned is not None and int(returned[1]) != len(frame):
            problem = f"{len(frame)} entités lues sur {int(returned[1])} annoncées"
        if problem is not None:
            raise DownloadError(f"{response.url} : GML illisible ou tronqué ({problem}) ; "
                                f"réessayez plus tard", url=response.url, status=200)
        frames.append(frame)
        start += len(frame)
        if len(frame) < page_size:
            return frames


def tri_zones(ctx: Context, client: Client, dest: Path) -> int:
    """Write the TRI flood zones of the box in ``dest`` (GeoPackage); return their number."""
    import geopandas as gpd
    import pandas as pd
    import pyogrio
    from pyproj import Transformer

    box = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform_bounds(
        *ctx.box(ctx.urls.base("georisques")))
    parts = []
    for typename in TRI_TYPENAMES:
        for frame in wfs_gml(client, ctx.urls, typename, box,
                             page_size=ctx.page_size or GEORISQUES_WFS_COUNT):
            frame = frame.to_crs("EPSG:2154") if frame.crs is not None else frame.set_crs(
                "EPSG:2154")
            frame["couche"] = typename.split(":", 1)[1]
            parts.append(frame)
    if not parts:
        return 0
    zones = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs="EPSG:2154")
    pyogrio.write_dataframe(zones, dest, layer=TRI_LAYER, driver="GPKG")
    return len(zones)


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch the TRI flood zones, the SIS and the ICPE of the territory.

    Offline, the newest cached copy of each.

    Raises
    ------
    DownloadError
        A page failed, or the territory's box is unknown (the cadastre failed).
    """
    base = ctx.urls.base("georisques")
    if ctx.client is None:
        # The ICPE are cached but not declared (points): the others are returned.
        cached = ctx.cached(SOURCE, (TRI_NAME, SIS_NAME, ICPE_NAME), what="donnée Géorisques",
                            url=base)
        return [make(path, path.parent.name) for name, make in ((TRI_NAME, _tri),
                                                                (SIS_NAME, _sis))
                if (path := cached.get(name)) is not None]
    ctx.box(base)
    client = ctx.client
    sis = sis_features(ctx, client)
    icpe = icpe_features(ctx, client)
    metropole = ctx.crs == "EPSG:2154"
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / TRI_NAME
        n_tri = tri_zones(ctx, client, staged) if metropole else 0
        tri_data = staged.read_bytes() if n_tri else b""
    out = []
    wfs_url, _ = ctx.urls.georisques_wfs(TRI_TYPENAMES[0], (0, 0, 0, 0), start=0, count=0)
    if n_tri:
        path = ctx.cache.store(tri_data, url=f"{wfs_url}?TYPENAMES={','.join(TRI_TYPENAMES)}",
                               source=SOURCE, millesime=ctx.today, name=TRI_NAME,
                               producer=PRODUCER)
        out.append(_tri(path, ctx.today))
    else:
        logger.info("Géorisques : %s", "pas de zone inondable de TRI dans l'emprise du "
                    "territoire (marge de 5 km comprise)" if metropole else
                    "zones inondables des TRI publiées pour la métropole seulement")
    for features, name in ((sis, SIS_NAME), (icpe, ICPE_NAME)):
        if not features:
            continue
        dataset = GEORISQUES_SIS if name == SIS_NAME else GEORISQUES_ICPE
        url, _ = ctx.urls.georisques(dataset, ctx.communes[0], page=1)
        doc = {"type": "FeatureCollection", "name": name.split(".")[0], "features": features}
        path = ctx.cache.store(json.dumps(doc, ensure_ascii=False).encode(),
                               url=f"{url}?code_insee={','.join(ctx.communes)}",
                               source=SOURCE, millesime=ctx.today, name=name, producer=PRODUCER)
        if name == SIS_NAME:
            out.append(_sis(path, ctx.today))
        else:
            logger.info("Géorisques : %d installations classées en cache (%s), non déclarées : "
                        "ce sont des points, une contrainte est une surface", len(icpe), path)
    return out


def _tri(path: Path, date: str) -> Fetched:
    return Fetched("contraintes", (path,), None, PRODUCER, date, layer=TRI_LAYER,
                   extra=(("nom", TRI_CONSTRAINT), ("type", "inondation")))


def _sis(path: Path, date: str) -> Fetched:
    return Fetched("contraintes", (path,), None, PRODUCER, date,
                   extra=(("nom", SIS_CONSTRAINT), ("type", "risque_technologique")))
