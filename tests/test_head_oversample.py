"""Synthetic minority samples (`oversample`: smote, adasyn, borderline) for every head on embeddings."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest
from imblearn.over_sampling import SMOTE, BorderlineSMOTE
from imblearn.pipeline import make_pipeline
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler, normalize
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from winnow.calibration.scaling import TemperatureScaling
from winnow.constraints import InvalidParameterError
from winnow.embeddings.heads import HEADS, KS, make_head
from winnow.embeddings.model_selection import CS
from winnow.embeddings.oversample import OVERSAMPLERS, Oversampler
from winnow.ensembles.build import head_choice
from winnow.ensembles.methods import make_combiner

N_FEATURES = 6
COUNTS = (40, 8, 6)  # imbalanced: classes 1 and 2 are rare
METHODS = [name for name in OVERSAMPLERS if name != "none"]


@pytest.fixture(autouse=True)
def one_thread():
    """One BLAS / OpenMP thread: on these tiny fits threads only add overhead, and on a busy 2-core machine their
    spin-waits made the grid searches (a few hundred small fits) over 20 times slower."""
    with threadpool_limits(limits=1):
        yield


def imbalanced(counts=COUNTS, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian blobs `[N, D]` (ADASYN needs rare samples with neighbours of other classes) and labels."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(len(counts)), counts)
    means = 1.5 * np.eye(len(counts), N_FEATURES) + 3.0
    return means[targets] + rng.normal(size=(len(targets), N_FEATURES)), targets


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", [kind for kind in HEADS if kind != "pu_bagging"])  # refuses it: test_pu_bagging.py
def test_every_head_fits_on_oversampled_embeddings(kind, method, tmp_path):
    embeddings, targets = imbalanced()
    head = make_head(kind, oversample=method, seed=3).fit(embeddings, targets)
    report = head.cv_report_["oversample"]
    assert report["counts_before"] == list(COUNTS) and report["method"] == method and report["seed"] == 3
    after = np.asarray(report["counts_after"])
    assert (after >= 0.8 * COUNTS[0]).all() and after[0] == COUNTS[0], after  # adasyn balances only roughly
    assert head.class_counts_.tolist() == report["counts_after"] and report["neighbours"] == 5
    assert head.predict_proba(embeddings).shape == (len(embeddings), 3)
    joblib.dump(head, tmp_path / "head.joblib")  # the saved head keeps what was done
    assert joblib.load(tmp_path / "head.joblib").oversample_report_ == report
    assert json.loads(json.dumps(head.cv_report_))["oversample"] == report  # goes into ensemble.json as is
    assert f"oversampled by {method} (5 neighbours)" in head_choice(head.cv_report_)


def test_smote_matches_imbalanced_learn_and_leaves_other_data_alone():
    embeddings, targets = imbalanced()
    sampler = Oversampler("smote", n_classes=3, seed=0, what="test")
    resampled, resampled_targets = sampler.fit_resample(embeddings, targets)
    expected, expected_targets = SMOTE(k_neighbors=5, random_state=0).fit_resample(embeddings, targets)
    assert np.array_equal(resampled, expected) and np.array_equal(resampled_targets, expected_targets)
    assert np.array_equal(resampled[:len(embeddings)], embeddings)  # the real samples come first, unchanged
    assert sampler.report_["counts_after"] == [40, 40, 40] and sampler.report_["neighbours"] == 5
    with pytest.raises(ValueError, match=r"test: Oversampler needs a method of \['smote', .*got 'none'"):
        Oversampler("none").set_params(what="test").fit_resample(embeddings, targets)
    head = make_head("centroid").fit(embeddings, targets)
    assert "oversample" not in head.cv_report_ and head.oversample_report_ is None
    assert head.class_counts_.tolist() == list(COUNTS)


def test_neighbours_shrink_to_the_smallest_class_and_the_fit_is_seeded():
    embeddings, targets = imbalanced((30, 3, 4))
    head = make_head("knn", oversample="smote", seed=1).fit(embeddings, targets)
    assert head.cv_report_["oversample"]["neighbours"] == 2  # smallest class 3 - 1
    again = make_head("knn", oversample="smote", seed=1).fit(embeddings, targets)
    other = make_head("knn", oversample="smote", seed=2).fit(embeddings, targets)
    points = imbalanced(seed=5)[0]
    assert np.array_equal(head.predict_proba(points), again.predict_proba(points))
    assert not np.array_equal(head.model_._fit_X, other.model_._fit_X)


@pytest.mark.parametrize("method", METHODS)
def test_a_single_sample_class_is_refused_by_name(method):
    embeddings, targets = imbalanced((20, 1, 5))
    with pytest.raises(ValueError, match=rf"logistic head: oversample {method} interpolates .* class index\(es\) "
                                         r"\[1\] have \[1\] fit sample\(s\); add images .*or use --oversample none"):
        make_head("logistic", oversample=method).fit(embeddings, targets)


def indistinguishable(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """60 majority and 12 rare embeddings `[72, 6]` from the same distribution: no head can tell them apart."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(72, N_FEATURES)) + 3.0, np.repeat([0, 1], [60, 12])


