"""What a partitioned analysis keeps aside until every partition is done.

:class:`Spilled` keeps frames on disk (the worker processes still run, with their
own memory); :class:`Held` keeps in memory the scored parcels of the land units
and candidate sites that may reach across a partition's edge.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd


class Spilled:
    """Frames gathered group by group, kept in files of a folder until loaded.

    The staging folder holds them (deleted with it); pickle keeps their dtypes
    exactly, so the frames loaded are those appended.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.paths: list[Path] = []
        self.first: pd.DataFrame | None = None  # an empty frame, when all are empty

    def __bool__(self) -> bool:
        return bool(self.paths) or self.first is not None

    def append(self, frame: pd.DataFrame) -> None:
        """Keep ``frame`` (empty ones are not written)."""
        if not len(frame):
            if self.first is None and not self.paths:
                self.first = frame
            return
        path = self.folder / f"{self.name}-{len(self.paths):06d}.pkl"
        with open(path, "wb") as f:
            pickle.dump(frame, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.paths.append(path)

    def load(self) -> list[pd.DataFrame]:
        """Return the frames appended, in order (the empty ones only if all were)."""
        frames = []
        for path in self.paths:
            with open(path, "rb") as f:
                frames.append(pickle.load(f))  # noqa: S301 - written above, by this build
        return frames or ([self.first] if self.first is not None else [])


class Held:
    """Scored parcels (and their owners) kept aside until every commune is analysed."""

    def __init__(self) -> None:
        self.frames: list[gpd.GeoDataFrame] = []
        self.proprietaires: list[pd.DataFrame] = []
        self.gids: list[np.ndarray] = []

    def __bool__(self) -> bool:
        return bool(self.frames)

    def add(self, scored: gpd.GeoDataFrame, proprietaires: pd.DataFrame | None, gid: np.ndarray,
            mask: np.ndarray) -> None:
        """Keep the rows of ``mask``."""
        rows = np.flatnonzero(mask)
        self.frames.append(scored.iloc[rows])
        if proprietaires is not None:
            self.proprietaires.append(proprietaires.iloc[rows])
        self.gids.append(gid[rows])

    def set_units(self, gid: np.ndarray, uf_id: np.ndarray) -> None:
        """Fill the ``uf_id`` of the rows of global ids ``gid`` (sorted)."""
        for frame, g in zip(self.frames, self.gids, strict=True):
            pos = np.searchsorted(gid, g)
            pos = np.minimum(pos, len(gid) - 1)
            hit = gid[pos] == g
            if hit.any():
                values = frame["uf_id"].to_numpy(dtype=object).copy()
                values[hit] = uf_id[pos[hit]]
                frame["uf_id"] = values

    def frame(self) -> tuple[gpd.GeoDataFrame, pd.DataFrame | None, np.ndarray]:
        """Return the rows kept in global id order, their owners and their global ids."""
        gid = np.concatenate(self.gids)
        order = np.argsort(gid, kind="stable")
        frame = pd.concat(self.frames, ignore_index=True).iloc[order].reset_index(drop=True)
        frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=self.frames[0].crs)
        proprietaires = None
        if self.proprietaires:
            proprietaires = pd.concat(self.proprietaires, ignore_index=True).iloc[order]
            proprietaires = proprietaires.reset_index(drop=True)
        return frame, proprietaires, gid[order]


