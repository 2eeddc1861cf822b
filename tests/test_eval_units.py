"""Building blocks of evaluation without training: TTA views and merges, logit forms, stores, scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import expit

from winnow.calibration import TemperatureScaling
from winnow.calibration.store import load_calibration, save_calibration
from winnow.evaluation.report_files import write_plots
from winnow.evaluation.scoring import score
from winnow.inference.postprocess import decide, softmax_logits, to_probabilities
from winnow.inference.predictions import Predictions
from winnow.data.views import d4_ops, flip_ops
from winnow.inference.tta import merge_views, parse_tta
from winnow.metrics.report import full_metrics_multilabel
from winnow.operating.store import load_thresholds
from winnow.tasks.heads import make_head
from winnow.tasks.spec import TaskSpec


def test_parse_tta():
    assert parse_tta(None).mode == "none" and parse_tta("none").label == ""
    assert parse_tta("flips", merge="gmean").label == "flips-gmean"
    assert parse_tta("8").n_random == 8 and parse_tta(8).label == "8random-mean"
    for bad, message in (("0", "flips, d4 or a number"), ("rot", "flips, d4 or a number")):
        with pytest.raises(ValueError, match=message):
            parse_tta(bad)
    with pytest.raises(ValueError, match="tta merge"):
        parse_tta("flips", merge="median")


def test_flip_and_d4_views_are_distinct_symmetries():
    image = torch.arange(16.0).reshape(1, 4, 4)
    d4 = [op(image) for op in d4_ops()]
    assert len({tuple(view.flatten().tolist()) for view in d4}) == 8
    flips = [op(image) for op in flip_ops()]
    assert all(any(torch.equal(flip, view) for view in d4) for flip in flips)
    assert torch.equal(flips[1], image.flip(-1)) and torch.equal(flips[3], image.flip(-1).flip(-2))


def test_merge_views_mean_and_geometric_mean():
    views = np.array([[[0.9, 0.1], [0.5, 0.5]]])  # 1 image, 2 views, 2 classes
    assert np.allclose(merge_views(views, "mean"), [[0.7, 0.3]])
    geometric = np.sqrt(views.prod(axis=1))
    assert np.allclose(merge_views(views, "gmean"), geometric / geometric.sum(axis=1, keepdims=True))
    labels = np.array([[[0.9], [0.5]]])  # independent per-label scores
    g, c = np.sqrt(0.9 * 0.5), np.sqrt(0.1 * 0.5)
    assert np.allclose(merge_views(labels, "gmean", rows_sum_to_one=False), [[g / (g + c)]])


def test_binary_logits_take_softmax_form():
    head = make_head("binary", ["bad", "good"], threshold=0.3)
    z = np.array([[-2.0], [0.0], [1.5]])
    form = softmax_logits(head, z)
    assert form.shape == (3, 2)
    probabilities = to_probabilities(head, form)
    assert np.allclose(probabilities[:, 1], expit(z[:, 0]))
    assert decide(head, None, probabilities).tolist() == (expit(z[:, 0]) >= 0.3).astype(int).tolist()
    scaler = TemperatureScaling()
    scaler.temperature_, scaler.n_classes_ = 2.0, 2
    assert np.allclose(to_probabilities(head, form, calibration=scaler)[:, 1], expit(z[:, 0] / 2))


def test_stores_refuse_other_runs_and_broken_files(tmp_path):
    scaler = TemperatureScaling()
    scaler.temperature_, scaler.n_classes_ = 1.5, 2
    path = tmp_path / "calibration.json"
    save_calibration(path, scaler, classes=["bad", "good"], context={"checkpoint": "best"})
    assert load_calibration(path, classes=["bad", "good"]).temperature_ == 1.5
    with pytest.raises(ValueError, match="another run"):
        load_calibration(path, classes=["cat", "dog"])
    broken = tmp_path / "thresholds.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_thresholds(broken, classes=["bad", "good"])
    broken.write_text(json.dumps({"strategy": "magic"}))
    with pytest.raises(ValueError, match="winnow tune"):
        load_thresholds(broken, classes=["bad", "good"])


def test_multilabel_scoring_and_plots(tmp_path):
    rng = np.random.default_rng(0)
    head = make_head("multilabel", ["a", "b", "c"])
    targets = rng.integers(0, 2, (40, 3))
    probabilities = np.clip(targets * 0.6 + rng.random((40, 3)) * 0.4, 0, 1)
    task = TaskSpec("", "label", head, "bce")
    predictions = Predictions([f"{i}.png" for i in range(40)], [task], probabilities)
    metrics = score(predictions, targets)
    expected = full_metrics_multilabel(probabilities, targets, head.classes)
    assert metrics["macro_f1"] == expected["macro_f1"] and metrics["per_label"] == expected["per_label"]
    write_plots(tmp_path, metrics, predictions, targets)
    for name in ("pr_curves.png", "roc_curves.png"):
        Image.open(tmp_path / name).verify()
