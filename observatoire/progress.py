"""Progress of a build: a French message per stage, and the long loops counted.

The build reports each stage to a ``progress`` callback, called with a French
message. A callback may also count the long loops (the parcel files staged, the
tiles of buildings, the groups of communes analysed, the consultation files) by
offering a ``track(items, *, total, label)`` method that returns the items
(:func:`track`). The command line draws a bar from it when standard error is a
terminal; a plain function (the bench, the tests) only sees the messages. The
package itself never writes to the terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

#: Called with a French message at each stage of a build.
Progress = Callable[[str], None]


def track(progress: Progress | None, items: Iterable[T], *, total: int, label: str
          ) -> Iterable[T]:
    """Return ``items``, counted by ``progress`` when it counts loops.

    Parameters
    ----------
    progress
        The build's progress callback; when it has a ``track`` method, that
        method is given the loop, else the items are returned as they are.
    items
        The loop's items; they are yielded unchanged and in order.
    total
        How many items the loop yields.
    label
        What is counted, in French (« groupes de communes »).

    Returns
    -------
    Iterable
        The same items.
    """
    counter = getattr(progress, "track", None)
    if counter is None:
        return items
    return counter(items, total=total, label=label)
