"""Class-prior estimators (`winnow.pu.prior`): planted priors on synthetic data, intervals, disagreement."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.pu import ESTIMATORS, estimate_prior
from winnow.pu.prior import labelled_scores

TOLERANCE = 0.08  # absolute error on 150 labelled + 400 unlabelled well-separated 2-D Gaussians


def planted(prior: float, *, seed: int = 0, n_l: int = 150, n_u: int = 400):
    rng = np.random.default_rng(seed)
    hidden = int(round(prior * n_u))
    positives = rng.normal(2.0, 1.0, (n_l + hidden, 2))
    negatives = rng.normal(-2.0, 1.0, (n_u - hidden, 2))
    return np.concatenate([positives, negatives]), np.r_[np.ones(n_l), np.zeros(n_u)].astype(int)


@pytest.mark.parametrize("prior", [0.2, 0.5])
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_each_estimator_recovers_a_planted_prior(name, prior):
    features, labelled = planted(prior)
    scores = labelled_scores(features, labelled)
    assert ESTIMATORS[name](scores, labelled.astype(bool)) == pytest.approx(prior, abs=TOLERANCE)


def test_estimate_prior_gives_intervals_around_the_estimates():
    features, labelled = planted(0.3, seed=1)
    result = estimate_prior(features, labelled, bootstrap=3)
    assert result.prior == pytest.approx(0.3, abs=TOLERANCE) and not result.disagree
    for name, (low, high) in result.intervals.items():
        assert low <= high and low - 0.05 <= result.estimates[name] <= high + 0.05
    assert "elkan_noto" in result.summary()


def test_disagreeing_estimators_warn():
    features, labelled = planted(0.3, seed=2)
    with pytest.warns(UserWarning, match="disagree"):
        assert estimate_prior(features, labelled, bootstrap=0, tolerance=0.0).disagree


@pytest.mark.parametrize("labelled, match", [(np.r_[np.ones(3), np.zeros(20)], "5 labelled"),
                                             (np.r_[np.ones(20), np.zeros(2)], "5 unlabelled")])
def test_too_few_samples_are_refused(labelled, match):
    with pytest.raises(ValueError, match=match):
        estimate_prior(np.zeros((len(labelled), 2)), labelled)
