"""Operating points: target syntax, threshold tuning (vs brute force), bootstrap, decision rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from winnow.metrics.report import full_metrics
from winnow.operating import PerClassThresholds, RuleStrategy, Target, ThresholdTuner, decision_from_dict, parse_target
from winnow.operating.bootstrap import bootstrap_interval, percentile_interval, ratio_statistic, resample_indices

BINARY = ["bad", "good"]
THREE = ["cat", "dog", "fox"]


def binary_scores(n: int = 600, *, seed: int = 0, separation: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities `[n, 2]` (column 1 = "good") and targets `[n]`."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, n)
    good = np.clip(rng.normal(0.35 + separation * targets, 0.15), 0, 1).round(3)  # rounding makes ties
    return np.stack([1 - good, good], axis=1), targets


def three_class_scores(n: int = 600, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), targets] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, targets


def rates(predicted: np.ndarray, targets: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall and FPR of class k, by hand (undefined -> 0)."""
    tp = np.sum((predicted == k) & (targets == k))
    fp = np.sum((predicted == k) & (targets != k))
    return {"precision": tp / max(np.sum(predicted == k), 1), "recall": tp / max(np.sum(targets == k), 1),
            "fpr": fp / max(np.sum(targets != k), 1)}


def brute_force(probabilities: np.ndarray, targets: np.ndarray, k: int, target: Target) -> float:
    """Best threshold by trying every unique score with the tuner's rule (ties -> higher threshold)."""
    others = probabilities.copy()
    others[:, k] = -np.inf
    best, best_threshold = -np.inf, None
    for threshold in np.unique(probabilities[:, k]):
        predicted = np.where(probabilities[:, k] >= threshold, k, others.argmax(axis=1))
        if not target.satisfied(rates(predicted, targets, k)[target.metric]):
            continue
        value = rates(predicted, targets, k)[target.objective_metric] * (1 if target.maximize else -1)
        if value >= best:
            best, best_threshold = value, threshold
    return best_threshold


# --------------------------------------------------------------------------------------------- targets


@pytest.mark.parametrize("text, expected", [
    ("precision(good)>=0.90", Target("precision", "good", ">=", 0.9, "recall", "good")),
    ("recall(bad) >= 0.95", Target("recall", "bad", ">=", 0.95, "precision", "bad")),
    ("fpr<=0.01", Target("fpr", "good", "<=", 0.01, "recall", "good")),
    ("FPR(bad)<=0.01", Target("fpr", "bad", "<=", 0.01, "recall", "bad")),
    ("tpr(good)>=0.8", Target("recall", "good", ">=", 0.8, "precision", "good")),
    ("precision(good)>=0.9 maximize recall(good)", Target("precision", "good", ">=", 0.9, "recall", "good")),
    ("precision(good)>=0.9 maximise recall", Target("precision", "good", ">=", 0.9, "recall", "good")),
    ("recall(bad)>=0.9 minimize fpr(bad)", Target("recall", "bad", ">=", 0.9, "fpr", "bad")),
])
def test_parse_valid_targets(text, expected):
    assert parse_target(text, BINARY) == expected


def test_target_round_trips_through_str():
    target = parse_target("recall(bad)>=0.95", BINARY)
    assert parse_target(str(target), BINARY) == target


@pytest.mark.parametrize("text, reason", [
    ("precision(good)", "could not read"),
    ("precision(good)>=", "could not read"),
    ("accuracy(good)>=0.9", "unknown metric 'accuracy'"),
    ("precision(good)<=0.9", "precision takes '>='"),
    ("fpr(good)>=0.1", "fpr takes '<='"),
    ("precision(good)>0.9", "got '>'"),
    ("precision(good)>=90", r"must be in \[0, 1\]"),
    ("precision(good)>=high", "not a number"),
    ("precision(good)>=0.9 maximize fpr(good)", "minimize fpr"),
    ("precision(good)>=0.9 then recall", "could not read"),
    ("", "could not read"),
])
def test_malformed_targets_show_valid_syntax(text, reason):
    with pytest.raises(ValueError, match=reason) as error:
        parse_target(text, BINARY)
    assert "precision(good)>=0.90" in str(error.value)


