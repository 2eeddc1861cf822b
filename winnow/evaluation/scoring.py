"""Metrics of one run's predictions on labelled data, with its calibration and operating point."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss

from winnow.evaluation.report_metrics import expected_calibration_error, full_metrics, full_metrics_multilabel
from winnow.inference.postprocess import describe_decision
from winnow.inference.predictor import Predictions
from winnow.operating.tuner import ThresholdTuner


def score(predictions: Predictions, targets: np.ndarray) -> dict[str, Any]:
    """Every metric of a single-task run's predictions, JSON-ready.

    Multi-class and binary heads: `full_metrics` on the decided labels (tuned thresholds when the
    run has them), plus `decision_rule`, `thresholds` (the saved rule), `operating_point`
    (`ThresholdTuner.evaluate` on this data: achieved values, bootstrap interval, whether the target
    held) and `calibration` (the calibrator, with ECE and log loss before it). Multi-label heads:
    `full_metrics_multilabel` at the head's threshold.

    Args:
        predictions: Predictions of a single-task run `[N, K]`.
        targets: Class indices `[N]` (multi-label: multi-hot `[N, K]`).
    """
    head = predictions.tasks[0].head
    probabilities = predictions.probabilities
    if head.kind == "multilabel":
        thresholds = {name: head.threshold for name in head.classes}
        return {**full_metrics_multilabel(probabilities, targets, head.classes, thresholds=thresholds),
                "decision_rule": describe_decision(head, None)}
    report = full_metrics(probabilities, targets, head.classes, predictions=predictions.predicted_indices())
    report["decision_rule"] = describe_decision(head, predictions.decision)
    report["thresholds"] = predictions.decision.to_dict() if predictions.decision is not None else None
    report["operating_point"] = (predictions.decision.evaluate(probabilities, targets)
                                 if isinstance(predictions.decision, ThresholdTuner) else None)
    report["calibration"] = _calibration(predictions, targets)
    return report


def _calibration(predictions: Predictions, targets: np.ndarray) -> dict[str, Any] | None:
    if predictions.calibration is None:
        return None
    before = predictions.uncalibrated
    n_classes = before.shape[1]
    return {**predictions.calibration.to_dict(), "ece_uncalibrated": expected_calibration_error(before, targets),
            "log_loss_uncalibrated": float(log_loss(targets, before / before.sum(axis=1, keepdims=True),
                                                    labels=list(range(n_classes))))}


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The summary numbers of a `score` report (one row of checkpoints.csv)."""
    keys = (("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1", "weighted_f1") if "per_label" in metrics
            else ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece"))
    row = {key: metrics.get(key) for key in keys}
    row.update({key: metrics.get(key) for key in ("roc_auc_macro", "average_precision_macro")})
    return row


def operating_columns(operating_point: dict[str, Any] | None) -> dict[str, Any]:
    """`ThresholdTuner.evaluate` output flattened into table columns (empty without one)."""
    if operating_point is None:
        return {}
    interval = operating_point["interval"]
    return {"op_threshold": operating_point["threshold"], "op_target_met": operating_point["target_met"],
            **{f"op_{key}": value for key, value in operating_point["achieved"].items()},
            "op_interval_low": interval["low"], "op_interval_high": interval["high"]}
