"""Synthetic minority samples (`oversample`: smote, adasyn, borderline) for every head on embeddings."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest
from imblearn.over_sampling import SMOTE

from winnow.constraints import InvalidParameterError
from winnow.embeddings.heads import HEADS, make_head
from winnow.embeddings.oversample import OVERSAMPLERS, oversample
from winnow.ensembles.build import head_choice
from winnow.ensembles.methods import make_combiner

N_FEATURES = 6
COUNTS = (40, 8, 6)  # imbalanced: classes 1 and 2 are rare
METHODS = [name for name in OVERSAMPLERS if name != "none"]


def imbalanced(counts=COUNTS, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian blobs `[N, D]` (ADASYN needs rare samples with neighbours of other classes) and labels."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(len(counts)), counts)
    means = 1.5 * np.eye(len(counts), N_FEATURES) + 3.0
    return means[targets] + rng.normal(size=(len(targets), N_FEATURES)), targets


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", list(HEADS))
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
    resampled, resampled_targets, report = oversample(embeddings, targets, method="smote", n_classes=3, seed=0,
                                                      what="test")
    expected, expected_targets = SMOTE(k_neighbors=5, random_state=0).fit_resample(embeddings, targets)
    assert np.array_equal(resampled, expected) and np.array_equal(resampled_targets, expected_targets)
    assert np.array_equal(resampled[:len(embeddings)], embeddings)  # the real samples come first, unchanged
    assert report["counts_after"] == [40, 40, 40]
    same = oversample(embeddings, targets, method="none", n_classes=3, seed=0, what="test")
    assert same[0] is embeddings and same[2] is None
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
        oversample(embeddings, targets, method="random", n_classes=3, seed=0, what="test")
    with pytest.raises(ValueError, match=r"oversample: method mean fits no head on embeddings .*--method svm"):
        make_combiner("mean", oversample="smote")
    combiner = make_combiner("svm", classifier="centroid", oversample="borderline").fit(embeddings, targets)
    assert combiner.cv_report_["oversample"]["method"] == "borderline"


def test_adasyn_on_separated_classes_says_to_use_smote():
    rng = np.random.default_rng(0)
    embeddings = np.concatenate([rng.normal(0, 1, (30, 3)), rng.normal(30, 1, (6, 3))])
    targets = np.repeat([0, 1], [30, 6])
    with pytest.raises(ValueError, match=r"centroid head: oversample adasyn cannot resample .*use --oversample smote"):
        make_head("centroid", oversample="adasyn").fit(embeddings, targets)


def test_the_cli_refuses_oversampling_where_it_cannot_apply(capsys, tmp_path):
    from test_eval_cli import cli

    code, _, err = cli(capsys, "ensemble", tmp_path / "a", tmp_path / "b", "--method", "mean", "--oversample", "smote")
    assert code == 2 and "oversample: method mean fits no head on embeddings" in err, err
    with pytest.raises(SystemExit):
        cli(capsys, "head", tmp_path / "a", "--kind", "knn", "--oversample", "smot")
    assert "invalid choice: 'smot' (choose from 'none', 'smote', 'adasyn', 'borderline')" in capsys.readouterr().err