def test_unknown_class_lists_the_classes():
    with pytest.raises(ValueError, match=r"unknown class 'gud'; expected one of \['bad', 'good'\]"):
        parse_target("precision(gud)>=0.9", BINARY)


def test_class_can_be_omitted_only_for_two_classes():
    with pytest.raises(ValueError, match="name the class"):
        parse_target("fpr<=0.01", THREE)
    with pytest.raises(TypeError, match="string"):
        parse_target(0.9, BINARY)


# --------------------------------------------------------------------------------------------- tuner


@pytest.mark.parametrize("text", ["precision(good)>=0.9", "recall(good)>=0.95", "fpr<=0.05", "recall(bad)>=0.9",
                                  "precision(good)>=0.85 minimize fpr(good)"])
def test_tuner_matches_brute_force(text):
    probabilities, targets = binary_scores()
    tuner = ThresholdTuner(text, n_bootstrap=200).fit(probabilities, targets, BINARY)
    target = parse_target(text, BINARY)
    k = BINARY.index(target.cls)
    assert tuner.threshold_ == brute_force(probabilities, targets, k, target)
    achieved = rates(tuner.predict(probabilities), targets, k)
    assert target.satisfied(achieved[target.metric])
    assert tuner.achieved_[f"{target.metric}({target.cls})"] == pytest.approx(achieved[target.metric])


def test_tuner_three_classes_matches_brute_force_and_falls_back_to_other_classes():
    probabilities, targets = three_class_scores()
    tuner = ThresholdTuner("precision(dog)>=0.8", n_bootstrap=100).fit(probabilities, targets, THREE)
    assert tuner.threshold_ == brute_force(probabilities, targets, 1, parse_target("precision(dog)>=0.8", THREE))
    predicted = tuner.predict(probabilities)
    below = probabilities[:, 1] < tuner.threshold_
    assert (predicted[~below] == 1).all()
    assert (predicted[below] == probabilities[below][:, [0, 2]].argmax(axis=1) * 2).all()
    assert tuner.predict_labels(probabilities[:3]) == [THREE[k] for k in predicted[:3]]


def test_non_monotonic_precision_uses_the_whole_curve():
    # Sorted by score: good, bad, then 8 good, then bad. Precision falls to 0.5 at the 2nd row and
    # climbs back to 0.9 at the 10th: only a full scan finds the high-recall threshold.
    labels = np.array([1, 0, 1, 1, 1, 1, 1, 1, 1, 1] + [0] * 20)
    good = np.linspace(0.99, 0.01, len(labels))
    probabilities = np.stack([1 - good, good], axis=1)
    tuner = ThresholdTuner("precision(good)>=0.9", n_bootstrap=50, min_support=1).fit(probabilities, labels, BINARY)
    assert tuner.threshold_ == good[9]
    assert tuner.achieved_ == pytest.approx({"precision(good)": 0.9, "recall(good)": 1.0, "fpr(good)": 1 / 21})


def test_ties_prefer_the_higher_threshold():
    good = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    labels = np.array([1, 1, 0, 0, 0, 0])  # thresholds 0.8, 0.7 and 0.6... all give recall 1 for precision>=0.5
    tuner = ThresholdTuner("precision(good)>=0.5", n_bootstrap=20).fit(np.stack([1 - good, good], 1), labels, BINARY)
    assert tuner.threshold_ == 0.8


def test_impossible_target_reports_the_best_achievable_value():
    good = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 1])
    probabilities = np.stack([1 - good, good], axis=1)
    with pytest.raises(ValueError, match=r"no threshold reaches precision\(good\) >= 0.9 .* best achievable is "
                                         r"0\.7500 \(at threshold 0\.9\)"):
        ThresholdTuner("precision(good)>=0.9").fit(probabilities, labels, BINARY)


