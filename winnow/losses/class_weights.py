"""Per-class loss weights `[K]` computed from training-set class counts.

Schemes (`class_weights:` in the config):

- ``none``: no weights.
- ``balanced``: inverse frequency ``n / (K * n_c)``, as scikit-learn's
  ``compute_class_weight("balanced")``; the weights average to 1 over the samples.
- ``sqrt``: inverse square-root frequency ``n / (sqrt(n_c) * sum_j sqrt(n_j))``, normalised
  like ``balanced`` so that they average to 1 over the samples (``sum_c n_c w_c = n``).
- ``effective``: effective number of samples (Cui et al. 2019), ``(1 - beta) / (1 - beta**n_c)``,
  normalised to sum to K.
- a list of K numbers: explicit weights, in class order, used as given.

The losses divide by the summed weights of the batch (PyTorch's ``weight=`` convention), so a
scheme changes how much each class counts relative to the others, not the scale of the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch

from winnow.losses.params import beta_value, real


def _balanced(counts: np.ndarray, beta: float) -> np.ndarray:
    return counts.sum() / (len(counts) * counts)


def _sqrt(counts: np.ndarray, beta: float) -> np.ndarray:
    return counts.sum() / (np.sqrt(counts) * np.sqrt(counts).sum())


def _effective(counts: np.ndarray, beta: float) -> np.ndarray:
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return weights * len(counts) / weights.sum()


SCHEMES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "balanced": _balanced,
    "sqrt": _sqrt,
    "effective": _effective,
}
SCHEME_NAMES = ("none", *SCHEMES)


def class_weights(scheme: str | Sequence[float], class_counts: Sequence[int], *,
                  beta: float = 0.999) -> torch.Tensor | None:
    """Weights `[K]` (float32) for a scheme name or an explicit list, or None for "none".

    Args:
        scheme: one of SCHEME_NAMES, or a list of K non-negative weights.
        class_counts: training samples per class `[K]` (for multi-label: positives per label;
            for a single-logit binary head: `[negatives, positives]`).
        beta: the effective-number beta of scheme "effective", in [0, 1).

    Raises:
        ValueError: unknown scheme, a class with no samples (computed schemes), or a list of the wrong length.
    """
    counts = as_counts(class_counts)
    if not isinstance(scheme, str):
        return explicit_weights(scheme, len(counts))
    if scheme == "none":
        return None
    if scheme not in SCHEMES:
        raise ValueError(f"class_weights must be one of {list(SCHEME_NAMES)} or a list of {len(counts)} "
                         f"per-class weights, got {scheme!r}")
    beta = beta_value("beta", beta)
    require_samples(f"class_weights={scheme}", counts)
    weights = SCHEMES[scheme](np.asarray(counts, dtype=np.float64), beta)
    return torch.as_tensor(weights, dtype=torch.float32)


def as_counts(class_counts: Any) -> tuple[int, ...]:
    """Validated class counts: a non-empty sequence of integers >= 0 with a positive total."""
    if isinstance(class_counts, (np.ndarray, torch.Tensor)):
        class_counts = class_counts.tolist()
    if isinstance(class_counts, (str, bytes)) or not isinstance(class_counts, Sequence) or not class_counts:
        raise TypeError(f"class_counts must be a non-empty list of per-class sample counts, got {class_counts!r}; "
                        "count the training targets, e.g. numpy.bincount(targets, minlength=K).tolist()")
    bad = [c for c in class_counts if isinstance(c, bool) or not isinstance(c, Integral) or c < 0]
    if bad:
        raise ValueError(f"class_counts must hold integers >= 0 (samples per class), got {list(class_counts)}")
    if sum(class_counts) == 0:
        raise ValueError("class_counts are all 0: the training split has no samples; check the data and split")
    return tuple(int(c) for c in class_counts)


def require_samples(what: str, counts: Sequence[int]) -> None:
    """Raise when a class has no training samples (its weight or margin would be infinite)."""
    empty = [index for index, count in enumerate(counts) if count == 0]
    if empty:
        raise ValueError(f"{what}: class index(es) {empty} have no training samples (counts {list(counts)}); "
                         "add samples for them, drop those classes, or use class_weights=none or an "
                         "explicit list of weights")


def explicit_weights(weights: Any, num_classes: int) -> torch.Tensor:
    """A user-given weight list `[K]`, checked: right length, finite, >= 0, not all 0."""
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise TypeError(f"class_weights must be a scheme name {list(SCHEME_NAMES)} or a list of numbers, "
                        f"got {weights!r}")
    if len(weights) != num_classes:
        raise ValueError(f"class_weights lists {len(weights)} weights but there are {num_classes} classes; "
                         "give one weight per class, in class order")
    values = [real(f"class_weights[{i}]", w) for i, w in enumerate(weights)]
    if min(values) < 0 or max(values) == 0:
        raise ValueError(f"class_weights must be >= 0 with at least one > 0, got {values}")
    return torch.tensor(values, dtype=torch.float32)
