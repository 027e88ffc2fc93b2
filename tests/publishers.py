"""A local copy of the publishers, on 127.0.0.1, for the acquisition tests (no internet).

The server answers under ``/<host>/<path>`` the same URL layouts, query parameters,
paging and answer shapes as the real services (see
``observatoire/acquisition/urls.py`` for the anchors in the publishers' code):

- ``cadastre.data.gouv.fr/data/etalab-cadastre/``: the HTML index of the vintages,
  and ``{millesime}/geojson/communes/{dep}/{insee}/cadastre-{insee}-{layer}.json.gz``
  (one feature per line, gzip), with ``ETag``/``Last-Modified``, ``304`` to a
  conditional request and ``206`` to a ``Range``;
- ``data.geopf.fr/wfs/ows``: ``GetFeature`` of ``wfs_du:zone_urba`` filtered by
  ``CQL_FILTER=partition IN (…)``, paged by ``COUNT``/``STARTINDEX``, GeoJSON with
  ``numberMatched``/``numberReturned``;
- ``files.data.gouv.fr/geo-sirene/last/dep/geo_siret_25.csv.gz`` (same headers);
- ``apidf-preprod.cerema.fr/cartofriches/geofriches/``: ``in_bbox``, ``page_size``,
  ``page``, GeoJSON with ``count`` and an absolute ``next`` link.

Its content is the repository's real sample of Gennes (data/sample, see its
ATTRIBUTION.md): the BD PARCELLAIRE parcels and BD TOPO buildings written as Etalab
writes its cadastre (lon/lat, one feature per line), the commune outline as the
union of the parcels, the PLU zones as GPU ``zone_urba`` features (lower-case CNIG
fields, partition ``DU_25267``), the Cartofriches sites as the API's features.

Faults are queued per URL fragment (:meth:`Publishers.inject`): ``("statut", 404)``,
``("coupure", n)`` (the headers announce the whole file, ``n`` bytes are sent, the
connection is closed), ``("lent", s)`` (answers after ``s`` seconds), ``("html",)``
(an HTML maintenance page with status 200), ``("corrompu",)`` (a truncated gzip
whose announced length is right).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
INSEE = "25267"
SIREN = "242500361"
MILLESIMES = ("2025-04-01", "2025-09-01")
LAST_MODIFIED = "Mon, 01 Sep 2025 06:00:00 GMT"
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>"
             b"<body><h1>Service en maintenance</h1></body></html>\n")


def etalab_lines(frame: gpd.GeoDataFrame) -> bytes:
    """``frame`` (lon/lat) as Etalab writes it: one feature per line."""
    props = pd.DataFrame(frame.drop(columns=frame.geometry.name)).astype(object)
    lines = []
    for rec, geom in zip(props.where(props.notna(), None).to_dict("records"), frame.geometry,
                         strict=True):
        lines.append(json.dumps({"type": "Feature", "id": rec.get("id"),
                                 "geometry": json.loads(shapely.to_geojson(geom)),
                                 "properties": rec}, separators=(",", ":")))
    return ('{"type":"FeatureCollection","features":[\n' + ",\n".join(lines)
            + "\n]}\n").encode()


@dataclass
class SampleData:
    """The sample's files in the publishers' shapes."""

    cadastre: dict[str, bytes]          # layer -> gzip bytes
    zone_urba: list[dict[str, Any]]     # GPU features
    friches: list[dict[str, Any]]       # Cartofriches features
    sirene: bytes = b""                 # geo_siret_25.csv.gz
    bdtopo: bytes = b""                 # the 7z of D025
    bdalti: bytes = b""                 # the BD ALTI 7z of D067
    patrinat: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # typename ->
    georisques: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # dataset ->
    tri: dict[str, list[Any]] = field(default_factory=dict)  # typename -> L93 geometries


def _features(frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    return list(json.loads(frame.to_json(drop_id=True))["features"])


def sample_data() -> SampleData:
    """Build the publishers' files from data/sample (deterministic bytes)."""
    parcels = gpd.read_file(SAMPLE / "parcel.gpkg")
    parcelles = gpd.GeoDataFrame({
        "id": parcels["DEPCOM"] + parcels["COM_ABS"] + parcels["SECTION"] + parcels["NUMERO"],
        "commune": parcels["DEPCOM"],
        "prefixe": parcels["COM_ABS"],
        "section": parcels["SECTION"].str.lstrip("0"),
        "numero": parcels["NUMERO"].str.lstrip("0"),
        "contenance": np.round(parcels.geometry.area).astype(int),
    }, geometry=parcels.geometry.values, crs=parcels.crs).to_crs(4326)
    buildings = gpd.read_file(SAMPLE / "building.gpkg")
    batiments = gpd.GeoDataFrame({
        "type": ["01"] * len(buildings), "nom": [None] * len(buildings),
        "commune": [INSEE] * len(buildings),
    }, geometry=shapely.force_2d(buildings.geometry.values), crs=buildings.crs).to_crs(4326)
    outline = shapely.union_all(parcels.geometry.values).buffer(0)
    communes = gpd.GeoDataFrame({"id": [INSEE], "nom": ["Gennes"]},
                                geometry=[outline], crs=parcels.crs).to_crs(4326)
    cadastre = {layer: gzip.compress(etalab_lines(frame), mtime=0)
                for layer, frame in (("parcelles", parcelles), ("batiments", batiments),
                                     ("communes", communes))}
    zones = gpd.read_file(SAMPLE / "zoning.gpkg", layer="zoning2")
    zone_urba = gpd.GeoDataFrame({
        "gid": range(1, len(zones) + 1),
        "partition": [f"DU_{INSEE}"] * len(zones),
        "idurba": [f"{INSEE}_PLU_20170101"] * len(zones),
        "libelle": zones["LIBELLE"], "libelong": zones["LIBELLE"],
        "typezone": zones["TYPEZONE"],
    }, geometry=shapely.force_2d(zones.geometry.values), crs=zones.crs).to_crs(4326)
    friches = gpd.read_file(SAMPLE / "cartofriches_subset_gennes_25267_5km.geojson")
    # The geolocated SIRENE rows of the reader's tests (Gennes' establishments).
    from test_readers_etablissements import GEO_HEADER, GEO_ROWS

    text = "\n".join(",".join(row) for row in [GEO_HEADER, *GEO_ROWS]) + "\n"
    return SampleData(cadastre, _features(zone_urba), _features(friches),
                      gzip.compress(text.encode(), mtime=0), bdtopo_archive(), bdalti_archive(),
                      patrinat_layers(zones), *georisques_data(parcels, buildings, zones))


