"""Multi-label decisions: one threshold per label, the target's label tuned as a binary problem.

Each label of a multi-label head is an independent yes/no decision on its own score. A target such
as `precision(debris)>=0.95` is tuned on the two-column view `[1 - p, p]` of that label's scores
with `ThresholdTuner` (the same search, bootstrap interval and warnings as for binary heads); the
other labels keep the head's threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from winnow.metrics.checks import check_classes, check_multilabel_targets, check_probabilities
from winnow.operating.targets import parse_target
from winnow.operating.tuner import FORMAT, FORMAT_VERSION, ThresholdTuner, check_saved
from winnow.tasks.heads import LABEL_SEPARATOR

STRATEGY = "label_thresholds"
NOT_FITTED = "This %(name)s is not fitted yet: call fit(probabilities, targets, classes) or load it with from_dict"


def label_view(probabilities: np.ndarray, k: int) -> np.ndarray:
    """Scores of label `k` as a two-class table `[N, 2]`: `[1 - p, p]`."""
    return np.stack([1 - probabilities[:, k], probabilities[:, k]], axis=1)


def view_classes(label: str) -> list[str]:
    """Class names of `label_view`: the label's absence, then the label."""
    return [f"not {label}", label]


class LabelThresholds(BaseEstimator):
    """Per-label thresholds of a multi-label head, one of them tuned to a target.

    Args:
        target: Target naming a label, e.g. "precision(debris)>=0.95" (syntax: `winnow.operating.targets`).
        default_threshold: Threshold of the other labels (the head's).
        n_bootstrap, confidence, min_support, random_state: As `ThresholdTuner`.

    Attributes:
        classes_: Label names `[K]`.
        label_: The tuned label.
        tuner_: `ThresholdTuner` fitted on `label_view` of that label.
        thresholds_: `{label: threshold}` for every label.
    """

    def __init__(self, target: str, *, default_threshold: float = 0.5, n_bootstrap: int = 1000,
                 confidence: float = 0.95, min_support: int = 20, random_state: int = 0) -> None:
        self.target = target
        self.default_threshold = default_threshold
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.min_support = min_support
        self.random_state = random_state

    def fit(self, probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> "LabelThresholds":
        """Tune the target's label on scores `[N, K]` and multi-hot targets `[N, K]`."""
        probabilities = check_probabilities(probabilities, rows_sum_to_one=False)
        targets = check_multilabel_targets(targets, shape=probabilities.shape)
        names = check_classes(classes, n_classes=probabilities.shape[1], name="labels")
        label = parse_target(self.target, names).cls
        k = names.index(label)
        tuner = ThresholdTuner(self.target, n_bootstrap=self.n_bootstrap, confidence=self.confidence,
                               min_support=self.min_support, random_state=self.random_state)
        self.tuner_ = tuner.fit(label_view(probabilities, k), targets[:, k], view_classes(label))
        self._set_fitted(names, label)
        return self

    def predict(self, probabilities: np.ndarray) -> np.ndarray:
        """Multi-hot decisions `[N, K]`: score >= the label's threshold."""
        check_is_fitted(self, msg=NOT_FITTED)
        probabilities = check_probabilities(probabilities, rows_sum_to_one=False)
        cut = np.array([self.thresholds_[name] for name in self.classes_])
        return (probabilities >= cut[None, :]).astype(np.int64)

    def predict_labels(self, probabilities: np.ndarray) -> list[str]:
        """Labels `[N]` joined by "|" ("" when no label passes)."""
        return [LABEL_SEPARATOR.join(name for name, on in zip(self.classes_, row) if on)
                for row in self.predict(probabilities)]

    def evaluate(self, probabilities: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """`ThresholdTuner.evaluate` of the tuned label on new scores `[N, K]` and targets `[N, K]`."""
        check_is_fitted(self, msg=NOT_FITTED)
        probabilities = check_probabilities(probabilities, rows_sum_to_one=False)
        targets = check_multilabel_targets(targets, shape=probabilities.shape)
        k = self.classes_.index(self.label_)
        return self.tuner_.evaluate(label_view(probabilities, k), targets[:, k])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for thresholds.json."""
        check_is_fitted(self, msg=NOT_FITTED)
        return {"format": FORMAT, "version": FORMAT_VERSION, "strategy": STRATEGY, "params": self.get_params(),
                "classes": self.classes_, "class": self.label_, "threshold": self.tuner_.threshold_,
                "thresholds": self.thresholds_, "tuner": self.tuner_.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, classes: Sequence[str] | None = None) -> "LabelThresholds":
        """Rebuild from `to_dict()` output; `classes` (current model) must match the saved ones."""
        names = check_saved(data, STRATEGY, classes)
        decision = cls(**data["params"])
        decision.tuner_ = ThresholdTuner.from_dict(data["tuner"], classes=view_classes(data["class"]))
        decision._set_fitted(names, data["class"])
        return decision

    def _set_fitted(self, names: list[str], label: str) -> None:
        self.classes_, self.label_ = names, label
        self.thresholds_ = {name: float(self.default_threshold) for name in names} | {label: self.tuner_.threshold_}