def test_tuner_warnings_for_small_support_and_a_low_interval():
    probabilities, targets = binary_scores(n=60, seed=1)
    tuner = ThresholdTuner("precision(good)>=0.8", n_bootstrap=300, min_support=100).fit(
        probabilities, targets, BINARY)
    text = " ".join(tuner.warnings_)
    assert "min_support=100" in text
    assert tuner.lower_bound_ < 0.8 and "lower end misses the target" in text


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data():
    widths = []
    for n in (200, 5000):
        probabilities, targets = binary_scores(n=n, seed=2)
        tuner = ThresholdTuner("recall(good)>=0.9", n_bootstrap=400).fit(probabilities, targets, BINARY)
        low, high = tuner.interval_
        assert low <= tuner.achieved_["recall(good)"] <= high
        assert tuner.conservative_bound_ == low == tuner.lower_bound_
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_fpr_interval_conservative_end_is_the_upper_one():
    probabilities, targets = binary_scores(seed=3)
    tuner = ThresholdTuner("fpr(good)<=0.05", n_bootstrap=200).fit(probabilities, targets, BINARY)
    assert tuner.conservative_bound_ == tuner.interval_[1] >= tuner.achieved_["fpr(good)"]


def test_evaluate_on_new_data_is_json_and_matches_full_metrics():
    probabilities, targets = binary_scores(seed=4)
    tuner = ThresholdTuner("precision(good)>=0.9", n_bootstrap=200).fit(probabilities[:400], targets[:400], BINARY)
    result = tuner.evaluate(probabilities[400:], targets[400:])
    json.dumps(result, allow_nan=False)
    metrics = full_metrics(probabilities[400:], targets[400:], BINARY, predictions=tuner.predict(probabilities[400:]))
    assert result["achieved"]["precision(good)"] == pytest.approx(metrics["per_class"]["good"]["precision"])
    assert result["target_met"] == (result["achieved"]["precision(good)"] >= 0.9)
    assert result["interval"]["low"] <= result["achieved"]["precision(good)"] <= result["interval"]["high"]
    assert result["n_samples"] == 200 and result["threshold"] == tuner.threshold_


def test_save_and_load_thresholds():
    probabilities, targets = binary_scores(seed=5)
    tuner = ThresholdTuner("recall(good)>=0.9", n_bootstrap=100).fit(probabilities, targets, BINARY)
    saved = json.loads(json.dumps(tuner.to_dict(), allow_nan=False))
    loaded = ThresholdTuner.from_dict(saved, classes=BINARY)
    assert loaded.threshold_ == tuner.threshold_ and loaded.interval_ == tuner.interval_
    assert (loaded.predict(probabilities) == tuner.predict(probabilities)).all()
    assert isinstance(decision_from_dict(saved), ThresholdTuner)
    with pytest.raises(ValueError, match=r"tuned for classes \['bad', 'good'\] but this model has \['ok', 'ng'\]"):
        ThresholdTuner.from_dict(saved, classes=["ok", "ng"])
    with pytest.raises(ValueError, match="expected 'strategy'"):
        decision_from_dict({"format": "something else"})


def test_tuner_is_a_scikit_learn_estimator():
    tuner = ThresholdTuner("recall(good)>=0.9", n_bootstrap=10)
    assert clone(tuner).get_params()["n_bootstrap"] == 10
    with pytest.raises(NotFittedError, match="call fit"):
        tuner.predict(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="n_bootstrap"):
        ThresholdTuner("recall(good)>=0.9", n_bootstrap=0).fit(*binary_scores(n=20), BINARY)
    fitted = tuner.fit(*binary_scores(n=50), BINARY)
    with pytest.raises(ValueError, match="expected 2 columns"):
        fitted.predict(np.full((2, 3), 1 / 3))


