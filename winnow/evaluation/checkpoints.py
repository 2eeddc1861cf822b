"""`winnow eval RUN --checkpoint all`: evaluate every checkpoint of a run on one data set.

Writes each checkpoint's report to `RUN/eval/<data>/<checkpoint>/`, plus `RUN/eval/<data>/checkpoints.csv`
(one row per checkpoint: name, epoch, headline metrics and, when the run has thresholds.json, the
operating-point result) and `RUN/eval/<data>/metrics_over_epochs.png`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow.data.labelled import EvalData, resolve_eval_data
from winnow.evaluation.report_files import write_table
from winnow.evaluation.runner import Evaluation, evaluate_predictor
from winnow.evaluation.scoring import headline, operating_columns
from winnow.loading import load
from winnow.metrics.plots import metric_over_epochs_png
from winnow.runs.layout import (CHECKPOINT_PLOT_FILE, CHECKPOINT_TABLE_FILE, SELECTED_CHECKPOINT, RunPaths,
                                checkpoint_names, is_ensemble)

SKIPPED = (SELECTED_CHECKPOINT,)  # a copy of another checkpoint
_EPOCH = re.compile(r"^epoch(\d+)$")


@dataclass
class CheckpointSweep:
    """Every checkpoint of a run evaluated on one data set.

    Attributes:
        directory: `RUN/eval/<data>/`.
        rows: One row of checkpoints.csv per checkpoint.
        evaluations: `{checkpoint name: Evaluation}`.
    """

    directory: Path
    rows: list[dict[str, Any]]
    evaluations: dict[str, Evaluation]


def run_checkpoints(run_dir: str | Path) -> list[str]:
    """The run's checkpoint names in training order: epochNNNN ascending, then best, last (not selected).

    Raises:
        ValueError: The run has no checkpoint.
    """
    if is_ensemble(run_dir):
        raise ValueError(f"{run_dir} is an ensemble: it has no checkpoints of its own; evaluate it with the "
                         "default --checkpoint best (its members' checkpoints were fixed by `winnow ensemble`)")
    names = [name for name in checkpoint_names(run_dir) if name not in SKIPPED]
    if not names:
        raise ValueError(f"{run_dir} has no checkpoints in {Path(run_dir) / 'checkpoints'}; "
                         "has the run finished an epoch?")
    return sorted(names, key=lambda name: (0, int(m[1]), "") if (m := _EPOCH.match(name)) else (1, 0, name))


def evaluate_checkpoints(run_dir: str | Path, data: str | Path | EvalData | None = None, *,
                         tta: str | int | None = None, tta_merge: str = "mean", device: str = "auto",
                         batch_size: int = 64, workers: int = 0, strict: bool = False,
                         plots: bool = True) -> CheckpointSweep:
    """Evaluate every checkpoint (see the module docstring) with the run's calibration and thresholds.

    Args:
        run_dir: Run folder.
        data: A data argument as `evaluate` (None: the run's test split), or resolved `EvalData`.
        tta, tta_merge: Test-time augmentation.
        device, batch_size, workers: Inference settings.
        strict: An unreadable image is an error (default: skipped, listed in each folder's bad_files.csv).
        plots: Draw each checkpoint's figures (the metrics-over-epochs plot is always drawn).
    """
    eval_data = data if isinstance(data, EvalData) else resolve_eval_data(run_dir, data, split="test")
    evaluations = {}
    for name in run_checkpoints(run_dir):
        predictor = load(run_dir, checkpoint=name, device=device)
        evaluations[name] = evaluate_predictor(predictor, eval_data, checkpoint=name, tta=tta, tta_merge=tta_merge,
                                               batch_size=batch_size, workers=workers, strict=strict, plots=plots)
    rows = [checkpoint_row(name, evaluation.metrics) for name, evaluation in evaluations.items()]
    directory = RunPaths(run_dir).eval_data(eval_data.name)
    write_table(directory / CHECKPOINT_TABLE_FILE, rows)
    plot_over_epochs(rows, directory / CHECKPOINT_PLOT_FILE)
    return CheckpointSweep(directory, rows, evaluations)


def checkpoint_row(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """One row of checkpoints.csv."""
    return {"checkpoint": name, "epoch": metrics["checkpoint"]["epoch"], "n_samples": metrics["n_samples"],
            **headline(metrics), **operating_columns(metrics.get("operating_point"))}


def plot_over_epochs(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Headline metrics against the epoch (one point per epoch), the best checkpoint's epoch marked."""
    by_epoch = {row["epoch"]: row for row in reversed(rows) if row["epoch"] is not None}
    if not by_epoch:
        return None
    history = [{key: value for key, value in row.items() if key not in ("checkpoint", "n_samples", "op_target_met")}
               for _, row in sorted(by_epoch.items())]
    metrics = [key for key in history[0] if key != "epoch" and any(isinstance(r.get(key), float) for r in history)]
    best = next((row["epoch"] for row in rows if row["checkpoint"] == "best"), None)
    return metric_over_epochs_png(history, path, metrics=metrics, best_epoch=best,
                                  title="Metrics over epochs (per checkpoint)")


def sweep_summary(rows: list[dict[str, Any]]) -> list[str]:
    """The checkpoints.csv table as aligned text lines."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    return ["  ".join(text.ljust(width) for text, width in zip(line, widths)) for line in [columns, *cells]]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