def knn(k: int) -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=k, weights="distance", metric="cosine", algorithm="brute")


def test_cross_validated_scores_are_not_inflated_by_synthetic_neighbours():
    # resampled before the folds, each held-out rare embedding has synthetic ones interpolated from it in the
    # training part: 1-NN "recognises" a class that is pure noise
    embeddings, targets = indistinguishable()
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    head = make_head("knn", oversample="smote", seed=0).fit(embeddings, targets)
    k, reported = head.cv_report_["chosen"]["k"], head.cv_report_["cv_balanced_accuracy"]
    in_folds = make_pipeline(SMOTE(k_neighbors=5, random_state=0), knn(k))  # the sampler inside each fold's fit
    honest = cross_val_score(in_folds, embeddings, targets, cv=folds, scoring="balanced_accuracy").mean()
    assert reported == pytest.approx(honest, abs=1e-12)
    resampled, resampled_targets = SMOTE(k_neighbors=5, random_state=0).fit_resample(embeddings, targets)
    leaked = max(cross_val_score(knn(k), resampled, resampled_targets, cv=folds, scoring="balanced_accuracy").mean()
                 for k in KS)  # what the head reported when it resampled before its search
    assert reported < 0.6 < 0.75 < leaked, (reported, leaked)
    assert head.model_.n_samples_fit_ == 120 and head.oversample_report_["counts_after"] == [60, 60]  # final fit


EVEN_FOLDS = (40, 10, 5)  # 5 folds: 4 images of class 2 in every training part, so 3 neighbours in each


def test_logistic_and_svm_choose_c_on_real_held_out_samples():
    embeddings, targets = imbalanced(EVEN_FOLDS)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    logistic = make_head("logistic", oversample="borderline").fit(embeddings, targets)
    in_folds = make_pipeline(StandardScaler(), BorderlineSMOTE(k_neighbors=3, random_state=0),
                             LogisticRegression(class_weight="balanced", max_iter=2000))
    search = GridSearchCV(in_folds, {"logisticregression__C": list(CS)}, scoring="neg_log_loss", cv=folds)
    search.fit(embeddings, targets)
    assert logistic.cv_report_["chosen"]["C"] == search.best_params_["logisticregression__C"]
    assert logistic.cv_report_["cv_log_loss"] == pytest.approx(-search.best_score_, rel=1e-9)
    assert logistic.model_.named_steps["oversampler"].report_ == logistic.oversample_report_
    svm = make_head("svm", oversample="smote").fit(embeddings, targets)
    c = svm.cv_report_["chosen"]["C"]
    in_folds = make_pipeline(StandardScaler(), SMOTE(k_neighbors=3, random_state=0), SVC(C=c, class_weight="balanced"))
    expected = cross_val_score(in_folds, embeddings, targets, cv=folds, scoring="balanced_accuracy").mean()
    assert svm.cv_report_["cv_balanced_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert svm.oversample_report_ == {"method": "smote", "neighbours": 4, "seed": 0, "counts_before": [40, 10, 5],
                                      "counts_after": [40, 40, 40]}  # the final fit, on all real samples


def test_the_centroid_temperature_is_fitted_on_real_out_of_fold_distances():
    embeddings, targets = imbalanced(EVEN_FOLDS)
    head = make_head("centroid", oversample="smote", seed=2).fit(embeddings, targets)
    logits = np.empty((len(targets), 3))  # naive loop: each fold's training part resampled, its test part real
    for train, test in StratifiedKFold(5, shuffle=True, random_state=2).split(embeddings, targets):
        resampled, resampled_targets = SMOTE(k_neighbors=3, random_state=2).fit_resample(embeddings[train],
                                                                                        targets[train])
        means = np.stack([normalize(resampled)[resampled_targets == k].mean(axis=0) for k in range(3)])
        logits[test] = -((normalize(embeddings[test])[:, None, :] - means[None]) ** 2).sum(axis=2)
    scaling = TemperatureScaling().fit(logits, targets)
    assert head.cv_report_["chosen"]["temperature"] == pytest.approx(scaling.temperature_, rel=1e-6)
    assert head.cv_report_["cv_log_loss"] == pytest.approx(log_loss(targets, scaling.predict_proba(logits)), rel=1e-6)


