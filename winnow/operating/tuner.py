"""The tuned operating threshold over probabilities `[N, K]` (other rules: `winnow.operating.decisions`).

Every rule has `predict(probabilities [N, K]) -> class indices [N]` (-1 = uncertain/rejected) and
`predict_labels(probabilities) -> list[str]`, and, except `RuleStrategy` (which holds code), a JSON
form through `to_dict()` / `from_dict()` for `thresholds.json`; `decision_from_dict` reads either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from winnow.metrics.checks import UNCERTAIN, check_classes, check_probabilities, check_targets
from winnow.operating.bootstrap import Interval, bootstrap_interval, check_bootstrap_params, json_float, ratio_statistic
from winnow.operating.targets import Target, parse_target

FORMAT = "winnow.thresholds"
FORMAT_VERSION = 1
NOT_FITTED = ("This %(name)s is not fitted yet: call fit(probabilities, targets, classes) "
              "or load one with ThresholdTuner.from_dict(json.load(...))")


# --------------------------------------------------------------------------------------------- curve


@dataclass(frozen=True)
class ThresholdCurve:
    """Prediction counts at every candidate threshold on one class's score.

    The rule at threshold `u`: predict class `cls` when its score >= u, else the argmax of the
    other classes. Candidates are the unique scores of `cls`, ascending.

    Attributes:
        cls: Index of the thresholded class.
        thresholds: Unique scores of `cls`, ascending `[U]`.
        order: Row order sorting the scores ascending `[N]`.
        first: Position in `order` of the first row at or above each threshold `[U]`.
        fallback: Prediction of each row when below the threshold `[N]`.
        targets: True class indices `[N]`.
    """

    cls: int
    thresholds: np.ndarray
    order: np.ndarray
    first: np.ndarray
    fallback: np.ndarray
    targets: np.ndarray

    @classmethod
    def build(cls, probabilities: np.ndarray, targets: np.ndarray, class_index: int) -> ThresholdCurve:
        """Curve of `probabilities [N, K]`, `targets [N]` over the scores of `class_index`."""
        scores = probabilities[:, class_index]
        order = np.argsort(scores, kind="stable")
        thresholds, first = np.unique(scores[order], return_index=True)
        return cls(class_index, thresholds, order, first, fallback_predictions(probabilities, class_index), targets)

    def counts(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Predicted and correctly predicted counts of class `k` at each threshold, `([U], [U])`."""
        if k == self.cls:
            return self._at_or_above(np.ones(len(self.targets))), self._at_or_above(self.targets == k)
        predicted, correct = self.fallback == k, (self.fallback == k) & (self.targets == k)
        return (predicted.sum() - self._at_or_above(predicted)), (correct.sum() - self._at_or_above(correct))

    def metric(self, name: str, k: int) -> np.ndarray:
        """"precision", "recall" or "fpr" of class `k` at each threshold `[U]` (undefined -> 0)."""
        predicted, correct = self.counts(k)
        support = int((self.targets == k).sum())
        numerator, denominator = {"precision": (correct, predicted), "recall": (correct, support),
                                  "fpr": (predicted - correct, len(self.targets) - support)}[name]
        return np.divide(numerator, denominator, out=np.zeros(len(self.thresholds)),
                         where=np.asarray(denominator) > 0)

    def _at_or_above(self, flags: np.ndarray) -> np.ndarray:
        tail = np.cumsum(np.asarray(flags, np.int64)[self.order][::-1])[::-1]
        return tail[self.first]


def fallback_predictions(probabilities: np.ndarray, class_index: int) -> np.ndarray:
    """Argmax over the classes other than `class_index` `[N]`."""
    others = probabilities.copy()
    others[:, class_index] = -np.inf
    return others.argmax(axis=1)


