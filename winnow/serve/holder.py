"""`ModelHolder`: the model that scores the next batch, swapped atomically between batches.

The batcher reads `current` once per batch and keeps that reference to the end of it, so a swap never
changes the model under a running batch; the old model is released once its last batch is done. The
holder knows nothing of HTTP: a queue worker (Celery) can hold its model the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from winnow.serve.model import ServedModel


class ModelHolder:
    """Holds the live `ServedModel`; `swap` loads and warms the new one beside it first.

    Args:
        model: The first model, or None (not ready until `swap`).
    """

    def __init__(self, model: ServedModel | None = None) -> None:
        self._model, self._lock, self._swapping = model, threading.Lock(), threading.Lock()
        self._in_use: dict[int, int] = {}
        self._retired: list[ServedModel] = []
        self.swaps = 0

    @property
    def current(self) -> ServedModel | None:
        return self._model

    def acquire(self) -> ServedModel:
        """The model for one batch (call `release` after it)."""
        with self._lock:
            if self._model is None:
                raise RuntimeError("no model loaded yet")
            self._in_use[id(self._model)] = self._in_use.get(id(self._model), 0) + 1
            return self._model

    def release(self, model: ServedModel) -> None:
        with self._lock:
            self._in_use[id(model)] -= 1
            if not self._in_use[id(model)]:
                del self._in_use[id(model)]
            self._free_retired()

    def swap(self, load: Callable[[], ServedModel], *, warm_batch: int) -> ServedModel:
        """Load (`load()`) and warm a new model beside the live one, then make it live; one swap at a time."""
        with self._swapping:
            new = load()
            new.warm_up(warm_batch)
            with self._lock:
                old, self._model = self._model, new
                if old is not None:
                    self.swaps += 1
                    self._retired.append(old)
                self._free_retired()
        return new

    def _free_retired(self) -> None:
        """Release the retired models that no batch uses any more (caller holds the lock)."""
        busy = [m for m in self._retired if id(m) in self._in_use]
        for model in self._retired:
            if id(model) not in self._in_use:
                model.release()
        self._retired = busy
