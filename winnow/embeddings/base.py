"""The contract of every head on embeddings, and the one reject mechanism they share.

A head classifies embeddings `[N, D]` (a trained model's pooled pre-logits features) into K classes
with scikit-learn's conventions: `fit(X, y, n_classes=K)` returns the head, `predict_proba(X)` gives
`[N, K]`, learned attributes end in `_`. Every head also scores how far each embedding lies from all
the classes it learned (`novelty_score`, higher = farther). `fit_reject` puts a threshold on that score
from validation images of the known classes at a stated true-positive rate (the share of them
accepted); `reject` flags the embeddings beyond it and `predict` gives them UNCERTAIN (-1), so that
open-set images (debris, blood cells in a chromosome stream) are not forced into a class.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from imblearn.pipeline import make_pipeline as make_resampling_pipeline
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.validation import check_is_fitted

from winnow.constraints import Interval, Options, check_value, validate_params
from winnow.embeddings.model_selection import check_class_counts
from winnow.embeddings.oversample import NONE, OVERSAMPLERS, Oversampler, neighbours_for
from winnow.metrics.checks import UNCERTAIN, check_targets

NOT_FITTED = "This %(name)s is not fitted yet: call fit(embeddings [N, D], class indices [N]) first"
NO_REJECT = ("This %(name)s has no reject threshold: call fit_reject(val embeddings, val class indices, tpr=0.95) "
             "first (predict_proba and predict work without one)")
MIN_PER_CLASS = 2  # cross-validated heads need a sample of each class on both sides of every fold
MORE_IMAGES = "pass --data with more labelled images"
FOLDS = [Interval(Integral, 2, None)]
SEED = [Interval(Integral, 0, 2**32 - 1)]
OVERSAMPLE = [Options(tuple(OVERSAMPLERS))]


def check_embeddings(embeddings: Any, *, n_features: int | None = None) -> np.ndarray:
    """Embeddings as a finite float `[N, D]` array.

    Raises:
        ValueError: Not 2-D, non-finite, or `D` different from the fitted one.
    """
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"embeddings: expected [samples, features], got shape {array.shape}; pass one row per "
                         "image (a single embedding `x` as `x[None, :]`)")
    if not np.isfinite(array).all():
        raise ValueError("embeddings: found NaN or infinite values; check the model that produced them")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"embeddings: fitted on {n_features} features, got {array.shape[1]}; the head belongs to "
                         "another model (or a member run changed since): refit it on this model's embeddings")
    return array


def check_tpr(tpr: Any) -> float:
    """The reject option's true-positive rate, in (0, 1].

    Raises:
        InvalidParameterError: Not a number in (0, 1].
    """
    return check_value("reject tpr", tpr, [Interval(Real, 0, 1, closed="right")],
                       hint="the share of known-class validation images to accept, e.g. 0.95")


def fit_targets(targets: Any, *, n_samples: int, n_classes: int | None) -> tuple[np.ndarray, int]:
    """Class indices `[N]` and the number of classes (default: the largest index + 1, at least 2).

    Raises:
        ValueError: Wrong length, indices outside `[0, n_classes)`, or fewer than two classes.
        TypeError: Non-integer targets.
    """
    array = np.asarray(targets)
    if n_classes is None:
        integral = array.size and np.issubdtype(array.dtype, np.integer)
        n_classes = int(array.max()) + 1 if integral else 2
    check_value("n_classes", n_classes, [Interval(Integral, 2, None)],
                hint="a head tells classes apart; fit it on labelled images of two or more classes")
    return check_targets(array, n_samples=n_samples, n_classes=n_classes), n_classes


def nearest_distance(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Euclidean distance `[N]` of each point `[N, D]` to its nearest centroid `[K, D]`."""
    return euclidean_distances(points, centroids).min(axis=1)


