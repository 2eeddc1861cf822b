"""The files of one evaluation: metrics.json, predictions.csv and the figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from winnow.inference.predictions import Predictions
from winnow.metrics.plots import confusion_matrix_png, pr_curves_png, reliability_png, roc_curves_png
from winnow.operating.decisions import PerClassThresholds
from winnow.operating.label_thresholds import LabelThresholds
from winnow.operating.tuner import ThresholdTuner
from winnow.runs.atomic import atomic_write_text
from winnow.runs.files import write_json
from winnow.runs.layout import (CONFUSION_FIGURE, EVAL_METRICS_FILE, EVAL_PREDICTIONS_FILE, PR_FIGURE,
                                RELIABILITY_FIGURE, ROC_FIGURE)



def write_report_files(directory: Path, metrics: dict[str, Any], predictions: Predictions, targets: np.ndarray,
                       labels: list[str], *, plots: bool = True) -> None:
    """Write metrics.json, predictions.csv (path, label, predicted, prob_<class>...) and the figures.

    Args:
        directory: Output folder (created).
        metrics: JSON-ready metrics (`scoring.score` plus context).
        predictions: Single-task predictions `[N, K]`.
        targets: Class indices `[N]` (multi-label: multi-hot `[N, K]`).
        labels: True labels `[N]` for the CSV.
        plots: Also draw the PNG figures.
    """
    write_json(directory / EVAL_METRICS_FILE, metrics)
    predictions.to_csv(directory / EVAL_PREDICTIONS_FILE, labels=labels)
    if plots:
        write_plots(directory, metrics, predictions, targets)


def write_plots(directory: Path, metrics: dict[str, Any], predictions: Predictions, targets: np.ndarray) -> None:
    """confusion_matrix.png, pr_curves.png, roc_curves.png and reliability.png (softmax heads)."""
    classes, probabilities = predictions.classes, predictions.probabilities
    marks = operating_marks(predictions)
    pr_curves_png(probabilities, targets, classes, directory / PR_FIGURE, operating_points=marks)
    roc_curves_png(probabilities, targets, classes, directory / ROC_FIGURE, operating_points=marks)
    if "confusion_matrix" not in metrics:  # multi-label: per-label 2x2 matrices live in metrics.json
        return
    confusion_matrix_png(metrics["confusion_matrix"]["counts"], classes, directory / CONFUSION_FIGURE)
    curves = ({"uncalibrated": predictions.uncalibrated, "calibrated": probabilities}
              if predictions.calibration is not None else probabilities)
    reliability_png(curves, targets, directory / RELIABILITY_FIGURE)


def operating_marks(predictions: Predictions) -> dict[str, float]:
    """`{class: threshold}` to mark on the curves: the tuned rule, or a binary head's threshold."""
    decision, head = predictions.decision, predictions.tasks[0].head
    if isinstance(decision, ThresholdTuner):
        return {decision.target_.cls: decision.threshold_}
    if isinstance(decision, LabelThresholds):
        return {decision.label_: decision.tuner_.threshold_}
    if isinstance(decision, PerClassThresholds):
        return {name: float(value) for name, value in decision.thresholds.items() if float(value) > 0}
    return {head.classes[1]: head.threshold} if head.kind == "binary" else {}


def write_table(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of dicts as a CSV (columns: union of keys, in first-seen order), atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_predictions(path: Path, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities `[N, K]` and class indices `[N]` back from a single-label predictions.csv.

    Raises:
        ValueError: Missing columns, or labels that are not among `classes`.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    wanted = ["label", *[f"prob_{name}" for name in classes]]
    missing = [column for column in wanted if rows and column not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: expected columns {wanted}, missing {missing or 'all rows'}; "
                         "re-run `winnow eval` to rewrite it")
    unknown = sorted({row["label"] for row in rows} - set(classes))
    if unknown:
        raise ValueError(f"{path}: labels {unknown} are not classes of the run ({list(classes)})")
    probabilities = np.array([[float(row[f"prob_{name}"]) for name in classes] for row in rows])
    return probabilities, np.array([list(classes).index(row["label"]) for row in rows])
