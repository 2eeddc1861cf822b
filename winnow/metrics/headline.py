"""Headline classification metrics (scikit-learn) from probabilities `[N, K]` and targets `[N]`."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score


def classification_metrics(probabilities: np.ndarray, targets: np.ndarray, *, prefix: str = "") -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 over the classes present in targets or predictions."""
    predicted = probabilities.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (UndefinedMetricWarning, UserWarning))
        return {
            f"{prefix}accuracy": float(accuracy_score(targets, predicted)),
            f"{prefix}balanced_accuracy": float(balanced_accuracy_score(targets, predicted)),
            f"{prefix}macro_f1": float(f1_score(targets, predicted, average="macro", zero_division=0)),
        }
