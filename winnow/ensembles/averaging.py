"""Combiners without learned weights: the mean of the members' probabilities, and majority voting.

Both take the members' probabilities `[M, N, K]` (softmax heads; `mean` also multi-label scores) and
return `[N, K]`. They follow scikit-learn's conventions (`fit` returns self, `predict_proba`) but are
stateless: `fit` only records the shape, which `predict_proba` then checks, and is not required.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator


def check_member_probabilities(probabilities: np.ndarray, *, n_members: int | None = None,
                               n_classes: int | None = None) -> np.ndarray:
    """Members' probabilities as a float `[M, N, K]` array.

    Raises:
        ValueError: Not 3-D, non-finite, or `M` / `K` different from the fitted ones.
    """
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"member probabilities: expected [members, samples, classes], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("member probabilities: found NaN or infinite values")
    for name, expected, got in (("members", n_members, array.shape[0]), ("classes", n_classes, array.shape[2])):
        if expected is not None and expected != got:
            raise ValueError(f"member probabilities: fitted with {expected} {name}, got {got}")
    return array


class MeanCombiner(BaseEstimator):
    """Average of the members' probabilities (soft voting)."""

    input_kind = "probabilities"
    fit_split: str | None = None  # nothing to fit

    def fit(self, probabilities: np.ndarray, targets: np.ndarray | None = None, *,
            n_classes: int | None = None) -> "MeanCombiner":
        """Record the number of members and classes of `probabilities` `[M, N, K]` (`K == n_classes` when given)."""
        array = check_member_probabilities(probabilities, n_classes=n_classes)
        self.n_members_, self.n_classes_ = array.shape[0], array.shape[2]
        return self

    def predict_proba(self, probabilities: np.ndarray) -> np.ndarray:
        """`[M, N, K]` -> mean over members `[N, K]`."""
        return self._check(probabilities).mean(axis=0)

    def _check(self, probabilities: np.ndarray) -> np.ndarray:
        return check_member_probabilities(probabilities, n_members=getattr(self, "n_members_", None),
                                          n_classes=getattr(self, "n_classes_", None))


class MajorityVote(MeanCombiner):
    """Hard voting: each member votes for its argmax class; ties go to the higher mean probability.

    The returned scores are `(votes + mean probability) / (M + 1)`: they sum to one, their argmax is
    the majority vote (the mean term, below one, only breaks ties), and a threshold on them reads as
    "at least this share of the members".
    """

    def predict_proba(self, probabilities: np.ndarray) -> np.ndarray:
        """`[M, N, K]` -> vote scores `[N, K]` (see the class docstring)."""
        array = self._check(probabilities)
        votes = np.eye(array.shape[2])[array.argmax(axis=2)].sum(axis=0)
        return (votes + array.mean(axis=0)) / (array.shape[0] + 1)
