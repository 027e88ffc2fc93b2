"""Staged output files: written beside their destination, published by an atomic rename.

A build killed by SIGKILL cannot clean up after itself: its temporary files stay
next to the outputs (``.carte.html.<pid>.tmp``, and the staging folder of a build by
partition, ``.observatoire-partitions-<pid>-…``). They never replace an output, and
the next build removes those of dead processes (:func:`remove_stale`,
:func:`remove_stale_folders`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from observatoire.errors import BuildError

log = logging.getLogger(__name__)


def staging_path(dest: Path) -> Path:
    """Return the temporary path of ``dest`` for this process: ``.name.<pid>.tmp``."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def remove_stale(dest: Path) -> list[Path]:
    """Remove the temporary files of ``dest`` left by builds that were killed.

    Only files named like :func:`staging_path` (and their SQLite journals) whose
    process is gone are removed; a concurrent build's files are left alone.

    Parameters
    ----------
    dest
        The output whose stale temporary files to remove.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    pattern = re.compile(re.escape(f".{dest.name}.") + r"(\d+)\.tmp(-journal|-wal|-shm)?$")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(dest.parent):
            m = pattern.match(entry.name)
            if m and not _pid_alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    if removed:
        log.info("fichiers temporaires d'une exécution interrompue supprimés : %s",
                 ", ".join(p.name for p in removed))
    return removed


def remove_stale_folders(parent: Path, prefix: str) -> list[Path]:
    """Remove the folders ``<prefix><pid>-…`` of ``parent`` whose process is gone.

    A build by partition stages its parcels in such a folder (gigabytes for a
    département); a build killed by SIGKILL leaves it behind.

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    import shutil

    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            m = pattern.match(entry.name)
            if m and entry.is_dir(follow_symlinks=False) and not _pid_alive(int(m.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    if removed:
        log.info("dossiers temporaires d'une exécution interrompue supprimés : %s",
                 ", ".join(p.name for p in removed))
    return removed


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk (the rename of a published file)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prepare_output(dest: Path) -> Path:
    """Create the folder of ``dest``, clear dead builds' leftovers, return its staging path.

    Raises
    ------
    BuildError
        When the output folder cannot be created.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(
            f"{dest.parent} : dossier de sortie impossible à créer ({exc.strerror}) ; "
            f"choisissez un autre dossier (--out ou sorties.dossier)"
        ) from None
    remove_stale(dest)
    return staging_path(dest)


def publish_file(tmp: Path, dest: Path, *, previous: str = "la version précédente") -> Path:
    """Flush ``tmp`` to disk and rename it over ``dest`` (atomic on one file system).

    Raises
    ------
    BuildError
        When the file cannot be published; ``dest`` is left as it was.
    """
    try:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        raise BuildError(
            f"{dest} : publication impossible ({exc.strerror}) ; {previous} est intacte"
        ) from None
    fsync_dir(dest.parent)
    return dest


class StagedFile:
    """A file written to a temporary path, then moved over ``dest`` by :meth:`publish`.

    Parameters
    ----------
    dest
        The final path.
    """

    def __init__(self, dest: str | Path) -> None:
        self.dest = Path(dest)
        self.tmp = prepare_output(self.dest)

    def publish(self) -> Path:
        """Flush the temporary file to disk and rename it over the destination.

        Raises
        ------
        BuildError
            When the file cannot be published; the previous one is left intact.
        """
        return publish_file(self.tmp, self.dest)

    def discard(self) -> None:
        """Remove the temporary file, if any."""
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
