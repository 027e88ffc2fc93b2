"""Every publisher URL the acquisition uses, in one place.

Each pattern was read against the publisher's own code (repository and path
given beside it) and against ``sources-ouvertes.md``. Nothing else in the package
writes a host or a path: a publisher that moves a file is fixed here.

A *mirror* replaces every host, keeping the path: with the mirror
``http://127.0.0.1:8000``, ``https://cadastre.data.gouv.fr/data/…`` becomes
``http://127.0.0.1:8000/cadastre.data.gouv.fr/data/…``. The tests serve the
publishers' layouts that way on a local server; a user may point at a local copy
of the publishers with the environment variable ``OBSERVATOIRE_MIROIR``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Environment variable naming a mirror of every publisher (tests, local copies).
MIRROR_ENV = "OBSERVATOIRE_MIROIR"

#: Base URL of each publisher service.
BASES = {
    # datagouv/cadastre.data.gouv.fr lib/cadastre-etalab.mjs: downloadUrls.current / .old
    "cadastre": "https://cadastre.data.gouv.fr/data/etalab-cadastre",
    "cadastre_ancien": "https://files.data.gouv.fr/cadastre/etalab-cadastre",
    # IGNF/apicarto controllers/gpu/index.js (router mounted under /api/gpu)
    "apicarto_gpu": "https://apicarto.ign.fr/api/gpu",
    # Géoplateforme WFS: GPU (wfs_du:zone_urba) and PatriNat layers
    "wfs": "https://data.geopf.fr/wfs/ows",
    # Géoplateforme downloads: Atom listing (resource/…) and files (download/…)
    "telechargement": "https://data.geopf.fr/telechargement",
    # CEREMA/apifoncier apifoncier/config.py (base_url) and endpoints/cartofriches.py
    "cartofriches": "https://apidf-preprod.cerema.fr/cartofriches",
    # kadataApps/urbaflow flows/geosirene: geo-sirene files per département
    "sirene": "https://files.data.gouv.fr/geo-sirene",
    # mutafriches apps/api/src/enrichissement/adapters/georisques (georisques.constants.ts)
    "georisques": "https://www.georisques.gouv.fr/api/v1",
    # Géorisques' MapServer WFS (GML answers; ``ms:`` layers), as public code reads it
    # with GDAL (``WFS:https://www.georisques.gouv.fr/services?service=WFS&version=2.0.0``)
    "georisques_wfs": "https://www.georisques.gouv.fr/services",
}

#: Vintages older than this are served only under ``files.data.gouv.fr``
#: (``baseUrl: downloadUrls.old`` in lib/cadastre-etalab.mjs).
CADASTRE_OLDEST_CURRENT = "2022-07-01"
#: Etalab cadastre layers published per commune.
CADASTRE_LAYERS = ("communes", "sections", "feuilles", "lieux_dits", "parcelles",
                   "subdivisions_fiscales", "batiments")
#: Features per request of the Géoplateforme WFS (its maximum).
WFS_MAX_COUNT = 5000
#: Cartofriches: largest bounding box side in degrees (apifoncier ``max_bbox_size=1.0``),
#: and its page size (apifoncier's default).
CARTOFRICHES_MAX_BBOX = 1.0
CARTOFRICHES_PAGE_SIZE = 500
#: PatriNat layers of the Géoplateforme WFS (sources-ouvertes.md; apicarto controllers/nature).
PATRINAT_TYPENAMES = {
    "znieff1": "patrinat_znieff1:znieff1",
    "znieff2": "patrinat_znieff2:znieff2",
    "natura2000_sic": "patrinat_sic:sic",
    "natura2000_zps": "patrinat_zps:zps",
}


#: A BD ALTI 25 m ASC edition in a Géoplateforme listing: its projection and date
#: (``BDALTIV2_2-0_25M_ASC_LAMB93-IGN69_D025_2023-01-12``); ``{zone}`` is the IGN zone.
BDALTI_NAME = (r"BDALTIV2_2-0_25M_ASC_(?P<projection>[A-Z0-9]+-[A-Z0-9]+)_{zone}_"
               r"(?P<date>\d{{4}}-\d{{2}}-\d{{2}})")
#: Where the elevation tiles lie in a BD ALTI archive (the other folders hold the
#: source and distance grids, and the tiles' outlines):
#: ``{name}/BDALTIV2/1_DONNEES_LIVRAISON_{delivery}/BDALTIV2_MNT_25M_ASC_{proj}_{zone}/``
#: ``BDALTIV2_25M_FXX_{xmin km}_{ymax km}_MNT_{proj}.asc``.
BDALTI_TILES = r"1_DONNEES_LIVRAISON[^/]*/BDALTIV2_MNT_25M_ASC_[^/]+/[^/]+\.asc"


#: Géorisques API v1 datasets read per commune (``?code_insee=&page=&page_size=``,
#: answers ``{results, page, total_pages, data, next, previous}``).
GEORISQUES_SIS = "ssp/conclusions_sis"
GEORISQUES_ICPE = "installations_classees"
GEORISQUES_PAGE_SIZE = 100
#: Flood hazard of the TRI (Territoires à risque important d'inondation), « scénario
#: moyen » (return period of 100 to 300 years: the reference of the flood-risk plans),
#: strong, medium and weak intensities (``ALEA_SYNT_{scenario}_{intensity}_FXX``:
#: metropolitan France only; there is no ``02_03MCC`` layer).
TRI_TYPENAMES = ("ms:ALEA_SYNT_02_01FOR_FXX", "ms:ALEA_SYNT_02_02MOY_FXX",
                 "ms:ALEA_SYNT_02_04FAI_FXX")
#: Features per page asked of Géorisques' WFS.
GEORISQUES_WFS_COUNT = 1000


def departement_of(insee: str) -> str:
    """Return the département of an INSEE code as the cadastre writes it (``2A``, ``974``)."""
    return insee[:3] if insee.startswith("97") else insee[:2]


def ign_zone(departement: str) -> str:
    """Return the IGN zone of a département: ``D025``, ``D02A``, ``D974``."""
    return f"D{departement.zfill(3)}"


@dataclass(frozen=True)
class Urls:
    """The publishers' URLs, optionally through a mirror.

    Parameters
    ----------
    mirror
        Base URL replacing every host (``http://127.0.0.1:8000``); ``None``: the
        environment variable ``OBSERVATOIRE_MIROIR`` if set, else the real hosts.
    """

    mirror: str | None = None

    @classmethod
    def from_env(cls, mirror: str | None = None) -> Urls:
        """Return the URLs through ``mirror``, else through ``$OBSERVATOIRE_MIROIR``."""
        return cls(mirror or os.environ.get(MIRROR_ENV) or None)

    def base(self, name: str) -> str:
        """Return the base URL of a publisher service (see :data:`BASES`)."""
        url = BASES[name]
        if not self.mirror:
            return url
        parts = urlsplit(url)
        return f"{self.mirror.rstrip('/')}/{parts.netloc}{parts.path}"

    # --- Etalab cadastre -------------------------------------------------------------
    def cadastre_listing(self) -> str:
        """Return the HTML index of the vintages on cadastre.data.gouv.fr (one folder per date)."""
        return self.base("cadastre") + "/"

    def cadastre_commune(self, millesime: str, insee: str, layer: str) -> str:
        """Return the URL of one layer of one commune.

        ``…/{millesime}/geojson/communes/{dep}/{insee}/cadastre-{insee}-{layer}.json.gz``
        (download-assistant.js); vintages before 2022-07-01 under files.data.gouv.fr.
        """
        old = millesime != "latest" and millesime < CADASTRE_OLDEST_CURRENT
        base = self.base("cadastre_ancien" if old else "cadastre")
        dep = departement_of(insee)
        return (f"{base}/{millesime}/geojson/communes/{dep}/{insee}/"
                f"cadastre-{insee}-{layer}.json.gz")

    # --- Géoportail de l'Urbanisme -----------------------------------------------------
    def gpu_zone_urba(self, partitions: Sequence[str], *, start: int, count: int
                      ) -> tuple[str, dict[str, str]]:
        """Return the zone_urba features of GPU partitions (``DU_{insee}``…), one page.

        Through the Géoplateforme WFS, which pages (``COUNT``/``STARTINDEX``); API
        Carto's ``/api/gpu/zone-urba`` caps its answer (``params._limit`` in
        controllers/gpu/index.js) and drops paging parameters.
        """
        quoted = ",".join(f"'{p}'" for p in partitions)
        return self.base("wfs"), {
            "SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature",
            "TYPENAMES": "wfs_du:zone_urba", "OUTPUTFORMAT": "application/json",
            # GeoServer writes longitude first for « EPSG:4326 » (not for the URN form).
            "SRSNAME": "EPSG:4326", "COUNT": str(count), "STARTINDEX": str(start),
            "CQL_FILTER": f"partition IN ({quoted})",
        }

    def gpu_municipality(self, insee: str) -> tuple[str, dict[str, str]]:
        """Return API Carto's lookup of a commune in the GPU: ``/municipality?insee=``."""
        return self.base("apicarto_gpu") + "/municipality", {"insee": insee}

    # --- Cartofriches -----------------------------------------------------------------
    def cartofriches_geofriches(self, bbox: tuple[float, float, float, float], *,
                                page_size: int = CARTOFRICHES_PAGE_SIZE
                                ) -> tuple[str, dict[str, str]]:
        """Return the friches inside a WGS84 box, as GeoJSON pages with a ``next`` link."""
        return self.base("cartofriches") + "/geofriches/", {
            "in_bbox": ",".join(f"{v:.6f}" for v in bbox), "page_size": str(page_size)}

    # --- IGN Géoplateforme downloads ---------------------------------------------------
    def ign_resource(self, product: str, departement: str) -> str:
        """Return the Atom listing of a product's editions for a département (``BDTOPO``…).

        The BD TOPO is published in several formats: the GeoPackage one is asked. The
        BD ALTI listing is asked by zone only (``resource/BDALTI?zone=D069`` in public
        code that fetches it): its 25 m ASC edition is picked from the entries' names.
        """
        url = f"{self.base('telechargement')}/resource/{product}?zone={ign_zone(departement)}"
        return url + "&format=GPKG" if product == "BDTOPO" else url

    def bdtopo(self, departement: str, edition: str) -> str:
        """Return the BD TOPO 7z archive of a département at an edition (``2025-12-15``)."""
        name = f"BDTOPO_3-5_TOUSTHEMES_GPKG_LAMB93_{ign_zone(departement)}_{edition}"
        return f"{self.base('telechargement')}/download/BDTOPO/{name}/{name}.7z"

    def bdalti(self, departement: str, edition: str, *, projection: str = "LAMB93-IGN69"
               ) -> str:
        """Return the BD ALTI 25 m 7z archive of a département at an edition.

        ``projection`` is the archive's « CRS-height system » as its listing names it:
        ``LAMB93-IGN69`` on the mainland, ``LAMB93-IGN78C`` in Corsica, the local systems
        overseas (:data:`BDALTI_NAME` matches them all).
        """
        name = f"BDALTIV2_2-0_25M_ASC_{projection}_{ign_zone(departement)}_{edition}"
        return f"{self.base('telechargement')}/download/BDALTI/{name}/{name}.7z"

    # --- SIRENE, Géorisques, PatriNat --------------------------------------------------
    def sirene_departement(self, departement: str) -> str:
        """Return the geolocated SIRENE establishments of a département (CSV gzip, monthly)."""
        return f"{self.base('sirene')}/last/dep/geo_siret_{departement}.csv.gz"

    def georisques(self, dataset: str, insee: str, *, page: int, page_size: int = 100
                   ) -> tuple[str, dict[str, str]]:
        """Return a page of a Géorisques API dataset for a commune.

        ``dataset``: :data:`GEORISQUES_ICPE`, :data:`GEORISQUES_SIS` (mutafriches
        ``adapters/georisques/icpe``, ``…/sis``: ``code_insee``, ``page``, ``page_size``).
        """
        return f"{self.base('georisques')}/{dataset}", {
            "code_insee": insee, "page": str(page), "page_size": str(page_size)}

    def georisques_wfs(self, typename: str, bbox: tuple[float, float, float, float], *,
                       start: int, count: int) -> tuple[str, dict[str, str]]:
        """Return a page of a Géorisques WFS layer inside a Lambert-93 box (GML 3.2)."""
        return self.base("georisques_wfs"), {
            "SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature",
            "TYPENAMES": typename, "SRSNAME": "urn:ogc:def:crs:EPSG::2154",
            "COUNT": str(count), "STARTINDEX": str(start),
            "BBOX": ",".join(f"{v:.1f}" for v in bbox) + ",urn:ogc:def:crs:EPSG::2154",
        }

    def wfs_bbox(self, typename: str, bbox: tuple[float, float, float, float], *,
                 start: int, count: int) -> tuple[str, dict[str, str]]:
        """Return a page of a Géoplateforme WFS layer inside a WGS84 box (PatriNat).

        The box is written latitude first, as WFS 2.0 reads the URN form of EPSG:4326;
        the answer is asked in « EPSG:4326 », which GeoServer writes longitude first.
        """
        return self.base("wfs"), {
            "SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature",
            "TYPENAMES": typename, "OUTPUTFORMAT": "application/json", "SRSNAME": "EPSG:4326",
            "COUNT": str(count), "STARTINDEX": str(start),
            "BBOX": ",".join(f"{v:.6f}" for v in (bbox[1], bbox[0], bbox[3], bbox[2]))
            + ",urn:ogc:def:crs:EPSG::4326",
        }
