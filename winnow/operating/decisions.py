"""Decision rules besides the tuned threshold: per-class thresholds with a reject option,
ordered rules over class scores, and loading any saved rule from thresholds.json."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from winnow.metrics.checks import UNCERTAIN, check_classes
from winnow.metrics.report import threshold_vector, thresholded_predictions
from winnow.operating.label_thresholds import STRATEGY, LabelThresholds
from winnow.operating.tuner import FORMAT, FORMAT_VERSION, ThresholdTuner, check_columns, check_saved, indices_to_labels


class PerClassThresholds(BaseEstimator):
    """Multi-class thresholds with a reject option.

    Predicts the argmax among the classes whose score reaches their threshold, or -1 ("uncertain")
    when none does. Classes left out of `thresholds` have threshold 0 (always pass).

    Args:
        thresholds: `{class name: threshold in [0, 1]}`.
        classes: Class names in score-column order; default: the keys of `thresholds`, in order.
        reject_label: Label of rejected rows in `predict_labels`.
    """

    def __init__(self, thresholds: Mapping[str, float], *, classes: Sequence[str] | None = None,
                 reject_label: str = "uncertain") -> None:
        self.thresholds = thresholds
        self.classes = classes
        self.reject_label = reject_label

    def predict(self, probabilities: np.ndarray) -> np.ndarray:
        """Class indices `[N]`, -1 when no class reaches its threshold."""
        names = self._classes()
        probabilities = check_columns(probabilities, names)
        return thresholded_predictions(probabilities, threshold_vector(self.thresholds, names))

    def predict_labels(self, probabilities: np.ndarray) -> list[str]:
        """Class names `[N]`, `reject_label` for rejected rows."""
        return indices_to_labels(self.predict(probabilities), self._classes(), reject_label=self.reject_label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for thresholds.json."""
        names = self._classes()
        return {"format": FORMAT, "version": FORMAT_VERSION, "strategy": "per_class_thresholds", "classes": names,
                "thresholds": {name: float(value) for name, value in self.thresholds.items()},
                "reject_label": self.reject_label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, classes: Sequence[str] | None = None) -> PerClassThresholds:
        """Rebuild from `to_dict()` output; `classes` (current model) must match the saved ones."""
        names = check_saved(data, "per_class_thresholds", classes)
        return cls(dict(data["thresholds"]), classes=names, reject_label=data["reject_label"])

    def _classes(self) -> list[str]:
        if not isinstance(self.thresholds, Mapping):
            raise TypeError("thresholds: expected a mapping {class name: threshold}, "
                            f"got {type(self.thresholds).__name__}")
        names = list(self.thresholds) if self.classes is None else list(self.classes)
        threshold_vector(self.thresholds, names)  # validates names and values
        return check_classes(names, n_classes=len(names))


Rule = Callable[[dict[str, float]], "str | None"]


class RuleStrategy:
    """Ordered rules over class scores: the first rule returning a label wins, else `default`.

    Example: `RuleStrategy([lambda s: "bad" if s["bad"] > 0.2 else None], "good", classes=["bad", "good"])`
    sends any image with a 20% "bad" score to "bad".

    Args:
        rules: Callables `{class name: score} -> label or None`, applied in order.
        default: Label when no rule fires.
        classes: Class names in score-column order.
    """

    def __init__(self, rules: Sequence[Rule], default: str, *, classes: Sequence[str]) -> None:
        self.rules = rules
        self.default = default
        self.classes = classes

    def predict_labels(self, probabilities: np.ndarray) -> list[str]:
        """Labels `[N]` (class names, or any other label a rule returns, such as "review")."""
        names = self._check()
        probabilities = check_columns(probabilities, names)
        return [self._decide(dict(zip(names, map(float, row)))) for row in probabilities]

    def predict(self, probabilities: np.ndarray) -> np.ndarray:
        """Class indices `[N]`; -1 for labels that are not classes (e.g. "review")."""
        index = {name: k for k, name in enumerate(self._check())}
        return np.array([index.get(label, UNCERTAIN) for label in self.predict_labels(probabilities)], dtype=np.int64)

    def _decide(self, scores: dict[str, float]) -> str:
        for rule in self.rules:
            label = rule(scores)
            if label is not None:
                return str(label)
        return self.default

    def _check(self) -> list[str]:
        if not all(callable(rule) for rule in self.rules):
            raise TypeError("rules: expected callables {class name: score} -> label or None")
        if not isinstance(self.default, str):
            raise TypeError(f"default: expected a label string, got {type(self.default).__name__}")
        return check_classes(self.classes, n_classes=len(self.classes))



def decision_from_dict(data: Mapping[str, Any], *, classes: Sequence[str] | None = None
                       ) -> ThresholdTuner | PerClassThresholds | LabelThresholds:
    """Load thresholds.json content written by `ThresholdTuner`, `PerClassThresholds` or `LabelThresholds`."""
    loaders = {"threshold_tuner": ThresholdTuner.from_dict, "per_class_thresholds": PerClassThresholds.from_dict,
               STRATEGY: LabelThresholds.from_dict}
    strategy = data.get("strategy") if isinstance(data, Mapping) else None
    if strategy not in loaders:
        raise ValueError(f"thresholds: expected 'strategy' in {sorted(loaders)}, got {strategy!r}; "
                         "is this a thresholds.json written by winnow tune?")
    return loaders[strategy](data, classes=classes)
