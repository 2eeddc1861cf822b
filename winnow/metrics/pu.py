"""Validation measures of a positive-unlabelled split: labelled positives against unlabelled, no negatives.

With the unlabelled set a mixture ``U = pi * P + (1 - pi) * N`` (``pi`` the class prior), the AUC of
labelled positives against unlabelled images is ``AUC_PU = pi / 2 + (1 - pi) * AUC_PN``, so
``AUC_PN = (AUC_PU - pi / 2) / (1 - pi)`` (Menon et al. 2015, Jain et al. 2017): `pu_auc` estimates
the usual ROC AUC without a single true negative. `pu_recall` is the recall of the labelled
positives among the images predicted positive when the top ``rate`` of the whole split is taken,
with ``rate`` the expected share of positives ``(n_p + pi * n_u) / n``; a better ranking finds more.
Both are monotone in the ranking quality and drive best.pt in PU runs (`select_metric`) and
`winnow select` on a PU split. `threshold_for_prior` is the score above which the top ``pi`` of the
unlabelled lie: the decision threshold an assumed prior gives.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def pu_auc(scores: np.ndarray, labelled: np.ndarray, prior: float) -> float:
    """Prior-corrected AUC of labelled positives `[N]` (1) against unlabelled (0); NaN without both."""
    labelled = np.asarray(labelled).astype(bool)
    if labelled.all() or not labelled.any():
        return float("nan")
    raw = roc_auc_score(labelled, np.asarray(scores, dtype=float))
    return float(np.clip((raw - prior / 2) / (1 - prior), 0.0, 1.0))  # a sample's raw AUC can pass 1 - pi / 2


def pu_recall(scores: np.ndarray, labelled: np.ndarray, prior: float) -> float:
    """Share of labelled positives `[N]` in the top `(n_p + prior * n_u) / n` of `scores`; NaN without positives."""
    scores, labelled = np.asarray(scores, dtype=float), np.asarray(labelled).astype(bool)
    if not labelled.any():
        return float("nan")
    expected = int(round(labelled.sum() + prior * (~labelled).sum()))
    top = np.argsort(-scores, kind="stable")[:max(expected, 1)]
    return float(labelled[top].sum() / labelled.sum())


def threshold_for_prior(unlabelled_scores: np.ndarray, prior: float) -> float:
    """The score of the `max(1, round(prior * n))`-th highest of the unlabelled scores `[n]`.

    Predicting positive at scores >= it takes the top `prior` share of the unlabelled (ties may add some).
    """
    scores = np.sort(np.asarray(unlabelled_scores, dtype=float))[::-1]
    return float(scores[min(max(int(round(prior * len(scores))), 1), len(scores)) - 1])
