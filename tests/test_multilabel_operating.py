"""tune and calibrate on multi-label runs: per-label thresholds and sigmoid-logit scaling."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import check_grad
from sklearn.metrics import log_loss

import winnow
from winnow.cli.main import main
from winnow.calibration.scaling import TemperatureScaling, VectorScaling, bce_gradient
from winnow.operating import LabelThresholds, ThresholdTuner, decision_from_dict
from winnow.operating.label_thresholds import label_view, view_classes

from conftest import draw, fast_config
from test_eval_cli import cli, read_rows

TARGET = "precision(disk)>=0.8"


def multilabel_manifest(root: Path, per_shape: int, *, seed: int) -> Path:
    """Disks and squares, half of them "marked" by a bright corner: labels like "disk|marked"."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = []
    for shape in ("disk", "square"):
        for i in range(per_shape):
            image, marked = draw(shape, rng, 32), i % 2 == 1
            if marked:
                image[:6, :6] = 255
            path = root / f"{shape}_{i:03d}.png"
            Image.fromarray(image).save(path)
            rows.append([str(path), shape + ("|marked" if marked else "")])
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label"], *rows])
    return manifest


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel")
    train = multilabel_manifest(root / "train", 24, seed=0)
    run = winnow.train(fast_config(root, train, head="multilabel", epochs=3, name="ml"))
    return {"run": run.path, "held": multilabel_manifest(root / "held", 16, seed=1)}


@pytest.fixture
def run_copy(multilabel, tmp_path) -> Path:
    return Path(shutil.copytree(multilabel["run"], tmp_path / "run"))


# --------------------------------------------------------------------------------------------- units


def test_label_thresholds_tune_one_label_like_a_binary_tuner():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, size=(200, 3))
    scores = np.clip(0.35 * targets + rng.uniform(0, 0.65, size=(200, 3)), 0, 1)
    decision = LabelThresholds("precision(b)>=0.9", n_bootstrap=200).fit(scores, targets, ["a", "b", "c"])
    reference = ThresholdTuner("precision(b)>=0.9", n_bootstrap=200).fit(label_view(scores, 1), targets[:, 1],
                                                                          view_classes("b"))
    assert decision.thresholds_ == {"a": 0.5, "b": reference.threshold_, "c": 0.5}
    predicted = decision.predict(scores)
    assert (predicted[:, 1] == (scores[:, 1] >= reference.threshold_)).all()
    assert (predicted[:, [0, 2]] == (scores[:, [0, 2]] >= 0.5)).all()
    assert decision.evaluate(scores, targets) == reference.evaluate(label_view(scores, 1), targets[:, 1])
    loaded = decision_from_dict(json.loads(json.dumps(decision.to_dict())), classes=["a", "b", "c"])
    assert loaded.thresholds_ == decision.thresholds_ and loaded.predict_labels(scores) == decision.predict_labels(
        scores)
    with pytest.raises(ValueError, match="tuned for classes"):
        decision_from_dict(decision.to_dict(), classes=["a", "b", "d"])


def test_multilabel_scaling_minimises_summed_binary_cross_entropy():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, size=(500, 3))
    logits = 4 * (2 * targets - 1) * rng.uniform(0.1, 1.0, size=(500, 3)) + rng.normal(0, 2, size=(500, 3))
    loss, _ = bce_gradient(logits, targets.astype(float))
    reference = sum(log_loss(targets[:, k], 1 / (1 + np.exp(-logits[:, k])), labels=[0, 1]) for k in range(3))
    assert loss == pytest.approx(reference, rel=1e-9)
    error = check_grad(lambda flat: bce_gradient(flat.reshape(5, 3), targets[:5].astype(float))[0],
                       lambda flat: bce_gradient(flat.reshape(5, 3), targets[:5].astype(float))[1].ravel(),
                       logits[:5].ravel())
    assert error < 1e-6
    for scaler in (TemperatureScaling(multilabel=True), VectorScaling(multilabel=True)):
        scaler.fit(logits, targets)
        assert scaler.nll_after_ < scaler.nll_before_
        assert scaler.predict_proba(logits).shape == (500, 3) and scaler.to_dict()["multilabel"] is True
        again = type(scaler).from_dict(scaler.to_dict())
        assert np.allclose(again.predict_proba(logits), scaler.predict_proba(logits))