def georisques_data(parcels: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame,
                    zones: gpd.GeoDataFrame
                    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[Any]]]:
    """The fixture's Géorisques rows (API v1 shapes) and TRI flood zones (Lambert-93).

    The sample has no risk data: the outlines are real ones of the sample (two
    parcels as SIS, one building's centre as an ICPE, two natural zones « N » of the
    PLU as flood zones of strong and medium intensity), the identifiers, names and
    attributes are the fixture's.
    """
    wgs = parcels.geometry.to_crs(4326)
    sis = [{"id_sis": f"25SIS0000{i}", "identifiant_ssp": f"SSP0000{i}",
            "nom": f"Ancienne usine {i}", "adresse": None, "superficie": round(area),
            "geom": {**json.loads(shapely.to_geojson(shapely.multipolygons(
                         shapely.get_parts(wgs.iloc[k])))),
                     **({"crs": {"type": "name", "properties": {"name": "EPSG:4326"}}}
                        if i == 1 else {})},
            "adresse_lieudit": None, "code_insee": INSEE, "nom_commune": "Gennes",
            "fiche_risque": None, "date_maj": "2025-06-01", "statut_classification": "SIS"}
           for i, (k, area) in enumerate(((0, parcels.geometry.iloc[0].area),
                                          (1, parcels.geometry.iloc[1].area)), start=1)]
    centre = shapely.force_2d(buildings.geometry.iloc[2]).centroid
    lon, lat = gpd.GeoSeries([centre], crs=buildings.crs).to_crs(4326).iloc[0].coords[0]
    icpe = [{"raisonSociale": "Scierie de Gennes", "codeInsee": INSEE, "commune": "Gennes",
             "codeNaf": "16.10A", "longitude": round(lon, 6), "latitude": round(lat, 6),
             "codeAIOT": "0006500001", "siret": None, "regime": "E", "statutSeveso": "3",
             "etatActivite": "En fonctionnement", "prioriteNationale": False, "ied": False,
             "date_maj": "2025-06-01"}]
    natural = zones.geometry[zones["TYPEZONE"] == "N"]
    tri = {"ms:ALEA_SYNT_02_01FOR_FXX": [shapely.force_2d(natural.iloc[0])],
           "ms:ALEA_SYNT_02_02MOY_FXX": [shapely.force_2d(natural.iloc[1])],
           "ms:ALEA_SYNT_02_04FAI_FXX": []}
    return {"ssp/conclusions_sis": sis, "installations_classees": icpe}, tri


