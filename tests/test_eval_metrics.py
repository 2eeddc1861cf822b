"""Full evaluation metrics against scikit-learn, ECE against a naive loop, and the PNG figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, confusion_matrix,
                             f1_score, hamming_loss, log_loss, precision_recall_fscore_support, roc_auc_score)

from winnow.metrics.plots import (confusion_matrix_png, metric_over_epochs_png, pr_curves_png, reliability_png,
                                  roc_curves_png)
from winnow.metrics.report import expected_calibration_error, full_metrics, full_metrics_multilabel, reliability_bins

CLASSES = ["bar", "disk", "square"]


def make_scores(n: int = 400, k: int = 3, *, seed: int = 0, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities `[n, k]` with some signal and targets `[n]`."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), targets] += signal
    return softmax(logits * 2, axis=1), targets


def naive_ece(probabilities: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE, bin by bin: bins (lo, hi], the first one including 0."""
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    edges, total = np.linspace(0, 1, n_bins + 1), 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        inside = [i for i in range(len(targets)) if (lo < confidence[i] <= hi) or (b == 0 and confidence[i] == 0)]
        if inside:
            accuracy = np.mean([predicted[i] == targets[i] for i in inside])
            total += len(inside) / len(targets) * abs(accuracy - np.mean(confidence[inside]))
    return total


# --------------------------------------------------------------------------------------------- single-label


def test_full_metrics_match_sklearn():
    probabilities, targets = make_scores()
    predicted = probabilities.argmax(axis=1)
    report = full_metrics(probabilities, targets, CLASSES)
    assert report["accuracy"] == pytest.approx(accuracy_score(targets, predicted))
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(targets, predicted))
    assert report["macro_f1"] == pytest.approx(f1_score(targets, predicted, average="macro"))
    assert report["weighted_f1"] == pytest.approx(f1_score(targets, predicted, average="weighted"))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted)
    for k, name in enumerate(CLASSES):
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision[k], recall[k], f1[k]))
        assert row["support"] == support[k]
        assert row["roc_auc"] == pytest.approx(roc_auc_score(targets == k, probabilities[:, k]))
    assert report["confusion_matrix"]["counts"] == confusion_matrix(targets, predicted).tolist()
    assert np.allclose(report["confusion_matrix"]["normalized"], confusion_matrix(targets, predicted, normalize="true"))
    assert report["log_loss"] == pytest.approx(log_loss(targets, probabilities))


def test_ranking_metrics_match_sklearn_macro():
    probabilities, targets = make_scores(seed=1)
    report = full_metrics(probabilities, targets, CLASSES)
    assert report["roc_auc_macro"] == pytest.approx(roc_auc_score(targets, probabilities, multi_class="ovr"))
    per_class_ap = average_precision_score(np.eye(3)[targets], probabilities, average=None)
    assert [report["per_class"][c]["average_precision"] for c in CLASSES] == pytest.approx(per_class_ap)
    assert report["average_precision_macro"] == pytest.approx(per_class_ap.mean())


def test_report_is_strict_json():
    probabilities, targets = make_scores(n=50)
    text = json.dumps(full_metrics(probabilities, targets, CLASSES), allow_nan=False)
    assert json.loads(text)["classes"] == CLASSES


def test_class_absent_from_targets_is_skipped_with_a_note():
    probabilities, targets = make_scores(seed=2)
    targets = np.where(targets == 2, 0, targets)
    report = full_metrics(probabilities, targets, CLASSES)
    assert report["per_class"]["square"]["roc_auc"] is None
    assert any("'square'" in note for note in report["notes"])
    defined = [report["per_class"][c]["roc_auc"] for c in ("bar", "disk")]
    assert report["roc_auc_macro"] == pytest.approx(np.mean(defined))


def test_binary_full_metrics():
    probabilities, targets = make_scores(k=2, seed=3)
    report = full_metrics(probabilities, targets, ["bad", "good"])
    assert report["roc_auc_macro"] == pytest.approx(roc_auc_score(targets, probabilities[:, 1]))


@pytest.mark.parametrize("seed, n_bins", [(0, 15), (1, 15), (2, 7), (3, 1)])
def test_ece_matches_naive_loop(seed, n_bins):
    probabilities, targets = make_scores(n=300, seed=seed)
    assert expected_calibration_error(probabilities, targets, n_bins=n_bins) == pytest.approx(
        naive_ece(probabilities, targets, n_bins))


def test_ece_bin_edges_and_perfect_case():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.6, 0.4]])
    targets = np.array([0, 1, 0, 1])
    bins = reliability_bins(probabilities, targets, n_bins=10)
    assert bins.counts.sum() == 4 and bins.counts[4] == 1 and bins.counts[5] == 1 and bins.counts[9] == 2
    assert expected_calibration_error(probabilities, targets, n_bins=10) == pytest.approx(naive_ece(
        probabilities, targets, 10))
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_thresholds_reject_rows_and_label_metrics_use_the_rest():
    probabilities, targets = make_scores(seed=4)
    report = full_metrics(probabilities, targets, CLASSES, thresholds={c: 0.6 for c in CLASSES})
    accepted = probabilities.max(axis=1) >= 0.6
    assert report["n_uncertain"] == int((~accepted).sum()) > 0
    assert report["coverage"] == pytest.approx(accepted.mean())
    assert report["uncertain_per_class"] == np.bincount(targets[~accepted], minlength=3).tolist()
    assert report["accuracy"] == pytest.approx(accuracy_score(targets[accepted], probabilities[accepted].argmax(1)))
    assert report["log_loss"] == pytest.approx(log_loss(targets, probabilities))  # ranking/calibration: all rows