# --------------------------------------------------------------------------------------------- runs


def test_tuned_label_threshold_drives_predictions_and_reported_precision(run_copy, multilabel, capsys):
    code, out, err = cli(capsys, "tune", run_copy, "--target", TARGET, "--data", multilabel["held"])
    assert code == 0 and "prob_disk >= threshold" in out, err
    saved = json.loads((run_copy / "thresholds.json").read_text())
    assert saved["strategy"] == "label_thresholds" and saved["thresholds"]["marked"] == 0.5
    threshold = saved["thresholds"]["disk"]
    code, out, err = cli(capsys, "eval", run_copy, multilabel["held"])
    assert code == 0 and "operating point: precision(disk)>=0.8" in out, err
    folder = run_copy / "eval" / "manifest" / "best"
    rows, metrics = read_rows(folder / "predictions.csv"), json.loads((folder / "metrics.json").read_text())
    for row in rows:
        predicted = set(filter(None, row["predicted"].split("|")))
        if abs(float(row["prob_disk"]) - threshold) > 1e-6:
            assert ("disk" in predicted) == (float(row["prob_disk"]) >= threshold), row
        if abs(float(row["prob_marked"]) - 0.5) > 1e-6:
            assert ("marked" in predicted) == (float(row["prob_marked"]) >= 0.5), row
    called = [row for row in rows if "disk" in row["predicted"].split("|")]
    recount = sum("disk" in row["label"].split("|") for row in called) / len(called)
    assert metrics["per_label"]["disk"]["precision"] == pytest.approx(recount)
    assert metrics["operating_point"]["achieved"]["precision(disk)"] == pytest.approx(recount)
    assert main(["report", str(run_copy), str(multilabel["held"]), "--checkpoints", "none"]) == 0
    page = (run_copy / "report-manifest.html").read_text(encoding="utf-8")
    point = page.split('<section id="operating-point">')[1].split("</section>")[0]
    assert "precision(disk)" in point and "bootstrap interval" in point and "prob_disk &gt;=" in page


@pytest.mark.parametrize("method", ["temperature", "vector"])
def test_calibrate_multilabel_run(run_copy, multilabel, capsys, method):
    before = winnow.load(run_copy).predict(multilabel["held"])
    code, out, err = cli(capsys, "calibrate", run_copy, "--method", method, "--data", multilabel["held"])
    assert code == 0 and "NLL" in out, err
    saved = json.loads((run_copy / "calibration.json").read_text())
    assert saved["nll_after"] < saved["nll_before"] and saved["calibrator"]["multilabel"] is True
    after = winnow.load(run_copy).predict(multilabel["held"])
    assert np.allclose(after.uncalibrated, before.probabilities, atol=1e-6)
    assert not np.allclose(after.probabilities, before.probabilities, atol=1e-3)
    code, out, err = cli(capsys, "eval", run_copy, multilabel["held"])
    assert code == 0 and f"calibration: {method} scaling" in out, err
    metrics = json.loads((run_copy / "eval" / "manifest" / "best" / "metrics.json").read_text())
    calibration = metrics["calibration"]
    assert calibration["log_loss_calibrated"] < calibration["log_loss_uncalibrated"]


def test_operating_files_of_the_other_head_kind_are_refused(run_copy, multilabel, tmp_path, capsys):
    softmax = {"format": "winnow.thresholds", "version": 1, "strategy": "per_class_thresholds",
               "classes": winnow.load(run_copy).classes, "thresholds": {"disk": 0.5}, "reject_label": "uncertain"}
    (run_copy / "thresholds.json").write_text(json.dumps(softmax))
    code, _, err = cli(capsys, "eval", run_copy, multilabel["held"])
    assert code == 2 and "was made for a multiclass or binary head" in err and "winnow tune" in err
