"""Give freed memory back to the operating system between the stages of a build.

CPython frees its objects to the C allocator, which keeps the freed pages for
later allocations: the resident memory of a process stays at the high-water mark
of its earlier stages. A build by partition reads the context (hundreds of MB at
a département's scale), hands it to the worker processes and lets it go; without
this the main process would keep those pages while the workers hold their own
copy.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> object | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def trim() -> None:
    """Collect garbage, then return the allocator's free pages to the system (glibc).

    It walks the heap (a fraction of a second to a few seconds on a heap of
    gigabytes): call it between stages, not in loops.
    """
    gc.collect()
    fn = _malloc_trim()
    if fn is not None:
        fn(0)