def metric_flags(metric: str, k: int, predictions: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator row flags `([N], [N])` of precision/recall/fpr of class `k`."""
    predicted, positive = predictions == k, targets == k
    return {"precision": (predicted & positive, predicted), "recall": (predicted & positive, positive),
            "fpr": (predicted & ~positive, ~positive)}[metric]


@dataclass(frozen=True)
class Assessment:
    """A fixed threshold measured on data.

    Attributes:
        achieved: `{"metric(class)": value}` of the target's class (and objective).
        interval: Bootstrap interval of the constrained metric.
        conservative: Pessimistic end of the interval (low for ">=", high for "<=").
        warnings: Human-readable warnings.
    """

    achieved: dict[str, float]
    interval: Interval
    conservative: float
    warnings: list[str]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    bottom = int(denominator.sum())
    return float(numerator.sum() / bottom) if bottom else 0.0


# --------------------------------------------------------------------------------------------- tuner


class ThresholdTuner(BaseEstimator):
    """Threshold on one class's score meeting a target such as "precision(good)>=0.90".

    `fit` scans every unique score of the target's class as a threshold (no monotonicity assumed),
    keeps the thresholds meeting the constraint and picks the one with the best objective (ties: the
    higher threshold). The rule: predict the class when its score >= `threshold_`, else the argmax
    of the other classes.

    Args:
        target: Target string, see `winnow.operating.targets`.
        n_bootstrap: Bootstrap samples for the interval of the constrained metric.
        confidence: Coverage of the bootstrap percentile interval.
        min_support: Warn when the class, or the constrained metric's denominator, has fewer samples.
        random_state: Seed of the bootstrap.

    Attributes:
        classes_: Class names `[K]`.
        target_: Parsed `Target`.
        class_index_: Index of the thresholded class.
        threshold_: Chosen threshold.
        achieved_: `{"precision(c)": ..., "recall(c)": ..., "fpr(c)": ...}` at the threshold on the fit data.
        interval_: `(low, high)` bootstrap interval of the constrained metric (NaN when undefined).
        lower_bound_: `interval_[0]`.
        conservative_bound_: The pessimistic end: `interval_[0]` for ">=" targets, `interval_[1]` for "<=".
        warnings_: Human-readable warnings (interval misses the target, small support).
    """

    def __init__(self, target: str, *, n_bootstrap: int = 1000, confidence: float = 0.95, min_support: int = 20,
                 random_state: int = 0) -> None:
        self.target = target
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.min_support = min_support
        self.random_state = random_state

    def fit(self, probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> ThresholdTuner:
        """Choose the threshold on `probabilities [N, K]` with true class indices `targets [N]`.

        Raises:
            ValueError: Invalid inputs/target, or no threshold meets the target (the message gives the
                best achievable value).
        """
        check_bootstrap_params(n_bootstrap=self.n_bootstrap, confidence=self.confidence)
        probabilities, targets, names = _check_inputs(probabilities, targets, classes)
        target = parse_target(self.target, names)
        index = names.index(target.cls)
        curve = ThresholdCurve.build(probabilities, targets, index)
        chosen = select_threshold(curve, target, names)
        self.classes_, self.target_, self.class_index_ = names, target, index
        self.threshold_ = float(curve.thresholds[chosen])
        assessment = self._assess(probabilities, targets)
        self.achieved_, self.warnings_ = assessment.achieved, assessment.warnings
        self.interval_ = (assessment.interval.low, assessment.interval.high)
        self.lower_bound_, self.conservative_bound_ = self.interval_[0], assessment.conservative
        return self

    def predict(self, probabilities: np.ndarray) -> np.ndarray:
        """Class indices `[N]`: the target class when its score >= threshold_, else the best other class."""
        check_is_fitted(self, msg=NOT_FITTED)
        probabilities = check_columns(probabilities, self.classes_)
        fallback = fallback_predictions(probabilities, self.class_index_)
        return np.where(probabilities[:, self.class_index_] >= self.threshold_, self.class_index_, fallback)

    def predict_labels(self, probabilities: np.ndarray) -> list[str]:
        """Class names `[N]` of `predict`."""
        return indices_to_labels(self.predict(probabilities), self.classes_)

    def evaluate(self, probabilities: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """The fixed threshold on new data: achieved metrics, whether the target held, its interval.

        Returns:
            JSON-ready dict: target, class, threshold, n_samples, achieved, target_met, interval
            ({low, high, confidence, n_bootstrap, n_undefined}), conservative_bound, warnings.
        """
        check_is_fitted(self, msg=NOT_FITTED)
        probabilities, targets, _ = _check_inputs(probabilities, targets, self.classes_)
        assessment = self._assess(probabilities, targets)
        constrained = assessment.achieved[_key(self.target_.metric, self.target_.cls)]
        return {"target": str(self.target_), "class": self.target_.cls, "threshold": self.threshold_,
                "n_samples": len(targets), "achieved": assessment.achieved,
                "target_met": self.target_.satisfied(constrained), "interval": assessment.interval.to_dict(),
                "conservative_bound": json_float(assessment.conservative), "warnings": assessment.warnings}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for thresholds.json (with class names, to catch another run's thresholds)."""
        check_is_fitted(self, msg=NOT_FITTED)
        return {"format": FORMAT, "version": FORMAT_VERSION, "strategy": "threshold_tuner",
                "params": self.get_params(), "classes": self.classes_, "class": self.target_.cls,
                "parsed_target": str(self.target_), "threshold": self.threshold_, "achieved": self.achieved_,
                "interval": [json_float(v) for v in self.interval_],
                "conservative_bound": json_float(self.conservative_bound_), "warnings": self.warnings_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, classes: Sequence[str] | None = None) -> ThresholdTuner:
        """Rebuild a fitted tuner from `to_dict()` output.

        Args:
            data: The saved dict.
            classes: The current model's class names; a mismatch with the saved ones raises.

        Raises:
            ValueError: Not a threshold-tuner dict, or tuned for other classes.
        """
        names = check_saved(data, "threshold_tuner", classes)
        tuner = cls(**data["params"])
        tuner.classes_, tuner.target_ = names, parse_target(tuner.target, names)
        tuner.class_index_, tuner.threshold_ = names.index(tuner.target_.cls), float(data["threshold"])
        tuner.achieved_, tuner.warnings_ = dict(data["achieved"]), list(data["warnings"])
        tuner.interval_ = tuple(_nan_if_none(value) for value in data["interval"])
        tuner.lower_bound_ = tuner.interval_[0]
        tuner.conservative_bound_ = _nan_if_none(data["conservative_bound"])
        return tuner

    def _assess(self, probabilities: np.ndarray, targets: np.ndarray) -> Assessment:
        """Achieved metrics, the constrained metric's interval and warnings at threshold_."""
        predictions, target = self.predict(probabilities), self.target_
        achieved = achieved_metrics(predictions, targets, target, self.classes_)
        flags = metric_flags(target.metric, self.class_index_, predictions, targets)
        interval = bootstrap_interval(ratio_statistic(*flags), len(targets), n_bootstrap=self.n_bootstrap,
                                      confidence=self.confidence, random_state=self.random_state)
        conservative = interval.low if target.op == ">=" else interval.high
        found = _support_warnings(target, targets, flags[1], self.classes_, self.min_support)
        found += _interval_warnings(target, interval, conservative)
        return Assessment(achieved, interval, conservative, found)


def select_threshold(curve: ThresholdCurve, target: Target, classes: Sequence[str]) -> int:
    """Index into `curve.thresholds` meeting the constraint with the best objective (ties: higher threshold).

    Raises:
        ValueError: No threshold meets the constraint; the message gives the best achievable value.
    """
    constraint = curve.metric(target.metric, curve.cls)
    feasible = constraint >= target.value if target.op == ">=" else constraint <= target.value
    if not feasible.any():
        best = int(np.argmax(constraint) if target.op == ">=" else np.argmin(constraint))
        raise ValueError(
            f"no threshold reaches {target.metric}({target.cls}) {target.op} {target.value:g} on these "
            f"{len(curve.targets)} samples: the best achievable is {constraint[best]:.4f} (at threshold "
            f"{curve.thresholds[best]:.6g}); relax the target or add (cleaner) data for {target.cls!r}")
    objective = curve.metric(target.objective_metric, list(classes).index(target.objective_cls))
    score = np.where(feasible, objective if target.maximize else -objective, -np.inf)
    return int(np.flatnonzero(score == score.max())[-1])


def achieved_metrics(predictions: np.ndarray, targets: np.ndarray, target: Target,
                     classes: Sequence[str]) -> dict[str, float]:
    """Precision, recall, fpr of the target's class (and the objective, if on another class)."""
    wanted = [(metric, target.cls) for metric in ("precision", "recall", "fpr")]
    wanted.append((target.objective_metric, target.objective_cls))
    names = list(classes)
    return {_key(metric, cls): _ratio(*metric_flags(metric, names.index(cls), predictions, targets))
            for metric, cls in dict.fromkeys(wanted)}


def _support_warnings(target: Target, targets: np.ndarray, denominator: np.ndarray, classes: list[str],
                      min_support: int) -> list[str]:
    support = int((targets == classes.index(target.cls)).sum())
    found = []
    if support < min_support:
        found.append(f"class {target.cls!r} has only {support} samples (< min_support={min_support}): "
                     "the threshold and its interval are unreliable; add labelled data for it")
    if target.metric != "recall" and int(denominator.sum()) < min_support:
        rows = "predictions of" if target.metric == "precision" else "samples not in"
        found.append(f"{target.metric}({target.cls}) rests on only {int(denominator.sum())} {rows} "
                     f"{target.cls!r} (< min_support={min_support}): it is unreliable")
    return found


def _interval_warnings(target: Target, interval: Interval, conservative: float) -> list[str]:
    name = f"{target.metric}({target.cls})"
    if math.isnan(conservative):
        return [f"the bootstrap interval of {name} is undefined (no sample defines it)"]
    if target.satisfied(conservative):
        return []
    end = "lower" if target.op == ">=" else "upper"
    return [f"the {interval.confidence:.0%} bootstrap interval of {name} is [{interval.low:.4f}, {interval.high:.4f}]: "
            f"its {end} end misses the target {target.op} {target.value:g}, so the target may not hold on new "
            "data; validate on more data or tighten the target"]


# --------------------------------------------------------------------------------------------- helpers


def indices_to_labels(indices: np.ndarray, classes: Sequence[str], *, reject_label: str = "uncertain") -> list[str]:
    """Class names for indices `[N]`, `reject_label` for -1."""
    return [reject_label if k == UNCERTAIN else classes[k] for k in indices.tolist()]


def check_columns(probabilities: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Validate scores `[N, K]` in [0, 1] with one column per class name; return float64."""
    probabilities = check_probabilities(probabilities, rows_sum_to_one=False)
    if probabilities.shape[1] != len(classes):
        raise ValueError(f"probabilities: expected {len(classes)} columns (classes {list(classes)}), "
                         f"got {probabilities.shape[1]}; were these thresholds made for another model?")
    return probabilities


def _check_inputs(probabilities: np.ndarray, targets: np.ndarray,
                  classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    probabilities = check_probabilities(probabilities, rows_sum_to_one=False)
    targets = check_targets(targets, n_samples=len(probabilities), n_classes=probabilities.shape[1])
    return probabilities, targets, check_classes(classes, n_classes=probabilities.shape[1])


def check_saved(data: Mapping[str, Any], strategy: str, classes: Sequence[str] | None) -> list[str]:
    """Validate a saved dict's format and strategy; return its classes (checked against `classes`)."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT or data.get("strategy") != strategy:
        got = {k: data.get(k) for k in ("format", "strategy")} if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"thresholds: expected format {FORMAT!r} with strategy {strategy!r}, got {got}")
    saved = list(data["classes"])
    if classes is not None and list(classes) != saved:
        raise ValueError(f"thresholds were tuned for classes {saved} but this model has {list(classes)}; "
                         "they come from another run: re-run the tuning on this model's validation predictions")
    return saved


def _key(metric: str, cls: str) -> str:
    return f"{metric}({cls})"


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)
