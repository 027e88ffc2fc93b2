"""What an observation keeps, read back from the GeoPackage a build writes.

The parcels are read by batches of :data:`BATCH` rows (selected columns, Arrow),
fingerprinted and written to the history batch by batch
(:func:`~observatoire.observation.history.stage_observation`): the capture holds
one batch at a time, never the territory's parcels.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely

from observatoire.analysis.zae_inventory import (
    DEFAULT_RULE,
    NB_ETABLISSEMENTS_ACTIFS,
    VacancyRule,
    establishment_states,
)
from observatoire.errors import BuildError
from observatoire.observation import history

log = logging.getLogger(__name__)

#: Parcels read (and fingerprinted) at once.
BATCH = 50_000
#: Parcel columns kept in the history, when the observatory has them: identity, built
#: share, land unit, ZAE, friche and the key indicators.
PARCEL_COLUMNS = ("idu", "code_insee", "surface_m2", "uf_id", "part_batie", "nb_batiments",
                  "zae_id", "part_zae", "friche_id", "friche_statut", "zone_typezone",
                  "compacite", "largeur_utile_m", "pente_moy_pct",
                  "dist_route_principale_m")
#: Per-profile columns kept: score, class, exclusion and each criterion's points.
PROFILE_COLUMN = re.compile(r"^(score|classe|exclu|contrib)_")
ZAE_COLUMNS = ("zae_id", "zae_nom", "comm_insee", "nb_unites", "nb_unites_vacantes",
               "taux_vacance", "taux_vacance_surface", "surface_disponible_m2",
               "plus_grande_surface_dispo_m2", "nb_friches",
               "surface_friches_m2")
FRICHE_COLUMNS = ("site_id", "site_nom", "site_statut", "comm_insee", "dans_territoire",
                  "zae_id", "surface_m2")
GISEMENT_COLUMNS = ("gisement_id", "surface_m2", "nb_parcelles", "idus", "score_moyen",
                    "zae_id", "friche_id", "communes")


def observation_date(gpkg: str | Path, configured: dt.date | None) -> dt.date:
    """Date of the observation: the territory file's, else the cadastre's vintage, else today.

    Parameters
    ----------
    gpkg
        The observatory GeoPackage (its ``sources`` table gives the vintages).
    configured
        ``date_observation`` of the territory file.

    Returns
    -------
    datetime.date
        The configured date; else the date of the parcels' data (``date_donnees`` of
        the ``sources`` table: the cadastre's vintage); else the latest date of the
        other sources; else today.
    """
    if configured is not None:
        return configured
    if "sources" not in _layers(gpkg):
        return dt.date.today()
    sources = pyogrio.read_dataframe(gpkg, layer="sources",
                                     columns=["type_source", "date_donnees"],
                                     read_geometry=False)
    dates = pd.to_datetime(sources["date_donnees"], errors="coerce", format="ISO8601")
    cadastre = dates[sources["type_source"] == "parcelles"].dropna()
    chosen = cadastre if len(cadastre) else dates.dropna()
    return chosen.max().date() if len(chosen) else dt.date.today()


def stage_capture(gpkg: str | Path, folder: Path, date: dt.date, *,
                  rule: VacancyRule = DEFAULT_RULE) -> history.StagedObservation:
    """Write the observation of ``date`` read from ``gpkg`` to the history, uncommitted.

    With an ``etablissements`` layer, each parcel row keeps the number of
    establishments active on the parcel at ``date`` (:func:`active_establishments`),
    which the ZAE inventory of a later build reads back.

    Parameters
    ----------
    gpkg
        The observatory GeoPackage (the build's, before it is published).
    folder
        The history folder.
    date
        Date of the observation.
    rule
        The inventory's rule: which establishments occupy the land, how far from a
        parcel one may be attached to it.

    Returns
    -------
    StagedObservation
        Published by the build with its other outputs.

    Raises
    ------
    BuildError
        When the GeoPackage has no ``parcelles`` layer, or the history cannot be written.
    """
    layers = _layers(gpkg)
    if "parcelles" not in layers:
        raise BuildError(f"{gpkg} : pas de couche « parcelles » à observer")
    gisements = _table(gpkg, "gisements", GISEMENT_COLUMNS, layers)
    crs = pyogrio.read_info(gpkg, layer="parcelles")["crs"]
    actifs = (active_establishments(gpkg, date, rule=rule) if "etablissements" in layers
              else None)
    return history.stage_observation(
        folder, date, batches=parcel_batches(gpkg, gisements, actifs), crs=crs,
        zae=_table(gpkg, "zae", ZAE_COLUMNS, layers),
        friches=_table(gpkg, "friches", FRICHE_COLUMNS, layers), gisements=gisements)


def parcel_batches(gpkg: str | Path, gisements: pd.DataFrame | None = None,
                   actifs: pd.Series | None = None) -> Iterator[history.ParcelBatch]:
    """Yield the parcels' kept columns and shapes, :data:`BATCH` rows at a time.

    Each parcel gets the ``gisement_id`` of the candidate site listing its IDU
    (``gisements.idus``, separated by ``|``) and, when ``actifs`` is given (IDU →
    number of active establishments), :data:`NB_ETABLISSEMENTS_ACTIFS` (0 when none).
    """
    info = pyogrio.read_info(gpkg, layer="parcelles")
    fields = list(info["fields"])
    columns = [c for c in fields if c in PARCEL_COLUMNS or PROFILE_COLUMN.match(c)]
    if "idu" not in columns:
        raise BuildError(f"{gpkg} : couche « parcelles » sans champ « idu »")
    columns.remove("idu")
    columns.insert(0, "idu")
    site_of = _gisement_of(gisements)
    # One pass over the layer (a stream of batches): reading each batch with
    # ``skip_features`` would make GDAL walk again every row before it.
    with pyogrio.open_arrow(gpkg, layer="parcelles", columns=columns, batch_size=BATCH,
                            use_pyarrow=True) as (meta, reader):
        geometry_name = meta["geometry_name"] or "wkb_geometry"
        batches = (b for b in reader if b.num_rows)
        # An empty layer still gives one empty batch: its columns are observed.
        first = next(batches, None) or pa.RecordBatch.from_pylist([], schema=reader.schema)
        for batch in itertools.chain([first], batches):
            table = pa.Table.from_batches([batch])
            wkb = table.column(geometry_name).to_numpy(zero_copy_only=False)
            table = table.drop_columns([geometry_name]).select(columns)
            idu = table.column("idu").to_pandas()
            sites = idu.map(site_of) if len(site_of) else pd.Series(None, index=idu.index)
            table = table.append_column("gisement_id", pa.array(
                sites.astype(object).where(sites.notna(), None).to_numpy(dtype=object),
                type=pa.string()))
            if actifs is not None:
                count = idu.map(actifs).fillna(0).to_numpy(dtype=np.int32)
                table = table.append_column(NB_ETABLISSEMENTS_ACTIFS, pa.array(count, pa.int32()))
            yield table, shapely.from_wkb(wkb)


def active_establishments(gpkg: str | Path, date: dt.date, *,
                          rule: VacancyRule = DEFAULT_RULE) -> pd.Series:
    """Count the establishments active at ``date`` on each parcel (IDU → count).

    The establishments are those of the inventory's rule
    (:func:`~observatoire.analysis.zae_inventory.establishment_states`: existing,
    not closed, not a property company), each attached to the parcel containing
    it, else to the nearest parcel within ``rule.rayon_rattachement_m``. The parcels
    are read by :data:`BATCH` (IDU and shape only): a point inside no parcel of a
    batch keeps its nearest candidate over all batches.

    Parameters
    ----------
    gpkg
        The observatory GeoPackage, with ``etablissements`` and ``parcelles`` layers.
    date
        Date of the observation.
    rule
        Establishments excluded, radius of attachment.

    Returns
    -------
    pandas.Series
        Indexed by IDU, parcels with at least one active establishment only.
    """
    etablissements = pyogrio.read_dataframe(gpkg, layer="etablissements")
    states = establishment_states(etablissements, date_observation=date, rule=rule)
    points = np.asarray(etablissements.geometry.values)[
        (states["actif"] & ~states["exclu"]).to_numpy(dtype=bool)]
    points = points[~shapely.is_missing(points) & ~shapely.is_empty(points)]
    if not len(points):
        return pd.Series(dtype="int64")
    inside = np.full(len(points), None, dtype=object)
    nearest = np.full(len(points), None, dtype=object)
    distance = np.full(len(points), np.inf)
    with pyogrio.open_arrow(gpkg, layer="parcelles", columns=["idu"], batch_size=BATCH,
                            use_pyarrow=True) as (meta, reader):
        geometry_name = meta["geometry_name"] or "wkb_geometry"
        for batch in reader:
            if not batch.num_rows:
                continue
            shapes = shapely.from_wkb(batch.column(geometry_name).to_numpy(zero_copy_only=False))
            idu = batch.column("idu").to_numpy(zero_copy_only=False)
            tree = shapely.STRtree(shapes)
            ip, jp = tree.query(points, predicate="intersects")
            first = pd.Series(jp).groupby(ip).first()  # a point on a shared limit: one parcel
            todo = first.index.to_numpy()[pd.isna(inside[first.index.to_numpy()])]
            inside[todo] = idu[first.loc[todo].to_numpy()]
            rest = np.flatnonzero(pd.isna(inside))
            if len(rest) and rule.rayon_rattachement_m > 0:
                (kp, kj), d = tree.query_nearest(points[rest],
                                                 max_distance=rule.rayon_rattachement_m,
                                                 return_distance=True, all_matches=False)
                closer = d < distance[rest[kp]]
                nearest[rest[kp[closer]]] = idu[kj[closer]]
                distance[rest[kp[closer]]] = d[closer]
    chosen = pd.Series(np.where(pd.isna(inside), nearest, inside))
    return chosen.dropna().value_counts().sort_index()


def _gisement_of(gisements: pd.DataFrame | None) -> pd.Series:
    """IDU → identifier of the candidate site that lists it."""
    if gisements is None or not len(gisements) or "idus" not in gisements:
        return pd.Series(dtype=object)
    idus = gisements["idus"].fillna("").str.split("|")
    lengths = idus.str.len().to_numpy()
    out = pd.Series(np.repeat(gisements["gisement_id"].to_numpy(dtype=object), lengths),
                    index=np.concatenate(idus.to_numpy()) if len(idus) else [])
    return out[~out.index.duplicated()]


def _layers(gpkg: str | Path) -> set[str]:
    return {name for name, _ in pyogrio.list_layers(gpkg)}


def _table(gpkg: str | Path, layer: str, wanted: tuple[str, ...],
           layers: set[str]) -> pd.DataFrame:
    """Read the ``wanted`` columns of ``layer`` (without geometry); empty when absent."""
    if layer not in layers:
        return pd.DataFrame({wanted[0]: pd.Series(dtype=object)})
    fields = list(pyogrio.read_info(gpkg, layer=layer)["fields"])
    columns = [c for c in wanted if c in fields]
    return pd.DataFrame(pyogrio.read_dataframe(gpkg, layer=layer, columns=columns,
                                               read_geometry=False))
