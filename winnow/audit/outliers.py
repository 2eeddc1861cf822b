"""Outliers: images far from their nearest neighbours in the embedding space (or the simple image features).

The score of an image is its mean distance to its k nearest other images (features scaled to unit
variance first); an image is flagged when its robust z-score, (score - median) / (1.4826 MAD), is above
`z_min`. All images are ranked in review.csv; the farthest are shown in a gallery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler

from winnow.audit.base import WARNING, AuditContext, Check, Issue
from winnow.audit.html import card, gallery, issue_table
from winnow.audit.neighbours import nearest
from winnow.reporting.html import paragraph

SHOWN = 12


def robust_z(scores: np.ndarray) -> np.ndarray:
    """(scores - median) / (1.4826 * median absolute deviation) `[n]`; 0 where the scores do not vary."""
    median = np.median(scores)
    spread = 1.4826 * np.median(np.abs(scores - median))
    return (scores - median) / spread if spread > 0 else np.zeros_like(scores)


class OutlierCheck(Check):
    """Images unlike the rest of the dataset (foreign images, wrong modality, crops gone wrong).

    Args:
        k: Neighbours averaged.
        z_min: Robust z-score above which an image is flagged.
    """

    name = "outliers"
    title = "Outliers"

    def __init__(self, k: int = 5, z_min: float = 6.0) -> None:
        self.k, self.z_min = k, z_min

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        vectors, self.space_ = context.space()
        if len(vectors) <= self.k:
            return [], {"line": f"skipped: {len(vectors)} readable images, need more than k={self.k}"}
        distances, _ = nearest(StandardScaler().fit_transform(vectors), self.k)
        scores = distances.mean(axis=1)
        z = robust_z(scores)
        order = np.argsort(-z, kind="stable")
        samples, good = context.samples, context.good
        issues = [Issue(samples.paths[good[j]], "outlier", WARNING, float(z[j]),
                        f"mean distance to its {self.k} nearest images {scores[j]:.3g} (robust z {z[j]:.1f}, "
                        f"median {np.median(scores):.3g})", label=samples.labels[good[j]],
                        split=samples.splits[good[j]] or "") for j in order if z[j] > self.z_min]
        line = f"{len(issues)} image(s) far from the rest (robust z > {self.z_min:g}, {self.space_})"
        return issues, {"space": self.space_, "k": self.k, "z_min": self.z_min, "line": line}

    def _html(self, context: AuditContext) -> str:
        note = paragraph(f"Mean distance to the {self.k} nearest images in {self.space_}; flagged above a robust "
                         f"z-score of {self.z_min:g}, farthest first.")
        cards = [card(issue.path, f"{issue.split} / {issue.label}, z {issue.score:.1f}", css_class="mistake")
                 for issue in self.issues_[:SHOWN]]
        return note + gallery(cards) + (issue_table(self.issues_) if self.issues_ else paragraph("No outliers."))
