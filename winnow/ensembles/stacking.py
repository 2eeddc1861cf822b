"""Stacking: a logistic regression on the members' validation probabilities, cross-validated.

Features are the members' log-probabilities, concatenated `[N, M * K]` and standardised. The
regularisation strength is chosen by `LogisticRegressionCV` (log loss, stratified folds);
out-of-fold predictions of that whole procedure (nested cross-validation) are compared with the
plain mean of the members on the same images, so the user sees whether stacking helps before
trusting it (`cv_report_`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from winnow.ensembles.averaging import check_member_probabilities

LOG_FLOOR = 1e-6  # log-probabilities below log(1e-6) carry no information worth a weight
CS = np.logspace(-3, 2, 11)  # regularisation strengths tried (inverse; features standardised)


def stack_features(probabilities: np.ndarray) -> np.ndarray:
    """Members' probabilities `[M, N, K]` -> log-probability features `[N, M * K]`."""
    logs = np.log(np.clip(probabilities, LOG_FLOOR, None))
    return logs.transpose(1, 0, 2).reshape(logs.shape[1], -1)


def stratified_folds(targets: np.ndarray, n_classes: int, *, max_folds: int, seed: int, what: str,
                     min_per_class: int = 2) -> StratifiedKFold:
    """Stratified folds: `max_folds`, fewer when the rarest class has fewer samples.

    Raises:
        ValueError: A class with fewer than `min_per_class` samples (absent included).
    """
    counts = np.bincount(targets, minlength=n_classes)
    if counts.min() < min_per_class:
        missing = [k for k, count in enumerate(counts) if count < min_per_class]
        raise ValueError(f"{what}: every class needs at least {min_per_class} samples in the fit data; class indices "
                         f"{missing} have {counts[missing].tolist()}; pass --data with more labelled images")
    return StratifiedKFold(n_splits=int(min(max_folds, counts.min())), shuffle=True, random_state=seed)


def logistic_cv(folds: StratifiedKFold, *, class_weight: str | None = None) -> LogisticRegressionCV:
    """An L2 logistic regression whose `C` is chosen on `folds` by log loss (expects standardised features)."""
    return LogisticRegressionCV(Cs=CS, cv=folds, scoring="neg_log_loss", class_weight=class_weight, max_iter=2000,
                                l1_ratios=(0.0,), use_legacy_attributes=False)


def scaled_logistic_cv(folds: StratifiedKFold) -> Pipeline:
    """`logistic_cv` on standardised features."""
    return make_pipeline(StandardScaler(), logistic_cv(folds))


def summary_scores(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Log loss, accuracy and balanced accuracy of probabilities `[N, K]`."""
    predicted = probabilities.argmax(axis=1)
    return {"log_loss": float(log_loss(targets, probabilities, labels=list(range(probabilities.shape[1])))),
            "accuracy": float(accuracy_score(targets, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(targets, predicted))}


class StackedLogistic(BaseEstimator):
    """Logistic regression over the members' log-probabilities.

    Args:
        cv: Most cross-validation folds (fewer when a class is rarer).
        seed: Seed of the folds.

    Attributes:
        model_: The fitted pipeline (standardisation, `LogisticRegressionCV`).
        cv_report_: Out-of-fold scores of stacking and of the plain mean on the fit data.
    """

    input_kind = "probabilities"
    fit_split: str | None = "val"

    def __init__(self, *, cv: int = 5, seed: int = 0) -> None:
        self.cv, self.seed = cv, seed

    def fit(self, probabilities: np.ndarray, targets: np.ndarray) -> "StackedLogistic":
        """Fit on members' probabilities `[M, N, K]` and class indices `[N]`."""
        array = check_member_probabilities(probabilities)
        targets = np.asarray(targets, dtype=np.int64)
        self.n_members_, self.n_classes_ = array.shape[0], array.shape[2]
        # 3 per class: the nested cross-validation's inner folds need 2 per class in every outer training fold
        folds = stratified_folds(targets, self.n_classes_, max_folds=self.cv, seed=self.seed, what="stack",
                                 min_per_class=3)
        features = stack_features(array)
        self.model_ = scaled_logistic_cv(folds).fit(features, targets)
        inner = StratifiedKFold(n_splits=max(2, folds.n_splits - 1), shuffle=True, random_state=self.seed)
        out_of_fold = cross_val_predict(scaled_logistic_cv(inner), features, targets, cv=folds,
                                        method="predict_proba")
        self.cv_report_ = self._report(array, targets, out_of_fold, folds.n_splits)
        return self

    def predict_proba(self, probabilities: np.ndarray) -> np.ndarray:
        """Members' probabilities `[M, N, K]` -> stacked probabilities `[N, K]`."""
        check_is_fitted(self, "model_")
        array = check_member_probabilities(probabilities, n_members=self.n_members_, n_classes=self.n_classes_)
        return self.model_.predict_proba(stack_features(array))

    def _report(self, array: np.ndarray, targets: np.ndarray, out_of_fold: np.ndarray, n_folds: int) -> dict[str, Any]:
        return {"folds": n_folds, "n_samples": len(targets), "C": float(self.model_[-1].C_),
                "stack_out_of_fold": summary_scores(out_of_fold, targets),
                "mean_of_members": summary_scores(array.mean(axis=0), targets),
                "members": [summary_scores(member, targets) for member in array]}
