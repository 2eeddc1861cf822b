"""Shift between splits: can a classifier tell split A's images from split B's?

For each pair of splits, a scaled logistic regression is cross-validated on "which split is this
image from" (group-aware folds), on the simple image statistics and, with a run, on its embeddings.
Its ROC AUC (with a bootstrap interval) is 0.5 when the splits are indistinguishable; well above, the
model will be scored on other images than it learnt from. The statistic that differs most is named in
words. Class proportions per split are tabled too.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from winnow.audit.base import WARNING, AuditContext, Check, Issue
from winnow.audit.facts import STAT_NAMES
from winnow.audit.html import issue_table
from winnow.audit.labels import cross_validated, cv_splits
from winnow.reporting.html import paragraph, table

MIN_IMAGES = 5  # per split, for a cross-validated classifier
WORDS = {  # statistic: (when B is higher, when B is lower, what is compared)
    "intensity": ("brighter", "darker", "median intensity"),
    "background": ("on a lighter background", "on a darker background", "median background level"),
    "contrast": ("more contrasted", "less contrasted", "median contrast (gray-level std)"),
    "size": ("larger", "smaller", "median size (sqrt of pixel count)"),
    "aspect": ("wider", "narrower", "median aspect (width / height)"),
    "channels": ("more often colour", "more often grayscale", "share of colour images"),
}


def bootstrap_auc(y: np.ndarray, scores: np.ndarray, *, n: int, confidence: float,
                  rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of the ROC AUC over `n` resamples of the rows (resamples of one class skipped)."""
    values = []
    for _ in range(n):
        picked = rng.integers(0, len(y), len(y))
        if 0 < y[picked].sum() < len(picked):
            values.append(roc_auc_score(y[picked], scores[picked]))
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def describe_difference(name: str, a: str, b: str, values_a: np.ndarray, values_b: np.ndarray) -> str:
    """The difference of one statistic in words: "val images are brighter: median intensity 171 vs 132"."""
    higher, lower, what = WORDS[name]
    centre = np.mean if name == "channels" else np.median
    value_a, value_b = float(centre(values_a)), float(centre(values_b))
    shown = (lambda v: f"{(v - 1) / 2:.0%}") if name == "channels" else (lambda v: f"{v:.3g}")
    return (f"{b} images are {higher if value_b > value_a else lower} than {a}'s: {what} "
            f"{shown(value_b)} vs {shown(value_a)}")


class ShiftCheck(Check):
    """Split-vs-split classifiers and class proportions.

    Args:
        auc_warn: Lower bound of the AUC interval above which a pair is flagged.
        n_bootstrap: Resamples of the interval.
        confidence: Coverage of the interval.
    """

    name = "shift"
    title = "Shift between splits"

    def __init__(self, auc_warn: float = 0.6, n_bootstrap: int = 200, confidence: float = 0.95) -> None:
        self.auc_warn, self.n_bootstrap, self.confidence = auc_warn, n_bootstrap, confidence

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        self.proportions_ = self._proportions(context)
        splits = [s for s in context.splits() if sum(context.samples.splits[i] == s for i in context.good)
                  >= MIN_IMAGES]
        self.pairs_ = [self._pair(context, a, b, space) for a, b in combinations(splits, 2)
                       for space in self._spaces(context)]
        issues = [Issue("", "shift", WARNING, pair["auc"], pair["sentence"], split=f"{pair['a']}/{pair['b']}")
                  for pair in self.pairs_ if pair["low"] > self.auc_warn]
        worst = max(self.pairs_, key=lambda pair: pair["auc"], default=None)
        line = (f"{len(issues)} of {len(self.pairs_)} split comparison(s) tell the splits apart"
                + (f"; highest AUC {worst['auc']:.2f} ({worst['a']} vs {worst['b']}, {worst['space']})" if worst
                   else ""))
        return issues, {"pairs": self.pairs_, "proportions": self.proportions_, "line": line}

    @staticmethod
    def _spaces(context: AuditContext) -> list[str]:
        return ["image statistics", *(["embeddings"] if context.embeddings is not None else [])]

    def _pair(self, context: AuditContext, a: str, b: str, space: str) -> dict[str, Any]:
        samples = context.samples
        rows = np.array([i for i in context.good if samples.splits[i] in (a, b)])
        y = np.array([samples.splits[i] == b for i in rows], dtype=int)
        stats = np.stack([context.facts.stats[name][rows] for name in STAT_NAMES], axis=1)
        vectors = stats if space == "image statistics" else context.embeddings[rows]
        splitter, _ = cv_splits(y, [samples.groups[i] for i in rows], folds=context.folds, seed=context.seed)
        scores = cross_validated(vectors, y, splitter)[:, 1]
        auc = float(roc_auc_score(y, scores))
        low, high = bootstrap_auc(y, scores, n=self.n_bootstrap, confidence=self.confidence,
                                  rng=np.random.default_rng(context.seed))
        named = self._most_different(stats, y)
        difference = describe_difference(named, a, b, stats[y == 0, STAT_NAMES.index(named)],
                                         stats[y == 1, STAT_NAMES.index(named)])
        sentence = f"{a} vs {b} on {space}: AUC {auc:.2f} [{low:.2f}, {high:.2f}]; most different: {difference}"
        return {"a": a, "b": b, "space": space, "auc": auc, "low": low, "high": high, "statistic": named,
                "difference": difference, "sentence": sentence}

    @staticmethod
    def _most_different(stats: np.ndarray, y: np.ndarray) -> str:
        """The statistic whose own AUC is farthest from 0.5."""
        separations = [abs(roc_auc_score(y, column) - 0.5) if np.ptp(column) > 0 else 0.0 for column in stats.T]
        return STAT_NAMES[int(np.argmax(separations))]

    @staticmethod
    def _proportions(context: AuditContext) -> dict[str, dict[str, float]]:
        """`{split: {class: share of the split's images}}`."""
        samples = context.samples
        counts = Counter((samples.splits[i], samples.labels[i]) for i in context.good)
        classes = sorted(set(samples.labels))
        proportions = {}
        for split in context.splits():
            total = sum(counts[split, label] for label in classes)
            proportions[split] = {label: counts[split, label] / max(1, total) for label in classes}
        return proportions

    def _html(self, context: AuditContext) -> str:
        body = paragraph("ROC AUC of a cross-validated classifier telling two splits apart (0.5: "
                         f"indistinguishable), with a {self.confidence:.0%} bootstrap interval; flagged when the "
                         f"interval's low end is above {self.auc_warn:g}.")
        body += table([{"splits": f"{pair['a']} vs {pair['b']}", "on": pair["space"], "AUC": pair["auc"],
                        "low": pair["low"], "high": pair["high"], "most different": pair["difference"]}
                       for pair in self.pairs_]) if self.pairs_ else paragraph("fewer than two splits to compare")
        body += paragraph("Class proportions per split:")
        body += table([{"split": split, **{label: f"{share:.1%}" for label, share in shares.items()}}
                       for split, shares in self.proportions_.items()])
        return body + (issue_table(self.issues_) if self.issues_ else "")
