"""In-order batches of a map-style dataset, built by threads of this process (a DataLoader without processes).

For a job that runs its model on the CPU: torch's intra-op threads already give the forward pass every
core, so DataLoader worker processes only add their start (fork, copy-on-write faults), the pickling of
each batch into shared memory and cold caches to the same cores. Threads share the process's warm state
and hand batches over as they are; decoding (PIL) and torch's ops release the GIL. The dataset must be
safe to read from several threads (`ImageDataset` without a cache is; `ViewDataset` serialises its seeded
random views).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from torch.utils.data import Dataset, default_collate


class ThreadLoader:
    """Iterates `collate_fn([dataset[i] for i in batch])` over consecutive batches, in order.

    Args:
        dataset: Map-style dataset.
        batch_size: Items per batch (the last one may be smaller).
        workers: Threads building batches; each has up to 2 batches queued ahead, as a DataLoader's workers.
        collate_fn: Turns a list of items into a batch.

    Raises:
        ValueError: `batch_size` or `workers` below 1.
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, workers: int,
                 collate_fn: Callable[[list], Any] = default_collate) -> None:
        if batch_size < 1 or workers < 1:
            raise ValueError(f"batch_size and workers: expected >= 1, got {batch_size} and {workers}")
        self.dataset, self.batch_size, self.workers, self.collate_fn = dataset, batch_size, workers, collate_fn

    def __iter__(self) -> Iterator[Any]:
        starts = iter(range(0, len(self.dataset), self.batch_size))
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="winnow-loader")
        pending = deque(pool.submit(self._batch, start) for start in islice(starts, 2 * self.workers))
        try:
            while pending:
                batch = pending.popleft().result()  # re-raises what building the batch raised
                pending.extend(pool.submit(self._batch, start) for start in islice(starts, 1))
                yield batch
        finally:  # also when the consumer stops early: drop the queued batches, wait for the running ones
            pool.shutdown(wait=True, cancel_futures=True)

    def _batch(self, start: int) -> Any:
        stop = min(start + self.batch_size, len(self.dataset))
        indices = list(range(start, stop))
        fetch_many = getattr(self.dataset, "__getitems__", None)  # torch's batched-fetch protocol, as DataLoader
        return self.collate_fn(fetch_many(indices) if fetch_many else [self.dataset[index] for index in indices])
