"""Bagging PU head on embeddings (`winnow head RUN --kind pu_bagging`; Mordelet & Vert 2014).

Many weak classifiers, each fitted on *all* labelled positives against a same-size random sample
(with replacement) of the unlabelled, averaged. Each unlabelled image is out of most bags: its
out-of-bag score (the mean P(positive) of the bags that did not draw it) is an honest ranking of
the unlabelled pile, `oob_scores_`, with no image scored by a classifier that saw it labelled.

The weak classifier is scikit-learn's `DecisionTreeClassifier` (as pulearn's `BaggingPuClassifier`
uses by default; pulearn itself is not a dependency of winnow). The positive class is the last
class (index K - 1 = 1), as in a binary run; class 0 is the unlabelled. Novelty: distance to the
nearest class mean of the standardised embeddings, as the logistic and svm heads.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from winnow.constraints import Interval
from winnow.embeddings.base import SEED, EmbeddingHead, nearest_distance


class PUBaggingHead(EmbeddingHead):
    """Bagging PU on embeddings `[N, D]` with targets 1 = labelled positive, 0 = unlabelled.

    Args:
        n_estimators: bags (classifiers).
        max_depth: depth of each tree (None: grown fully).
        seed: seed of the unlabelled samples and of the trees.
        oversample: must stay "none" (synthetic unlabelled images mean nothing).

    Attributes:
        estimators_: the fitted trees.
        oob_scores_: out-of-bag P(positive) `[N]` of the fit samples (NaN for positives and for an
            unlabelled sample drawn by every bag).
        scaler_, centroids_: the standardisation and class means `[2, D]` of the novelty score.
    """

    kind = "pu_bagging"
    novelty_description = "distance to the nearest class mean (standardised embeddings)"
    _parameter_constraints = {"n_estimators": [Interval(Integral, 1, None, closed="left")],
                              "max_depth": [None, Interval(Integral, 1, None, closed="left")],
                              "seed": SEED, "oversample": [str]}

    def __init__(self, *, n_estimators: int = 100, max_depth: int | None = None, seed: int = 0,
                 oversample: str = "none") -> None:
        self.n_estimators, self.max_depth, self.seed, self.oversample = n_estimators, max_depth, seed, oversample

    def _fit(self, array: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        if self.n_classes_ != 2 or self.oversample != "none":
            raise ValueError(f"pu_bagging head: needs exactly 2 classes (unlabelled, then the labelled positives) and "
                             f"oversample 'none', got {self.n_classes_} classes and oversample {self.oversample!r}; "
                             "fit it on a binary PU run (winnow train --head binary --pu)")
        rng = np.random.default_rng(self.seed)
        positives, unlabelled = np.flatnonzero(targets == 1), np.flatnonzero(targets == 0)
        base = DecisionTreeClassifier(max_depth=self.max_depth)
        sums, counts, self.estimators_ = np.zeros(len(array)), np.zeros(len(array)), []
        for i in range(self.n_estimators):
            drawn = rng.choice(unlabelled, len(positives))
            index = np.concatenate([positives, drawn])
            tree = clone(base).set_params(random_state=self.seed + i).fit(array[index], targets[index])
            self.estimators_.append(tree)
            out = np.setdiff1d(unlabelled, drawn)
            sums[out] += tree.predict_proba(array[out])[:, 1]
            counts[out] += 1
        self.oob_scores_ = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        self.scaler_ = StandardScaler().fit(array)
        scaled = self.scaler_.transform(array)
        self.centroids_ = np.stack([scaled[targets == k].mean(axis=0) for k in (0, 1)])
        return {"chosen": {"n_estimators": self.n_estimators, "max_depth": self.max_depth}, "folds": None,
                "oob_unlabelled": int(np.isfinite(self.oob_scores_).sum()),
                "oob_mean_unlabelled": float(np.nanmean(self.oob_scores_)) if counts.any() else None}

    def _proba(self, array: np.ndarray) -> np.ndarray:
        positive = np.mean([tree.predict_proba(array)[:, 1] for tree in self.estimators_], axis=0)
        return np.stack([1 - positive, positive], axis=1)

    def _novelty(self, array: np.ndarray) -> np.ndarray:
        return nearest_distance(self.scaler_.transform(array), self.centroids_)
