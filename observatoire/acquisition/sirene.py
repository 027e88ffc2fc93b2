"""SIRENE establishments, geolocated by Etalab, one file per département.

``files.data.gouv.fr/geo-sirene/last/dep/geo_siret_{dep}.csv.gz`` (kadataApps/urbaflow
``flows/geosirene``): the same URL is republished every month. The file is cached
under the day of its fetch, and asked conditionally with the validators of the
newest cached copy: an unchanged file is not downloaded again, and its cached copy
(with its own vintage) is used.
"""

from __future__ import annotations

from pathlib import Path

from observatoire.acquisition.contexte import Context, Fetched
from observatoire.acquisition.http import DownloadError

SOURCE = "sirene"
PRODUCER = "INSEE (SIRENE), géolocalisation Etalab"


def fetch(ctx: Context) -> list[Fetched]:
    """Fetch the geolocated establishments of each département of the territory.

    Raises
    ------
    DownloadError
        A département's file that could not be had (the others were tried).
    """
    def one(dep: str) -> Path | DownloadError:
        name = f"geo_siret_{dep}.csv.gz"
        try:
            return ctx.cache.fetch(ctx.client, ctx.urls.sirene_departement(dep), source=SOURCE,
                                   millesime=ctx.today, name=name, expect="gzip",
                                   producer=PRODUCER,
                                   previous=ctx.cache.newest(SOURCE, name))
        except DownloadError as exc:
            return exc

    results = ctx.map(one, list(ctx.departements))
    for result in results:
        if isinstance(result, DownloadError):
            raise result
    paths = tuple(r for r in results if isinstance(r, Path))
    return [Fetched("etablissements", paths, "sirene", PRODUCER,
                    max(p.parent.name for p in paths))]
