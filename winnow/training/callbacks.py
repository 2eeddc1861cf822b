"""Epoch callbacks of `train(config, callbacks=[...])`: see each finished epoch, and stop training early.

A callback is any callable taking an `EpochEnd`. It runs after the epoch's checkpoints, metrics.jsonl
and summary.json are written, so a callback that raises `StopTraining` leaves a complete run folder
(resumable with `--resume`) whose summary records the status it gives ("pruned", "stopped"...).
Under torchrun every rank calls the callbacks with the same row; they must decide alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESERVED_STATUSES = ("running", "finished", "interrupted", "diverged")


class StopTraining(Exception):
    """Raised by an epoch callback to end training after the current epoch.

    Args:
        status: The run's status in summary.json and `Run.status`, e.g. "pruned" or "stopped".
        reason: Why, for the log.
    """

    def __init__(self, status: str = "stopped", reason: str = "") -> None:
        if not isinstance(status, str) or not status or status in RESERVED_STATUSES:
            raise ValueError(f"StopTraining status: expected a word other than {RESERVED_STATUSES}, "
                             f"such as 'pruned' or 'stopped', got {status!r}")
        super().__init__(reason or status)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class EpochEnd:
    """What a callback sees after an epoch.

    Attributes:
        epoch: The epoch just finished, 1-based as the log counts.
        epochs: The configured number of epochs.
        row: The epoch's metrics row (as in metrics.jsonl).
        run_dir: The run folder.
        classes: The first task's class names `[K]`.
        head: The first task's head kind ("multiclass", "binary", "multilabel"); "multitask" for several tasks.
        val_probabilities: Validation probabilities `[N, K]` (`{task: [N, K]}` for several tasks); None without val.
        val_targets: Validation targets `[N]` (multi-label `[N, K]`); None without val.
        best_metric: The best value of the select metric so far.
        best_epoch: Its epoch.
    """

    epoch: int
    epochs: int
    row: dict[str, Any]
    run_dir: Path
    classes: list[str]
    head: str
    val_probabilities: np.ndarray | dict | None
    val_targets: np.ndarray | dict | None
    best_metric: float | None
    best_epoch: int | None


EpochCallback = Callable[[EpochEnd], None]
