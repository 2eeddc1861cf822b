"""Bagging PU head on embeddings (`winnow.embeddings.pu_bagging`): out-of-bag scores, contract, bad input."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from winnow.embeddings.heads import make_head


def pu_blobs(seed: int = 0):
    """40 labelled positives; 60 unlabelled of which 20 hidden positives (the first 20)."""
    rng = np.random.default_rng(seed)
    positives = rng.normal(2.0, 1.0, (60, 4))
    negatives = rng.normal(-2.0, 1.0, (40, 4))
    unlabelled = np.concatenate([positives[40:], negatives])
    return np.concatenate([positives[:40], unlabelled]), np.r_[np.ones(40), np.zeros(60)].astype(int)


def test_oob_scores_rank_hidden_positives_first():
    features, targets = pu_blobs()
    head = make_head("pu_bagging", n_estimators=30).fit(features, targets, n_classes=2)
    oob = head.oob_scores_
    assert np.isnan(oob[:40]).all() and np.isfinite(oob[40:]).all()  # every unlabelled image is out of some bag
    hidden = np.r_[np.ones(20), np.zeros(40)]
    assert roc_auc_score(hidden, oob[40:]) > 0.95
    probabilities = head.predict_proba(features)
    assert probabilities.shape == (100, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert head.cv_report_["classifier"] == "pu_bagging" and head.cv_report_["oob_unlabelled"] == 60


def test_oob_score_is_the_mean_over_bags_that_did_not_draw_the_image():
    features, targets = pu_blobs(1)
    head = make_head("pu_bagging", n_estimators=5, max_depth=2, seed=3).fit(features, targets, n_classes=2)
    rng = np.random.default_rng(3)
    unlabelled, sums, counts = np.flatnonzero(targets == 0), np.zeros(100), np.zeros(100)
    for tree in head.estimators_:
        drawn = set(rng.choice(unlabelled, 40).tolist())
        for i in unlabelled:
            if i not in drawn:
                sums[i] += tree.predict_proba(features[i:i + 1])[0, 1]
                counts[i] += 1
    expected = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    assert np.allclose(head.oob_scores_, expected, equal_nan=True)


def test_round_trip_unfitted_and_bad_input(tmp_path):
    features, targets = pu_blobs()
    head = make_head("pu_bagging", n_estimators=5).fit(features, targets)
    joblib.dump(head, tmp_path / "head.joblib")
    assert np.array_equal(joblib.load(tmp_path / "head.joblib").predict_proba(features), head.predict_proba(features))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        clone(head).predict_proba(features)
    with pytest.raises(ValueError, match="exactly 2 classes"):
        make_head("pu_bagging").fit(features, np.arange(100) % 3)
    with pytest.raises(ValueError, match="oversample 'smote'"):  # synthetic unlabelled images mean nothing
        make_head("pu_bagging", oversample="smote").fit(features, targets)
    with pytest.raises(ValueError, match="n_estimators"):
        make_head("pu_bagging", n_estimators=0).fit(features, targets)