def test_the_neighbour_count_follows_each_folds_rarest_class():
    embeddings, targets = imbalanced((30, 3, 4))  # 3 folds: 2 images of class 1 in each training part
    head = make_head("knn", oversample="smote", seed=1).fit(embeddings, targets)
    k = head.cv_report_["chosen"]["k"]
    folds = StratifiedKFold(3, shuffle=True, random_state=1)
    in_folds = make_pipeline(SMOTE(k_neighbors=1, random_state=1), knn(k))
    expected = cross_val_score(in_folds, embeddings, targets, cv=folds, scoring="balanced_accuracy").mean()
    assert head.cv_report_["cv_balanced_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert head.oversample_report_["neighbours"] == 2  # the final fit sees all 3


def test_a_class_with_one_sample_in_a_fold_is_left_as_it_is_there():
    embeddings, targets = imbalanced((10, 1, 3))
    sampler = Oversampler("smote", n_classes=3, seed=0, what="test")
    resampled, resampled_targets = sampler.fit_resample(embeddings, targets)
    assert sampler.report_ == {"method": "smote", "neighbours": 2, "seed": 0, "counts_before": [10, 1, 3],
                               "counts_after": [10, 1, 10]}
    assert np.array_equal(resampled[:len(targets)], embeddings)
    embeddings, targets = imbalanced((20, 2, 6))  # 2 folds: one image of class 1 in each training part
    head = make_head("svm", oversample="adasyn").fit(embeddings, targets)
    assert head.cv_report_["folds"] == 2 and head.oversample_report_["neighbours"] == 1
    assert head.predict_proba(embeddings).shape == (28, 3)


def test_borderline_fits_a_fit_set_smaller_than_its_danger_neighbours():
    embeddings, targets = imbalanced((8, 3))  # 3 folds: 7 samples in each training part, borderline's default is 10
    head = make_head("logistic", oversample="borderline").fit(embeddings, targets)
    assert head.cv_report_["folds"] == 3 and head.oversample_report_["counts_after"] == [8, 8]
    expected = BorderlineSMOTE(k_neighbors=5, random_state=0).fit_resample(*imbalanced())  # 54 samples: default
    assert np.array_equal(Oversampler("borderline", n_classes=3).fit_resample(*imbalanced())[0], expected[0])


def test_without_oversampling_the_heads_fit_as_before():
    embeddings, targets = imbalanced()
    logistic = make_head("logistic").fit(embeddings, targets)
    assert isinstance(logistic.model_[-1], LogisticRegressionCV) and len(logistic.model_) == 2
    assert isinstance(make_head("svm").fit(embeddings, targets).model_[-1].estimator, SVC)


def test_gmm_counts_the_real_images_not_the_synthetic_ones():
    embeddings, targets = imbalanced((30, 3, 8))
    with pytest.raises(ValueError, match=r"gmm head: every class needs at least 5 samples.*\[1\] have \[3\]"):
        make_head("gmm", oversample="smote").fit(embeddings, targets)


def test_unknown_methods_list_the_valid_ones():
    embeddings, targets = imbalanced()
    with pytest.raises(InvalidParameterError, match=r"knn head: oversample must be one of \['none', 'smote', "
                                                    r"'adasyn', 'borderline'\], got 'smot'"):
        make_head("knn", oversample="smot").fit(embeddings, targets)
    with pytest.raises(ValueError, match=r"oversample: expected one of \['none', 'smote', 'adasyn', 'borderline'\], "
                                         r"got 'random'"):
        Oversampler("random", n_classes=3).fit_resample(embeddings, targets)
    with pytest.raises(ValueError, match=r"oversample: method mean fits no head on embeddings .*--method svm"):
        make_combiner("mean", oversample="smote")
    combiner = make_combiner("svm", classifier="centroid", oversample="borderline").fit(embeddings, targets)
    assert combiner.cv_report_["oversample"]["method"] == "borderline"


@pytest.mark.parametrize("kind", ["centroid", "svm"])
def test_adasyn_on_separated_classes_says_to_use_smote(kind):
    rng = np.random.default_rng(0)
    embeddings = np.concatenate([rng.normal(0, 1, (30, 3)), rng.normal(30, 1, (6, 3))])
    targets = np.repeat([0, 1], [30, 6])
    with pytest.raises(ValueError, match=rf"{kind} head: oversample adasyn cannot resample .*use --oversample smote"):
        make_head(kind, oversample="adasyn").fit(embeddings, targets)  # raised in a fold: the search does not hide it


def test_the_cli_refuses_oversampling_where_it_cannot_apply(capsys, tmp_path):
    from test_eval_cli import cli

    code, _, err = cli(capsys, "ensemble", tmp_path / "a", tmp_path / "b", "--method", "mean", "--oversample", "smote")
    assert code == 2 and "oversample: method mean fits no head on embeddings" in err, err
    with pytest.raises(SystemExit):
        cli(capsys, "head", tmp_path / "a", "--kind", "knn", "--oversample", "smot")
    assert "invalid choice: 'smot' (choose from 'none', 'smote', 'adasyn', 'borderline')" in capsys.readouterr().err
