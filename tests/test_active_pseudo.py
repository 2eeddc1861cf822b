"""Pseudo-labels (`winnow.active.pseudo`): per-class thresholds for a val precision, levels, class cap."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.active.pseudo import PseudoLabeller, parse_levels


def val_set(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes whose score is informative: precision rises with the threshold."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, n)
    p1 = 1 / (1 + np.exp(-rng.normal(np.where(targets == 1, 1.0, -1.0), 1.0)))
    return np.stack([1 - p1, p1], axis=1), targets


def precision_at(probabilities, targets, threshold, k):
    picked = (probabilities.argmax(1) == k) & (probabilities.max(1) >= threshold)
    return (targets[picked] == k).mean()


def test_thresholds_reach_the_val_precision_per_class_and_levels_set_weights():
    probabilities, targets = val_set()
    labeller = PseudoLabeller(((0.98, 1.0), (0.9, 0.5)), min_keep=10_000).fit(probabilities, targets, ["a", "b"])
    strict, loose = labeller.thresholds_
    assert (strict >= loose).all()
    for k in (0, 1):
        assert precision_at(probabilities, targets, loose[k], k) >= 0.9
        assert precision_at(probabilities, targets, strict[k], k) >= 0.98
    assert (labeller.val_precision_[0] >= 0.98).all() and (labeller.val_precision_[1] >= 0.9).all()
    assert labeller.loosest_val_precision().tolist() == labeller.val_precision_[1].tolist()  # loose: lower thresholds
    pool = np.array([[0.01, 0.99], [1 - (loose[1] + strict[1]) / 2, (loose[1] + strict[1]) / 2], [0.48, 0.52]])  # below the loose threshold of b
    labels = labeller.transform(pool)
    assert labels.indices.tolist() == [1, 1, -1] and labels.weights.tolist() == [1.0, 0.5, 0.0]
    assert labels.precisions.tolist() == [0.98, 0.9, 0.0]


def test_unreachable_precision_gives_no_pseudo_labels_and_says_so():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet([1, 1], 100)  # uninformative
    targets = rng.integers(0, 2, 100)
    labeller = PseudoLabeller(((1.0, 1.0),)).fit(probabilities, targets, ["a", "b"])
    assert np.isnan(labeller.thresholds_).any() and "no pseudo-labels at precision 1" in labeller.warnings_[0]
    assert np.isnan(labeller.val_precision_[np.isnan(labeller.thresholds_)]).all()


def test_class_cap_keeps_common_classes_from_drowning_rare_ones():
    labeller = PseudoLabeller(((0.5, 1.0),), max_tilt=2.0, min_keep=1)
    labeller.fit(np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]]), np.array([0, 1, 0, 1]), ["common", "rare"],
                 train_counts=[80, 20])
    pool = np.vstack([np.tile([0.99, 0.01], (500, 1)), np.tile([0.02, 0.98], (5, 1))])
    pool[:500, 0] -= np.linspace(0, 0.02, 500)  # the first common ones are the most confident
    pool[:500, 1] = 1 - pool[:500, 0]
    labels = labeller.transform(pool)
    counts = np.bincount(labels.indices[labels.kept], minlength=2)
    assert counts.tolist() == [40, 5]  # 2 x (80/20) x 5 rare ones
    assert (labels.kept[:40] == np.arange(40)).all()  # the most confident common ones kept


def test_bad_levels_and_unfitted_use():
    assert parse_levels("0.9:0.5,0.98:1") == ((0.98, 1.0), (0.9, 0.5))
    with pytest.raises(ValueError, match="PRECISION:WEIGHT"):
        parse_levels("high")
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        parse_levels("0.9:2")
    with pytest.raises(RuntimeError, match="not fitted"):
        PseudoLabeller().transform(np.ones((1, 2)) / 2)
    with pytest.raises(ValueError, match="max_tilt"):
        PseudoLabeller(max_tilt=0.5).fit(*val_set(), ["a", "b"])
