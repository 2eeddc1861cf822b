"""`ThreadLoader`: in-order batches built by threads, for jobs whose model runs on the CPU."""

from __future__ import annotations

import threading

import pytest
import torch

from winnow.data.thread_loader import ThreadLoader
from winnow.data.unreadable import skipping_loader


class Recorded(list):
    """A list dataset that notes which thread read each item."""

    def __init__(self, items, fail_at: int | None = None) -> None:
        super().__init__(items)
        self.fail_at, self.threads = fail_at, set()

    def __getitem__(self, index):
        self.threads.add(threading.current_thread().name)
        if index == self.fail_at:
            raise KeyError(f"item {index} cannot be built")
        return super().__getitem__(index)


def loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("winnow-loader")]


def test_batches_come_in_order_from_loader_threads_whatever_finishes_first():
    dataset = Recorded(range(10))
    batches = list(ThreadLoader(dataset, batch_size=4, workers=3))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert dataset.threads and all(name.startswith("winnow-loader") for name in dataset.threads)
    assert not loader_threads()


def test_an_error_reaches_the_consumer_and_stopping_early_leaves_no_thread():
    with pytest.raises(KeyError, match="item 5 cannot be built"):
        list(ThreadLoader(Recorded(range(8), fail_at=5), batch_size=2, workers=2))
    for batch in ThreadLoader(Recorded(range(100)), batch_size=1, workers=2):
        assert torch.equal(batch, torch.tensor([0]))
        break
    assert not loader_threads()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="batch_size and workers: expected >= 1, got 4 and 0"):
        ThreadLoader(range(3), batch_size=4, workers=0)
    with pytest.raises(ValueError, match="pins nothing; pass pin_memory=False"):
        skipping_loader(range(3), ["a", "b", "c"], batch_size=2, workers=2, pin_memory=True, threads=True)