def _pos(ring: Any) -> str:
    return " ".join(f"{x:.2f} {y:.2f}" for x, y in ring.coords)


def _gml_polygon(poly: Any, gid: str) -> str:
    inner = "".join(f"<gml:interior><gml:LinearRing><gml:posList srsDimension=\"2\">{_pos(r)}"
                    f"</gml:posList></gml:LinearRing></gml:interior>" for r in poly.interiors)
    return (f'<gml:Polygon gml:id="{gid}"><gml:exterior><gml:LinearRing>'
            f'<gml:posList srsDimension="2">{_pos(poly.exterior)}</gml:posList>'
            f"</gml:LinearRing></gml:exterior>{inner}</gml:Polygon>")


def tri_gml(typename: str, geoms: list[Any], *, matched: int) -> bytes:
    """A page of Géorisques' MapServer WFS 2.0 in GML 3.2 (``wfs:member``, ``ms:msGeometry``)."""
    layer = typename.split(":", 1)[1]
    members = []
    for i, geom in enumerate(geoms, start=1):
        polys = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
        surfaces = "".join(f"<gml:surfaceMember>{_gml_polygon(p, f'{layer}.{i}.{j}')}"
                           f"</gml:surfaceMember>" for j, p in enumerate(polys))
        members.append(
            f'<wfs:member><ms:{layer} gml:id="{layer}.{i}"><ms:msGeometry>'
            f'<gml:MultiSurface gml:id="{layer}.{i}.g" srsName="urn:ogc:def:crs:EPSG::2154">'
            f"{surfaces}</gml:MultiSurface></ms:msGeometry><ms:typ_inond>01</ms:typ_inond>"
            f"<ms:scenario>02Moy</ms:scenario></ms:{layer}></wfs:member>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<wfs:FeatureCollection '
            f'xmlns:ms="http://mapserver.gis.umn.edu/mapserver" '
            f'xmlns:gml="http://www.opengis.net/gml/3.2" '
            f'xmlns:wfs="http://www.opengis.net/wfs/2.0" '
            f'timeStamp="2025-09-01T06:00:00" numberMatched="{matched}" '
            f'numberReturned="{len(geoms)}">{"".join(members)}</wfs:FeatureCollection>\n'
            ).encode()


def patrinat_layers(zones: gpd.GeoDataFrame) -> dict[str, list[dict[str, Any]]]:
    """The fixture's PatriNat zones, with the WFS layers' raw field names.

    The sample has no protected area: the outlines are the sample's real PLU zones
    (its natural zones « N » as two ZNIEFF of type I, its agricultural zones « A »
    as one ZPS), the identifiers and names are the fixture's. The ZNIEFF of type II
    and Habitats-directive layers are empty in the territory's box.
    """
    def zone(kind: str, ident: str, name: str, part: slice = slice(None)) -> dict[str, Any]:
        outline = shapely.union_all(zones.geometry[zones["TYPEZONE"] == kind].values[part])
        frame = gpd.GeoDataFrame({"id_mnhn": [ident], "nom_site": [name],
                                  "url_fiche": [f"https://inpn.mnhn.fr/site/{ident}"]},
                                 geometry=[shapely.force_2d(outline)], crs=zones.crs)
        return _features(frame.to_crs(4326))[0]

    return {"patrinat_znieff1:znieff1": [zone("N", "430000001", "Vallon de Gennes",
                                              slice(0, 5)),
                                         zone("N", "430000002", "Bois de Gennes",
                                              slice(5, None))],
            "patrinat_znieff2:znieff2": [], "patrinat_sic:sic": [],
            "patrinat_zps:zps": [zone("A", "FR4300001", "Plateau de Gennes")]}


BDTOPO_EDITION = "2025-09-15"
BDTOPO_NAME = f"BDTOPO_3-5_TOUSTHEMES_GPKG_LAMB93_D025_{BDTOPO_EDITION}"


