"""Heads on embeddings, picked by name: knn, centroid, gmm, logistic, svm, pu_bagging.

Each is an `EmbeddingHead` (see `winnow.embeddings.base`: scikit-learn conventions and the shared
reject option) built on scikit-learn; the novelty score (higher = farther from every class) follows the
head's own geometry:

- knn: `KNeighborsClassifier`, cosine distance, distance-weighted votes, `k` cross-validated; novelty
  1 - the largest cosine similarity to a training embedding.
- centroid: nearest class mean (`NearestCentroid`) of L2-normalised embeddings; softmax of minus the
  squared distances, its temperature fitted on out-of-fold distances; novelty: distance to the nearest mean.
  knn and centroid also fit on one image per class (one-shot): with no stratified folds, knn takes k = 1 and
  centroid a stated temperature, and their `cv_report_` says so (`folds` 0 and a `note`).
- gmm: one `GaussianMixture` per class on standardised embeddings, components chosen by BIC; posterior =
  prior x likelihood, normalised; novelty: minus the largest class log-likelihood.
- logistic: `LogisticRegressionCV` on standardised embeddings (`C` by log loss); svm: RBF `SVC` on
  standardised embeddings (`C` by balanced accuracy), Platt-scaled; novelty of both: distance to the
  nearest class mean in the standardised space.
- pu_bagging: positive-unlabelled bagging of trees with out-of-bag scores (`winnow.embeddings.pu_bagging`).

gmm, logistic and svm refuse a single-image class (the message names knn and centroid): a variance, a `C`
or a Platt scaling from one image per class would be a guess presented as a fit.

With `oversample`, every cross-validated choice (knn's k, centroid's temperature, logistic's and svm's `C`,
svm's Platt scaling) is made on real held-out samples, the sampler fitted on each fold's training part only
(`EmbeddingHead._pipeline`); the gmm head has no cross-validation and resamples before its fit.

Classes are weighted "balanced" by the logistic and svm heads by default, since the data this is for is
rarely balanced; the gmm head's priors are the training class shares by default.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler, normalize
from sklearn.svm import SVC

from winnow.calibration.scaling import FORMAT as CALIBRATION_FORMAT
from winnow.calibration.scaling import TemperatureScaling
from winnow.constraints import InvalidParameterError, Interval, Options, check_known_keys, check_value
from winnow.embeddings.base import FOLDS, MORE_IMAGES, OVERSAMPLE, SEED, EmbeddingHead, nearest_distance
from winnow.embeddings.model_selection import CS, LOGISTIC_ITERATIONS, logistic_cv, stratified_folds
from winnow.embeddings.oversample import NONE
from winnow.embeddings.pu_bagging import PUBaggingHead

KS = (1, 3, 5, 7, 9, 15, 21, 31)  # neighbour counts tried by the knn head
SVM_CS = (0.1, 1.0, 10.0)
SAMPLES_PER_COMPONENT = 5  # a mixture component fitted on fewer samples than this is noise, whatever BIC says
CLASS_WEIGHT = [None, Options(("balanced",))]
ONE_SHOT = "no cross-validation: smallest class has 1 image"  # the `note` of a one-shot fit
ONE_SHOT_HINT = f"{MORE_IMAGES}, or use the knn or centroid head (they accept 1 image per class)"


def single_image_class(targets: np.ndarray, n_classes: int) -> bool:
    """Whether a class of the class indices `[N]` has one sample: no stratified folds, nothing to cross-validate."""
    return bool(np.bincount(targets, minlength=n_classes).min() < 2)


class KNNHead(EmbeddingHead):
    """k nearest neighbours by cosine distance, votes weighted by inverse distance.

    With a class of a single image there are no stratified folds: k = 1 (the nearest image decides; a larger
    k would let a class with more images outvote it), reported as `folds` 0 with a `note`.

    Args:
        k: Neighbours; None: the `KS` value with the best cross-validated balanced accuracy (1 with a
            single-image class).
        cv: Most cross-validation folds (fewer when a class is rarer).
        seed: Seed of the folds (and of the oversampling).
        oversample: "none", "smote", "adasyn" or "borderline" (see `EmbeddingHead`).

    Attributes:
        model_: The fitted `KNeighborsClassifier` (it keeps the training embeddings).
    """

    kind = "knn"
    novelty_description = "1 - the largest cosine similarity to a training embedding"
    min_per_class = 1
    _parameter_constraints = {"k": [None, Interval(Integral, 1, None)], "cv": FOLDS, "seed": SEED,
                              "oversample": OVERSAMPLE}

    def __init__(self, *, k: int | None = None, cv: int = 5, seed: int = 0, oversample: str = "none") -> None:
        self.k, self.cv, self.seed, self.oversample = k, cv, seed, oversample

    def _fit(self, array: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        if self.k is not None:
            self.model_ = self._final_model(self.k, array, targets)
            return {"folds": None, "chosen": {"k": self.k}}
        if single_image_class(targets, self.n_classes_):
            self.model_ = self._final_model(1, array, targets)
            return {"folds": 0, "chosen": {"k": 1}, "note": f"{ONE_SHOT}; k = 1 (the nearest image decides)"}
        folds = stratified_folds(targets, self.n_classes_, max_folds=self.cv, seed=self.seed, what="knn head")
        # real training images of the smallest fold (oversampling only adds to them)
        smallest_fold = len(array) - math.ceil(len(array) / folds.n_splits)
        ks = [k for k in KS if k <= smallest_fold]
        search = GridSearchCV(self._pipeline(_neighbours(1)), {"kneighborsclassifier__n_neighbors": ks},
                              scoring="balanced_accuracy", cv=folds, refit=False, error_score="raise")
        k = search.fit(array, targets).best_params_["kneighborsclassifier__n_neighbors"]
        self.model_ = self._final_model(k, array, targets)
        return {"folds": folds.n_splits, "chosen": {"k": k}, "cv_balanced_accuracy": float(search.best_score_)}

    def _final_model(self, k: int, array: np.ndarray, targets: np.ndarray) -> KNeighborsClassifier:
        """k-NN on all fit embeddings (with the synthetic ones of the final resampling)."""
        array, targets, self.oversample_report_ = self._resampled(array, targets)
        if k > len(array):
            raise InvalidParameterError(f"knn head: k must be at most the {len(array)} fit images, got {k}")
        return _neighbours(k).fit(array, targets)

    def _proba(self, array: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(array)

    def _novelty(self, array: np.ndarray) -> np.ndarray:
        return self.model_.kneighbors(array, n_neighbors=1)[0][:, 0]  # cosine distance = 1 - similarity


def _neighbours(k: int) -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=k, weights="distance", metric="cosine", algorithm="brute")


class CentroidHead(EmbeddingHead):
    """Nearest class mean of L2-normalised embeddings; probabilities from a softmax of `-distance^2 / T`.

    The temperature `T` is fitted (`TemperatureScaling`, log loss) on out-of-fold squared distances,
    each image measured against class means computed without its fold, so that it is not over-confident
    (with `oversample`: means of the fold's training part resampled, the held-out images real).

    With a class of a single image (one-shot: its mean is that image) no fold can hold it out, so `T` cannot be
    fitted: it is set to the median squared distance between the class means (`separation_temperature`),
    reported as `folds` 0 with a `note`. That value follows the embeddings' own scale, and it makes an image
    at its class mean e (about 2.7) times as likely its own class as a class at the typical (median)
    separation: deliberately modest, since nothing measured supports more confidence. It changes the
    probabilities only, not the nearest mean (the prediction) nor the novelty score (the reject option);
    `winnow calibrate` on the head's folder fits a temperature on held-out images when there are some.

    Args:
        temperature: Fixed `T` > 0; None: fitted out of fold (the separation fallback with a single-image class).
        cv: Most cross-validation folds (fewer when a class is rarer).
        seed: Seed of the folds (and of the oversampling).
        oversample: "none", "smote", "adasyn" or "borderline" (see `EmbeddingHead`).

    Attributes:
        centroids_: Class means of the normalised training embeddings `[K, D]`.
        scaling_: The temperature scaling of `-distance^2` (fitted, or with the fixed temperature).
    """

    kind = "centroid"
    novelty_description = "distance to the nearest class mean (L2-normalised embeddings)"
    min_per_class = 1
    _parameter_constraints = {"temperature": [None, Interval(Real, 0, None, closed="neither")], "cv": FOLDS,
                              "seed": SEED, "oversample": OVERSAMPLE}

    def __init__(self, *, temperature: float | None = None, cv: int = 5, seed: int = 0,
                 oversample: str = "none") -> None:
        self.temperature, self.cv, self.seed, self.oversample = temperature, cv, seed, oversample

    def _fit(self, array: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        self.centroids_, self.oversample_report_ = self._means(array, targets)
        if self.temperature is not None:
            return self._fixed_temperature(float(self.temperature), folds=None)
        if single_image_class(targets, self.n_classes_):
            return self._fixed_temperature(separation_temperature(self.centroids_), folds=0,
                                           note=f"{ONE_SHOT}; temperature = median squared distance between "
                                                "class means")
        folds = stratified_folds(targets, self.n_classes_, max_folds=self.cv, seed=self.seed, what="centroid head")
        out_of_fold = np.empty((len(array), self.n_classes_))
        for train, test in folds.split(array, targets):
            out_of_fold[test] = _centroid_logits(normalize(array[test]), self._means(array[train], targets[train])[0])
        self.scaling_ = TemperatureScaling().fit(out_of_fold, targets)
        return {"folds": folds.n_splits, "chosen": {"temperature": self.scaling_.temperature_},
                "cv_log_loss": self.scaling_.nll_after_}

    def _fixed_temperature(self, temperature: float, *, folds: int | None, note: str | None = None) -> dict[str, Any]:
        """Set `scaling_` to divide by `temperature`; the fit report (`folds` None: asked for, 0: no folds possible)."""
        self.scaling_ = TemperatureScaling.from_dict({"format": CALIBRATION_FORMAT, "method": "temperature",
                                                      "n_classes": self.n_classes_, "temperature": temperature})
        return {"folds": folds, "chosen": {"temperature": temperature}, **({"note": note} if note else {})}

    def _means(self, array: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
        """Class means `[K, D]` of the normalised embeddings `[N, D]` (resampled first), and the resampling report."""
        array, targets, report = self._resampled(array, targets)
        return _class_means(normalize(array), targets), report

    def _proba(self, array: np.ndarray) -> np.ndarray:
        return self.scaling_.predict_proba(_centroid_logits(normalize(array), self.centroids_))

    def _novelty(self, array: np.ndarray) -> np.ndarray:
        return nearest_distance(normalize(array), self.centroids_)


def _class_means(array: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Class means `[K, D]` (every class is present: the fit checks it)."""
    with warnings.catch_warnings():
        # NearestCentroid also measures the within-class spread, which is not used here; ReLU embeddings often
        # have dead (always zero) features, which make it warn about zero spread
        warnings.filterwarnings("ignore", message=".*zero standard deviation", category=UserWarning)
        # and with one image per class (one-shot) that spread divides by n_samples - n_classes = 0
        warnings.filterwarnings("ignore", message="invalid value encountered in divide", category=RuntimeWarning)
        return NearestCentroid().fit(array, targets).centroids_


def _centroid_logits(unit: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return -euclidean_distances(unit, centroids, squared=True)


def separation_temperature(centroids: np.ndarray) -> float:
    """The median squared distance between class means `[K, D]`, over the pairs that differ (1.0 when all
    coincide: then every temperature gives the same, uniform, probabilities)."""
    squared = euclidean_distances(centroids, squared=True)[np.triu_indices(len(centroids), k=1)]
    positive = squared[squared > 0]
    return float(np.median(positive)) if positive.size else 1.0


class GMMHead(EmbeddingHead):
    """A Gaussian mixture per class on standardised embeddings; Bayes' rule gives the class posterior.

    `p(k | x) = prior_k p(x | k) / sum_j prior_j p(x | j)`, computed in log space (logsumexp). Each
    class's number of components is the one of `1..max_components` with the lowest BIC, at most one per
    `SAMPLES_PER_COMPONENT` images of the class. With `oversample`, the fit embeddings are resampled once
    before the mixtures are fitted: the head has no cross-validation (BIC is computed on the training samples),
    so there is no held-out fold for synthetic samples to leak into.

    Args:
        max_components: Most components per class.
        covariance_type: "diag" (default: few parameters, suits small classes), "spherical", "tied" or "full".
        reg_covar: Added to the covariances' diagonal (the features are standardised, so 1e-3 of their variance).
        priors: "counts" (training class shares, after oversampling) or "uniform".
        seed: Seed of the mixtures' initialisation (and of the oversampling).
        oversample: "none", "smote", "adasyn" or "borderline" (see `EmbeddingHead`).

    Attributes:
        scaler_: The standardisation fitted on all training embeddings.
        mixtures_: One fitted `GaussianMixture` per class.
        log_priors_: Log prior of each class `[K]`.
    """

    kind = "gmm"
    novelty_description = "minus the largest class log-likelihood (standardised embeddings)"
    min_per_class = SAMPLES_PER_COMPONENT  # a variance from two or three images is noise, not a class's spread
    too_few_hint = ONE_SHOT_HINT
    _parameter_constraints = {
        "max_components": [Interval(Integral, 1, None)], "reg_covar": [Interval(Real, 0, None, closed="neither")],
        "covariance_type": [Options(("diag", "spherical", "tied", "full"))],
        "priors": [Options(("counts", "uniform"))], "seed": SEED, "oversample": OVERSAMPLE}

    def __init__(self, *, max_components: int = 4, covariance_type: str = "diag", reg_covar: float = 1e-3,
                 priors: str = "counts", seed: int = 0, oversample: str = "none") -> None:
        self.max_components, self.covariance_type, self.reg_covar = max_components, covariance_type, reg_covar
        self.priors, self.seed, self.oversample = priors, seed, oversample

    def _fit(self, array: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        array, targets, self.oversample_report_ = self._resampled(array, targets)
        self.scaler_ = StandardScaler().fit(array)
        scaled = self.scaler_.transform(array)
        self.mixtures_ = [self._mixture(scaled[targets == k]) for k in range(self.n_classes_)]
        shares = np.bincount(targets, minlength=self.n_classes_) / len(targets)
        self.log_priors_ = np.log(shares if self.priors == "counts" else np.full(self.n_classes_, 1 / self.n_classes_))
        return {"folds": None, "chosen": {"components": [int(m.n_components) for m in self.mixtures_]},
                "selection": "BIC", "covariance_type": self.covariance_type, "priors": self.priors}

    def _mixture(self, rows: np.ndarray) -> GaussianMixture:
        """The mixture of `1..most` components with the lowest BIC on `rows` (ties: fewer components)."""
        most = max(1, min(self.max_components, len(rows) // SAMPLES_PER_COMPONENT))
        fits = [GaussianMixture(n, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                                random_state=self.seed).fit(rows) for n in range(1, most + 1)]
        return min(fits, key=lambda mixture: mixture.bic(rows))

    def _log_likelihoods(self, array: np.ndarray) -> np.ndarray:
        """`log p(x | k)` `[N, K]`."""
        scaled = self.scaler_.transform(array)
        return np.stack([mixture.score_samples(scaled) for mixture in self.mixtures_], axis=1)

    def _proba(self, array: np.ndarray) -> np.ndarray:
        joint = self._log_likelihoods(array) + self.log_priors_
        return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))

    def _novelty(self, array: np.ndarray) -> np.ndarray:
        return -self._log_likelihoods(array).max(axis=1)


class _StandardisedHead(EmbeddingHead):
    """Logistic and svm: a pipeline that standardises first; novelty is measured in that standardised space.

    Args:
        class_weight: "balanced" or None.
        cv: Most cross-validation folds for choosing `C` (fewer when a class is rarer).
        seed: Seed of the folds (and of the oversampling).
        oversample: "none", "smote", "adasyn" or "borderline" (see `EmbeddingHead`).

    Attributes:
        model_: The fitted pipeline (`StandardScaler`, then the classifier; with `oversample`, the sampler
            between them, or inside the svm's calibration).
        centroids_: Class means of the standardised real training embeddings `[K, D]`.
    """

    novelty_description = "distance to the nearest class mean (standardised embeddings)"
    too_few_hint = ONE_SHOT_HINT  # `C` (and svm's Platt scaling) need held-out images of every class
    _parameter_constraints = {"class_weight": CLASS_WEIGHT, "cv": FOLDS, "seed": SEED, "oversample": OVERSAMPLE}

    def __init__(self, *, class_weight: str | None = "balanced", cv: int = 5, seed: int = 0,
                 oversample: str = "none") -> None:
        self.class_weight, self.cv, self.seed, self.oversample = class_weight, cv, seed, oversample

    def _fit(self, array: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        folds = stratified_folds(targets, self.n_classes_, max_folds=self.cv, seed=self.seed, what=f"{self.kind} head")
        self.model_, report, self.oversample_report_ = self._fit_model(array, targets, folds)
        self.centroids_ = _class_means(self.model_[0].transform(array), targets)
        return {"folds": folds.n_splits, **report}

    def _fit_model(self, array: np.ndarray, targets: np.ndarray,
                   folds: StratifiedKFold) -> tuple[Pipeline, dict[str, Any], dict[str, Any] | None]:
        """The fitted model, what was chosen, and the final fit's oversampling report."""
        raise NotImplementedError

    def _proba(self, array: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(array)

    def _novelty(self, array: np.ndarray) -> np.ndarray:
        return nearest_distance(self.model_[0].transform(array), self.centroids_)


class LogisticHead(_StandardisedHead):
    """L2 logistic regression on standardised embeddings, `C` chosen by cross-validated log loss.

    `LogisticRegressionCV` without oversampling; with it (a sampler cannot sit inside that estimator's
    folds), `GridSearchCV` of `LogisticRegression` over the same `C`s, a sampler in each fold's pipeline.
    """

    kind = "logistic"

    def _fit_model(self, array: np.ndarray, targets: np.ndarray,
                   folds: StratifiedKFold) -> tuple[Pipeline, dict[str, Any], dict[str, Any] | None]:
        if self.oversample == NONE:
            logistic = logistic_cv(folds, class_weight=self.class_weight)
            model = make_pipeline(StandardScaler(), logistic).fit(array, targets)
            mean_scores = logistic.scores_.mean(axis=0)  # [n_l1_ratios, n_cs], averaged over folds
            return model, {"chosen": {"C": float(logistic.C_)}, "cv_log_loss": float(-mean_scores.max())}, None
        logistic = LogisticRegression(class_weight=self.class_weight, max_iter=LOGISTIC_ITERATIONS)
        search = GridSearchCV(self._pipeline(StandardScaler(), logistic), {"logisticregression__C": list(CS)},
                              scoring="neg_log_loss", cv=folds, error_score="raise").fit(array, targets)
        model = search.best_estimator_  # refitted on all real samples, the sampler in the pipeline
        return model, {"chosen": {"C": float(search.best_params_["logisticregression__C"])},
                       "cv_log_loss": float(-search.best_score_)}, model.named_steps["oversampler"].report_


class SVMHead(_StandardisedHead):
    """RBF SVM on standardised embeddings: `C` by cross-validated balanced accuracy, then refitted with
    probabilities from Platt scaling on out-of-fold decision values."""

    kind = "svm"

    def _fit_model(self, array: np.ndarray, targets: np.ndarray,
                   folds: StratifiedKFold) -> tuple[Pipeline, dict[str, Any], dict[str, Any] | None]:
        search = GridSearchCV(self._pipeline(StandardScaler(), SVC(class_weight=self.class_weight)),
                              {"svc__C": list(SVM_CS)}, scoring="balanced_accuracy", cv=folds, refit=False,
                              error_score="raise")
        search.fit(array, targets)
        best_c = search.best_params_["svc__C"]
        svc = SVC(C=best_c, class_weight=self.class_weight)
        # with a sampler: Platt scaling on out-of-fold decisions of real samples, each fold's SVC on resampled data
        estimator = svc if self.oversample == NONE else self._pipeline(svc)
        calibrated = CalibratedClassifierCV(estimator, method="sigmoid", cv=folds, ensemble=False)
        model = make_pipeline(StandardScaler(), calibrated).fit(array, targets)
        final = calibrated.calibrated_classifiers_[0].estimator  # fitted on all real samples (ensemble=False)
        report = None if self.oversample == NONE else final.named_steps["oversampler"].report_
        return model, {"chosen": {"C": best_c}, "cv_balanced_accuracy": float(search.best_score_)}, report


HEADS: dict[str, type[EmbeddingHead]] = {
    "knn": KNNHead,
    "centroid": CentroidHead,
    "gmm": GMMHead,
    "logistic": LogisticHead,
    "svm": SVMHead,
    "pu_bagging": PUBaggingHead,
}


def make_head(kind: str, **params: Any) -> EmbeddingHead:
    """An unfitted head by name, with its parameters (see each head's docstring).

    Raises:
        InvalidParameterError: Unknown kind (the message lists the valid ones) or unknown parameter.
    """
    check_value("head kind", kind, [Options(HEADS)], hint="pick one of the heads on embeddings")
    check_known_keys(f"parameters of the {kind} head", params, HEADS[kind]().get_params())
    return HEADS[kind](**params)
