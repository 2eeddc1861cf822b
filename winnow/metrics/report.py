"""Full evaluation report over probabilities: label metrics, ranking metrics and calibration.

Everything works on arrays: probabilities `[N, K]` (rows sum to 1), integer targets `[N]` and the
class names, or, for multi-label / independent binary scores, probabilities `[N, L]` with multi-hot
targets `[N, L]`. Outputs are JSON-serialisable (plain floats, ints, lists, dicts; `None` where a
value is undefined).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, confusion_matrix,
                             f1_score, hamming_loss, log_loss, multilabel_confusion_matrix,
                             precision_recall_fscore_support, roc_auc_score)

from winnow.metrics.checks import UNCERTAIN, check_classes, check_multilabel_targets, check_probabilities, check_targets

ECE_BINS = 15


# --------------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width confidence bins `(edges[b], edges[b + 1]]` (the first one includes 0).

    Attributes:
        edges: Bin edges `[B + 1]` from 0 to 1.
        counts: Samples per bin `[B]`.
        confidence: Mean confidence per bin `[B]` (NaN for empty bins).
        accuracy: Fraction correct per bin `[B]` (NaN for empty bins).
        ece: Expected calibration error: sum over bins of `count / N * |accuracy - confidence|`.
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = ECE_BINS) -> ReliabilityBins:
    """Bin confidences `[N]` with correctness flags `[N]` into `n_bins` equal-width bins."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(index, minlength=n_bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(index, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence, accuracy = confidence_sum / counts, correct_sum / counts
    ece = float(np.abs(correct_sum - confidence_sum).sum() / max(len(confidence), 1))
    return ReliabilityBins(edges, counts, mean_confidence, accuracy, ece)


def reliability_bins(probabilities: np.ndarray, targets: np.ndarray, *, n_bins: int = ECE_BINS) -> ReliabilityBins:
    """Top-label reliability bins: confidence is the max probability, correct is argmax == target.

    Args:
        probabilities: Probabilities `[N, K]`.
        targets: Class indices `[N]`.
        n_bins: Number of equal-width bins over [0, 1].
    """
    probabilities = check_probabilities(probabilities)
    targets = check_targets(targets, n_samples=len(probabilities), n_classes=probabilities.shape[1])
    correct = probabilities.argmax(axis=1) == targets
    return calibration_bins(probabilities.max(axis=1), correct, n_bins=n_bins)


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, *, n_bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error with `n_bins` equal-width bins (probabilities `[N, K]`)."""
    return reliability_bins(probabilities, targets, n_bins=n_bins).ece


def pooled_label_calibration(scores: np.ndarray, targets: np.ndarray, *, n_bins: int = ECE_BINS) -> dict[str, float]:
    """Binary log loss and ECE over every (image, label) pair of multi-label scores `[N, L]`, targets `[N, L]`."""
    pooled = _per_label_calibration(np.reshape(scores, (-1, 1)), np.reshape(targets, (-1, 1)), n_bins)
    return {"log_loss": pooled["log_loss"][0], "ece": pooled["ece"][0]}


# --------------------------------------------------------------------------------------------- decisions


def thresholded_predictions(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Argmax among the classes whose score reaches their threshold; `UNCERTAIN` (-1) when none does.

    Args:
        probabilities: Scores `[N, K]`.
        thresholds: One threshold per class `[K]` (0 = no requirement).

    Returns:
        Class indices `[N]`, -1 for rejected rows.
    """
    passing = probabilities >= thresholds[None, :]
    masked = np.where(passing, probabilities, -np.inf)
    return np.where(passing.any(axis=1), masked.argmax(axis=1), UNCERTAIN)


def threshold_vector(thresholds: Mapping[str, float], classes: Sequence[str]) -> np.ndarray:
    """Per-class thresholds `[K]` from `{class name: threshold}`; classes not named get 0."""
    unknown = sorted(set(thresholds) - set(classes))
    if unknown:
        raise ValueError(f"thresholds: unknown class names {unknown}; expected names among {list(classes)}")
    values = np.array([float(thresholds.get(name, 0.0)) for name in classes])
    if not ((values >= 0) & (values <= 1)).all():
        raise ValueError(f"thresholds: expected values in [0, 1], got {dict(thresholds)}")
    return values