#: Buildings of the sample given the town-hall and school natures in the fixture's
#: ``zone_d_activite_ou_d_interet`` (the sample has no such layer: the footprints are
#: real, the natures are the fixture's, to test the « Mairie » filter and the 5 km cut).
MAIRIE_BUILDING, ECOLE_BUILDING = 0, 1
#: A third town hall, moved this far east (metres): outside Gennes plus 5 km.
FAR_AWAY = 60_000.0


def zones_d_interet() -> gpd.GeoDataFrame:
    """The fixture's ``zone_d_activite_ou_d_interet``, with BD TOPO 3's field names."""
    import shapely.affinity

    buildings = gpd.read_file(SAMPLE / "building.gpkg")
    mairie = shapely.force_2d(buildings.geometry.iloc[MAIRIE_BUILDING])
    ecole = shapely.force_2d(buildings.geometry.iloc[ECOLE_BUILDING])
    return gpd.GeoDataFrame({
        "cleabs": ["SURFACTI0000000000000001", "SURFACTI0000000000000002",
                   "SURFACTI0000000000000003"],
        "categorie": ["Administratif ou militaire", "Science et enseignement",
                      "Administratif ou militaire"],
        "nature": ["Mairie", "Enseignement primaire", "Mairie"],
        "toponyme": ["Mairie", "École", "Mairie"],
    }, geometry=[mairie, ecole, shapely.affinity.translate(mairie, FAR_AWAY)],
        crs=buildings.crs)


def bdtopo_archive() -> bytes:
    """A BD TOPO 7z of the sample's BD TOPO buildings and roads, and the town halls of
    :func:`zones_d_interet` (layers and fields named as IGN's)."""
    import tempfile

    import py7zr
    import pyogrio

    with tempfile.TemporaryDirectory() as tmp:
        gpkg = Path(tmp) / f"BDT_3-5_GPKG_LAMB93_D025-ED{BDTOPO_EDITION}.gpkg"
        for src, layer in (("building", "batiment"), ("road", "troncon_de_route")):
            frame = pyogrio.read_dataframe(SAMPLE / f"{src}.gpkg")
            pyogrio.write_dataframe(frame, gpkg, layer=layer, driver="GPKG")
        pyogrio.write_dataframe(zones_d_interet(), gpkg, layer="zone_d_activite_ou_d_interet",
                                driver="GPKG")
        archive = Path(tmp) / "a.7z"
        with py7zr.SevenZipFile(archive, "w") as z:
            z.write(gpkg, f"BDTOPO/1_DONNEES_LIVRAISON/{gpkg.name}")
        return archive.read_bytes()


def bdtopo_atom(base: str) -> bytes:
    """The Atom listing of the D025 editions (one entry per edition, as the Géoplateforme)."""
    entries = "".join(
        f"<entry><id>{base}/resource/BDTOPO/{name}</id><title>{name}</title>"
        f"<gpf_dl:zone label=\"D025\">D025</gpf_dl:zone>"
        f"<gpf_dl:editionDate>{date}</gpf_dl:editionDate></entry>"
        for date in ("2025-06-15", BDTOPO_EDITION)
        for name in [f"BDTOPO_3-5_TOUSTHEMES_GPKG_LAMB93_D025_{date}"])
    return (f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            f'xmlns:gpf_dl="https://data.geopf.fr/annexes/ressources/xsd/gpf_dl.xsd">'
            f"<title>BDTOPO</title>{entries}</feed>").encode()


#: The BD ALTI fixture: Strasbourg (67482), the place of the repository's real DEM.
STRASBOURG = "67482"
BDALTI_EDITION = "2023-01-12"
BDALTI_NAME = f"BDALTIV2_2-0_25M_ASC_LAMB93-IGN69_D067_{BDALTI_EDITION}"
BDALTI_DELIVERY = "1_DONNEES_LIVRAISON_2023-02-00123"
#: BD ALTI's grid: 25 m cells centred on multiples of 25 m; tiles of 25 km.
BDALTI_RES = 25.0
BDALTI_NODATA = -99999.0
#: The western edge of the tile ``…_1050_6850_…`` (cell centres from x = 1,050,000 m).
BDALTI_SPLIT = 1_050_000.0 - BDALTI_RES / 2


