"""Give freed memory back to the operating system between the stages of a build.

CPython frees its objects to the C allocator, which keeps the freed pages for
later allocations: the resident memory of a process stays at the high-water mark
of its earlier stages. A build by partition reads the context (hundreds of MB at
a département's scale), hands it to the worker processes and lets it go; without
this the main process would keep those pages while the workers hold their own
copy. Arrow (pyogrio's reads and writes) has its own allocator, which keeps freed
blocks as well.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def trim() -> None:
    """Collect garbage, then return the allocators' free pages to the system.

    Arrow's memory pool, then glibc's heap (other C libraries: nothing is done).

    It walks the heap (a fraction of a second to a few seconds on a heap of
    gigabytes): call it between stages, not in loops.
    """
    gc.collect()
    if "pyarrow" in sys.modules:  # only if already in use: no import for nothing
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    fn = _malloc_trim()
    if fn is not None:
        fn(0)
