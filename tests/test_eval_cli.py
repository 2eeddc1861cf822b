"""eval / tune / calibrate / select / predict on one tiny binary run ("good" disks vs "bad" squares).

One run is trained per module; every test that writes thresholds.json or calibration.json works on
its own copy of the run folder.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, confusion_matrix,
                             f1_score, log_loss, precision_score, recall_score, roc_auc_score)

import winnow
from winnow.cli.main import main
from winnow.evaluation.checkpoints import run_checkpoints
from winnow.operating import ThresholdTuner
from winnow.runs.layout import RunPaths

from conftest import draw, fast_config

SHAPES = {"good": "disk", "bad": "square"}
TARGET = "precision(good)>=0.9"


def shape_folder(root: Path, per_class: int, *, seed: int, labels: dict[str, str] = SHAPES) -> Path:
    """`root/<label>/*.png`: 32 px images of the shape each label stands for."""
    rng = np.random.default_rng(seed)
    for label, shape in labels.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(draw(shape, rng, 32)).save(root / label / f"{label}_{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    """A trained binary run (positive class "good", 3 epoch checkpoints) and held-out data."""
    root = tmp_path_factory.mktemp("binary")
    train = shape_folder(root / "train", 20, seed=0)
    run = winnow.train(fast_config(root, train, head="binary", positive_class="good", epochs=3, save_every=1,
                                   name="binary"))
    return {"run": run.path, "held": shape_folder(root / "held", 15, seed=1), "root": root}


@pytest.fixture
def run_copy(binary, tmp_path) -> Path:
    """A private copy of the run folder (tests that write operating files)."""
    return Path(shutil.copytree(binary["run"], tmp_path / "run"))


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------- acceptance


def test_tuned_threshold_drives_predictions_and_reported_precision(run_copy, binary, capsys):
    code, out, _ = cli(capsys, "tune", run_copy, "--target", TARGET)
    assert code == 0, out
    assert "threshold" in out and "95% bootstrap CI" in out and "lower bound" in out
    saved = json.loads((run_copy / "thresholds.json").read_text())
    assert saved["checkpoint"] == "best" and saved["strategy"] == "threshold_tuner"
    tuner = ThresholdTuner.from_dict(saved, classes=["bad", "good"])

    code, out, _ = cli(capsys, "eval", run_copy, binary["held"])
    assert code == 0 and "operating point" in out
    folder = run_copy / "eval" / "held" / "best"
    rows = read_rows(folder / "predictions.csv")
    metrics = json.loads((folder / "metrics.json").read_text())
    # (a) the prediction is the thresholded decision (the CSV rounds probabilities to 6 decimals)
    for row in rows:
        probability = float(row["prob_good"])
        if abs(probability - tuner.threshold_) > 1e-6:
            assert (row["predicted"] == "good") == (probability >= tuner.threshold_), row
    predictions = winnow.load(run_copy).predict(binary["held"])
    expected = ["good" if p >= tuner.threshold_ else "bad" for p in predictions.probabilities[:, 1]]
    assert predictions.predicted == expected
    assert [row["predicted"] for row in rows] == expected
    # (b) the reported precision is a recount of predictions.csv
    predicted_good = [row for row in rows if row["predicted"] == "good"]
    recount = sum(row["label"] == "good" for row in predicted_good) / len(predicted_good)
    assert metrics["per_class"]["good"]["precision"] == pytest.approx(recount, abs=1e-12)
    point = metrics["operating_point"]
    assert point["achieved"]["precision(good)"] == pytest.approx(recount, abs=1e-12)
    assert point["threshold"] == metrics["thresholds"]["threshold"] == tuner.threshold_
    assert point["target_met"] == (recount >= 0.9)
    assert {"low", "high", "confidence"} <= set(point["interval"])


def test_metrics_json_equals_scikit_learn_on_predictions_csv(run_copy, binary, capsys):
    assert cli(capsys, "tune", run_copy, "--target", TARGET)[0] == 0
    assert cli(capsys, "eval", run_copy, binary["held"])[0] == 0
    folder = run_copy / "eval" / "held" / "best"
    rows, metrics = read_rows(folder / "predictions.csv"), json.loads((folder / "metrics.json").read_text())
    classes = metrics["classes"]
    truth = np.array([classes.index(row["label"]) for row in rows])
    predicted = np.array([classes.index(row["predicted"]) for row in rows])
    scores = np.array([[float(row[f"prob_{c}"]) for c in classes] for row in rows])
    assert metrics["n_samples"] == len(rows) == 30
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(truth, predicted, average="weighted", zero_division=0))
    assert metrics["confusion_matrix"]["counts"] == confusion_matrix(truth, predicted).tolist()
    for k, name in enumerate(classes):
        per_class = metrics["per_class"][name]
        assert per_class["recall"] == pytest.approx(recall_score(truth, predicted, labels=[k], average=None)[0])
        assert per_class["precision"] == pytest.approx(
            precision_score(truth, predicted, labels=[k], average=None, zero_division=0)[0])
        assert per_class["roc_auc"] == pytest.approx(roc_auc_score(truth == k, scores[:, k]), abs=1e-3)
        assert per_class["average_precision"] == pytest.approx(average_precision_score(truth == k, scores[:, k]),
                                                               abs=1e-3)
    assert metrics["log_loss"] == pytest.approx(log_loss(truth, scores / scores.sum(1, keepdims=True)), abs=1e-4)


def test_eval_defaults_to_the_test_split_prints_json_and_writes_every_file(binary, capsys):
    code, out, _ = cli(capsys, "eval", binary["run"], "--json")
    assert code == 0
    metrics = json.loads(out)
    splits = read_rows(RunPaths(binary["run"]).splits)
    assert metrics["data"]["name"] == "test"
    assert metrics["n_samples"] == sum(row["split"] == "test" for row in splits)
    assert metrics["thresholds"] is None and metrics["operating_point"] is None and metrics["calibration"] is None
    folder = binary["run"] / "eval" / "test" / "best"
    for name in ("metrics.json", "predictions.csv", "confusion_matrix.png", "pr_curves.png", "roc_curves.png",
                 "reliability.png"):
        assert (folder / name).is_file(), name
    for png in folder.glob("*.png"):
        Image.open(png).verify()
    assert read_rows(folder / "predictions.csv")[0].keys() == {"path", "label", "predicted", "prob_bad", "prob_good"}


# --------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_all_then_select(run_copy, binary, capsys):
    assert cli(capsys, "tune", run_copy, "--target", TARGET)[0] == 0
    code, out, _ = cli(capsys, "eval", run_copy, binary["held"], "--checkpoint", "all")
    assert code == 0 and "epoch0002" in out
    table = read_rows(run_copy / "eval" / "held" / "checkpoints.csv")
    names = run_checkpoints(run_copy)
    assert [row["checkpoint"] for row in table] == names == ["epoch0001", "epoch0002", "epoch0003", "best", "last"]
    assert [row["epoch"] for row in table[:3]] == ["1", "2", "3"]
    assert {"accuracy", "macro_f1", "op_threshold", "op_target_met", "op_precision(good)"} <= set(table[0])
    Image.open(run_copy / "eval" / "held" / "metrics_over_epochs.png").verify()

    csv_times = {n: (run_copy / "eval" / "held" / n / "predictions.csv").stat().st_mtime_ns for n in names}
    code, out, _ = cli(capsys, "select", run_copy, "--target", TARGET, "--data", binary["held"])
    assert code == 0 and "selected" in out
    assert {n: (run_copy / "eval" / "held" / n / "predictions.csv").stat().st_mtime_ns for n in names} == csv_times
    record = json.loads((run_copy / "checkpoints" / "selected.json").read_text())
    assert record["target"] == TARGET and record["selected"] in names
    assert record["achieved"]["precision(good)"] >= 0.9 and 0 <= record["threshold"] <= 1
    assert {"why", "candidates", "objective", "interval"} <= set(record) and len(record["candidates"]) == len(names)
    chosen = run_copy / "checkpoints" / f"{record['selected']}.pt"
    assert (run_copy / "checkpoints" / "selected.pt").read_bytes() == chosen.read_bytes()
    assert winnow.load(run_copy, checkpoint="selected").epoch == record["epoch"]


def test_select_runs_the_missing_evaluation_on_val(run_copy, capsys):
    code, out, _ = cli(capsys, "select", run_copy, "--target", TARGET)
    assert code == 0, out
    assert (run_copy / "checkpoints" / "selected.pt").is_file()
    for name in run_checkpoints(run_copy):
        assert (run_copy / "eval" / "val" / name / "predictions.csv").is_file()


# ------------------------------------------------------------------------------------- calibration, TTA, predict


@pytest.mark.parametrize("method", ["temperature", "vector"])
def test_calibrate_lowers_val_nll_and_is_applied(run_copy, binary, capsys, method):
    before = winnow.load(run_copy).predict(binary["held"])
    code, out, _ = cli(capsys, "calibrate", run_copy, "--method", method)
    assert code == 0 and "NLL" in out and "ECE" in out
    saved = json.loads((run_copy / "calibration.json").read_text())
    assert saved["nll_after"] < saved["nll_before"] and saved["calibrator"]["method"] == method
    after = winnow.load(run_copy).predict(binary["held"])
    assert after.calibration is not None
    assert np.allclose(after.uncalibrated, before.probabilities, atol=1e-6)
    assert not np.allclose(after.probabilities, before.probabilities, atol=1e-3)
    assert cli(capsys, "eval", run_copy, "val")[0] == 0
    metrics = json.loads((run_copy / "eval" / "val" / "best" / "metrics.json").read_text())
    assert metrics["calibration"]["method"] == method
    assert metrics["ece"] <= metrics["calibration"]["ece_uncalibrated"] + 1e-9


def test_tta_flips_is_the_mean_of_the_four_flipped_images(binary, tmp_path):
    rng = np.random.default_rng(3)
    flips = {"id": None, "h": Image.Transpose.FLIP_LEFT_RIGHT, "v": Image.Transpose.FLIP_TOP_BOTTOM,
             "hv": Image.Transpose.ROTATE_180}
    for i, shape in enumerate(["disk", "square", "disk", "square", "bar"]):
        image = Image.fromarray(draw(shape, rng, 32))  # 32 px = img_size: no resampling
        for name, flip in flips.items():
            (tmp_path / name).mkdir(exist_ok=True)
            (image if flip is None else image.transpose(flip)).save(tmp_path / name / f"{i}.png")
    predictor = winnow.load(binary["run"])
    manual = np.mean([predictor.predict(tmp_path / name).probabilities for name in flips], axis=0)
    tta = predictor.predict(tmp_path / "id", tta="flips")
    assert tta.view_logits.shape == (5, 4, 2)
    assert np.allclose(tta.probabilities, manual, atol=1e-5)
    gmean = predictor.predict(tmp_path / "id", tta="d4", tta_merge="gmean")
    assert gmean.view_logits.shape[1] == 8 and np.allclose(gmean.probabilities.sum(axis=1), 1)
    first = predictor.predict(tmp_path / "id", tta=4).probabilities
    assert np.allclose(first, predictor.predict(tmp_path / "id", tta=4, batch_size=2).probabilities, atol=1e-6)


def test_predict_cli_applies_thresholds_and_tta(run_copy, binary, capsys, tmp_path):
    assert cli(capsys, "tune", run_copy, "--target", TARGET)[0] == 0
    threshold = json.loads((run_copy / "thresholds.json").read_text())["threshold"]
    out_csv = tmp_path / "preds.csv"
    code, out, _ = cli(capsys, "predict", run_copy, binary["held"], "--out", out_csv, "--tta", "flips")
    assert code == 0 and f"prob_good >= {threshold:.6g}" in out and "TTA flips-mean" in out
    rows = read_rows(out_csv)
    expected = winnow.load(run_copy).predict(binary["held"], tta="flips")
    assert [row["predicted"] for row in rows] == expected.predicted
    assert np.allclose([float(row["prob_good"]) for row in rows], expected.probabilities[:, 1], atol=1e-6)


# --------------------------------------------------------------------------------------------- bad input


def test_data_with_unknown_classes_is_refused(binary, tmp_path, capsys):
    other = shape_folder(tmp_path / "other", 2, seed=5, labels={"good": "disk", "cat": "bar"})
    code, _, err = cli(capsys, "eval", binary["run"], other)
    assert code == 2 and "['cat']" in err and "not classes of the run" in err
    with pytest.raises(ValueError, match=r"label\(s\) \['cat'\] that are not classes of the run"):
        winnow.evaluation.runner.evaluate(binary["run"], other)


def test_missing_checkpoint_is_refused(binary, capsys):
    code, _, err = cli(capsys, "eval", binary["run"], "--checkpoint", "epoch0099")
    assert code == 2 and "not found" in err and "available: best, epoch0001" in err
    with pytest.raises(ValueError, match="does not exist"):
        winnow.load(binary["run"], checkpoint="missing/model.pt")


@pytest.mark.parametrize(("target", "message"), [
    ("precision(good)>=1.5", "must be in"),
    ("precision(cat)>=0.9", "unknown class 'cat'"),
    ("precision(good) is high", "could not read it"),
])
def test_malformed_targets_are_refused(binary, capsys, target, message):
    code, _, err = cli(capsys, "tune", binary["run"], "--target", target)
    assert code == 2 and message in err
    assert not (binary["run"] / "thresholds.json").exists()


def test_unreachable_target_is_refused(binary, tmp_path, capsys):
    swapped = shape_folder(tmp_path / "swapped", 6, seed=7, labels={"good": "square", "bad": "disk"})
    code, _, err = cli(capsys, "tune", binary["run"], "--data", swapped, "--target", "precision(good)>=0.95")
    assert code == 2 and "no threshold reaches" in err and "relax the target" in err
    code, _, err = cli(capsys, "select", binary["run"], "--data", swapped, "--target", "precision(good)>=0.95")
    assert code == 2 and "no checkpoint" in err


def test_operating_files_of_another_run_are_refused(run_copy, binary, tmp_path, capsys):
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), 60)
    foreign = ThresholdTuner("recall(a)>=0.5", n_bootstrap=10).fit(probabilities, rng.integers(0, 3, 60),
                                                                  ["a", "b", "c"])
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(foreign.to_dict()))
    with pytest.raises(ValueError, match="comes from another run"):
        winnow.load(binary["run"], thresholds=path)
    code, _, err = cli(capsys, "eval", binary["run"], "--thresholds", path)
    assert code == 2 and "another run" in err
    shutil.copy(path, run_copy / "thresholds.json")
    code, _, err = cli(capsys, "predict", run_copy, binary["held"], "--out", tmp_path / "p.csv")
    assert code == 2 and "winnow tune" in err
    (run_copy / "thresholds.json").unlink()
    (run_copy / "calibration.json").write_text(json.dumps(
        {"calibrator": {"format": "winnow.calibration", "method": "temperature", "n_classes": 3, "temperature": 2.0},
         "classes": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match="calibrate"):
        winnow.load(run_copy)


def test_run_without_a_test_split_asks_for_data(run_copy, capsys):
    splits = RunPaths(run_copy).splits
    lines = splits.read_text().splitlines()
    splits.write_text("\n".join(line for line in lines if ",test," not in line) + "\n")
    code, _, err = cli(capsys, "eval", run_copy)
    assert code == 2 and "no 'test' images" in err and "pass DATA" in err
