"""The download cache: ``<racine>/<source>/<millesime>/…``, a manifest beside each file.

Each cached file ``f`` has ``f.manifeste.json``: its URL, source, vintage, fetch
date, HTTP validators, size, SHA-256, producer and licence. A file counts as cached
only when its manifest exists and its size and SHA-256 still match: a file edited,
truncated or half-copied by hand is not trusted (the cache never lies). Files and
manifests are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from observatoire.acquisition.http import (
    Client,
    DownloadError,
    Validators,
    sha256_of,
)

MANIFEST_SUFFIX = ".manifeste.json"
#: The licence of every publisher fetched (sources-ouvertes.md, « Licences »).
LICENCE_OUVERTE = "Licence Ouverte / Open Licence 2.0 (Etalab)"
_MILLESIME = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Manifest:
    """What is known of a cached file."""

    url: str
    source: str
    millesime: str
    telecharge_le: str
    etag: str | None
    last_modified: str | None
    taille: int
    sha256: str
    producteur: str
    licence: str

    @property
    def validators(self) -> Validators:
        """The HTTP validators, for a conditional request."""
        return Validators(self.etag, self.last_modified)


def now() -> str:
    """Return the current UTC time, to the second, ISO 8601."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class Cache:
    """The cache folder.

    Parameters
    ----------
    root
        The folder holding one subfolder per source.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, source: str, millesime: str, name: str) -> Path:
        """Where a file of a source and vintage is cached (``name`` may hold subfolders)."""
        return self.root / source / millesime / name

    @staticmethod
    def manifest_path(path: Path) -> Path:
        """Return the manifest of a cached file."""
        return path.with_name(path.name + MANIFEST_SUFFIX)

    def manifest(self, path: Path) -> Manifest | None:
        """Return the manifest of a cached file when the file still matches it, else ``None``."""
        mpath = self.manifest_path(path)
        if not path.is_file() or not mpath.is_file():
            return None
        try:
            manifest = Manifest(**json.loads(mpath.read_text(encoding="utf-8")))
        except (ValueError, TypeError, OSError):
            return None
        if path.stat().st_size != manifest.taille or sha256_of(path) != manifest.sha256:
            return None
        return manifest

    def record(self, path: Path, manifest: Manifest) -> None:
        """Write the manifest of a cached file, atomically."""
        write_atomic(self.manifest_path(path),
                     json.dumps(asdict(manifest), ensure_ascii=False, indent=2).encode())

    def millesimes(self, source: str) -> list[str]:
        """Return the dated vintages of a source held in the cache, oldest first."""
        folder = self.root / source
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir()
                      if p.is_dir() and _MILLESIME.fullmatch(p.name))

    def newest(self, source: str, name: str) -> Path | None:
        """Return the valid cached copy of ``name`` in the newest vintage, or ``None``."""
        for millesime in reversed(self.millesimes(source)):
            path = self.path(source, millesime, name)
            if self.manifest(path) is not None:
                return path
        return None

    def fetch(self, client: Client | None, url: str, *, source: str, millesime: str,
              name: str, expect: str, producer: str, previous: Path | None = None) -> Path:
        """Return the cached copy of ``url``, downloading it when missing or changed.

        Parameters
        ----------
        client
            The HTTP client; ``None``: offline, the cache only.
        url
            The file at the publisher.
        source, millesime, name
            Where it is cached (:meth:`path`).
        expect
            What the file must be (:meth:`Client.download`).
        producer
            The producer recorded in the manifest.
        previous
            A copy cached under an older vintage (a file republished under the same
            URL, SIRENE's ``last``): asked conditionally, and returned when unchanged.

        Raises
        ------
        DownloadError
            The download failed, or offline with no valid cached copy.
        """
        path = self.path(source, millesime, name)
        manifest = self.manifest(path)
        current = path
        if manifest is None and previous is not None:
            manifest, current = self.manifest(previous), previous
        if client is None:
            if manifest is None:
                raise DownloadError(f"{url} : absent du cache ({path}) ; relancez sans "
                                    f"--hors-ligne pour le télécharger", url=url)
            return current
        got = client.download(url, path, expect=expect,
                              validators=manifest.validators if manifest else None,
                              label=f"{source} {Path(name).name}")
        if not got.changed:
            return current
        assert got.size is not None and got.sha256 is not None
        self.record(path, Manifest(url, source, millesime, now(), got.validators.etag,
                                   got.validators.last_modified, got.size, got.sha256,
                                   producer, LICENCE_OUVERTE))
        return path

    def store(self, data: bytes, *, url: str, source: str, millesime: str, name: str,
              producer: str) -> Path:
        """Cache bytes assembled from an API (pages of GeoJSON) with their manifest."""
        path = self.path(source, millesime, name)
        write_atomic(path, data)
        self.record(path, Manifest(url, source, millesime, now(), None, None, len(data),
                                   sha256_of(path), producer, LICENCE_OUVERTE))
        return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
