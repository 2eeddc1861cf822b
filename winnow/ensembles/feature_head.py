"""A classifier fitted on frozen embeddings of one or more runs ("features + SVM / logistic").

The embeddings are the models' pooled pre-logits features (`forward_head(pre_logits=True)`),
concatenated over the members `[N, D]`, standardised, then classified by an RBF SVM (the
regularisation `C` picked by stratified cross-validation on balanced accuracy, then refitted with
probabilities from Platt scaling on out-of-fold decision values) or by a cross-validated logistic regression. Classes are weighted
"balanced" by default, since the data this is for is rarely balanced.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from winnow.ensembles.stacking import logistic_cv, stratified_folds

CLASSIFIERS = ("svm", "logistic")
SVM_CS = (0.1, 1.0, 10.0)


def check_embeddings(embeddings: np.ndarray, *, n_features: int | None = None) -> np.ndarray:
    """Embeddings as a finite float `[N, D]` array.

    Raises:
        ValueError: Not 2-D, non-finite, or `D` different from the fitted one.
    """
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"embeddings: expected [samples, features], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("embeddings: found NaN or infinite values")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"embeddings: fitted on {n_features} features, got {array.shape[1]}")
    return array


class EmbeddingClassifier(BaseEstimator):
    """SVM or logistic regression on standardised embeddings.

    Args:
        classifier: "svm" (RBF kernel) or "logistic".
        class_weight: "balanced" or None.
        cv: Most cross-validation folds for choosing `C`.
        seed: Seed of the folds.

    Attributes:
        model_: The fitted scikit-learn pipeline.
        cv_report_: Folds, chosen `C` and its cross-validated score.
    """

    input_kind = "embeddings"
    fit_split: str | None = "train"

    def __init__(self, *, classifier: str = "svm", class_weight: str | None = "balanced", cv: int = 5,
                 seed: int = 0) -> None:
        self.classifier, self.class_weight, self.cv, self.seed = classifier, class_weight, cv, seed

    def fit(self, embeddings: np.ndarray, targets: np.ndarray) -> "EmbeddingClassifier":
        """Fit on embeddings `[N, D]` and class indices `[N]` (every class of the run must be present)."""
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier: expected one of {list(CLASSIFIERS)}, got {self.classifier!r}")
        array, targets = check_embeddings(embeddings), np.asarray(targets, dtype=np.int64)
        self.n_features_, self.n_classes_ = array.shape[1], int(targets.max()) + 1
        folds = stratified_folds(targets, self.n_classes_, max_folds=self.cv, seed=self.seed, what="svm")
        self.model_, self.cv_report_ = (self._fit_svm if self.classifier == "svm" else self._fit_logistic)(
            array, targets, folds)
        return self

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings `[N, D]` -> probabilities `[N, K]`."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(check_embeddings(embeddings, n_features=self.n_features_))

    def _fit_svm(self, array: np.ndarray, targets: np.ndarray, folds) -> tuple[Pipeline, dict]:
        search = GridSearchCV(make_pipeline(StandardScaler(), SVC(class_weight=self.class_weight)),
                              {"svc__C": list(SVM_CS)}, scoring="balanced_accuracy", cv=folds, refit=False)
        search.fit(array, targets)
        best_c = search.best_params_["svc__C"]
        calibrated = CalibratedClassifierCV(SVC(C=best_c, class_weight=self.class_weight), method="sigmoid",
                                            cv=folds, ensemble=False)
        model = make_pipeline(StandardScaler(), calibrated).fit(array, targets)
        return model, {"classifier": "svm", "folds": folds.n_splits, "C": best_c,
                       "cv_balanced_accuracy": float(search.best_score_)}

    def _fit_logistic(self, array: np.ndarray, targets: np.ndarray, folds) -> tuple[Pipeline, dict]:
        logistic = logistic_cv(folds, class_weight=self.class_weight)
        model = make_pipeline(StandardScaler(), logistic).fit(array, targets)
        mean_scores = logistic.scores_.mean(axis=0)  # [n_l1_ratios, n_cs], averaged over folds
        return model, {"classifier": "logistic", "folds": folds.n_splits, "C": float(logistic.C_),
                       "cv_log_loss": float(-mean_scores.max())}