# --------------------------------------------------------------------------------------------- full metrics


def full_metrics(probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str], *,
                 thresholds: Mapping[str, float] | None = None, predictions: np.ndarray | None = None,
                 n_bins: int = ECE_BINS) -> dict[str, Any]:
    """All single-label metrics for a report, JSON-serialisable.

    Label metrics (accuracy, balanced accuracy, F1, per-class precision/recall/F1, confusion matrix)
    use the argmax by default, the thresholded decision when `thresholds` is given, or any decision
    rule's output when `predictions` is given. Rejected rows (-1, "uncertain") are left out of the
    label metrics and counted in `coverage` / `n_uncertain` / `uncertain_per_class`. Ranking metrics
    (one-vs-rest ROC AUC, average precision), log loss and ECE always use the probabilities.

    Args:
        probabilities: Probabilities `[N, K]` (rows sum to 1).
        targets: True class indices `[N]`.
        classes: Class names `[K]`.
        thresholds: `{class name: threshold}`; prediction = argmax among classes reaching their
            threshold (unnamed classes: 0), uncertain when none does.
        predictions: Class indices `[N]` from a decision rule (-1 = uncertain), e.g.
            `ThresholdTuner.predict(probabilities)`; exclusive with `thresholds`.
        n_bins: Bins of the top-label expected calibration error.

    Returns:
        Keys: n_samples, classes, coverage, n_uncertain, uncertain_per_class, accuracy,
        balanced_accuracy, macro_f1 (over classes present in targets or predictions), weighted_f1,
        per_class ({name: precision, recall, f1, support, roc_auc, average_precision}),
        confusion_matrix ({labels, counts [K][K], normalized [K][K]}; rows = true class),
        roc_auc_macro, average_precision_macro, log_loss, ece, notes (list of strings).
    """
    probabilities = check_probabilities(probabilities)
    n_samples, n_classes = probabilities.shape
    targets = check_targets(targets, n_samples=n_samples, n_classes=n_classes)
    names = check_classes(classes, n_classes=n_classes)
    predicted = _decisions(probabilities, names, thresholds, predictions)
    indicator = np.eye(n_classes, dtype=np.int64)[targets]
    ranking, notes = _ranking_metrics(probabilities, indicator, names, kind="class")
    report: dict[str, Any] = {"n_samples": n_samples, "classes": names}
    report.update(_coverage(predicted, targets, n_classes))
    report.update(_label_metrics(targets, predicted, names))
    report["per_class"] = _per_name(names, {**report.pop("_per_class"), **ranking.pop("_per_class")})
    report.update(ranking)
    normalized = probabilities / probabilities.sum(axis=1, keepdims=True)  # float32 rounding upsets log_loss
    report["log_loss"] = float(log_loss(targets, normalized, labels=list(range(n_classes))))
    report["ece"] = reliability_bins(probabilities, targets, n_bins=n_bins).ece
    report["notes"] = notes + _label_notes(report)
    return report


def full_metrics_multilabel(probabilities: np.ndarray, targets: np.ndarray, labels: Sequence[str], *,
                            thresholds: Mapping[str, float] | None = None, n_bins: int = ECE_BINS) -> dict[str, Any]:
    """Per-label metrics for independent binary scores (multi-label, or binary with `L = 1`).

    Args:
        probabilities: Independent scores in [0, 1] `[N, L]` (sigmoid outputs).
        targets: Multi-hot targets `[N, L]`.
        labels: Label names `[L]`.
        thresholds: `{label: threshold}` deciding "positive" when score >= threshold (default 0.5).
        n_bins: Bins of the per-label expected calibration error.

    Returns:
        Keys: n_samples, labels, subset_accuracy, hamming_loss, micro_f1, macro_f1, weighted_f1,
        per_label ({name: precision, recall, f1, support, roc_auc, average_precision, log_loss, ece,
        confusion_matrix [[tn, fp], [fn, tp]]}), roc_auc_macro, average_precision_macro, notes.
    """
    probabilities = check_probabilities(probabilities, rows_sum_to_one=False)
    targets = check_multilabel_targets(targets, shape=probabilities.shape)
    names = check_classes(labels, n_classes=probabilities.shape[1], name="labels")
    cut = threshold_vector({name: 0.5 for name in names} | dict(thresholds or {}), names)
    predicted = (probabilities >= cut[None, :]).astype(np.int64)
    ranking, notes = _ranking_metrics(probabilities, targets, names, kind="label")
    per_label = {**_multilabel_label_metrics(targets, predicted), **ranking.pop("_per_class"),
                 **_per_label_calibration(probabilities, targets, n_bins)}
    report: dict[str, Any] = {"n_samples": len(probabilities), "labels": names}
    report.update(_multilabel_summary(targets, predicted))
    report["per_label"] = _per_name(names, per_label)
    report.update(ranking)
    report["notes"] = notes
    return report