def bdalti_grid() -> tuple[np.ndarray, Any]:
    """The real 10 m DEM of tests/data (Strasbourg-Neudorf) averaged onto BD ALTI's grid.

    The fixture's BD ALTI tiles are cut from this grid: real elevations, at their
    real place, on the 25 m grid (cell centres on multiples of 25 m) of the product.
    Returns the array (nodata -99999) and its affine transform.
    """
    import math
    import warnings

    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    with rasterio.open(Path(__file__).resolve().parent / "data" / "MNT.asc") as src:
        data, bounds, transform, nodata = src.read(1), src.bounds, src.transform, src.nodata
    half = BDALTI_RES / 2
    west = math.floor((bounds.left + half) / BDALTI_RES) * BDALTI_RES - half
    north = math.ceil((bounds.top - half) / BDALTI_RES) * BDALTI_RES + half
    cols = math.ceil((bounds.right - west) / BDALTI_RES)
    rows = math.ceil((north - bounds.bottom) / BDALTI_RES)
    grid = np.full((rows, cols), BDALTI_NODATA, dtype=np.float64)
    with warnings.catch_warnings():
        # rasterio 1.4 multiplies Affine objects with ``*`` (affine 3 deprecates it).
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        dst_transform = from_origin(west, north, BDALTI_RES, BDALTI_RES)
        reproject(data.astype(np.float64), grid, src_transform=transform, src_crs="EPSG:2154",
                  src_nodata=nodata, dst_transform=dst_transform, dst_crs="EPSG:2154",
                  dst_nodata=BDALTI_NODATA, resampling=Resampling.average)
    return np.round(grid, 2), dst_transform


def _asc(array: np.ndarray, west: float, south: float) -> bytes:
    """An ESRI ASCII grid written as IGN writes the BD ALTI's (no .prj)."""
    rows, cols = array.shape
    head = (f"ncols        {cols}\nnrows        {rows}\nxllcorner    {west:.6f}\n"
            f"yllcorner    {south:.6f}\ncellsize     {BDALTI_RES:.6f}\n"
            f"NODATA_value  {BDALTI_NODATA:.2f}\n")
    body = "\n".join(" ".join(f"{v:.2f}" for v in row) for row in array)
    return (head + body + "\n").encode()


def bdalti_archive() -> bytes:
    """The D067 BD ALTI 7z: :func:`bdalti_grid` split into two tiles at x = 1,050 km.

    Laid out as IGN's archives (``{name}/BDALTIV2/1_DONNEES_LIVRAISON_…/``
    ``BDALTIV2_MNT_25M_ASC_LAMB93_IGN69_D067/BDALTIV2_25M_FXX_{x km}_{y km}_MNT_…asc``);
    the tiles hold only the cells of the real DEM (IGN's are 1,000 × 1,000 cells), and
    a ``LISEZ-MOI`` and, in another folder, an ``.asc`` that is no elevation grid.
    """
    import tempfile

    import py7zr

    grid, transform = bdalti_grid()
    split = round((BDALTI_SPLIT - transform.c) / BDALTI_RES)
    south = transform.f - grid.shape[0] * BDALTI_RES
    folder = (f"{BDALTI_NAME}/BDALTIV2/{BDALTI_DELIVERY}/"
              f"BDALTIV2_MNT_25M_ASC_LAMB93_IGN69_D067")
    tiles = {
        f"{folder}/BDALTIV2_25M_FXX_1025_6850_MNT_LAMB93_IGN69.asc":
            _asc(grid[:, :split], transform.c, south),
        f"{folder}/BDALTIV2_25M_FXX_1050_6850_MNT_LAMB93_IGN69.asc":
            _asc(grid[:, split:], BDALTI_SPLIT, south),
        f"{BDALTI_NAME}/BDALTIV2/LISEZ-MOI.txt": b"BD ALTI 25 m\n",
        f"{BDALTI_NAME}/BDALTIV2/3_SUPPLEMENTS_LIVRAISON_2023-02-00123/"
        f"BDALTIV2_MNT_25M_ASC_LAMB93_IGN69_D067/dalles.asc": b"pas une grille\n",
    }
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a.7z"
        with py7zr.SevenZipFile(archive, "w") as z:
            for name, data in tiles.items():
                z.writestr(data, name)
        return archive.read_bytes()