# --------------------------------------------------------------------------------------------- bootstrap


def test_resample_indices_chunks_are_bounded_and_reproducible():
    chunks = list(resample_indices(1000, 25, random_state=1, max_elements=10_000))
    assert [c.shape for c in chunks] == [(10, 1000), (10, 1000), (5, 1000)]
    again = np.concatenate(list(resample_indices(1000, 25, random_state=1, max_elements=10_000)))
    assert (np.concatenate(chunks) == again).all() and again.max() < 1000


def test_ratio_statistic_and_undefined_replicates():
    statistic = ratio_statistic(np.array([1, 0, 0]), np.array([1, 1, 0]))
    values = statistic(np.array([[0, 1, 2], [2, 2, 2], [0, 0, 1]]))
    assert values[0] == 0.5 and np.isnan(values[1]) and values[2] == pytest.approx(2 / 3)
    interval = percentile_interval(np.array([np.nan, 0.2, 0.4, 0.6]), confidence=0.5)
    assert interval.n_undefined == 1 and interval.low == pytest.approx(0.3) and interval.high == pytest.approx(0.5)
    never = bootstrap_interval(ratio_statistic(np.zeros(5), np.zeros(5)), 5, n_bootstrap=10)
    assert never.to_dict()["low"] is None and never.n_undefined == 10


# --------------------------------------------------------------------------------------------- other rules


def test_per_class_thresholds_reject_and_argmax_among_passing():
    rules = PerClassThresholds({"cat": 0.9, "dog": 0.3, "fox": 0.5})
    probabilities = np.array([[0.6, 0.35, 0.05],   # cat fails 0.9, dog passes -> dog
                              [0.95, 0.03, 0.02],  # cat passes
                              [0.45, 0.1, 0.45]])  # nothing passes -> uncertain
    assert rules.predict(probabilities).tolist() == [1, 0, -1]
    assert rules.predict_labels(probabilities) == ["dog", "cat", "uncertain"]
    loaded = decision_from_dict(json.loads(json.dumps(rules.to_dict())), classes=THREE)
    assert loaded.predict(probabilities).tolist() == [1, 0, -1]


def test_per_class_thresholds_with_explicit_classes_and_errors():
    rules = PerClassThresholds({"fox": 0.8}, classes=THREE, reject_label="review")
    assert rules.predict_labels(np.array([[0.1, 0.1, 0.8], [0.1, 0.2, 0.7]])) == ["fox", "dog"]
    with pytest.raises(ValueError, match="unknown class names"):
        PerClassThresholds({"wolf": 0.5}, classes=THREE).predict(np.full((1, 3), 1 / 3))
    with pytest.raises(ValueError, match="expected 3 columns"):
        rules.predict(np.full((1, 2), 0.5))
    with pytest.raises(ValueError, match="tuned for classes"):
        PerClassThresholds.from_dict(rules.to_dict(), classes=BINARY)


def test_rule_strategy_applies_rules_in_order():
    strategy = RuleStrategy([lambda s: "fox" if s["fox"] > 0.2 else None,
                             lambda s: "review" if 0.4 < s["cat"] < 0.9 else None,
                             lambda s: "dog" if s["dog"] > 0.1 else None], "cat", classes=THREE)
    probabilities = np.array([[0.5, 0.2, 0.3],    # rules 1, 2 and 3 fire: the first wins
                              [0.5, 0.4, 0.1],    # rule 2 before rule 3
                              [0.3, 0.6, 0.1],    # rule 3
                              [0.95, 0.05, 0.0]])  # none: default
    assert strategy.predict_labels(probabilities) == ["fox", "review", "dog", "cat"]
    assert strategy.predict(probabilities).tolist() == [2, -1, 1, 0]
    with pytest.raises(TypeError, match="callables"):
        RuleStrategy(["not a rule"], "cat", classes=THREE).predict(probabilities)
