"""`winnow eval` of a multitask run: every task scored on its own label column.

Images whose label for a task is empty are left out of that task's metrics (as in training). The
folder `RUN/eval/<data>/<checkpoint>/` holds metrics.json (what was evaluated, each task's metrics
under `tasks`, and the means over tasks of accuracy, balanced accuracy and macro-F1, which the
per-checkpoint table shows) and one sub-folder per task with its predictions.csv and figures.
Tuning, calibration and TTA of multitask runs are not supported yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.labelled import EvalData, encode_labels
from winnow.evaluation.report_files import write_report_files
from winnow.evaluation.scoring import score
from winnow.inference.predictions import Predictions
from winnow.inference.predictor import ScoringModel
from winnow.tasks.spec import TaskSpec

MEAN_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")


def task_labels(task: TaskSpec, data: EvalData) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows of `data` labelled for `task`, their targets and labels (checked against the task's classes)."""
    values = data.column(task.column)
    rows = np.array([i for i, value in enumerate(values) if value != ""], dtype=np.int64)
    labels = [values[i] for i in rows]
    return rows, encode_labels(task.head, labels, data_name=f"{data.name}, task {task.name}"), labels


def score_tasks(predictor: ScoringModel, data: EvalData, directory: Path, *, batch_size: int = 64, workers: int = 0,
                strict: bool = False, plots: bool = True) -> tuple[Predictions, dict[str, dict[str, Any]]]:
    """Predict `data` once (unreadable images skipped; `strict`: refused), then score and write each task.

    Raises:
        ValueError: A task column missing from the data, or labels outside a task's classes (before inference).
    """
    labelled = {task.name: task_labels(task, data) for task in predictor.tasks}
    predictions = predictor.predict(data.paths, batch_size=batch_size, workers=workers, strict=strict)
    position = {source: i for i, source in enumerate(predictions.source_index)}
    scores = {}
    for task in predictor.tasks:
        rows, targets, labels = labelled[task.name]
        kept = [k for k, row in enumerate(rows) if row in position]
        at = [position[rows[k]] for k in kept]
        view = Predictions([predictions.paths[i] for i in at], [task], predictions.probabilities[task.name][at])
        scores[task.name] = score(view, targets[kept])
        write_report_files(directory / task.name, scores[task.name], view, targets[kept], [labels[k] for k in kept],
                           plots=plots)
    return predictions, scores


def task_means(scores: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Means over tasks of accuracy, balanced accuracy and macro-F1 (over the tasks that have each)."""
    means = {}
    for key in MEAN_KEYS:
        values = [metrics[key] for metrics in scores.values() if isinstance(metrics.get(key), float)]
        if values:
            means[key] = float(np.mean(values))
    return means
