"""Temperature and vector scaling on synthetic logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.exceptions import NotFittedError

from winnow.calibration import TemperatureScaling, VectorScaling, logits_from_probabilities
from winnow.metrics.report import expected_calibration_error


def logits_with_scale(scale: float, *, n: int = 2000, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits `[n, k]` whose calibrating temperature is about `scale` (> 1: over-confident).

    Targets are drawn from softmax(logits), so the unscaled logits are calibrated.
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, k))
    cumulative = softmax(logits, axis=1).cumsum(axis=1)
    targets = np.minimum((cumulative < rng.random((n, 1))).sum(axis=1), k - 1)
    return logits * scale, targets


def mean_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    return float(-log_softmax(logits, axis=1)[np.arange(len(targets)), targets].mean())


@pytest.mark.parametrize("scaler", [TemperatureScaling(), VectorScaling()])
def test_scaling_reduces_ece_of_over_confident_logits(scaler):
    logits, targets = logits_with_scale(4.0)
    before = expected_calibration_error(softmax(logits, axis=1), targets)
    scaler.fit(logits[:1000], targets[:1000])
    after = expected_calibration_error(scaler.predict_proba(logits[1000:]), targets[1000:])
    assert after < before / 3
    assert scaler.nll_after_ < scaler.nll_before_


def test_temperature_is_the_nll_minimum_and_keeps_the_argmax():
    logits, targets = logits_with_scale(3.0)
    scaler = TemperatureScaling().fit(logits, targets)
    assert scaler.temperature_ == pytest.approx(3.0, rel=0.15)
    best = mean_nll(logits / scaler.temperature_, targets)
    assert best <= min(mean_nll(logits / (scaler.temperature_ * f), targets) for f in (0.95, 1.05))
    assert (scaler.predict(logits) == logits.argmax(axis=1)).all()
    assert np.allclose(scaler.predict_proba(logits).sum(axis=1), 1)


def test_under_confident_logits_get_a_temperature_below_one():
    logits, targets = logits_with_scale(0.3)
    assert TemperatureScaling().fit(logits, targets).temperature_ < 1


def test_vector_scaling_learns_a_class_bias():
    logits, targets = logits_with_scale(1.0, seed=1)
    shifted = logits + np.array([2.0, 0, 0, 0])  # class 0 boosted for no reason
    scaler = VectorScaling().fit(shifted, targets)
    assert scaler.weights_.shape == scaler.bias_.shape == (4,)
    assert scaler.bias_[0] < scaler.bias_[1:].min()
    assert (scaler.predict(shifted) == targets).mean() > (shifted.argmax(axis=1) == targets).mean()


@pytest.mark.parametrize("scaler_class", [TemperatureScaling, VectorScaling])
def test_not_fitted_and_round_trip(scaler_class):
    logits, targets = logits_with_scale(2.0, n=300)
    with pytest.raises(NotFittedError, match="call fit"):
        scaler_class().predict_proba(logits)
    fitted = scaler_class().fit(logits, targets)
    loaded = scaler_class.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert np.allclose(loaded.predict_proba(logits), fitted.predict_proba(logits))
    other = TemperatureScaling if scaler_class is VectorScaling else VectorScaling
    with pytest.raises(ValueError, match="expected format"):
        other.from_dict(fitted.to_dict())


def test_invalid_logits_are_explained():
    logits, targets = logits_with_scale(2.0, n=100)
    scaler = TemperatureScaling().fit(logits, targets)
    with pytest.raises(ValueError, match="expected 4 columns"):
        scaler.predict_proba(logits[:, :3])
    with pytest.raises(ValueError, match="finite"):
        TemperatureScaling().fit(np.where(logits > 3, np.nan, logits), targets)
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        TemperatureScaling().fit(logits[:, 0], targets)
    with pytest.raises(ValueError, match="class indices"):
        TemperatureScaling().fit(logits, targets + 4)


def test_log_probabilities_work_as_logits():
    logits, targets = logits_with_scale(3.0, n=500)
    probabilities = softmax(logits, axis=1)
    from_probs = TemperatureScaling().fit(logits_from_probabilities(probabilities), targets)
    from_logits = TemperatureScaling().fit(logits, targets)
    assert from_probs.temperature_ == pytest.approx(from_logits.temperature_, rel=1e-4)