class EmbeddingHead(ClassifierMixin, BaseEstimator):
    """Base of the heads: input checks, fitted-state checks and the reject option.

    Every head takes `oversample` ("none", "smote", "adasyn", "borderline", see `winnow.embeddings.oversample`):
    synthetic samples of the rarer classes added to the fit embeddings (only those). The cross-validated heads
    resample inside each fold's fit only (`_pipeline`: scaler -> sampler -> estimator), so their
    cross-validated scores are measured on real held-out samples that no synthetic training sample was
    interpolated from; the final model is refitted on all real samples with the sampler in front.

    Subclasses set `kind`, `novelty_description` and `_parameter_constraints`, and implement
    `_fit(X, y) -> report` on the real fit samples (setting `oversample_report_` for the final fit),
    `_proba(X) -> [N, K]` and `_novelty(X) -> [N]` on checked arrays.

    Attributes:
        n_classes_, classes_: Number of classes and their indices `[K]`.
        class_counts_: Training samples per class `[K]` of the final fit (after oversampling).
        oversample_report_: Method, neighbours, seed and class counts before / after of the final fit on all
            fit samples (None without oversampling).
        n_features_: Embedding size `D`.
        cv_report_: What was chosen (`chosen`), on how many folds (`folds`: None for a head or parameter that is
            not cross-validated, 0 where it could not be, with a `note` saying why and what was used instead)
            and the cross-validated score (`cv_*`).
        reject_threshold_: Largest accepted novelty score (after `fit_reject`).
        reject_report_: The true-positive rate asked, the threshold and the acceptance achieved on the
            reject data, overall and per class (after `fit_reject`).
    """

    kind = ""
    novelty_description = ""
    min_per_class = MIN_PER_CLASS  # fit samples each class needs (before oversampling)
    too_few_hint = MORE_IMAGES  # how to fix a class with fewer than `min_per_class` samples
    _parameter_constraints: dict[str, list] = {}

    def fit(self, embeddings: Any, targets: Any, *, n_classes: int | None = None) -> EmbeddingHead:
        """Fit on embeddings `[N, D]` and class indices `[N]`; every class needs `min_per_class` samples.

        With `oversample`, synthetic embeddings of the rarer classes are added to each cross-validation fold's
        training part and to the final fit (seeded by `seed`), never to held-out samples.

        Raises:
            InvalidParameterError: A parameter out of range.
            ValueError: Bad embeddings or targets, a class with fewer than `min_per_class` samples (with
                `oversample`: its own message), or an oversampling method that cannot work on these embeddings.
        """
        validate_params(self.get_params(), self._parameter_constraints, where=f"{self.kind} head")
        array = check_embeddings(embeddings)
        targets, n_classes = fit_targets(targets, n_samples=len(array), n_classes=n_classes)
        counts = np.bincount(targets, minlength=n_classes)
        if self.oversample != NONE:  # a single-sample class is refused by name, before anything is fitted
            neighbours_for(counts, method=self.oversample, what=f"{self.kind} head")
        # on the real samples: synthetic ones interpolated from two images do not make a class fittable
        check_class_counts(targets, n_classes, min_per_class=self.min_per_class, what=f"{self.kind} head",
                           hint=self.too_few_hint)
        self.n_classes_, self.classes_ = n_classes, np.arange(n_classes)
        self.__dict__.pop("reject_threshold_", None)  # a threshold of the old fit means nothing for the new one
        self.__dict__.pop("reject_report_", None)
        self.oversample_report_ = None
        report = self._fit(array, targets)
        resampled = self.oversample_report_
        self.class_counts_ = np.asarray(resampled["counts_after"]) if resampled else counts
        self.cv_report_ = {"classifier": self.kind, **report, **({"oversample": resampled} if resampled else {})}
        self.n_features_ = array.shape[1]  # set last: it marks the head as fitted
        return self

    def predict_proba(self, embeddings: Any) -> np.ndarray:
        """Embeddings `[N, D]` -> class probabilities `[N, K]` (rejection does not change them)."""
        return self._proba(self._checked(embeddings))

    def predict(self, embeddings: Any) -> np.ndarray:
        """Class indices `[N]`: the most probable class, or UNCERTAIN (-1) where the head rejects."""
        array = self._checked(embeddings)
        predicted = self._proba(array).argmax(axis=1)
        if not self.has_reject:
            return predicted
        return np.where(self.rejects_scores(self._novelty(array)), UNCERTAIN, predicted)

    def novelty_score(self, embeddings: Any) -> np.ndarray:
        """How far each embedding `[N, D]` is from every learned class `[N]` (higher = farther)."""
        return self._novelty(self._checked(embeddings))

    def fit_reject(self, embeddings: Any, targets: Any, *, tpr: float = 0.95) -> EmbeddingHead:
        """Set `reject_threshold_` so that a share `tpr` of these known-class embeddings `[N, D]` is accepted.

        Fit it on images the head was not fitted on (the val split): training images lie closer to the
        classes than new ones, and a threshold from them would reject too much.

        Raises:
            InvalidParameterError: `tpr` outside (0, 1].
            ValueError: Bad embeddings, or class indices `[N]` outside the head's classes.
        """
        tpr = check_tpr(tpr)
        array = self._checked(embeddings)
        targets = check_targets(targets, n_samples=len(array), n_classes=self.n_classes_)
        scores = self._novelty(array)
        threshold = float(np.quantile(scores, tpr, method="higher"))  # "higher": at least `tpr` accepted
        accepted = scores <= threshold
        per_class = [float(accepted[targets == k].mean()) if (targets == k).any() else None
                     for k in range(self.n_classes_)]
        self.reject_threshold_ = threshold
        self.reject_report_ = {"tpr": tpr, "threshold": threshold, "n_samples": len(scores),
                               "accepted_rate": float(accepted.mean()), "accepted_per_class": per_class,
                               "score": self.novelty_description}
        return self

    def reject(self, embeddings: Any) -> np.ndarray:
        """Whether each embedding `[N, D]` is beyond the reject threshold, i.e. far from every class `[N]`."""
        check_is_fitted(self, "reject_threshold_", msg=NO_REJECT)
        return self.rejects_scores(self.novelty_score(embeddings))

    def rejects_scores(self, scores: np.ndarray) -> np.ndarray:
        """Novelty scores `[N]` -> rejected `[N]` (bool), e.g. for scores averaged over TTA views."""
        check_is_fitted(self, "reject_threshold_", msg=NO_REJECT)
        return np.asarray(scores) > self.reject_threshold_

    @property
    def has_reject(self) -> bool:
        """Whether `fit_reject` has set a threshold."""
        return hasattr(self, "reject_threshold_")

    def _checked(self, embeddings: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_", msg=NOT_FITTED)
        return check_embeddings(embeddings, n_features=self.n_features_)

    def _sampler(self) -> Oversampler | None:
        """A fresh sampler of this head's `oversample` method (None for "none"); needs `n_classes_`."""
        if self.oversample == NONE:
            return None
        return Oversampler(self.oversample, n_classes=self.n_classes_, seed=self.seed, what=f"{self.kind} head")

    def _pipeline(self, *steps: Any) -> Pipeline:
        """`steps` as a pipeline, the sampler before the last one (imbalanced-learn's, which resamples in fit only).

        Cross-validated (GridSearchCV, cross_val_predict, CalibratedClassifierCV), it resamples each fold's
        training part and scores the real held-out samples. Without oversampling: scikit-learn's pipeline.
        """
        sampler = self._sampler()
        if sampler is None:
            return make_pipeline(*steps)
        return make_resampling_pipeline(*steps[:-1], sampler, steps[-1])

    def _resampled(self, array: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict | None]:
        """Embeddings `[N, D]`, class indices `[N]` with synthetic ones appended `[N', D]`, `[N']`, and the report."""
        sampler = self._sampler()
        if sampler is None:
            return array, targets, None
        return *sampler.fit_resample(array, targets), sampler.report_

    def _fit(self, array: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _proba(self, array: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _novelty(self, array: np.ndarray) -> np.ndarray:
        raise NotImplementedError
