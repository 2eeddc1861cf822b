"""Synthetic minority samples for the heads on embeddings (imbalanced-learn's SMOTE, ADASYN, BorderlineSMOTE).

A head with `oversample="smote"` (or adasyn, borderline) interpolates new embeddings of its rarer classes
between a sample and one of its same-class nearest neighbours, up to the size of the largest class. The
cross-validated heads resample inside each fold's fit only (an imbalanced-learn `Pipeline` step,
`Oversampler`), so that no synthetic sample interpolated from a held-out embedding is trained on, and the
final model is refitted on all real samples with the sampler in front; the reject threshold, validation
and test images stay real. The neighbour count is imbalanced-learn's default (5), lowered to the smallest
class size - 1 of the data each fit receives (a fold's training part has fewer samples of the rarest class),
so that a class of a few images can still be interpolated (and borderline's danger neighbours, 10, to the
number of samples - 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE
from sklearn.base import BaseEstimator

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


class Oversampler(BaseEstimator):
    """One method's imbalanced-learn sampler, sized to the data of each fit: an imbalanced-learn `Pipeline` step.

    Each `fit_resample` counts the classes it receives (a cross-validation fold's training part, or all the
    fit samples) and sets the neighbour count to the default, at most the smallest class size - 1. A class
    with a single sample there (a class of 2 or 3 images split into 2 folds) is left as it is in that fit:
    it has no neighbour of its class to interpolate with. The fit on all samples refuses such a class
    instead (`neighbours_for`, called by the heads before anything is fitted).

    Args:
        method: A key of `OVERSAMPLERS` other than "none".
        n_classes: Number of classes `K` (the counts in `report_` have one entry per class).
        seed: Seed of the interpolation.
        what: Who resamples, for error messages (e.g. "knn head").

    Attributes:
        report_: Method, neighbours, seed and class counts before / after of the last `fit_resample`.
    """

    def __init__(self, method: str = "smote", *, n_classes: int = 2, seed: int = 0, what: str = "head") -> None:
        self.method, self.n_classes, self.seed, self.what = method, n_classes, seed, what

    def fit_resample(self, embeddings: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings `[N, D]` and class indices `[N]` -> the same with synthetic samples appended `[N', D]`, `[N']`.

        Raises:
            ValueError: Unknown or "none" method, or a method that cannot work on this data (adasyn).
        """
        entry = OVERSAMPLERS[check_method(self.method)]
        if entry is None:
            raise ValueError(f"{self.what}: Oversampler needs a method of {list(OVERSAMPLERS)[1:]}, got 'none'; "
                             "leave the sampler out of the pipeline instead")
        targets = np.asarray(targets)
        counts = np.bincount(targets, minlength=self.n_classes)
        interpolable = counts[counts >= 2]
        neighbours = int(min(DEFAULT_NEIGHBOURS, interpolable.min() - 1)) if interpolable.size else None
        strategy = _strategy(counts)
        resampled, resampled_targets = embeddings, targets
        if strategy:
            sampler_class, neighbour_argument = entry
            options = {neighbour_argument: neighbours, **_danger_neighbours(sampler_class, len(targets))}
            sampler = sampler_class(sampling_strategy=strategy, random_state=self.seed, **options)
            try:
                resampled, resampled_targets = sampler.fit_resample(embeddings, targets)
            except RuntimeError as error:  # ADASYN: no rare sample has a neighbour of another class to weigh it by
                raise ValueError(f"{self.what}: oversample {self.method} cannot resample these embeddings ({error}); "
                                 "use --oversample smote") from error
        self.report_ = {"method": self.method, "neighbours": neighbours, "seed": self.seed,
                        "counts_before": counts.tolist(),
                        "counts_after": np.bincount(resampled_targets, minlength=self.n_classes).tolist()}
        return resampled, resampled_targets


def _danger_neighbours(sampler_class: type, n_samples: int) -> dict[str, int]:
    """Borderline's `m_neighbors` (neighbours of any class that tell a sample in danger), at most `n_samples` - 1:
    a fold's training part of a small fit set can have fewer samples than its default (10)."""
    defaults = sampler_class().get_params()
    return {"m_neighbors": min(defaults["m_neighbors"], n_samples - 1)} if "m_neighbors" in defaults else {}


def _strategy(counts: np.ndarray) -> str | dict[int, int]:
    """imbalanced-learn's sampling strategy: "auto" (every class up to the largest), without single-sample classes.

    Empty (nothing to resample) when no class with two or more samples is below the largest.
    """
    interpolable = counts >= 2
    if interpolable.all():
        return "auto" if (counts < counts.max()).any() else {}
    return {int(k): int(counts.max()) for k in np.flatnonzero(interpolable & (counts < counts.max()))}

