"""Class-prior estimation from labelled positives and unlabelled samples (SCAR assumption).

Both estimators use out-of-fold scores ``g(x) = P(labelled | x)`` of a probabilistic classifier
(scikit-learn `LogisticRegression` on standardised features) trained on labelled (1) against
unlabelled (0); every score is from a fold that did not see that sample.

- ``elkan_noto`` (Elkan & Noto 2008, estimator e1): the label frequency ``c = mean g`` over the
  held-out labelled positives; then ``P(y=1) = n_l / (c * n)`` and the prior among the unlabelled
  ``pi = n_l * (1 - c) / (c * n_u)``.
- ``roc_ratio`` (mixture-proportion estimation, Blanchard et al. 2010, Scott 2015): ``pi`` is the
  smallest ratio ``F_u(t) / F_p(t)`` of the shares of unlabelled and of labelled scored >= t over
  thresholds t that keep at least ``min_share`` (half) of the positives (a region where negatives are
  rare, so the ratio there is the positives' share of the unlabelled; a smaller share makes the minimum
  a noisy low extreme).

`estimate_prior` runs them, adds a resampling interval for each and warns when they disagree by
more than `tolerance`. The resamples draw 80% of the positives and 80% of the unlabelled *without*
replacement (subsampling): a bootstrap draw's duplicates would sit in both the training and the
held-out folds, score the held-out positives too high and bias every resample's prior low.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

_EDGE = 1e-3  # estimates are clipped into [_EDGE, 1 - _EDGE]: a prior of 0 or 1 breaks the PU risks


def labelled_scores(features: np.ndarray, labelled: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold ``P(labelled | x)`` `[N]` for features `[N, D]` and labelled flags `[N]` (1 / 0)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, labelled, cv=splitter, method="predict_proba")[:, 1]


def elkan_noto(scores: np.ndarray, labelled: np.ndarray) -> float:
    """Prior among the unlabelled from out-of-fold scores `[N]`; see the module doc."""
    n_l, n_u = labelled.sum(), (~labelled).sum()
    c = float(np.clip(scores[labelled].mean(), _EDGE, 1.0))
    return float(np.clip(n_l * (1 - c) / (c * n_u), _EDGE, 1 - _EDGE))


def roc_ratio(scores: np.ndarray, labelled: np.ndarray, *, min_share: float = 0.5) -> float:
    """Prior among the unlabelled as ``min_t F_u(t) / F_p(t)``; see the module doc."""
    positives, unlabelled = np.sort(scores[labelled])[::-1], scores[~labelled]
    keep = max(int(np.ceil(min_share * len(positives))), 1)
    thresholds = positives[keep - 1:]  # each keeps at least `keep` positives
    share_p = np.searchsorted(-positives, -thresholds, side="right") / len(positives)
    share_u = (unlabelled[None, :] >= thresholds[:, None]).mean(axis=1)
    return float(np.clip((share_u / share_p).min(), _EDGE, 1 - _EDGE))


ESTIMATORS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "elkan_noto": elkan_noto,
    "roc_ratio": roc_ratio,
}


@dataclass
class PriorEstimate:
    """The estimators' priors among the unlabelled, their bootstrap intervals, and the one to use.

    Attributes:
        prior: the mean of the estimates (what `--prior auto` trains with).
        estimates: estimator name -> prior.
        intervals: estimator name -> (low, high), the percentile interval over the resamples.
        disagree: the estimates differ by more than the tolerance.
    """

    prior: float
    estimates: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    disagree: bool = False

    def summary(self) -> str:
        parts = [f"{name} {value:.3f} [{self.intervals[name][0]:.3f}, {self.intervals[name][1]:.3f}]"
                 for name, value in self.estimates.items()]
        return f"prior {self.prior:.3f} (" + "; ".join(parts) + ")"


def estimate_prior(features: np.ndarray, labelled: np.ndarray, *, bootstrap: int = 20, level: float = 0.9,
                   tolerance: float = 0.1, seed: int = 0) -> PriorEstimate:
    """Estimate the prior among the unlabelled with every estimator, with resampling intervals.

    Args:
        features: `[N, D]` (embeddings, or any per-image features).
        labelled: `[N]` 1 for a labelled positive, 0 for an unlabelled sample.
        bootstrap: resamples (80% subsamples) for the intervals (0: intervals are the point estimate).
        level: coverage of the percentile intervals.
        tolerance: estimates further apart than this warn (`UserWarning`) and set `disagree`.

    Raises:
        ValueError: fewer than 5 labelled positives or 5 unlabelled samples, or mismatched shapes.
    """
    features, labelled = np.asarray(features, dtype=float), np.asarray(labelled).astype(bool)
    _check_inputs(features, labelled)
    estimates = _estimate(features, labelled, seed)
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in ESTIMATORS}
    pos, unl = np.flatnonzero(labelled), np.flatnonzero(~labelled)
    for i in range(bootstrap):
        index = np.concatenate([rng.choice(pos, int(0.8 * len(pos)), replace=False),
                                rng.choice(unl, int(0.8 * len(unl)), replace=False)])
        for name, value in _estimate(features[index], labelled[index], seed + 1 + i).items():
            draws[name].append(value)
    tail = (1 - level) / 2 * 100
    intervals = {name: tuple(float(v) for v in np.percentile(values, [tail, 100 - tail])) if values
                 else (estimates[name], estimates[name]) for name, values in draws.items()}
    spread = max(estimates.values()) - min(estimates.values())
    result = PriorEstimate(float(np.mean(list(estimates.values()))), estimates, intervals, spread > tolerance)
    if result.disagree:
        warnings.warn(f"the class-prior estimators disagree by {spread:.3f} (> {tolerance}): {result.summary()}; "
                      "the features may not separate the classes well: give --prior a known value or check the "
                      "sensitivity of the results to it", UserWarning, stacklevel=2)
    return result


def _estimate(features: np.ndarray, labelled: np.ndarray, seed: int) -> dict[str, float]:
    scores = labelled_scores(features, labelled.astype(int), seed=seed)
    return {name: estimator(scores, labelled) for name, estimator in ESTIMATORS.items()}


def _check_inputs(features: np.ndarray, labelled: np.ndarray) -> None:
    if features.ndim != 2 or labelled.shape != (len(features),):
        raise ValueError(f"estimate_prior needs features [N, D] and labelled flags [N], got {features.shape} "
                         f"and {labelled.shape}")
    if labelled.sum() < 5 or (~labelled).sum() < 5:
        raise ValueError(f"estimate_prior needs at least 5 labelled positives and 5 unlabelled samples, got "
                         f"{int(labelled.sum())} and {int((~labelled).sum())}; give --prior a number instead")
