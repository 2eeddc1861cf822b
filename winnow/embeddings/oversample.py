"""Synthetic minority samples for the heads on embeddings (imbalanced-learn's SMOTE, ADASYN, BorderlineSMOTE).

A head with `oversample="smote"` (or adasyn, borderline) interpolates new embeddings of its rarer classes
between a sample and one of its same-class nearest neighbours before it is fitted, up to the size of the
largest class. Only the fit embeddings are resampled: the reject threshold, validation and test images
stay real. The neighbour count is imbalanced-learn's default (5), lowered to the smallest class size - 1
so that a class of a few images can still be interpolated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE

NONE = "none"
# method -> (imbalanced-learn class, name of its neighbour-count argument)
OVERSAMPLERS: dict[str, tuple[type, str] | None] = {
    NONE: None,
    "smote": (SMOTE, "k_neighbors"),
    "adasyn": (ADASYN, "n_neighbors"),
    "borderline": (BorderlineSMOTE, "k_neighbors"),
}
DEFAULT_NEIGHBOURS = 5  # imbalanced-learn's default


def check_method(method: Any) -> str:
    """An oversampling method name.

    Raises:
        ValueError: Not a key of `OVERSAMPLERS` (the message lists them).
    """
    if method not in OVERSAMPLERS:
        raise ValueError(f"oversample: expected one of {list(OVERSAMPLERS)}, got {method!r}; smote interpolates "
                         "rare classes, adasyn focuses on their hard samples, borderline on those near other classes")
    return method


def neighbours_for(counts: np.ndarray, *, method: str, what: str) -> int:
    """The neighbour count: the default, at most the smallest class size - 1 (`counts` `[K]`).

    Raises:
        ValueError: A class with a single sample (it has no neighbour of its class to interpolate with).
    """
    single = [k for k, count in enumerate(counts) if count < 2]
    if single:
        raise ValueError(f"{what}: oversample {method} interpolates each rare sample with a neighbour of its class, "
                         f"but class index(es) {single} have {counts[single].tolist()} fit sample(s); add images of "
                         "those classes to the fit data, or use --oversample none")
    return int(min(DEFAULT_NEIGHBOURS, counts.min() - 1))


def oversample(embeddings: np.ndarray, targets: np.ndarray, *, method: str, n_classes: int, seed: int,
               what: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Embeddings `[N, D]` and class indices `[N]` with synthetic samples of the rarer classes appended.

    Returns:
        Resampled embeddings `[N', D]`, class indices `[N']`, and what was done (None for "none").

    Raises:
        ValueError: Unknown method, a class with a single sample, or a method that cannot work on this data.
    """
    entry = OVERSAMPLERS[check_method(method)]
    if entry is None:
        return embeddings, targets, None
    counts = np.bincount(targets, minlength=n_classes)
    sampler_class, neighbour_argument = entry
    neighbours = neighbours_for(counts, method=method, what=what)
    sampler = sampler_class(random_state=seed, **{neighbour_argument: neighbours})
    try:
        resampled, resampled_targets = sampler.fit_resample(embeddings, targets)
    except RuntimeError as error:  # ADASYN: no rare sample has a neighbour of another class to weigh it by
        raise ValueError(f"{what}: oversample {method} cannot resample these embeddings ({error}); use "
                         "--oversample smote") from error
    report = {"method": method, "neighbours": neighbours, "seed": seed, "counts_before": counts.tolist(),
              "counts_after": np.bincount(resampled_targets, minlength=n_classes).tolist()}
    return resampled, resampled_targets, report
