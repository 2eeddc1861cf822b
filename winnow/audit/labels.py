"""Label issues: cleanlab's `find_label_issues` on out-of-sample probabilities only.

The probabilities come from a logistic regression fitted K times by cross-validation (each image is
scored by the fit that did not see it; group-aware when the data has groups), on the embeddings of a
run when one is given, else on simple image features. Never on the predictions of a model trained on
the same images: those would repeat the very labels being checked. The candidates are leads for a
person to review, not verdicts.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from winnow.audit.base import WARNING, AuditContext, Check, Issue
from winnow.audit.html import card, gallery, issue_table
from winnow.audit.pu_labels import pu_candidates, pu_scores
from winnow.reporting.html import paragraph

SHOWN = 12
WEAK_ACCURACY = 0.7  # below it the candidates say more about the model than about the labels


def out_of_sample_probabilities(vectors: np.ndarray, labels: np.ndarray, groups: list[str | None], *, folds: int,
                                seed: int) -> tuple[np.ndarray, int]:
    """Cross-validated class probabilities `[n, K]` of a scaled logistic regression, and the folds used.

    Args:
        vectors: `[n, D]` features.
        labels: `[n]` class indices 0..K-1, each class with at least 2 members.
        groups: Group per row (None: its own group); the folds keep a group together.
        folds: Wanted folds (capped by the smallest class).
    """
    splitter, folds = cv_splits(labels, groups, folds=folds, seed=seed)
    probabilities = cross_validated(vectors, labels, splitter)
    return probabilities, folds


def cross_validated(vectors: np.ndarray, labels: np.ndarray, splitter: list) -> np.ndarray:
    """Out-of-fold `predict_proba` `[n, K]` of `scaled_logistic` over the folds `splitter`."""
    # one BLAS thread: the fits are many small products, which threads slow down (70x measured on 2 busy cores)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")  # a group fold may miss a rare class; its columns come back as 0
        return cross_val_predict(scaled_logistic(), vectors, labels, cv=splitter, method="predict_proba")


def scaled_logistic() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))


def cv_splits(labels: np.ndarray, groups: list[str | None], *, folds: int,
              seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Stratified folds `[(train rows, test rows)]` that keep each group together, and their number.

    Args:
        labels: `[n]` class indices, each class with at least 2 members.
        groups: Group per row (None: its own group).
        folds: Wanted folds (capped by the smallest class).
    """
    folds = int(min(folds, np.bincount(labels).min()))
    rows = np.zeros(len(labels))
    if any(group is not None for group in groups):
        names = [group if group is not None else f"__row{i}" for i, group in enumerate(groups)]
        return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(rows, labels, names)), folds
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(rows, labels)), folds


class LabelIssuesCheck(Check):
    """Images whose given label the out-of-sample probabilities doubt, with the label they suggest."""

    name = "labels"
    title = "Label issues"

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        if context.pu:
            return self._find_pu(context)
        samples = context.samples
        vectors, space = context.space()
        counts = Counter(samples.labels[i] for i in context.good)
        classes = sorted(label for label, n in counts.items() if n >= 2)
        rows = np.array([i for i in context.good if samples.labels[i] in classes], dtype=int)
        self.accuracy_: float | None = None
        self.source_ = f"out-of-sample probabilities: cross-validated logistic regression on {space}"
        if len(classes) < 2:
            return [], {"source": self.source_, "line": "skipped: fewer than two classes with 2+ readable images"}
        labels = np.array([classes.index(samples.labels[i]) for i in rows])
        keep = np.isin(context.good, rows)
        probabilities, folds = out_of_sample_probabilities(
            vectors[keep], labels, [samples.groups[i] for i in rows], folds=context.folds, seed=context.seed)
        self.source_ += f" ({folds} folds)"
        self.accuracy_ = float((probabilities.argmax(axis=1) == labels).mean())
        ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
        issues = [self._issue(context, int(rows[j]), classes, labels[j], probabilities[j]) for j in ranked]
        skipped = sorted(set(counts) - set(classes))
        line = (f"{len(issues)} candidate(s) to review among {len(rows)} images ({self.source_}; its accuracy "
                f"{self.accuracy_:.2f})")
        return issues, {"source": self.source_, "folds": folds, "accuracy": self.accuracy_, "candidates": len(issues),
                        "skipped_classes": skipped, "line": line}

    def _find_pu(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        """A PU run: the unlabelled images most likely positive (`winnow.audit.pu_labels`)."""
        self.accuracy_ = None
        self.source_ = (f"out-of-sample P(labelled | x): cross-validated logistic regression on {context.space()[1]}, "
                        f"labelled {context.positive_class} vs unlabelled {context.unlabelled_class}")
        scores = pu_scores(context, lambda vectors, labels, groups: out_of_sample_probabilities(
            vectors, labels, groups, folds=context.folds, seed=context.seed))
        if scores is None:
            return [], {"source": self.source_, "line": "skipped: fewer than 2 readable labelled positives or "
                                                        "unlabelled images"}
        self.source_ += f" ({scores.folds} folds)"
        issues, summary = pu_candidates(context, scores)
        return issues, {"source": self.source_, **summary}

    def _issue(self, context: AuditContext, row: int, classes: list[str], given: int,
               probabilities: np.ndarray) -> Issue:
        best = int(np.argmax(probabilities))
        detail = (f"p(given label {classes[given]}) = {probabilities[given]:.3f}; suggested {classes[best]} "
                  f"with p = {probabilities[best]:.3f}")
        return Issue(context.samples.paths[row], "label", WARNING, float(probabilities[given]), detail,
                     classes[best], float(probabilities[best]), context.samples.labels[row],
                     context.samples.splits[row] or "")

    def _html(self, context: AuditContext) -> str:
        if context.pu:
            return self._html_pu(context)
        note = paragraph(f"Probabilities used: {self.source_}. Candidates are ranked by the probability of their "
                         "given label (score, lowest first). They are leads to review, not verdicts: look at each "
                         "image before relabelling it.")
        if self.accuracy_ is not None and self.accuracy_ < WEAK_ACCURACY:
            note += paragraph(f"These probabilities are weak (out-of-sample accuracy {self.accuracy_:.2f}): most "
                              "candidates will be false leads. Audit with --run RUN, a model trained on this data, "
                              "for probabilities from its embeddings.", css_class="warn")
        cards = [card(issue.path, f"given {issue.label}, suggested {issue.suggested_label} "
                      f"(p {issue.suggested_probability:.2f})", css_class="mistake") for issue in self.issues_[:SHOWN]]
        return note + gallery(cards) + (issue_table(self.issues_) if self.issues_ else paragraph("No candidates."))

    def _html_pu(self, context: AuditContext) -> str:
        positive = context.positive_class
        note = paragraph(f"Positive-unlabelled run: the {context.unlabelled_class} images are unlabelled, not "
                         f"negative, and the labelled {positive} images are trusted. Listed: the unlabelled images "
                         f"most likely {positive}, as many as the prior {context.prior:g} expects, most likely first "
                         f"(score = 1 - P({positive})). Probabilities used: {self.source_}, divided by the label "
                         "frequency (Elkan-Noto). Look at each image before relabelling it.")
        cards = [card(issue.path, f"unlabelled, P({issue.suggested_label}) {issue.suggested_probability:.2f}",
                      css_class="mistake") for issue in self.issues_[:SHOWN]]
        return note + gallery(cards) + (issue_table(self.issues_) if self.issues_ else paragraph("No candidates."))
