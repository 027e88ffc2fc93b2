"""What changed between two observations: parcels, candidate sites, ZAE, friches.

Pure functions: two :class:`~observatoire.observation.history.Observation` in,
frames out: whole observations, or only the parcels that differ
(:func:`~observatoire.observation.history.read_changes`: a parcel whose row is the
same in both yields no evolution, the results are the same). Each new parcel is
compared with its predecessors found by
:func:`~observatoire.observation.lineage.parcel_lineage`; its values *before*
are those of its largest predecessor, except the built share of merged parcels
(built area over total area).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from observatoire.observation.history import Observation
from observatoire.observation.lineage import INCHANGEE, SUPPRIMEE, parcel_lineage
from observatoire.schema import NULL

#: Main change of a parcel (``evolution`` column, the layer's style), by priority.
NOUVELLEMENT_BATIE = "nouvellement bâtie"
ENTREE_GISEMENT = "entrée en gisement"
SORTIE_GISEMENT = "sortie de gisement"
CLASSE_MODIFIEE = "classe modifiée"
#: The criterion of a class change when the parcel entered or left the profile's exclusions.
EXCLUSION = "exclusion"

FRICHE_NOUVELLE = "nouvelle"
FRICHE_DISPARUE = "disparue"
FRICHE_STATUT_MODIFIE = "statut modifié"

GISEMENT_NOUVEAU = "nouveau"
GISEMENT_DISPARU = "disparu"
GISEMENT_REDUIT = "réduit"
GISEMENT_AGRANDI = "agrandi"
#: Relative change of a candidate site's area below which it is unchanged (rounding).
TOLERANCE_SURFACE = 0.01


def evolution_parcelles(old: Observation, new: Observation, *,
                        seuil_bati: float) -> gpd.GeoDataFrame:
    """Return the parcels that changed: lineage, newly built land, candidate sites, classes.

    Parameters
    ----------
    old, new
        Two observations, ``old`` the earlier.
    seuil_bati
        Built share from which a parcel counts as built (the analysis'
        ``seuil_bati_gisement``).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per new parcel whose lineage, built state, candidate site or class
        changed, and one per deleted parcel (with its old shape): ``idu``,
        ``idu_precedents``, ``changement`` (lineage), ``evolution`` (the main change),
        ``part_batie_avant``/``part_batie``, ``nouveaux_batiments``,
        ``nouvellement_batie`` (the built share crossed ``seuil_bati``),
        ``surface_consommee_m2`` (area of a newly built parcel), ``gisement_avant``/
        ``gisement``, for each profile ``avant_classe_<p>``/``classe_<p>`` and
        ``critere_<p>`` (the criterion whose points moved most, when the class changed;
        ``exclusion`` when the parcel entered or left the profile's exclusions).
    """
    a, b = old.parcelles, new.parcelles
    lineage = parcel_lineage(a, b)
    kept = lineage[lineage["changement"] != SUPPRIMEE].reset_index(drop=True)
    before = _predecessor_values(a, kept)
    out = gpd.GeoDataFrame(kept[["idu", "idu_precedents", "nb_precedents", "changement"]],
                           geometry=b.geometry.values, crs=b.crs)
    for column in ("code_insee", "zae_id", "part_zae", "surface_m2"):
        out[column] = b[column].to_numpy() if column in b else np.nan
    out["part_batie_avant"] = _column(before, "part_batie")
    out["part_batie"] = _column(b, "part_batie")
    out["nb_batiments_avant"] = _column(before, "nb_batiments")
    out["nb_batiments"] = _column(b, "nb_batiments")
    out["nouveaux_batiments"] = (out["nb_batiments"].fillna(0)
                                 - out["nb_batiments_avant"].fillna(0)).clip(lower=0).astype(int)
    was = out["part_batie_avant"].fillna(0) >= seuil_bati
    built = out["part_batie"].fillna(0) >= seuil_bati
    out["nouvellement_batie"] = (built & ~was).to_numpy()
    out["surface_consommee_m2"] = np.where(out["nouvellement_batie"],
                                           out["surface_m2"].fillna(0), 0.0)
    out["gisement_avant"] = _column(before, "gisement_id", dtype=object)
    out["gisement"] = _column(b, "gisement_id", dtype=object)
    entered = out["gisement"].notna() & out["gisement_avant"].isna()
    left = out["gisement"].isna() & out["gisement_avant"].notna()
    classes = np.zeros(len(out), dtype=bool)
    for profile in _profiles(a, b):
        cls = f"classe_{profile}"
        out[f"avant_{cls}"] = _column(before, cls, dtype=object)
        out[cls] = b[cls].to_numpy()
        moved = (out[cls].fillna("") != out[f"avant_{cls}"].fillna("")).to_numpy()
        out[f"critere_{profile}"] = np.where(moved, _moved_criterion(b, before, profile), NULL)
        classes |= moved
    lineage_changed = (out["changement"] != INCHANGEE).to_numpy()
    out["evolution"] = np.select(
        [out["nouvellement_batie"].to_numpy(), entered.to_numpy(), left.to_numpy(),
         lineage_changed, classes],
        [NOUVELLEMENT_BATIE, ENTREE_GISEMENT, SORTIE_GISEMENT, out["changement"].to_numpy(),
         CLASSE_MODIFIEE], default="")
    changed = out[(out["evolution"] != "") | (out["nouveaux_batiments"] > 0).to_numpy()]
    gone = lineage[lineage["changement"] == SUPPRIMEE]
    deleted = a.drop_duplicates("idu").set_index("idu").loc[gone["idu_precedents"]]
    removed = gpd.GeoDataFrame(
        {"idu": None, "idu_precedents": gone["idu_precedents"].to_numpy(), "nb_precedents": 1,
         "changement": SUPPRIMEE, "evolution": SUPPRIMEE,
         **{c: deleted[c].to_numpy() for c in ("code_insee", "zae_id", "surface_m2")
            if c in deleted},
         "part_batie_avant": _column(deleted, "part_batie"),
         "gisement_avant": _column(deleted, "gisement_id", dtype=object)},
        geometry=deleted.geometry.values, crs=a.crs)
    if not len(removed):
        return changed.reset_index(drop=True)
    return gpd.GeoDataFrame(pd.concat([changed, removed], ignore_index=True),
                            geometry="geometry", crs=b.crs)


def evolution_gisements(old: Observation, new: Observation,
                        parcelles: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return the candidate sites gained, lost, reduced or enlarged.

    Sites are matched through their parcels: a new site continues the old sites
    of its parcels' predecessors. Observations read by
    :func:`~observatoire.observation.history.read_changes` give the unchanged parcels
    of the sites apart (``inchangees``): each keeps its site.

    Parameters
    ----------
    old, new
        Two observations, ``old`` the earlier.
    parcelles
        :func:`evolution_parcelles` between them (``gisement_avant``, ``gisement``).

    Returns
    -------
    pandas.DataFrame
        ``gisement_id`` (the new site, else the old one), ``gisements_avant``
        (comma-separated), ``statut`` (nouveau, disparu, réduit, agrandi),
        ``surface_avant_m2``, ``surface_m2``, ``zae_id``; unchanged sites are left out.
    """
    a = _sites(old.gisements)
    b = _sites(new.gisements)
    # Pairs from every new parcel (unchanged ones too: they keep their site).
    pairs = _site_pairs(old, new)
    if new.inchangees is not None and len(new.inchangees):
        same = new.inchangees["gisement_id"].to_numpy(dtype=object)
        pairs = pd.concat([pairs, pd.DataFrame({"gisement_avant": same, "gisement": same})],
                          ignore_index=True)
    pairs = pairs[pairs["gisement"].isin(b.index) & pairs["gisement_avant"].isin(a.index)]
    rows: list[tuple[object, str | None, str, float, float, object]] = []
    for site, group in pairs.groupby("gisement"):
        previous = sorted(set(group["gisement_avant"]))
        before = float(a.loc[previous, "surface_m2"].sum())
        after = float(b.loc[site, "surface_m2"])
        if after < before * (1 - TOLERANCE_SURFACE):
            statut = GISEMENT_REDUIT
        elif after > before * (1 + TOLERANCE_SURFACE):
            statut = GISEMENT_AGRANDI
        else:
            continue
        rows.append((site, ",".join(previous), statut, before, after, b.loc[site, "zae_id"]))
    for site in b.index.difference(pairs["gisement"]):
        rows.append((site, None, GISEMENT_NOUVEAU, 0.0, float(b.loc[site, "surface_m2"]),
                     b.loc[site, "zae_id"]))
    for site in a.index.difference(pairs["gisement_avant"]):
        rows.append((site, site, GISEMENT_DISPARU, float(a.loc[site, "surface_m2"]), 0.0,
                     a.loc[site, "zae_id"]))
    return pd.DataFrame(rows, columns=["gisement_id", "gisements_avant", "statut",
                                       "surface_avant_m2", "surface_m2", "zae_id"])


def evolution_zae(old: Observation, new: Observation,
                  parcelles: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return per ZAE the land consumed and the change of vacancy and available area.

    Parameters
    ----------
    old, new
        Two observations, ``old`` the earlier.
    parcelles
        :func:`evolution_parcelles` between them.

    Returns
    -------
    pandas.DataFrame
        ``zae_id``, ``zae_nom``, ``comm_insee``, ``surface_consommee_ha`` (newly built
        parcels, their part inside the ZAE), ``consommation_par_commune`` (« INSEE :
        ha » by commune of the parcels), ``unites_liberees``/``unites_occupees``
        (vacant units gained or lost), ``nb_unites_vacantes_avant``/
        ``nb_unites_vacantes``, ``taux_vacance_avant``/``taux_vacance``,
        ``surface_disponible_avant_m2``/``surface_disponible_m2``.
    """
    a = _indexed(old.zae, "zae_id")
    b = _indexed(new.zae, "zae_id")
    ids = b.index.union(a.index)
    out = pd.DataFrame(index=pd.Index(ids, name="zae_id"))
    for column in ("zae_nom", "comm_insee"):
        out[column] = _either(a, b, column, ids)
    built = parcelles[parcelles["nouvellement_batie"].fillna(False).astype(bool)
                      & parcelles["zae_id"].notna()].copy()
    share = built["part_zae"].fillna(1.0) if "part_zae" in built else 1.0
    built["ha"] = built["surface_consommee_m2"] * share / 10_000
    out["surface_consommee_ha"] = built.groupby("zae_id")["ha"].sum().reindex(ids).fillna(0.0)
    by_commune = built.groupby(["zae_id", "code_insee"])["ha"].sum()
    out["consommation_par_commune"] = pd.Series(
        {z: " ; ".join(f"{c} : {v:.2f} ha".replace(".", ",") for (_, c), v in group.items())
         for z, group in by_commune.groupby(level=0)}, dtype=object).reindex(ids)
    for column in ("nb_unites", "nb_unites_vacantes", "taux_vacance", "surface_disponible_m2"):
        stem = column.removesuffix("_m2")
        suffix = "_m2" if column.endswith("_m2") else ""
        out[f"{stem}_avant{suffix}"] = _column(a, column, index=ids)
        out[column] = _column(b, column, index=ids)
    delta = out["nb_unites_vacantes"].fillna(0) - out["nb_unites_vacantes_avant"].fillna(0)
    out["unites_liberees"] = delta.clip(lower=0).astype(int)
    out["unites_occupees"] = (-delta).clip(lower=0).astype(int)
    out["evolution_surface_disponible_m2"] = (out["surface_disponible_m2"]
                                              - out["surface_disponible_avant_m2"])
    out["changement"] = np.select(
        [~ids.isin(a.index), ~ids.isin(b.index)], ["nouvelle", "disparue"],
        default=np.where((out["surface_consommee_ha"] > 0) | (delta != 0)
                         | (out["evolution_surface_disponible_m2"].fillna(0).abs() >= 1),
                         "modifiée", "inchangée"))
    return out.reset_index()


def evolution_friches(old: Observation, new: Observation) -> pd.DataFrame:
    """Return per friche its status before and after, and the change.

    Returns
    -------
    pandas.DataFrame
        ``site_id``, ``site_nom``, ``comm_insee``, ``statut_avant``, ``site_statut`` and
        ``changement`` (nouvelle, disparue, statut modifié); unchanged friches are left
        out.
    """
    a = _indexed(old.friches, "site_id")
    b = _indexed(new.friches, "site_id")
    ids = b.index.union(a.index)
    out = pd.DataFrame(index=pd.Index(ids, name="site_id"))
    out["site_nom"] = _either(a, b, "site_nom", ids)
    out["comm_insee"] = _either(a, b, "comm_insee", ids)
    out["statut_avant"] = _column(a, "site_statut", index=ids, dtype=object)
    out["site_statut"] = _column(b, "site_statut", index=ids, dtype=object)
    moved = out["statut_avant"].fillna("") != out["site_statut"].fillna("")
    out["changement"] = np.select(
        [~ids.isin(a.index), ~ids.isin(b.index), moved.to_numpy()],
        [FRICHE_NOUVELLE, FRICHE_DISPARUE, FRICHE_STATUT_MODIFIE], default="")
    return out[out["changement"] != ""].reset_index()


def _column(frame: pd.DataFrame, column: str, *, index: pd.Index | None = None,
            dtype: type = float) -> np.ndarray:
    """``frame[column]`` (reindexed on ``index``) as an array, NaN/None when absent."""
    if column not in frame:
        n = len(frame) if index is None else len(index)
        return np.full(n, None if dtype is object else np.nan, dtype=dtype)
    values = frame[column] if index is None else frame[column].reindex(index)
    if dtype is object:
        return values.astype(object).where(values.notna(), None).to_numpy(dtype=object)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _either(a: pd.DataFrame, b: pd.DataFrame, column: str, ids: pd.Index) -> pd.Series:
    """Return the new value of ``column``, else the old one."""
    new = pd.Series(_column(b, column, index=ids, dtype=object), index=ids)
    old = pd.Series(_column(a, column, index=ids, dtype=object), index=ids)
    return new.where(new.notna(), old)


def _indexed(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    if key not in frame:
        return pd.DataFrame(index=pd.Index([], name=key))
    return frame.dropna(subset=[key]).drop_duplicates(key).set_index(key)


def _sites(frame: pd.DataFrame) -> pd.DataFrame:
    sites = _indexed(frame, "gisement_id")
    if "zae_id" not in sites:
        sites["zae_id"] = None
    if "surface_m2" not in sites:
        sites["surface_m2"] = 0.0
    return sites


def _site_pairs(old: Observation, new: Observation) -> pd.DataFrame:
    """(old site, new site) of every new parcel in a site and its predecessors."""
    a, b = old.parcelles, new.parcelles
    if "gisement_id" not in a or "gisement_id" not in b:
        return pd.DataFrame({"gisement_avant": [], "gisement": []}, dtype=object)
    lineage = parcel_lineage(a, b)
    kept = lineage[lineage["changement"] != SUPPRIMEE].reset_index(drop=True)
    kept["gisement"] = b["gisement_id"].to_numpy()
    kept = kept[kept["gisement"].notna()]
    pred = kept["idu_precedents"].fillna("").str.split(",")
    exploded = pd.DataFrame({"gisement": np.repeat(kept["gisement"].to_numpy(),
                                                   pred.str.len().to_numpy()),
                             "idu": np.concatenate(pred.to_numpy()) if len(pred)
                             else np.array([], dtype=object)})
    site_before = a.drop_duplicates("idu").set_index("idu")["gisement_id"]
    exploded["gisement_avant"] = exploded["idu"].map(site_before)
    return exploded.dropna(subset=["gisement_avant"])[["gisement_avant", "gisement"]]


def _profiles(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    return [c.removeprefix("classe_") for c in b.columns
            if c.startswith("classe_") and c in a.columns]


def _predecessor_values(a: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """Each new parcel's values before: its largest predecessor's.

    The built share of merged predecessors is their built area over their area.
    """
    pred = kept["idu_precedents"].fillna("").str.split(",")
    exploded = pd.DataFrame({"row": np.repeat(np.arange(len(kept)), pred.str.len()),
                             "idu": np.concatenate(pred.to_numpy()) if len(kept)
                             else np.array([], dtype=object)})
    old = pd.DataFrame(a.drop(columns=a.geometry.name)).drop_duplicates("idu").set_index("idu")
    if "surface_m2" not in old:
        old["surface_m2"] = a.drop_duplicates("idu").set_index("idu").geometry.area
    if not len(kept):  # no parcel changed (pandas joins empty frames awkwardly)
        return pd.DataFrame(columns=list(old.columns), index=pd.RangeIndex(0))
    exploded = exploded.join(old, on="idu", how="inner")
    main = exploded.sort_values(["surface_m2", "idu"], ascending=[False, True])
    before = main.drop_duplicates("row").set_index("row").reindex(range(len(kept)))
    if "part_batie" in old:
        exploded["bati_m2"] = exploded["part_batie"] * exploded["surface_m2"]
        sums = exploded.groupby("row")[["bati_m2", "surface_m2"]].sum().reindex(range(len(kept)))
        # Only for merges: a sole predecessor keeps its share (x·s/s may round below x
        # and make a parcel at the threshold look newly built).
        merged = (kept["nb_precedents"] > 1).to_numpy()
        before["part_batie"] = np.where(merged, sums["bati_m2"] / sums["surface_m2"],
                                        before["part_batie"])
    if "nb_batiments" in old:
        before["nb_batiments"] = exploded.groupby("row")["nb_batiments"].sum().reindex(
            range(len(kept)))
    return before


def _moved_criterion(b: pd.DataFrame, before: pd.DataFrame, profile: str) -> np.ndarray:
    """Return the criterion whose points moved most since ``before`` (per parcel)."""
    prefix = f"contrib_{profile}_"
    columns = [c for c in b.columns if c.startswith(prefix) and c in before.columns]
    if not columns:
        return np.full(len(b), None, dtype=object)
    delta = b[columns].to_numpy(dtype=float) - before[columns].to_numpy(dtype=float)
    delta = np.nan_to_num(np.abs(delta), nan=0.0)
    names = np.array([c.removeprefix(prefix) for c in columns], dtype=object)
    moved: np.ndarray = np.where(delta.max(axis=1) > 0, names[delta.argmax(axis=1)], NULL)
    exclu = f"exclu_{profile}"
    if exclu in b and exclu in before:
        now = b[exclu].astype(object).fillna(False).astype(bool).to_numpy()
        was = before[exclu].astype(object).fillna(False).astype(bool).to_numpy()
        moved = np.where(now != was, EXCLUSION, moved)
    return moved
