"""Post-hoc calibration of logits `[N, K]`: temperature scaling and vector scaling (Guo et al., 2017).

Both are fitted on validation logits by minimising the negative log-likelihood with scipy's L-BFGS-B
and an analytic gradient, and follow scikit-learn's estimator conventions. Softmax heads
(`multilabel=False`): class-index targets `[N]`, softmax NLL. Multi-label heads (`multilabel=True`):
multi-hot targets `[N, K]`, the binary cross-entropy of each label's sigmoid, summed over labels
(vector scaling is then Platt scaling per label).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from winnow.metrics.checks import check_multilabel_targets, check_targets

FORMAT = "winnow.calibration"
NOT_FITTED = ("This %(name)s is not fitted yet: call fit(logits, targets) on validation logits "
              "or load one with from_dict(json.load(...))")


def check_logits(logits: Any, *, n_classes: int | None = None) -> np.ndarray:
    """Validate finite logits `[N, K]` (K >= 2, and K == n_classes when given); return float64."""
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"logits: expected a non-empty array [N, K] with K >= 2, got shape {array.shape}")
    if n_classes is not None and array.shape[1] != n_classes:
        raise ValueError(f"logits: expected {n_classes} columns (as at fit), got {array.shape[1]}; "
                         "is this calibrator from another model?")
    if not np.isfinite(array).all():
        raise ValueError("logits: expected finite values, got NaN or inf; check the model outputs")
    return array


def nll_gradient(scaled: np.ndarray, onehot: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of `scaled [N, K]` logits and its gradient w.r.t. them `[N, K]`."""
    log_p = log_softmax(scaled, axis=1)
    n = len(scaled)
    return float(-(log_p * onehot).sum() / n), (np.exp(log_p) - onehot) / n


def bce_gradient(scaled: np.ndarray, multihot: np.ndarray) -> tuple[float, np.ndarray]:
    """Binary cross-entropy of sigmoid(`scaled [N, K]`), summed over labels and averaged over rows, and its gradient."""
    n = len(scaled)
    loss = np.logaddexp(0, scaled) - multihot * scaled  # -log sigmoid(s) for 1, -log(1 - sigmoid(s)) for 0
    return float(loss.sum() / n), (expit(scaled) - multihot) / n


def logits_from_probabilities(probabilities: np.ndarray, *, eps: float = 1e-12) -> np.ndarray:
    """Log-probabilities `[N, K]`: logits up to a per-row constant, which softmax ignores.

    Use when only probabilities were saved (e.g. a predictions CSV); both scalers accept them.
    """
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 2 or not np.isfinite(array).all() or array.min() < 0:
        raise ValueError(f"probabilities: expected finite non-negative values [N, K], got shape {array.shape}")
    return np.log(np.clip(array, eps, None))


