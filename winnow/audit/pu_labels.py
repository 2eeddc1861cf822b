"""Label issues of a positive-unlabelled run: the unlabelled images most likely to be positive.

With a PU run (`winnow train --pu`) the other label is not "negative" but "unlabelled", and the
labelled positives are trusted (the SCAR assumption: they are a random sample of the positives).
So only the unlabelled images are candidates, ranked by an out-of-sample ``g(x) = P(labelled | x)``
(the audit's cross-validated logistic regression, labelled positives against unlabelled). Under
SCAR ``g(x) = c * P(positive | x)`` with ``c`` the label frequency (Elkan & Noto 2008), estimated as
the mean ``g`` of the held-out labelled positives; so ``g`` ranks the unlabelled exactly as
``P(positive | x)`` does and ``g / c`` estimates it. The run's prior says how many hidden positives
to expect: the first ``ceil(prior * n_unlabelled)`` are listed, most likely positive first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from winnow.audit.base import WARNING, AuditContext, Issue
from winnow.metrics.pu import pu_auc


@dataclass
class PUScores:
    """Out-of-sample scores of the rows a PU audit ranks.

    Attributes:
        rows: `[n]` row indices into the context's samples (readable, labelled positive or unlabelled).
        labelled: `[n]` True for a labelled positive.
        g: `[n]` out-of-sample P(labelled | x).
        label_frequency: `c`, the mean `g` of the labelled positives.
        folds: Cross-validation folds used.
    """

    rows: np.ndarray
    labelled: np.ndarray
    g: np.ndarray
    label_frequency: float
    folds: int

    @property
    def positive(self) -> np.ndarray:
        """`[n]` estimated P(positive | x): `g / c` clipped to [0, 1] (rank by `g`: the clip makes ties)."""
        return np.clip(self.g / self.label_frequency, 0.0, 1.0)


def pu_scores(context: AuditContext, probabilities_of) -> PUScores | None:
    """Out-of-sample P(positive | x) of the readable positives and unlabelled; None with < 2 of either.

    Args:
        context: The audit's context with `positive_class` and `unlabelled_class` set.
        probabilities_of: `(vectors [n, D], labels [n], groups) -> (probabilities [n, 2], folds)` (the label
            check's cross-validated logistic regression).
    """
    samples = context.samples
    vectors, _ = context.space()
    keep = np.array([samples.labels[i] in (context.positive_class, context.unlabelled_class) for i in context.good])
    rows = context.good[keep]
    labelled = np.array([samples.labels[i] == context.positive_class for i in rows], dtype=bool)
    if labelled.sum() < 2 or (~labelled).sum() < 2:
        return None
    probabilities, folds = probabilities_of(vectors[keep], labelled.astype(int), [samples.groups[i] for i in rows])
    g = probabilities[:, 1]
    return PUScores(rows, labelled, g, float(max(g[labelled].mean(), 1e-6)), folds)


def pu_candidates(context: AuditContext, scores: PUScores) -> tuple[list[Issue], dict[str, Any]]:
    """The first `ceil(prior * n_unlabelled)` unlabelled rows by P(positive), as label issues, and a summary."""
    unlabelled = np.flatnonzero(~scores.labelled)
    order = unlabelled[np.argsort(-scores.g[unlabelled], kind="stable")]
    expected = int(np.ceil(context.prior * len(unlabelled)))
    issues = [_issue(context, scores, j, rank, len(unlabelled), expected)
              for rank, j in enumerate(order[:expected], start=1)]
    auc = pu_auc(scores.g, scores.labelled, context.prior)
    line = (f"{len(issues)} unlabelled image(s) most likely positive among {len(unlabelled)} (prior "
            f"{context.prior:g}; PU run: labelled {context.positive_class} vs unlabelled {context.unlabelled_class}, "
            f"prior-corrected AUC {auc:.2f})")
    return issues, {"candidates": len(issues), "unlabelled": int(len(unlabelled)), "prior": context.prior,
                    "label_frequency": scores.label_frequency, "pu_auc": auc, "folds": scores.folds, "line": line}


def _issue(context: AuditContext, scores: PUScores, j: int, rank: int, n_unlabelled: int, expected: int) -> Issue:
    row, positive = int(scores.rows[j]), float(scores.positive[j])
    detail = (f"unlabelled, P({context.positive_class}) = {positive:.3f} (out-of-sample); rank {rank} of "
              f"{n_unlabelled} unlabelled; the prior expects about {expected} positive(s) among them")
    return Issue(context.samples.paths[row], "label", WARNING, 1.0 - positive, detail, context.positive_class,
                 positive, context.samples.labels[row], context.samples.splits[row] or "")
