"""Skipping unreadable images while loading, so that one bad file never fails a batch.

The header scan (`winnow.data.validation.scan`) misses files whose data is cut after a valid header,
and files deleted after it ran; they fail only at the full decode, inside the data loader (in worker
processes or threads when `workers > 0`). `SkipUnreadable` turns such a read into a `FailedRead` marker,
the collate function `SkipCollate` keeps the markers apart from the good items, and `ReadLog` iterates the
loader (a DataLoader, or a `winnow.data.thread_loader.ThreadLoader` for CPU models): it yields the
collated good items only and records the positions that were read and the files that failed, with why;
when not one item could be read it raises `NothingRead` at the end, so that no caller ever handles an
empty, shapeless result. Prediction jobs (predict, eval, tune, calibrate,
ensemble, report) load through it; training does not: it verifies its files before the first epoch and stops on a bad one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch.utils.data import DataLoader, Dataset, default_collate

from winnow.data.imageio import ImageReadError
from winnow.data.thread_loader import ThreadLoader
from winnow.data.validation import bad_summary

READ_ERRORS = (ImageReadError, OSError)  # what decoding a bad or vanished file raises


@dataclass(frozen=True)
class FailedRead:
    """Stands in for the item of a file that could not be read.

    Attributes:
        index: Position of the item in the dataset.
        path: The file.
        reason: `tag: detail`, as in bad_files.csv (e.g. "corrupt: cannot decode (...)").
    """

    index: int
    path: str
    reason: str


def failure_reason(error: Exception) -> str:
    """The bad_files.csv reason of a read error: `tag: detail`."""
    if isinstance(error, ImageReadError):
        return f"{error.reason}: {error.detail}"
    if isinstance(error, FileNotFoundError):
        return "missing: file does not exist (removed after the scan?)"
    return f"unreadable: {error}"


class NothingRead(ValueError):
    """Not one item of a skipping loader could be read; `bad` lists the `(path, reason)` of them all."""

    def __init__(self, bad: list[tuple[str, str]]) -> None:
        super().__init__(f"none of the {len(bad)} image(s) can be read: {bad_summary(bad)}")
        self.bad = bad


class SkipUnreadable(Dataset):
    """A dataset whose items are `(index, item)`, or a `FailedRead` where reading the file failed.

    Args:
        dataset: Any map-style dataset over `paths` (e.g. `ImageDataset`, `ViewDataset`).
        paths: The file behind each item, named in `FailedRead`.
    """

    def __init__(self, dataset: Dataset, paths: list[str]) -> None:
        if len(dataset) != len(paths):
            raise ValueError(f"paths: expected one path per dataset item ({len(dataset)}), got {len(paths)}")
        self.dataset, self.paths = dataset, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Any] | FailedRead:
        try:
            return index, self.dataset[index]
        except READ_ERRORS as error:
            return FailedRead(index, self.paths[index], failure_reason(error))

    def __getitems__(self, indices: list[int]) -> list[tuple[int, Any] | FailedRead]:
        """The items of a batch, fetched together where the dataset can (its `__getitems__`)."""
        fetch_many = getattr(self.dataset, "__getitems__", None)
        if fetch_many is None:
            return [self[index] for index in indices]
        try:
            return list(zip(indices, fetch_many(indices)))
        except READ_ERRORS:  # rare: read this batch item by item, to tell its bad files from its good ones
            return [self[index] for index in indices]


class LoadedBatch(NamedTuple):
    """One batch of a `SkipUnreadable` loader (a NamedTuple, so that pinned memory reaches `items`).

    Attributes:
        items: The good items collated (e.g. images `[B, C, S, S]` and targets `[B]`); None when every
            item of the batch failed.
        indices: Dataset positions of the good items `[B]`.
        failed: The markers of the items that failed.
    """

    items: Any
    indices: list[int]
    failed: list[FailedRead]


class SkipCollate:
    """Collate function of a `SkipUnreadable` loader: `collate` the good items, keep the failures apart.

    Args:
        collate: Collate function of the wrapped dataset's items (default: torch's `default_collate`).
    """

    def __init__(self, collate: Callable[[list], Any] = default_collate) -> None:
        self.collate = collate

    def __call__(self, batch: list[tuple[int, Any] | FailedRead]) -> LoadedBatch:
        good = [item for item in batch if not isinstance(item, FailedRead)]
        failed = [item for item in batch if isinstance(item, FailedRead)]
        items = self.collate([item for _, item in good]) if good else None
        return LoadedBatch(items, [index for index, _ in good], failed)


class ReadLog:
    """Iterates a loader of `LoadedBatch`es: yields their collated items, records what was read and what failed.

    After a full pass, `rows` holds the dataset positions of the yielded items (in order) and `bad`
    the `(path, reason)` of the others.

    Raises:
        NothingRead: At the end of a pass that read no item.
    """

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.rows: list[int] = []
        self.bad: list[tuple[str, str]] = []

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            self.rows += batch.indices
            self.bad += [(failure.path, failure.reason) for failure in batch.failed]
            if batch.items is not None:  # a batch of failures only leaves nothing to predict
                yield batch.items
        if self.bad and not self.rows:
            raise NothingRead(self.bad)


def skipping_loader(dataset: Dataset, paths: list[str], *, batch_size: int, workers: int = 0,
                    pin_memory: bool = False, collate: Callable[[list], Any] = default_collate,
                    threads: bool = False) -> ReadLog:
    """A `ReadLog` over an in-order loader of `dataset` that skips the items whose file cannot be read.

    Args:
        dataset: Map-style dataset, one item per path.
        paths: The file behind each item.
        batch_size: Items per batch (the failed ones included, so a batch may come out smaller).
        workers: DataLoader worker processes (0: load in this thread).
        pin_memory: Pin the collated items (CUDA).
        collate: Collate function of the dataset's items.
        threads: The `workers` are threads of this process (`ThreadLoader`), for models run on the CPU.

    Raises:
        ValueError: `threads` with `pin_memory` (pinning is for CUDA jobs, which load in processes).
    """
    if threads and pin_memory:
        raise ValueError("threads=True loads for a CPU model and pins nothing; pass pin_memory=False")
    items, collate_fn = SkipUnreadable(dataset, paths), SkipCollate(collate)
    if threads and workers > 0:
        return ReadLog(ThreadLoader(items, batch_size=batch_size, workers=workers, collate_fn=collate_fn))
    loader = DataLoader(items, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                        collate_fn=collate_fn)
    return ReadLog(loader)