def test_predictions_argument_and_its_errors():
    probabilities, targets = make_scores(n=60, seed=5)
    always_bar = np.zeros(60, dtype=int)
    assert full_metrics(probabilities, targets, CLASSES, predictions=always_bar)["accuracy"] == pytest.approx(
        np.mean(targets == 0))
    with pytest.raises(ValueError, match="either thresholds or predictions"):
        full_metrics(probabilities, targets, CLASSES, predictions=always_bar, thresholds={"bar": 0.5})
    with pytest.raises(ValueError, match="thresholds: unknown class names"):
        full_metrics(probabilities, targets, CLASSES, thresholds={"cat": 0.5})


@pytest.mark.parametrize("change, match", [
    (lambda p, t, c: (np.log(p), t, c), "not logits"),
    (lambda p, t, c: (p * 0.5, t, c), "summing to 1"),
    (lambda p, t, c: (p, t + 3, c), r"class indices in \[0, 3\)"),
    (lambda p, t, c: (p, t.astype(float), c), "integer class indices"),
    (lambda p, t, c: (p, t[:-1], c), "expected shape"),
    (lambda p, t, c: (p, t, c[:2]), "3 distinct names"),
    (lambda p, t, c: (p[:, 0], t, c), r"2-D array \[N, K\]"),
])
def test_invalid_inputs_are_explained(change, match):
    probabilities, targets = make_scores(n=30)
    with pytest.raises((ValueError, TypeError), match=match):
        full_metrics(*change(probabilities, targets, CLASSES))


# --------------------------------------------------------------------------------------------- multi-label


def make_multilabel(n: int = 300, labels: int = 3, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, (n, labels))
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1.5, (n, labels)) + 2 * (targets - 0.5))))
    return scores, targets


def test_multilabel_matches_sklearn():
    scores, targets = make_multilabel()
    predicted = (scores >= 0.5).astype(int)
    report = full_metrics_multilabel(scores, targets, ["a", "b", "c"])
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted)
    for k, name in enumerate("abc"):
        row = report["per_label"][name]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[k], recall[k], f1[k], support[k]))
        assert row["roc_auc"] == pytest.approx(roc_auc_score(targets[:, k], scores[:, k]))
        assert row["average_precision"] == pytest.approx(average_precision_score(targets[:, k], scores[:, k]))
        assert row["log_loss"] == pytest.approx(log_loss(targets[:, k], scores[:, k]))
        two_class = np.stack([1 - scores[:, k], scores[:, k]], axis=1)
        assert row["ece"] == pytest.approx(naive_ece(two_class, targets[:, k]))
    assert report["subset_accuracy"] == pytest.approx(accuracy_score(targets, predicted))
    assert report["hamming_loss"] == pytest.approx(hamming_loss(targets, predicted))
    assert report["micro_f1"] == pytest.approx(f1_score(targets, predicted, average="micro"))
    assert report["roc_auc_macro"] == pytest.approx(roc_auc_score(targets, scores, average="macro"))
    json.dumps(report, allow_nan=False)


def test_multilabel_single_binary_score_and_thresholds():
    scores, targets = make_multilabel(labels=1, seed=1)
    report = full_metrics_multilabel(scores, targets, ["defect"], thresholds={"defect": 0.8})
    predicted = (scores[:, 0] >= 0.8).astype(int)
    row = report["per_label"]["defect"]
    assert row["recall"] == pytest.approx(predicted[targets[:, 0] == 1].mean())
    assert row["support"] == targets.sum()
    assert row["confusion_matrix"] == confusion_matrix(targets[:, 0], predicted).tolist()
    assert report["macro_f1"] == pytest.approx(f1_score(targets[:, 0], predicted))
    with pytest.raises(ValueError, match="multi-hot"):
        full_metrics_multilabel(scores, targets * 2, ["defect"])


# --------------------------------------------------------------------------------------------- figures


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_figures_are_written_atomically(tmp_path):
    probabilities, targets = make_scores(n=200)
    counts = full_metrics(probabilities, targets, CLASSES)["confusion_matrix"]["counts"]
    (tmp_path / "cm.png").write_text("old")
    written = [
        confusion_matrix_png(counts, CLASSES, tmp_path / "cm.png"),
        pr_curves_png(probabilities, targets, CLASSES, tmp_path / "pr.png", operating_points={"disk": 0.7}),
        roc_curves_png(probabilities, targets, CLASSES, tmp_path / "sub" / "roc.png"),
        reliability_png({"before": probabilities, "after": probabilities ** 0.5 / (probabilities ** 0.5).sum(1,
                         keepdims=True)}, targets, tmp_path / "rel.png"),
        metric_over_epochs_png([{"epoch": e, "train_loss": 1 / e, "val_macro_f1": 1 - 1 / e, "lr": 0.1}
                                for e in range(1, 6)], tmp_path / "history.png", best_epoch=4),
    ]
    for path in written:
        assert_png(path)


def test_figure_inputs_are_checked(tmp_path):
    probabilities, targets = make_scores(n=40)
    with pytest.raises(ValueError, match="square"):
        confusion_matrix_png(np.ones((2, 3)), CLASSES, tmp_path / "cm.png")
    with pytest.raises(ValueError, match="at least one epoch"):
        metric_over_epochs_png([], tmp_path / "h.png")
    with pytest.warns(UserWarning, match="square"):
        pr_curves_png(probabilities, np.where(targets == 2, 0, targets), CLASSES, tmp_path / "pr.png")
