"""Outliers: images far from their nearest neighbours in the embedding space (or the simple image features),
and, when the run is an autoencoder pretrain, images the autoencoder reconstructs badly.

The kNN score of an image is its mean distance to its k nearest other images (features scaled to unit
variance first); the reconstruction score is the autoencoder's error on it. Each signal ranks every image
and flags by its own robust z-score, (score - median) / (1.4826 MAD), above `z_min`. The two are not merged
into one number (their distributions differ, so neither a sum nor an average of z-scores would mean much):
an image is listed once, with both z-scores, both ranks and the signal(s) that flagged it; images both
signals flag come first, then the larger z-score. All flagged images are ranked in review.csv; the first are
shown in a gallery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler

from winnow.audit.base import WARNING, AuditContext, Check, Issue
from winnow.audit.html import card, gallery, issue_table
from winnow.audit.neighbours import nearest
from winnow.reporting.html import paragraph, table

SHOWN = 12
KNN, RECONSTRUCTION = "knn", "reconstruction"
COMBINATION = ("each signal flags by its own robust z-score; an image is listed once with both z-scores and "
               "ranks; images both signals flag come first, then the larger z-score (the scores are not merged)")


def robust_z(scores: np.ndarray) -> np.ndarray:
    """(scores - median) / (1.4826 * median absolute deviation) `[n]`; 0 where the scores do not vary."""
    median = np.median(scores)
    spread = 1.4826 * np.median(np.abs(scores - median))
    return (scores - median) / spread if spread > 0 else np.zeros_like(scores)


def ranks(scores: np.ndarray) -> np.ndarray:
    """`[n]` rank of each score, 1 for the largest (ties in row order)."""
    order = np.argsort(-scores, kind="stable")
    result = np.empty(len(scores), int)
    result[order] = np.arange(1, len(scores) + 1)
    return result


class OutlierCheck(Check):
    """Images unlike the rest of the dataset (foreign images, wrong modality, crops gone wrong).

    Args:
        k: Neighbours averaged.
        z_min: Robust z-score above which an image is flagged (by either signal).
    """

    name = "outliers"
    title = "Outliers"

    def __init__(self, k: int = 5, z_min: float = 6.0) -> None:
        self.k, self.z_min = k, z_min

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        vectors, self.space_ = context.space()
        self.signals_: dict[str, dict[str, Any]] = {}
        if len(vectors) <= self.k:
            return [], {"line": f"skipped: {len(vectors)} readable images, need more than k={self.k}"}
        distances, _ = nearest(StandardScaler().fit_transform(vectors), self.k)
        self._add_signal(KNN, distances.mean(axis=1), f"mean distance to the {self.k} nearest images in {self.space_}")
        if context.reconstruction is not None:
            self._add_signal(RECONSTRUCTION, context.reconstruction[context.good],
                             f"reconstruction error by {context.embedding_source}")
        flagged = [j for j in range(len(vectors)) if self._flagged_by(j)]
        flagged.sort(key=lambda j: (-len(self._flagged_by(j)), -self._top_z(j), j))
        issues = [self._issue(context, j) for j in flagged]
        summary = {"space": self.space_, "k": self.k, "z_min": self.z_min}
        if len(self.signals_) == 1:
            line = f"{len(issues)} image(s) far from the rest (robust z > {self.z_min:g}, {self.space_})"
            return issues, {**summary, "line": line}
        return issues, {**summary, **self._both_summary(context, flagged), "line": self._both_line(flagged)}

    def _add_signal(self, name: str, scores: np.ndarray, source: str) -> None:
        self.signals_[name] = {"source": source, "scores": scores, "z": robust_z(scores), "ranks": ranks(scores),
                               "median": float(np.median(scores))}

    def _flagged_by(self, j: int) -> list[str]:
        return [name for name, signal in self.signals_.items() if signal["z"][j] > self.z_min]

    def _top_z(self, j: int) -> float:
        return max(float(signal["z"][j]) for signal in self.signals_.values())

    def _issue(self, context: AuditContext, j: int) -> Issue:
        samples, row = context.samples, context.good[j]
        return Issue(samples.paths[row], "outlier", WARNING, self._top_z(j), self._detail(j),
                     label=samples.labels[row], split=samples.splits[row] or "")

    def _detail(self, j: int) -> str:
        knn, n = self.signals_[KNN], len(self.signals_[KNN]["scores"])
        if len(self.signals_) == 1:
            return (f"mean distance to its {self.k} nearest images {knn['scores'][j]:.3g} (robust z "
                    f"{knn['z'][j]:.1f}, median {knn['median']:.3g})")
        what = {KNN: f"mean distance to its {self.k} nearest images", RECONSTRUCTION: "reconstruction error"}
        parts = [f"{what[name]} {signal['scores'][j]:.3g} (robust z {signal['z'][j]:.1f}, rank {signal['ranks'][j]} "
                 f"of {n}, median {signal['median']:.3g})" for name, signal in self.signals_.items()]
        return f"flagged by {' and '.join(self._flagged_by(j))}: " + "; ".join(parts)

    def _both_summary(self, context: AuditContext, flagged: list[int]) -> dict[str, Any]:
        signals = {name: {"source": signal["source"], "flagged": sum(name in self._flagged_by(j) for j in flagged)}
                   for name, signal in self.signals_.items()}
        rows = [{"path": context.samples.paths[context.good[j]], "flagged_by": self._flagged_by(j),
                 **{f"{name}_{key}": (float(signal["z"][j]) if key == "z" else int(signal["ranks"][j]))
                    for name, signal in self.signals_.items() for key in ("z", "rank")}} for j in flagged]
        return {"signals": signals, "both": sum(len(self._flagged_by(j)) == 2 for j in flagged),
                "combination": COMBINATION, "flagged": rows}

    def _both_line(self, flagged: list[int]) -> str:
        by = {name: sum(name in self._flagged_by(j) for j in flagged) for name in self.signals_}
        both = sum(len(self._flagged_by(j)) == 2 for j in flagged)
        return (f"{len(flagged)} image(s) far from the rest (robust z > {self.z_min:g} on either signal: {by[KNN]} by "
                f"kNN distance in {self.space_}, {by[RECONSTRUCTION]} by the autoencoder's reconstruction error, "
                f"{both} by both)")

    def _html(self, context: AuditContext) -> str:
        if len(self.signals_) < 2:
            note = paragraph(f"Mean distance to the {self.k} nearest images in {self.space_}; flagged above a robust "
                             f"z-score of {self.z_min:g}, farthest first.")
            cards = [card(issue.path, f"{issue.split} / {issue.label}, z {issue.score:.1f}", css_class="mistake")
                     for issue in self.issues_[:SHOWN]]
            return note + gallery(cards) + (issue_table(self.issues_) if self.issues_ else paragraph("No outliers."))
        return self._both_html()

    def _both_html(self) -> str:
        sources = "; ".join(f"{name}, the {signal['source']}" for name, signal in self.signals_.items())
        note = paragraph(f"Two signals: {sources}. Flagged above a robust z-score of {self.z_min:g}: {COMBINATION}.")
        rows = self.summary_["flagged"]
        cards = [card(issue.path, f"{issue.split} / {issue.label}, by {' + '.join(row['flagged_by'])}, "
                      f"z {issue.score:.1f}", css_class="mistake") for issue, row in zip(self.issues_[:SHOWN], rows)]
        signal_table = table([{"path": row["path"], "flagged by": " + ".join(row["flagged_by"]),
                               **{f"{name} {key}": row[f"{name}_{key}"] for name in self.signals_
                                  for key in ("z", "rank")}} for row in rows])
        body = gallery(cards) + signal_table if rows else paragraph("No outliers.")
        return note + body + (issue_table(self.issues_) if self.issues_ else "")
