"""`Gatherer`: items taken from a queue in groups of bounded size, waiting a little for more.

Dynamic batching in two places: the `Batcher` gathers requests' images into device batches, and the
Celery front (`QueueFront`) gathers requests into one task each. One thread at a time calls `next_group`.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

STOP = None  # put on the queue to end the consumer: `next_group` returns None
_EMPTY = object()  # no item carried over (distinct from STOP, which may be carried)


class Gatherer:
    """Groups the items of `items`: the first one waiting, then those arriving within `max_wait_s`.

    Args:
        items: The queue the producers put to.
        max_size: Most total size of a group (one item larger than this is a group of its own).
        max_wait_s: How long to wait for more after the first item of a group.
        size: Size of an item (default: `len`).
    """

    def __init__(self, items: queue.Queue, *, max_size: int, max_wait_s: float,
                 size: Callable[[Any], int] = len) -> None:
        self.items, self.max_size, self.max_wait_s, self.size = items, max_size, max_wait_s, size
        self._carry: Any = _EMPTY  # the item that did not fit in the last group opens the next one

    def next_group(self) -> list | None:
        """The next group, in arrival order; None once STOP is reached (after the items before it)."""
        first = self.items.get() if self._carry is _EMPTY else self._carry
        self._carry = _EMPTY
        if first is STOP:
            return None
        group, total, deadline = [first], self.size(first), time.monotonic() + self.max_wait_s
        while total < self.max_size and (left := deadline - time.monotonic()) > 0:
            try:
                item = self.items.get(timeout=left)
            except queue.Empty:
                break
            if item is STOP or total + self.size(item) > self.max_size:
                self._carry = item
                break
            group.append(item)
            total += self.size(item)
        return group
