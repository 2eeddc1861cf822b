"""Metrics of one run's predictions on labelled data, with its calibration and operating point."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss

from winnow.inference.postprocess import UNKNOWN, describe_decision
from winnow.inference.predictions import Predictions
from winnow.metrics.report import (expected_calibration_error, full_metrics, full_metrics_multilabel,
                                   metrics_counting_rejected, pooled_label_calibration)
from winnow.operating.tuner import ThresholdTuner


def score(predictions: Predictions, targets: np.ndarray) -> dict[str, Any]:
    """Every metric of a single-task run's predictions, JSON-ready.

    Multi-class and binary heads: `full_metrics` on the decided labels (tuned thresholds when the
    run has them), plus `decision_rule`, `thresholds` (the saved rule), `operating_point`
    (`ThresholdTuner.evaluate` on this data: achieved values, bootstrap interval, whether the target
    held) and `calibration` (the calibrator, with ECE and log loss before it). Multi-label heads:
    `full_metrics_multilabel` at the head's threshold.

    With a reject option, the images it rejects count as uncertain: the label metrics are over the
    accepted images, `reject` gives the count and rate rejected and the label metrics over all images
    with the rejected counted as wrong, and the operating point is evaluated on the accepted images
    (the tuned rule only decides those).

    Args:
        predictions: Predictions of a single-task run `[N, K]`.
        targets: Class indices `[N]` (multi-label: multi-hot `[N, K]`).
    """
    head = predictions.tasks[0].head
    probabilities = predictions.probabilities
    if head.kind == "multilabel":
        return _score_multilabel(predictions, targets)
    decided, accepted = predictions.predicted_indices(), predictions.accepted
    report = full_metrics(probabilities, targets, head.classes, predictions=decided)
    report["decision_rule"] = describe_decision(head, predictions.decision, reject=predictions.reject)
    report["thresholds"] = predictions.decision.to_dict() if predictions.decision is not None else None
    report["operating_point"] = (predictions.decision.evaluate(probabilities[accepted], targets[accepted])
                                 if isinstance(predictions.decision, ThresholdTuner) and accepted.any() else None)
    report["calibration"] = _calibration(predictions, targets)
    report["reject"] = reject_scores(predictions, targets, decided) if predictions.rejected is not None else None
    return report


def reject_scores(predictions: Predictions, targets: np.ndarray, decided: np.ndarray) -> dict[str, Any]:
    """The reject option and what it did here: images rejected (count, rate, per true class), metrics over all.

    Args:
        predictions: Predictions with a reject option `[N, K]`.
        targets: Class indices `[N]`.
        decided: `predictions.predicted_indices()` `[N]` (-1: rejected, or left uncertain by the rule).
    """
    rejected, classes = predictions.rejected, predictions.classes
    per_class = np.bincount(targets[rejected], minlength=len(classes)).tolist()
    return {**predictions.reject, "label": UNKNOWN, "n_rejected": int(rejected.sum()),
            "rate": float(rejected.mean()), "rejected_per_class": dict(zip(classes, per_class)),
            "n_accepted": int((~rejected).sum()), "all_images": metrics_counting_rejected(targets, decided, classes)}


def _score_multilabel(predictions: Predictions, targets: np.ndarray) -> dict[str, Any]:
    """`full_metrics_multilabel` at the tuned per-label thresholds (else the head's), with the operating point."""
    head, decision, probabilities = predictions.tasks[0].head, predictions.decision, predictions.probabilities
    thresholds = decision.thresholds_ if decision is not None else {name: head.threshold for name in head.classes}
    report = full_metrics_multilabel(probabilities, targets, head.classes, thresholds=thresholds)
    report["decision_rule"] = describe_decision(head, decision)
    report["thresholds"] = decision.to_dict() if decision is not None else None
    report["operating_point"] = decision.evaluate(probabilities, targets) if decision is not None else None
    report["calibration"] = _calibration(predictions, targets)
    return report


def _calibration(predictions: Predictions, targets: np.ndarray) -> dict[str, Any] | None:
    """The calibrator, with log loss and ECE without and with it (multi-label: pooled over labels)."""
    if predictions.calibration is None:
        return None
    before, after = calibration_scores(predictions.uncalibrated, targets), calibration_scores(
        predictions.probabilities, targets)
    return {**predictions.calibration.to_dict(), "ece_uncalibrated": before["ece"], "ece_calibrated": after["ece"],
            "log_loss_uncalibrated": before["log_loss"], "log_loss_calibrated": after["log_loss"]}


def calibration_scores(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """ECE and log loss of probabilities `[N, K]` for class indices `[N]` (multi-hot `[N, K]`: pooled over labels)."""
    if np.ndim(targets) == 2:
        return pooled_label_calibration(probabilities, targets)
    rows = probabilities / probabilities.sum(axis=1, keepdims=True)
    return {"ece": expected_calibration_error(probabilities, targets),
            "log_loss": float(log_loss(targets, rows, labels=list(range(probabilities.shape[1]))))}


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
