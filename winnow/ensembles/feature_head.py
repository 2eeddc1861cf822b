"""Method svm: a head on the frozen embeddings of one or more runs ("features + SVM / knn / ...").

The embeddings are the models' pooled pre-logits features (`forward_head(pre_logits=True)`),
concatenated over the members `[N, D]`. The classifier is any head of `winnow.embeddings.heads`
(`--classifier`: svm by default, logistic, knn, centroid, gmm); this combiner only adapts it to the
ensemble machinery (what it reads, which split it is fitted on) and, per TTA view, to its reject option.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from winnow.constraints import Options, check_value
from winnow.embeddings.base import EmbeddingHead
from winnow.embeddings.heads import HEADS, make_head

CLASSIFIERS = tuple(HEADS)
NOT_FITTED = "This %(name)s is not fitted yet: call fit(embeddings [N, D], class indices [N]) first"


def check_classifier(classifier: str) -> str:
    """A kind of head on embeddings.

    Raises:
        InvalidParameterError: Not a kind of `winnow.embeddings.heads.HEADS` (the message lists them).
    """
    return check_value("classifier", classifier, [Options(HEADS)], hint="pass a head kind of `winnow head --kind`")


class EmbeddingClassifier(BaseEstimator):
    """A head on embeddings, as an ensemble combiner.

    Args:
        classifier: A kind of `winnow.embeddings.heads.HEADS`, with its default parameters.
        seed: Seed of the head's folds / initialisation / oversampling.
        oversample: Synthetic minority samples in each of the head's fits, CV folds included: "none", "smote",
            "adasyn" or "borderline" (`winnow.embeddings.oversample`).

    Attributes:
        head_: The fitted head (its `reject_threshold_` once `fit_reject` ran).
        cv_report_: The head's cross-validation report.
        n_classes_: Number of classes it was fitted on.
    """

    input_kind = "embeddings"
    fit_split: str | None = "train"

    def __init__(self, *, classifier: str = "svm", seed: int = 0, oversample: str = "none") -> None:
        self.classifier, self.seed, self.oversample = classifier, seed, oversample

    def fit(self, embeddings: np.ndarray, targets: np.ndarray, *,
            n_classes: int | None = None) -> "EmbeddingClassifier":
        """Fit the head on embeddings `[N, D]` and class indices `[N]` (every class needs `min_per_class` samples)."""
        check_classifier(self.classifier)
        head = make_head(self.classifier, seed=self.seed, oversample=self.oversample)
        self.head_ = head.fit(embeddings, targets, n_classes=n_classes)
        self.cv_report_, self.n_classes_ = self.head_.cv_report_, self.head_.n_classes_
        return self

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings `[N, D]` -> probabilities `[N, K]`."""
        return self._head().predict_proba(embeddings)

    def fit_reject(self, embeddings: np.ndarray, targets: np.ndarray, *, tpr: float) -> "EmbeddingClassifier":
        """Fit the head's reject threshold on known-class embeddings `[N, D]` (see `EmbeddingHead.fit_reject`)."""
        self._head().fit_reject(embeddings, targets, tpr=tpr)
        return self

    @property
    def rejects(self) -> bool:
        """Whether the head has a reject threshold."""
        return self._head().has_reject

    def reject_views(self, views: np.ndarray) -> np.ndarray:
        """Embeddings of each image's TTA views `[N, V, D]` -> rejected `[N]`, on the views' mean novelty score."""
        n_images, n_views, n_features = views.shape
        scores = self._head().novelty_score(views.reshape(n_images * n_views, n_features))
        return self._head().rejects_scores(scores.reshape(n_images, n_views).mean(axis=1))

    def _head(self) -> EmbeddingHead:
        check_is_fitted(self, "head_", msg=NOT_FITTED)
        return self.head_
