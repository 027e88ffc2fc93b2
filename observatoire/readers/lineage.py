"""Lineage of a source read: what was read, its checksum, what was repaired or dropped.

:class:`SourceReport` is one row of the ``sources`` table (also shown by the CLI and
``validate``); :class:`ReadResult` pairs a canonical layer with its report. Checksums
name the content of the files read, so that a rebuild shows which sources changed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd

from observatoire.readers.gdal import check_file


@dataclass
class SourceReport:
    """What reading one source did, for the ``sources`` table and the CLI.

    Attributes
    ----------
    kind
        Source family.
    paths
        Files read.
    format
        Format recognised.
    layer
        Layer read, if any.
    checksum
        SHA-256 of the files' bytes (sorted by path).
    features_read
        Features in the files.
    features_kept
        Features in the canonical layer.
    crs_in
        CRS of the files (or the one assumed).
    repairs
        What was repaired or dropped, and how many: ``{"géométries réparées": 3}``.
    read_at
        When the source was read (ISO 8601, UTC).
    producer
        Producer of the data, to credit (Licence Ouverte 2.0); see
        :mod:`observatoire.readers.provenance`.
    data_date
        Date of the data (``AAAA-MM-JJ``), and ``data_date_origin``: where it was
        found (a field of the file, its metadata, the territory file, or the
        file's modification date).
    features_in_territory
        Features that can serve the territory's parcels, when fewer than
        ``features_kept`` may (a layer read whole: zones meeting the parcels' box,
        lines and points within 5 km of it, owner rows of the territory's communes);
        ``None``: ``features_kept``.
    """

    kind: str
    paths: list[Path]
    format: str
    layer: str | None = None
    checksum: str = ""
    features_read: int = 0
    features_kept: int = 0
    crs_in: str | None = None
    repairs: dict[str, int] = field(default_factory=dict)
    read_at: str = ""
    producer: str = ""
    data_date: str = ""
    data_date_origin: str = ""
    features_in_territory: int | None = None

    @property
    def in_territory(self) -> int:
        """Features that can serve the territory's parcels (see ``features_in_territory``)."""
        if self.features_in_territory is None:
            return self.features_kept
        return self.features_in_territory

    def count(self, what: str, n: int) -> None:
        """Add ``n`` to the repair counter ``what`` (nothing when ``n`` is 0)."""
        if n:
            self.repairs[what] = self.repairs.get(what, 0) + int(n)


@dataclass
class ReadResult:
    """A canonical layer and the report of how it was read."""

    frame: gpd.GeoDataFrame
    report: SourceReport
    extra: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)


def checksum_files(paths: Iterable[Path]) -> str:
    """Return the SHA-256 of the files' bytes, in path order."""
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def new_report(kind: str, paths: Iterable[Path], fmt: str, layer: str | None = None
               ) -> SourceReport:
    """Start the report of a source, with its checksum and the reading time."""
    paths = list(paths)
    for p in paths:
        check_file(p)
    return SourceReport(
        kind=kind,
        paths=paths,
        format=fmt,
        layer=layer,
        checksum=checksum_files(paths),
        read_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )


def new_tile_report(kind: str, paths: Iterable[Path], fmt: str, layer: str | None = None
                    ) -> SourceReport:
    """Start the report of one piece (tile) of a source read in pieces.

    As :func:`new_report`, but a file's checksum is computed once per state of the
    file (path, size, modification time) and remembered: a partitioned build reads
    the same national file hundreds of times.
    """
    paths = list(paths)
    for p in paths:
        check_file(p)
    state = tuple((str(p), st.st_size, st.st_mtime_ns) for p, st in
                  ((p, p.stat()) for p in paths))
    return SourceReport(
        kind=kind,
        paths=paths,
        format=fmt,
        layer=layer,
        checksum=_checksum_of_state(state),
        read_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )


@functools.lru_cache(maxsize=64)
def _checksum_of_state(state: tuple[tuple[str, int, int], ...]) -> str:
    return checksum_files(Path(path) for path, _, _ in state)


def merge_reports(reports: Sequence[SourceReport]) -> SourceReport:
    """Return one report for a source read in pieces (the tiles of a partitioned build).

    Parameters
    ----------
    reports
        The reports of the pieces, in reading order.

    Returns
    -------
    SourceReport
        Kind, format, checksum of the first report; its layer and input CRS (the
        first known, when a piece read nothing); the files of all, each once, in
        order; features read and kept and each repair counter summed; the earliest
        reading time; the first producer found and the latest data date.

    Raises
    ------
    ValueError
        When ``reports`` is empty.
    """
    if not reports:
        raise ValueError("merge_reports : aucun rapport à fusionner (liste vide)")
    first = reports[0]
    paths: list[Path] = []
    repairs: dict[str, int] = {}
    for r in reports:
        paths.extend(p for p in r.paths if p not in paths)
        for what, n in r.repairs.items():
            repairs[what] = repairs.get(what, 0) + int(n)
    times = [r.read_at for r in reports if r.read_at]
    latest = max(reports, key=lambda r: r.data_date)
    return SourceReport(
        kind=first.kind,
        paths=paths,
        format=first.format,
        layer=next((r.layer for r in reports if r.layer is not None), None),
        checksum=first.checksum,
        features_read=sum(r.features_read for r in reports),
        features_kept=sum(r.features_kept for r in reports),
        crs_in=next((r.crs_in for r in reports if r.crs_in is not None), None),
        repairs=repairs,
        read_at=min(times, key=dt.datetime.fromisoformat) if times else "",
        producer=next((r.producer for r in reports if r.producer), ""),
        data_date=latest.data_date,
        data_date_origin=latest.data_date_origin,
        features_in_territory=None if all(r.features_in_territory is None for r in reports)
        else sum(r.in_territory for r in reports),
    )


def relative_name(path: Path, base: Path | None) -> str:
    """Return the lineage name of a source file: relative to ``base`` when possible."""
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return path.name
