"""Staged output files: written beside their destination, published by an atomic rename."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class StagedFile:
    """A file written to a temporary path, then moved over ``dest`` by :meth:`publish`.

    Parameters
    ----------
    dest
        The final path.
    """

    def __init__(self, dest: str | Path) -> None:
        self.dest = Path(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dest.with_name(f".{self.dest.name}.{os.getpid()}.tmp")

    def publish(self) -> Path:
        """Flush the temporary file to disk and rename it over the destination."""
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.dest)
        with contextlib.suppress(OSError):
            fd = os.open(self.dest.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self.dest

    def discard(self) -> None:
        """Remove the temporary file, if any."""
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
