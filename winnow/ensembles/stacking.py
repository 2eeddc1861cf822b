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
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from winnow.embeddings.model_selection import logistic_cv, stratified_folds
from winnow.ensembles.averaging import check_member_probabilities

LOG_FLOOR = 1e-6  # log-probabilities below log(1e-6) carry no information worth a weight


def stack_features(probabilities: np.ndarray) -> np.ndarray:
    """Members' probabilities `[M, N, K]` -> log-probability features `[N, M * K]`."""
    logs = np.log(np.clip(probabilities, LOG_FLOOR, None))
    return logs.transpose(1, 0, 2).reshape(logs.shape[1], -1)


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

    def fit(self, probabilities: np.ndarray, targets: np.ndarray, *,
            n_classes: int | None = None) -> "StackedLogistic":
        """Fit on members' probabilities `[M, N, K]` and class indices `[N]` (`K == n_classes` when given)."""
        array = check_member_probabilities(probabilities, n_classes=n_classes)
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
