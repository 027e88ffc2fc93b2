"""Map thinning: which parcels, candidate sites and ZAE units the overview map draws.

A département holds hundreds of thousands of parcels and a hundred thousand
candidate sites and ZAE units: a map of them all is a page of tens of MB that a
browser cannot open. Beyond :data:`MAP_MAX_PARCELS` parcels the map keeps the best
scored for the first profile (:func:`map_layers`, or :class:`TopScores` fed
partition by partition); beyond :data:`MAP_MAX_FEATURES` the best candidate sites
and the ZAE units that matter (:func:`map_units_and_sites`). The GeoPackage and the
exports keep every feature.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from observatoire.config import Territory
from observatoire.progress import Progress

#: Above this many parcels, the overview map keeps the parcels that matter (see map_layers).
MAP_MAX_PARCELS = 50_000


def map_layers(outputs: dict[str, gpd.GeoDataFrame], territory: Territory, say: Progress,
               *, limit: int = MAP_MAX_PARCELS) -> dict[str, gpd.GeoDataFrame]:
    """Return the layers drawn on the map: every layer, but at most ``limit`` parcels.

    A département holds hundreds of thousands of parcels: drawing them all makes a
    page of tens of MB that a browser cannot open. Beyond ``limit``, the map keeps
    the parcels not excluded by the first profile, best scores first; the
    GeoPackage keeps them all.
    """
    parcels = outputs["parcelles"]
    if len(parcels) <= limit:
        return outputs
    score = f"score_{territory.profiles[0].name}"
    top = TopScores(score, limit)
    top.add(pd.DataFrame(parcels[[score]] if score in parcels else {}, index=parcels.index),
            np.arange(len(parcels)))
    keep = top.ids()
    say(map_message(len(keep), len(parcels), territory))
    return {**outputs, "parcelles": parcels.iloc[keep]}


#: Above these many features, the overview map keeps those that matter (see
#: map_units_and_sites); the GeoPackage keeps them all.
MAP_MAX_FEATURES = {"gisements": 20_000, "zae_unites": 20_000}


def map_units_and_sites(layers: dict[str, gpd.GeoDataFrame], say: Progress, *,
                        limits: dict[str, int] | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Return the layers drawn on the map, with at most so many sites and ZAE units.

    A département holds a hundred thousand candidate sites and ZAE units: the map
    of them all is a page of tens of MB. Beyond ``limits``
    (:data:`MAP_MAX_FEATURES`), the map keeps the best candidate sites (mean
    score, then area) and the ZAE units that matter to a newcomer (vacant ones
    first, then the largest); the GeoPackage and the exports keep them all.
    """
    limits = MAP_MAX_FEATURES if limits is None else limits
    out = dict(layers)
    sites = out.get("gisements")
    if sites is not None and len(sites) > limits["gisements"]:
        score = pd.to_numeric(sites.get("score_moyen"), errors="coerce").fillna(-np.inf)
        order = np.lexsort((-_surface_m2(sites), -score.to_numpy(dtype=float)))
        out["gisements"] = sites.iloc[np.sort(order[:limits["gisements"]])]
        say(f"Carte : {limits['gisements']} gisements dessinés sur {len(sites)} (les mieux "
            f"notés, puis les plus grands ; tous sont dans le GeoPackage)")
    units = out.get("zae_unites")
    if units is not None and len(units) > limits["zae_unites"]:
        from observatoire.analysis.zae_inventory import VACANT_STATUTS

        vacant = units["statut_vacance"].isin(VACANT_STATUTS).to_numpy() \
            if "statut_vacance" in units else np.zeros(len(units), dtype=bool)
        order = np.lexsort((-_surface_m2(units), ~vacant))
        out["zae_unites"] = units.iloc[np.sort(order[:limits["zae_unites"]])]
        say(f"Carte : {limits['zae_unites']} unités foncières de ZAE dessinées sur "
            f"{len(units)} (les vacantes d'abord, puis les plus grandes ; toutes sont dans "
            f"le GeoPackage)")
    return out


def _surface_m2(frame: gpd.GeoDataFrame) -> np.ndarray:
    from observatoire.publish.assets import surface_m2

    return surface_m2(frame).fillna(0.0).to_numpy(dtype=float)


def map_message(drawn: int, total: int, territory: Territory) -> str:
    """Return the progress line saying how many parcels the map draws, of how many."""
    first = territory.profiles[0].name
    return (f"Carte : {drawn} parcelles dessinées sur {total} (les mieux notées pour le profil "
            f"{first} ; toutes sont dans le GeoPackage)")


class TopScores:
    """The parcels of the map: every parcel up to ``limit``, beyond the best scored.

    Ties go to the smallest global id (IDU order), as in the one-pass selection,
    whatever the order the partitions come in. The pool is pruned when it doubles,
    so each parcel is copied O(1) times.
    """

    def __init__(self, score: str, limit: int) -> None:
        self.score, self.limit = score, limit
        self.frames: list[gpd.GeoDataFrame] = []
        self.rows = 0
        self.seen = 0
        self.threshold = -np.inf

    def add(self, frame: gpd.GeoDataFrame, gid: np.ndarray) -> None:
        """Offer the parcels of a partition (global ids ``gid``), in any order."""
        self.seen += len(frame)
        if self.seen > self.limit:
            if self.score not in frame:
                return
            values = frame[self.score].to_numpy(dtype="float64")
            keep = np.flatnonzero(values >= self.threshold)
            frame, gid = frame.iloc[keep], gid[keep]
        self.frames.append(frame.assign(_gid=gid))
        self.rows += len(frame)
        if self.seen > self.limit and self.rows > 2 * self.limit:
            self._prune()

    def _prune(self) -> None:
        frame = pd.concat(self.frames)
        if self.score not in frame:
            self.frames, self.rows = [frame.iloc[:0].copy()], 0
            return
        frame = frame[frame[self.score].notna()]
        order = np.lexsort((frame["_gid"].to_numpy(),
                            -frame[self.score].to_numpy(dtype="float64")))
        frame = frame.iloc[order[:self.limit]]
        if len(frame) == self.limit:
            self.threshold = float(frame[self.score].iloc[-1])
        self.frames, self.rows = [frame], len(frame)

    def _kept(self) -> pd.DataFrame:
        if not self.frames:  # nothing offered, or no score column beyond the limit
            return pd.DataFrame({"_gid": np.zeros(0, np.int64)})
        if self.seen > self.limit:
            self._prune()
        return pd.concat(self.frames).sort_values("_gid", kind="stable")

    def result(self) -> gpd.GeoDataFrame:
        """Return the parcels kept, in IDU order."""
        return self._kept().drop(columns="_gid").reset_index(drop=True)

    def ids(self) -> np.ndarray:
        """Return the global ids of the parcels kept, in increasing order."""
        return self._kept()["_gid"].to_numpy()
