"""Pseudo-labels: predictions kept above per-class thresholds tuned on val for a target precision.

Each level `(precision, weight)` gives every class the lowest threshold whose precision on the
run's val split reaches `precision` (`winnow.operating.tuner.ThresholdTuner`, maximising recall); an
unlabelled image predicted as class c gets the weight of the strictest level its probability
passes (none: dropped). A class whose val data cannot reach a level's precision gets no
pseudo-labels at that level. Class proportions are then capped: no class may hold more than
`max_tilt` times its training share relative to the least-served class, so that a common class's
easy predictions do not drown the rare ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator

from winnow.operating.tuner import ThresholdTuner

DEFAULT_LEVELS = ((0.95, 1.0),)
NOT_FITTED = "this PseudoLabeller is not fitted yet; call fit(val_probabilities, val_targets, classes) first"


def parse_levels(text: str) -> tuple[tuple[float, float], ...]:
    """`"0.98:1.0,0.9:0.5"` -> `((0.98, 1.0), (0.9, 0.5))` (target precision: weight).

    Raises:
        ValueError: Malformed text, a precision outside (0, 1] or a weight outside (0, 1].
    """
    levels = []
    for part in text.split(","):
        precision, sep, weight = part.partition(":")
        try:
            level = (float(precision), float(weight) if sep else 1.0)
        except ValueError:
            raise ValueError(f"--levels: expected PRECISION:WEIGHT pairs such as 0.98:1.0,0.9:0.5, got {text!r}") from None
        if not (0 < level[0] <= 1 and 0 < level[1] <= 1):
            raise ValueError(f"--levels: precision and weight must lie in (0, 1], got {part!r} in {text!r}")
        levels.append(level)
    return tuple(sorted(levels, reverse=True))


@dataclass
class PseudoLabels:
    """Per unlabelled image: class index `[N]` (-1: dropped), weight `[N]` (0 when dropped), level precision `[N]`."""

    indices: np.ndarray
    weights: np.ndarray
    precisions: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.indices >= 0)


class PseudoLabeller(BaseEstimator):
    """Per-class, per-level thresholds for pseudo-labels (scikit-learn conventions).

    Args:
        levels: `(precision, weight)` pairs, e.g. `((0.98, 1.0), (0.9, 0.5))`.
        max_tilt: Class c keeps at most `max_tilt * share_c * min_j(n_j / share_j)` images (shares from training).
        min_keep: Every class may keep at least this many, whatever the cap.
        n_bootstrap: Bootstrap samples of the tuner's interval (reported, not used to choose).

    Attributes:
        classes_: `[K]`.
        thresholds_: `[L, K]` probability thresholds (NaN: the level's precision is unreachable for the class).
        val_precision_: `[L, K]` the class's precision on val at each threshold, as the tuner reports it (NaN
            where unreachable).
        shares_: `[K]` training share of each class.
        warnings_: Unreachable levels, in words.
    """

    def __init__(self, levels: Sequence[tuple[float, float]] = DEFAULT_LEVELS, *, max_tilt: float = 2.0,
                 min_keep: int = 10, n_bootstrap: int = 100) -> None:
        self.levels = levels
        self.max_tilt = max_tilt
        self.min_keep = min_keep
        self.n_bootstrap = n_bootstrap

    def fit(self, probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str],
            train_counts: Sequence[int] | None = None) -> "PseudoLabeller":
        """Tune the thresholds on val `probabilities` `[N, K]` with true class indices `targets` `[N]`."""
        if self.max_tilt < 1:
            raise ValueError(f"max_tilt: expected >= 1 (1 keeps the training proportions), got {self.max_tilt}")
        self.classes_ = [str(c) for c in classes]
        counts = np.ones(len(classes)) if train_counts is None else np.asarray(train_counts, dtype=float)
        self.shares_ = counts / counts.sum()
        self.thresholds_ = np.full((len(self.levels), len(classes)), np.nan)
        self.val_precision_ = np.full((len(self.levels), len(classes)), np.nan)
        self.warnings_: list[str] = []
        for row, (precision, _) in enumerate(self.levels):
            for k, name in enumerate(self.classes_):
                self.thresholds_[row, k], self.val_precision_[row, k] = self._threshold(
                    probabilities, targets, name, precision)
        return self

    def _threshold(self, probabilities: np.ndarray, targets: np.ndarray, name: str,
                   precision: float) -> tuple[float, float]:
        """The class's threshold for `precision` and the precision it reaches on val (NaN, NaN: unreachable)."""
        tuner = ThresholdTuner(f"precision({name})>={precision}", n_bootstrap=self.n_bootstrap, min_support=1)
        try:
            tuner.fit(probabilities, targets, self.classes_)
        except ValueError as error:  # the tuner says why no threshold reaches the precision on val
            self.warnings_.append(f"class {name}: no pseudo-labels at precision {precision:g} ({error})")
            return np.nan, np.nan
        return tuner.threshold_, tuner.achieved_[f"precision({name})"]

    def loosest_val_precision(self) -> np.ndarray:
        """`[K]` the precision on val, as the tuner reports it, at each class's lowest threshold (NaN: none).

        An image passes some level when its probability reaches the class's lowest threshold, so this
        is the val precision of the rule that made the class's pseudo-labels (before the class cap,
        which drops the least confident ones).
        """
        if not hasattr(self, "thresholds_"):
            raise RuntimeError(NOT_FITTED)
        found = np.full(len(self.classes_), np.nan)
        for k in range(len(self.classes_)):
            column = self.thresholds_[:, k]
            if np.isfinite(column).any():
                found[k] = self.val_precision_[np.nanargmin(column), k]
        return found

    def transform(self, probabilities: np.ndarray) -> PseudoLabels:
        """Pseudo-labels of unlabelled `probabilities` `[N, K]`, thresholds and the class cap applied."""
        if not hasattr(self, "thresholds_"):
            raise RuntimeError(NOT_FITTED)
        predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
        indices, weights, precisions = np.full(len(predicted), -1), np.zeros(len(predicted)), np.zeros(len(predicted))
        for row in reversed(range(len(self.levels))):  # strictest level last, so it wins
            passed = confidence >= np.nan_to_num(self.thresholds_[row, predicted], nan=np.inf)
            indices[passed], weights[passed] = predicted[passed], self.levels[row][1]
            precisions[passed] = self.levels[row][0]
        self._cap(indices, weights, confidence)
        precisions[indices < 0] = 0.0
        return PseudoLabels(indices, weights, precisions)

    def _cap(self, indices: np.ndarray, weights: np.ndarray, confidence: np.ndarray) -> None:
        """Drop the least confident pseudo-labels of classes above their capped share (in place)."""
        counts = np.bincount(indices[indices >= 0], minlength=len(self.classes_))
        served = counts > 0
        if not served.any():
            return
        base = (counts[served] / self.shares_[served]).min()
        limits = np.maximum(self.max_tilt * self.shares_ * base, self.min_keep).astype(int)
        for k in np.flatnonzero(counts > limits):
            members = np.flatnonzero(indices == k)
            dropped = members[np.argsort(-confidence[members], kind="stable")[limits[k]:]]
            indices[dropped], weights[dropped] = -1, 0.0