def metrics_counting_rejected(targets: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Label metrics over every row, a rejected row (UNCERTAIN, -1) counted as wrong.

    A rejected row is a miss of its true class (its recall drops) and a prediction of no class (no
    precision changes). Without rejected rows the values equal `full_metrics`' label metrics.

    Args:
        targets: True class indices `[N]`.
        predicted: Decided class indices `[N]`, -1 for rejected rows.
        classes: Class names `[K]`.

    Returns:
        Keys: n_samples, accuracy, balanced_accuracy (mean recall over the classes in `targets`), macro_f1
        (over the classes in targets or accepted predictions), weighted_f1.
    """
    names = check_classes(classes, n_classes=len(classes))
    predicted = np.asarray(predicted, dtype=np.int64)
    targets = check_targets(targets, n_samples=len(predicted), n_classes=len(names))
    labels = list(range(len(names)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        _, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=labels, average=None,
                                                                 zero_division=0)
    present = (support > 0) | np.isin(labels, predicted)
    return {"n_samples": len(targets), "accuracy": float((predicted == targets).mean()),
            "balanced_accuracy": float(recall[support > 0].mean()), "macro_f1": float(f1[present].mean()),
            "weighted_f1": float(np.average(f1, weights=support))}


# --------------------------------------------------------------------------------------------- pieces


def _decisions(probabilities: np.ndarray, names: list[str], thresholds: Mapping[str, float] | None,
               predictions: np.ndarray | None) -> np.ndarray:
    if thresholds is not None and predictions is not None:
        raise ValueError("pass either thresholds or predictions, not both")
    if thresholds is not None:
        return thresholded_predictions(probabilities, threshold_vector(thresholds, names))
    if predictions is None:
        return probabilities.argmax(axis=1)
    predicted = np.asarray(predictions)
    if predicted.shape != (len(probabilities),) or not np.issubdtype(predicted.dtype, np.integer):
        raise ValueError(f"predictions: expected integer class indices of shape [{len(probabilities)}], "
                         f"got {predicted.dtype} {predicted.shape}")
    if predicted.min() < UNCERTAIN or predicted.max() >= len(names):
        raise ValueError(f"predictions: expected indices in [-1, {len(names)}) (-1 = uncertain), "
                         f"got [{predicted.min()}, {predicted.max()}]")
    return predicted.astype(np.int64)


def _coverage(predicted: np.ndarray, targets: np.ndarray, n_classes: int) -> dict[str, Any]:
    rejected = predicted == UNCERTAIN
    return {"coverage": float((~rejected).mean()), "n_uncertain": int(rejected.sum()),
            "uncertain_per_class": np.bincount(targets[rejected], minlength=n_classes).tolist()}


def _label_metrics(targets: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Label metrics over the accepted rows (prediction != -1)."""
    accepted, labels = predicted != UNCERTAIN, list(range(len(names)))
    y_true, y_pred = targets[accepted], predicted[accepted]
    counts = confusion_matrix(y_true, y_pred, labels=labels) if accepted.any() else np.zeros((len(names),) * 2, int)
    summary = _label_summary(y_true, y_pred, labels) if accepted.any() else _empty_label_summary(len(names))
    summary["confusion_matrix"] = _confusion(counts, names)
    return summary


def _label_summary(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (UndefinedMetricWarning, UserWarning))
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0)
        return {"accuracy": float(accuracy_score(y_true, y_pred)),
                "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
                "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
                "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
                "_per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
                               "support": support.tolist()}}


