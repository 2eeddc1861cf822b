"""eval / tune / predict on a tiny three-class run: multi-class metrics, fallback rule, per-class thresholds."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

import winnow
from winnow.cli.main import main
from winnow.evaluation.runner import evaluate
from winnow.operating import PerClassThresholds
from winnow.operating.store import save_thresholds
from winnow.runs.layout import RunPaths

from conftest import fast_config, make_image_folder


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiclass")
    data = make_image_folder(root / "data", per_class=10)
    run = winnow.train(fast_config(root, data, epochs=2, name="three"))
    return {"run": run.path, "data": data}


@pytest.fixture
def run_copy(multiclass, tmp_path) -> Path:
    return Path(shutil.copytree(multiclass["run"], tmp_path / "run"))


def test_multiclass_eval_matches_scikit_learn_and_tta(multiclass):
    evaluation = evaluate(multiclass["run"], multiclass["data"], tta="d4", plots=False)
    metrics, probabilities, targets = evaluation.metrics, evaluation.predictions.probabilities, evaluation.targets
    assert metrics["tta"] == "d4-mean" and evaluation.directory.name == "best-tta-d4-mean"
    assert evaluation.predictions.view_logits.shape == (30, 8, 3)
    predicted = probabilities.argmax(axis=1)
    assert metrics["macro_f1"] == pytest.approx(f1_score(targets, predicted, average="macro"))
    assert metrics["roc_auc_macro"] == pytest.approx(roc_auc_score(targets, probabilities, multi_class="ovr"))
    assert metrics["thresholds"] is None and "argmax" in metrics["decision_rule"]


def test_multiclass_tune_uses_the_fallback_rule(run_copy, multiclass, capsys):
    code = main(["tune", str(run_copy), "--data", str(multiclass["data"]), "--target", "recall(disk)>=0.9"])
    assert code == 0, capsys.readouterr().err
    predictions = winnow.load(run_copy).predict(multiclass["data"])
    threshold, disk = predictions.decision.threshold_, 1
    scores = predictions.probabilities
    others = np.where(np.arange(3) == disk, -np.inf, scores)
    expected = np.where(scores[:, disk] >= threshold, disk, others.argmax(axis=1))
    assert predictions.predicted == [predictions.classes[k] for k in expected]


def test_per_class_thresholds_reject_as_uncertain(run_copy, multiclass, capsys):
    plain = winnow.load(run_copy).predict(multiclass["data"]).probabilities
    cut = float(np.median(plain.max(axis=1)))  # about half the images pass
    rule = PerClassThresholds({"bar": cut, "disk": cut, "square": cut}, classes=["bar", "disk", "square"])
    save_thresholds(RunPaths(run_copy).thresholds, rule, context={})
    evaluation = evaluate(run_copy, multiclass["data"], plots=False)
    rejected = (evaluation.predictions.probabilities < cut).all(axis=1)
    assert 0 < rejected.sum() < len(rejected)
    labels = evaluation.predictions.predicted
    assert [label == "uncertain" for label in labels] == rejected.tolist()
    assert evaluation.metrics["n_uncertain"] == int(rejected.sum())
    with open(evaluation.directory / "predictions.csv", newline="") as handle:
        assert [row["predicted"] for row in csv.DictReader(handle)] == labels
    assert json.loads((evaluation.directory / "metrics.json").read_text())["operating_point"] is None