class _LogitScaler(BaseEstimator):
    """Shared fit/predict for an affine map of logits; subclasses define the parameters.

    Args:
        multilabel: Independent sigmoid labels (multi-hot targets) instead of one softmax.
    """

    _method: str  # name in to_dict()

    def __init__(self, *, multilabel: bool = False) -> None:
        self.multilabel = multilabel

    def fit(self, logits: np.ndarray, targets: np.ndarray) -> _LogitScaler:
        """Fit on validation `logits [N, K]` and class indices `targets [N]` (multi-label: multi-hot `[N, K]`).

        Raises:
            ValueError: Invalid shapes/values, or the optimiser failed.
        """
        logits = check_logits(logits)
        if self.multilabel:
            encoded = check_multilabel_targets(targets, shape=logits.shape).astype(np.float64)
        else:
            encoded = np.eye(logits.shape[1])[check_targets(targets, n_samples=len(logits), n_classes=logits.shape[1])]
        result = minimize(self._objective, self._initial(logits.shape[1]), args=(logits, encoded),
                          jac=True, method="L-BFGS-B")
        if not np.isfinite(result.fun):
            raise ValueError(f"{type(self).__name__}: the optimiser failed ({result.message})")
        self.n_classes_ = logits.shape[1]
        self._set_params_from(result.x)
        self.nll_before_, self.nll_after_ = self._loss(logits, encoded)[0], float(result.fun)
        return self

    def _loss(self, scaled: np.ndarray, encoded: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and its gradient w.r.t. the scaled logits (softmax NLL, or summed binary cross-entropy)."""
        return (bce_gradient if self.multilabel else nll_gradient)(scaled, encoded)

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated logits `[N, K]`."""
        check_is_fitted(self, msg=NOT_FITTED)
        return self._apply(check_logits(logits, n_classes=self.n_classes_))

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities `[N, K]` (multi-label: independent per label)."""
        scaled = self.transform(logits)
        return expit(scaled) if self.multilabel else softmax(scaled, axis=1)

    def predict(self, logits: np.ndarray) -> np.ndarray:
        """Class indices `[N]` of the calibrated probabilities (multi-label: multi-hot at 0.5 `[N, K]`)."""
        scaled = self.transform(logits)
        return (scaled >= 0).astype(np.int64) if self.multilabel else scaled.argmax(axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (e.g. for calibration.json)."""
        check_is_fitted(self, msg=NOT_FITTED)
        return {"format": FORMAT, "method": self._method, "n_classes": self.n_classes_, "multilabel": self.multilabel,
                **self._saved()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _LogitScaler:
        """Rebuild a fitted calibrator from `to_dict()` output."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT or data.get("method") != cls._method:
            got = {k: data.get(k) for k in ("format", "method")} if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"calibration: expected format {FORMAT!r} with method {cls._method!r}, got {got}")
        scaler = cls(multilabel=bool(data.get("multilabel", False)))
        scaler.n_classes_ = int(data["n_classes"])
        scaler._load(data)
        return scaler


class TemperatureScaling(_LogitScaler):
    """Divide logits by one temperature `T > 0`; keeps the argmax and so the accuracy.

    Attributes:
        temperature_: Fitted temperature (> 1 softens over-confident models).
        n_classes_: K seen at fit.
        nll_before_, nll_after_: Mean NLL on the fit data before and after scaling.
    """

    _method = "temperature"

    def _initial(self, n_classes: int) -> np.ndarray:
        return np.zeros(1)  # log T

    def _objective(self, params: np.ndarray, logits: np.ndarray, encoded: np.ndarray) -> tuple[float, np.ndarray]:
        scaled = logits * np.exp(-params[0])
        loss, grad = self._loss(scaled, encoded)
        return loss, np.array([-(grad * scaled).sum()])

    def _set_params_from(self, params: np.ndarray) -> None:
        self.temperature_ = float(np.exp(params[0]))

    def _apply(self, logits: np.ndarray) -> np.ndarray:
        return logits / self.temperature_

    def _saved(self) -> dict[str, Any]:
        return {"temperature": self.temperature_}

    def _load(self, data: Mapping[str, Any]) -> None:
        self.temperature_ = float(data["temperature"])


class VectorScaling(_LogitScaler):
    """Per-class scale and bias of the logits: `logits * weights_ + bias_` (may change the argmax).

    Attributes:
        weights_: Per-class scales `[K]`.
        bias_: Per-class biases `[K]`.
        n_classes_: K seen at fit.
        nll_before_, nll_after_: Mean NLL on the fit data before and after scaling.
    """

    _method = "vector"

    def _initial(self, n_classes: int) -> np.ndarray:
        return np.concatenate([np.ones(n_classes), np.zeros(n_classes)])

    def _objective(self, params: np.ndarray, logits: np.ndarray, encoded: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = np.split(params, 2)
        loss, grad = self._loss(logits * weights + bias, encoded)
        return loss, np.concatenate([(grad * logits).sum(axis=0), grad.sum(axis=0)])

    def _set_params_from(self, params: np.ndarray) -> None:
        self.weights_, self.bias_ = np.split(params.copy(), 2)

    def _apply(self, logits: np.ndarray) -> np.ndarray:
        return logits * self.weights_ + self.bias_

    def _saved(self) -> dict[str, Any]:
        return {"weights": self.weights_.tolist(), "bias": self.bias_.tolist()}

    def _load(self, data: Mapping[str, Any]) -> None:
        self.weights_, self.bias_ = np.asarray(data["weights"], float), np.asarray(data["bias"], float)
        if self.weights_.shape != (self.n_classes_,) or self.bias_.shape != (self.n_classes_,):
            raise ValueError(f"calibration: expected {self.n_classes_} weights and biases, "
                             f"got {self.weights_.shape} and {self.bias_.shape}")
