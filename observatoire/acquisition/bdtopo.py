"""IGN BD TOPO per département: buildings, roads, railways, substations, town halls.

The current edition of a département is read from the Géoplateforme's Atom listing
(``resource/BDTOPO?zone=D025&format=GPKG``: its entries name
``BDTOPO_3-5_TOUSTHEMES_GPKG_LAMB93_D025_{edition}``); the 7z archive
(``download/BDTOPO/{name}/{name}.7z``, hundreds of MB, one GeoPackage inside) is
cached under that edition, checked whole (py7zr) before it is kept. The layers
the observatory reads are then cut to the territory's box plus 5 km into one small
GeoPackage beside the archive.

Town halls are the features of ``zone_d_activite_ou_d_interet`` whose ``nature``
is « Mairie » (BD TOPO 3 data dictionary: class « Zone d'activité ou d'intérêt »,
category « Administratif ou militaire »); only those are kept in the cut, and they
become the ``mairies`` source of the build (:mod:`observatoire.readers.mairies`).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import DownloadError

SOURCE = "bdtopo"
PRODUCER = "IGN, BD TOPO"
#: BD TOPO layer → source kind of the territory file.
LAYERS = {
    "batiment": "batiments",
    "troncon_de_route": "routes",
    "troncon_de_voie_ferree": "voies_ferrees",
    "poste_de_transformation": "postes_electriques",
    "zone_d_activite_ou_d_interet": "mairies",
}
#: Features kept of a layer (an OGR SQL filter), when not all of them.
FILTERS = {"zone_d_activite_ou_d_interet": "nature = 'Mairie'"}


def edition(ctx: Context, departement: str) -> str:
    """Return the newest BD TOPO edition of a département (``AAAA-MM-JJ``).

    Offline, the newest cached one.

    Raises
    ------
    DownloadError
        The listing cannot be read or names no edition.
    """
    url = ctx.urls.ign_resource("BDTOPO", departement)
    if ctx.client is None:
        cached = ctx.cache.millesimes(SOURCE)
        if not cached:
            raise DownloadError(f"{url} : aucune BD TOPO en cache ; relancez sans --hors-ligne",
                                url=url)
        return cached[-1]
    text = ctx.client.get(url).text
    zone = ctx.urls.bdtopo(departement, "X").rsplit("/", 1)[1].removesuffix("_X.7z")
    found = sorted(set(re.findall(re.escape(zone) + r"_(\d{4}-\d{2}-\d{2})", text)))
    if not found:
        raise DownloadError(f"{url} : aucune édition de la BD TOPO en GeoPackage listée pour "
                            f"{departement}", url=url, status=200)
    return found[-1]


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch each département's archive and cut its layers to the territory plus 5 km.

    Raises
    ------
    DownloadError
        A listing or an archive that could not be had, or the territory's box is
        unknown (the cadastre failed).
    """
    import geopandas as gpd
    import pandas as pd
    import pyogrio
    from pyproj import Transformer

    base = ctx.urls.base("telechargement")
    box_wgs84 = ctx.box(base)
    box = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform_bounds(
        *box_wgs84)
    frames: dict[str, list[gpd.GeoDataFrame]] = {}
    editions = []
    for dep in ctx.departements:
        ed = edition(ctx, dep)
        editions.append(ed)
        url = ctx.urls.bdtopo(dep, ed)
        archive = ctx.cache.fetch(ctx.client, url, source=SOURCE, millesime=ed,
                                  name=url.rsplit("/", 1)[1], expect="7z", producer=PRODUCER)
        with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
            gpkg = _extract_gpkg(archive, Path(tmp), url)
            present = set(pyogrio.list_layers(gpkg)[:, 0])
            for layer in LAYERS:
                if layer in present:
                    frame = pyogrio.read_dataframe(gpkg, layer=layer, bbox=box,
                                                   where=FILTERS.get(layer))
                    if len(frame) or layer not in FILTERS:
                        frames.setdefault(layer, []).append(frame)
    out = ctx.cache.path(SOURCE, max(editions), "bdtopo_territoire.gpkg")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / out.name
        for layer, parts in frames.items():
            frame = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
            pyogrio.write_dataframe(frame, staged, layer=layer, driver="GPKG")
        data = staged.read_bytes()
    ctx.cache.store(data, url=ctx.urls.bdtopo(ctx.departements[0], max(editions)),
                    source=SOURCE, millesime=max(editions), name=out.name, producer=PRODUCER)
    return [Fetched(LAYERS[layer], (out,), None, PRODUCER, max(editions), layer=layer)
            for layer in frames]


def _extract_gpkg(archive: Path, folder: Path, url: str) -> Path:
    """Extract the GeoPackage of a BD TOPO archive into ``folder``."""
    import py7zr

    with py7zr.SevenZipFile(archive) as z:
        members = [n for n in z.getnames() if n.lower().endswith(".gpkg")]
        if not members:
            raise DownloadError(f"{url} : pas de GeoPackage dans l'archive BD TOPO",
                                url=url, status=200)
        z.extract(path=folder, targets=members[:1])
    return folder / members[0]