def bdalti_atom(base: str) -> bytes:
    """The Atom listing of the D067 BD ALTI: two 25 m editions and a 75 m one."""
    names = ["BDALTIV2_2-0_25M_ASC_LAMB93-IGN69_D067_2021-01-13", BDALTI_NAME,
             "BDALTIV2_2-0_75M_ASC_LAMB93-IGN69_D067_2024-03-01"]
    entries = "".join(f"<entry><id>{base}/resource/BDALTI/{n}</id><title>{n}</title>"
                      f"<gpf_dl:zone label=\"D067\">D067</gpf_dl:zone></entry>" for n in names)
    return (f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            f'xmlns:gpf_dl="https://data.geopf.fr/annexes/ressources/xsd/gpf_dl.xsd">'
            f"<title>BDALTI</title>{entries}</feed>").encode()


@dataclass
class Publishers:
    """The running server: its base URL, its content, its faults and the requests seen."""

    url: str
    data: SampleData
    millesimes: tuple[str, ...] = MILLESIMES
    faults: list[tuple[str, list[tuple[Any, ...]]]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    inflight: int = 0
    max_inflight: int = 0

    def inject(self, fragment: str, *faults: tuple[Any, ...]) -> None:
        """Queue ``faults`` for the next requests whose path and query contain ``fragment``."""
        with self.lock:
            self.faults.append((fragment, list(faults)))

    def fault_for(self, target: str) -> tuple[Any, ...] | None:
        with self.lock:
            for fragment, queue in self.faults:
                if fragment in target and queue:
                    return queue.pop(0)
        return None

    def seen(self, fragment: str) -> list[dict[str, str]]:
        """The headers of each request whose path and query contain ``fragment``."""
        with self.lock:
            return [headers for target, headers in self.requests if fragment in target]


CADASTRE = "/cadastre.data.gouv.fr/data/etalab-cadastre/"
_CADASTRE_FILE = re.compile(
    r"(?P<mill>[^/]+)/geojson/communes/(?P<dep>\w+)/(?P<insee>\w+)/"
    r"cadastre-(?P=insee)-(?P<layer>\w+)\.json\.gz")


def _handler(pub: Publishers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with pub.lock:
                pub.requests.append((self.path, dict(self.headers)))
                pub.inflight += 1
                pub.max_inflight = max(pub.max_inflight, pub.inflight)
            try:
                fault = pub.fault_for(self.path)
                if fault and fault[0] == "lent":
                    time.sleep(fault[1])
                    fault = None
                self._answer(fault)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer
            finally:
                with pub.lock:
                    pub.inflight -= 1

        def _send(self, status: int, body: bytes, ctype: str,
                  headers: dict[str, str] | None = None, fault: tuple[Any, ...] | None = None
                  ) -> None:
            if fault and fault[0] == "statut":
                status, body, ctype = fault[1], b'{"error": "injected"}', "application/json"
            elif fault and fault[0] == "html":
                status, body, ctype = 200, HTML_PAGE, "text/html; charset=utf-8"
            elif fault and fault[0] == "corrompu":
                body = body[: len(body) // 2]
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if fault and fault[0] == "coupure":
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[: fault[1]])
                self.wfile.flush()
                self.close_connection = True
                return
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, fault: tuple[Any, ...] | None) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            path = parts.path
            if path == CADASTRE:
                links = "".join(f'<a href="{m}/">{m}/</a>\n' for m in pub.millesimes)
                body = f"<html><body><h1>Index</h1>\n{links}<a href=\"latest/\">latest/</a>" \
                       f"\n</body></html>\n"
                return self._send(200, body.encode(), "text/html", fault=fault)
            if path.startswith(CADASTRE):
                return self._cadastre(path[len(CADASTRE):], fault)
            if path == "/files.data.gouv.fr/geo-sirene/last/dep/geo_siret_25.csv.gz":
                return self._file(pub.data.sirene, "application/gzip", fault)
            if path == "/data.geopf.fr/telechargement/resource/BDTOPO" and \
                    (query.get("zone"), query.get("format")) == ("D025", "GPKG"):
                return self._send(200, bdtopo_atom(f"{pub.url}/data.geopf.fr/telechargement"),
                                  "application/atom+xml", fault=fault)
            if path == (f"/data.geopf.fr/telechargement/download/BDTOPO/{BDTOPO_NAME}/"
                        f"{BDTOPO_NAME}.7z"):
                return self._file(pub.data.bdtopo, "application/x-7z-compressed", fault)
            if path == "/data.geopf.fr/telechargement/resource/BDALTI" and \
                    query.get("zone") == "D067":
                return self._send(200, bdalti_atom(f"{pub.url}/data.geopf.fr/telechargement"),
                                  "application/atom+xml", fault=fault)
            if path == (f"/data.geopf.fr/telechargement/download/BDALTI/{BDALTI_NAME}/"
                        f"{BDALTI_NAME}.7z"):
                return self._file(pub.data.bdalti, "application/x-7z-compressed", fault)
            if path.startswith("/www.georisques.gouv.fr/api/v1/"):
                return self._georisques(path.removeprefix("/www.georisques.gouv.fr/api/v1/"),
                                        query, fault)
            if path == "/www.georisques.gouv.fr/services":
                return self._tri(query, fault)
            if path == "/data.geopf.fr/wfs/ows":
                return self._wfs(query, fault)
            if path == "/apidf-preprod.cerema.fr/cartofriches/geofriches/":
                return self._friches(query, fault)
            self._send(404, b"<html>404 Not Found</html>", "text/html", fault=fault)

        def _cadastre(self, rest: str, fault: tuple[Any, ...] | None) -> None:
            m = _CADASTRE_FILE.fullmatch(rest)
            known = m and (m["mill"] in pub.millesimes or m["mill"] == "latest")
            if not (m and known and m["insee"] == INSEE and m["dep"] == INSEE[:2]
                    and m["layer"] in pub.data.cadastre):
                return self._send(404, b"<html>404 Not Found</html>", "text/html",
                                  fault=fault)
            self._file(pub.data.cadastre[m["layer"]], "application/gzip", fault)

        def _file(self, body: bytes, ctype: str, fault: tuple[Any, ...] | None) -> None:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED, "Accept-Ranges": "bytes"}
            if self.headers.get("If-None-Match") == etag and not fault:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            if wanted and (if_range is None or if_range == etag) and not fault:
                start = int(wanted[1])
                headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                return self._send(206, body[start:], ctype, headers)
            self._send(200, body, ctype, headers, fault)

        def _wfs(self, q: dict[str, str], fault: tuple[Any, ...] | None) -> None:
            if (q.get("SERVICE"), q.get("REQUEST")) == ("WFS", "GetFeature") and \
                    q.get("TYPENAMES") in pub.data.patrinat:
                return self._patrinat(q, fault)
            if (q.get("SERVICE"), q.get("REQUEST"), q.get("TYPENAMES")) != (
                    "WFS", "GetFeature", "wfs_du:zone_urba"):
                return self._send(400, b'{"exception": "bad request"}', "application/json",
                                  fault=fault)
            wanted = set(re.findall(r"'([^']+)'", q.get("CQL_FILTER", "")))
            matched = [f for f in pub.data.zone_urba if f["properties"]["partition"] in wanted]
            start, count = int(q.get("STARTINDEX", 0)), min(int(q.get("COUNT", 5000)), 5000)
            page = matched[start:start + count]
            body = {"type": "FeatureCollection", "features": page,
                    "totalFeatures": len(matched), "numberMatched": len(matched),
                    "numberReturned": len(page), "timeStamp": "2025-09-01T06:00:00Z"}
            self._send(200, json.dumps(body).encode(), "application/json;charset=UTF-8",
                       fault=fault)

        def _georisques(self, dataset: str, q: dict[str, str],
                        fault: tuple[Any, ...] | None) -> None:
            """A page of the Géorisques API v1: ``{results, page, total_pages, data, …}``."""
            if dataset not in pub.data.georisques or "code_insee" not in q:
                return self._send(404, b'{"message": "Not Found"}', "application/json",
                                  fault=fault)
            rows = [r for r in pub.data.georisques[dataset]
                    if q["code_insee"] in (r.get("code_insee"), r.get("codeInsee"))]
            size, page = int(q.get("page_size", 10)), int(q.get("page", 1))
            total = max(1, -(-len(rows) // size))
            base = f"{pub.url}/www.georisques.gouv.fr/api/v1/{dataset}?"
            body = {"results": len(rows), "page": page, "total_pages": total,
                    "data": rows[(page - 1) * size: page * size], "response_code": 200,
                    "message": "OK",
                    "next": base + urlencode({**q, "page": page + 1}) if page < total else None,
                    "previous": base + urlencode({**q, "page": page - 1}) if page > 1 else None}
            self._send(200, json.dumps(body).encode(), "application/json", fault=fault)

        def _tri(self, q: dict[str, str], fault: tuple[Any, ...] | None) -> None:
            """Géorisques' WFS: a TRI layer in a ``BBOX=…,urn:ogc:def:crs:EPSG::2154``."""
            keys = {k.upper(): v for k, v in q.items()}
            if (keys.get("SERVICE"), keys.get("REQUEST")) != ("WFS", "GetFeature") or \
                    keys.get("TYPENAMES") not in pub.data.tri:
                body = (b'<?xml version="1.0"?><ows:ExceptionReport xmlns:ows='
                        b'"http://www.opengis.net/ows/1.1"><ows:Exception exceptionCode='
                        b'"InvalidParameterValue"/></ows:ExceptionReport>')
                return self._send(200, body, "text/xml", fault=fault)
            *bounds, crs = keys["BBOX"].split(",")
            assert crs == "urn:ogc:def:crs:EPSG::2154"
            box = shapely.box(*(float(v) for v in bounds))
            matched = [g for g in pub.data.tri[keys["TYPENAMES"]] if g.intersects(box)]
            start, count = int(keys.get("STARTINDEX", 0)), int(keys.get("COUNT", 1000))
            self._send(200, tri_gml(keys["TYPENAMES"], matched[start:start + count],
                                    matched=len(matched)),
                       "text/xml; subtype=gml/3.2.1", fault=fault)

        def _patrinat(self, q: dict[str, str], fault: tuple[Any, ...] | None) -> None:
            """A PatriNat layer inside ``BBOX=lat0,lon0,lat1,lon1,urn:ogc:def:crs:EPSG::4326``."""
            lat0, lon0, lat1, lon1, crs = q["BBOX"].split(",")
            if crs != "urn:ogc:def:crs:EPSG::4326" or q.get("SRSNAME") != "EPSG:4326":
                return self._send(400, b'{"exception": "bad bbox"}', "application/json",
                                  fault=fault)
            box = shapely.box(float(lon0), float(lat0), float(lon1), float(lat1))
            matched = [f for f in pub.data.patrinat[q["TYPENAMES"]]
                       if shapely.from_geojson(json.dumps(f["geometry"])).intersects(box)]
            start, count = int(q.get("STARTINDEX", 0)), min(int(q.get("COUNT", 5000)), 5000)
            page = matched[start:start + count]
            body = {"type": "FeatureCollection", "features": page,
                    "numberMatched": len(matched), "numberReturned": len(page)}
            self._send(200, json.dumps(body).encode(), "application/json;charset=UTF-8",
                       fault=fault)

        def _friches(self, q: dict[str, str], fault: tuple[Any, ...] | None) -> None:
            lon0, lat0, lon1, lat1 = (float(v) for v in q["in_bbox"].split(","))
            inside = [f for f in pub.data.friches
                      if lon0 <= f["geometry"]["coordinates"][0] <= lon1
                      and lat0 <= f["geometry"]["coordinates"][1] <= lat1]
            size, page = int(q.get("page_size", 500)), int(q.get("page", 1))
            chunk = inside[(page - 1) * size: page * size]
            more = page * size < len(inside)
            nxt = None
            if more:
                nxt = (f"{pub.url}/apidf-preprod.cerema.fr/cartofriches/geofriches/?"
                       + urlencode({**q, "page": page + 1}))
            body = {"type": "FeatureCollection", "count": len(inside), "next": nxt,
                    "previous": None, "features": chunk}
            self._send(200, json.dumps(body).encode(), "application/json", fault=fault)

    return Handler


@pytest.fixture(scope="session")
def sample_publishers_data() -> SampleData:
    return sample_data()


@pytest.fixture
def publishers(sample_publishers_data: SampleData) -> Iterator[Publishers]:
    """The local publishers, serving the sample of Gennes; stopped after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    pub = Publishers(f"http://127.0.0.1:{server.server_address[1]}", sample_publishers_data)
    server.RequestHandlerClass = _handler(pub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield pub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