def _empty_label_summary(n_classes: int) -> dict[str, Any]:
    """Every row was rejected: label metrics are undefined."""
    empty = [None] * n_classes
    return {"accuracy": None, "balanced_accuracy": None, "macro_f1": None, "weighted_f1": None,
            "_per_class": {"precision": empty, "recall": empty, "f1": empty, "support": [0] * n_classes}}


def _confusion(counts: np.ndarray, labels: list[str]) -> dict[str, Any]:
    rows = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    return {"labels": labels, "counts": counts.tolist(), "normalized": normalized.tolist()}


def _ranking_metrics(scores: np.ndarray, indicator: np.ndarray, names: list[str], *,
                     kind: str) -> tuple[dict[str, Any], list[str]]:
    """One-vs-rest ROC AUC and average precision per column of `indicator [N, K]`, with macro means."""
    auc: list[float | None] = []
    precision: list[float | None] = []
    notes = []
    for k, name in enumerate(names):
        positives = int(indicator[:, k].sum())
        if positives in (0, len(indicator)):
            state = "absent from" if positives == 0 else "the only one in"
            notes.append(f"{kind} {name!r} is {state} the targets: its ROC AUC and average precision are "
                         "undefined and left out of the macro averages")
            auc.append(None)
            precision.append(None)
            continue
        auc.append(float(roc_auc_score(indicator[:, k], scores[:, k])))
        precision.append(float(average_precision_score(indicator[:, k], scores[:, k])))
    return {"roc_auc_macro": _mean_defined(auc), "average_precision_macro": _mean_defined(precision),
            "_per_class": {"roc_auc": auc, "average_precision": precision}}, notes


def _label_notes(report: dict[str, Any]) -> list[str]:
    notes = []
    if report["n_uncertain"]:
        notes.append(f"{report['n_uncertain']} uncertain (rejected) predictions are left out of the label metrics; "
                     f"coverage {report['coverage']:.3f}")
    return notes


def _sklearn_multilabel(targets: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Arrays and `labels=` for scikit-learn's multi-label metrics, one entry per column.

    scikit-learn reads a single 0/1 column as binary targets (label 1 = positive) and several
    columns as a multi-label indicator (labels = column indices).
    """
    if targets.shape[1] == 1:
        return targets.ravel(), predicted.ravel(), [1]
    return targets, predicted, list(range(targets.shape[1]))


def _multilabel_label_metrics(targets: np.ndarray, predicted: np.ndarray) -> dict[str, list]:
    y_true, y_pred, labels = _sklearn_multilabel(targets, predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(), "support": support.tolist(),
            "confusion_matrix": multilabel_confusion_matrix(y_true, y_pred, labels=labels).tolist()}


def _multilabel_summary(targets: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    y_true, y_pred, labels = _sklearn_multilabel(targets, predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return {"subset_accuracy": float(accuracy_score(y_true, y_pred)),
                "hamming_loss": float(hamming_loss(y_true, y_pred)),
                **{f"{average}_f1": float(f1_score(y_true, y_pred, labels=labels, average=average, zero_division=0))
                   for average in ("micro", "macro", "weighted")}}


def _per_label_calibration(scores: np.ndarray, targets: np.ndarray, n_bins: int) -> dict[str, list[float]]:
    """Binary log loss and ECE per label (confidence = max(p, 1 - p), correct = (p >= 0.5) == target)."""
    losses, eces = [], []
    for column, truth in zip(scores.T, targets.T):
        losses.append(float(log_loss(truth, column, labels=[0, 1])))
        positive = column >= 0.5
        confidence = np.where(positive, column, 1 - column)
        eces.append(calibration_bins(confidence, positive == truth.astype(bool), n_bins=n_bins).ece)
    return {"log_loss": losses, "ece": eces}


def _per_name(names: list[str], columns: dict[str, list]) -> dict[str, dict[str, Any]]:
    """`{metric: [K values]}` -> `{name: {metric: value}}`."""
    return {name: {metric: values[k] for metric, values in columns.items()} for k, name in enumerate(names)}


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [value for value in values if value is not None]
    return float(np.mean(defined)) if defined else None
