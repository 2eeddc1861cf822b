"""A positive-unlabelled run end to end (`winnow train --pu`), PU validation measures, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import winnow
from winnow.cli.main import main
from winnow.metrics.pu import pu_auc, pu_recall
from winnow.tasks.spec import check_pu_labels

from conftest import draw, fast_config


def pu_manifest(root: Path, *, labelled: int = 10, hidden: int = 6, negatives: int = 14,
                unlabelled_name: str = "unlabeled") -> Path:
    """Squares are the positives: `labelled` of them labelled good, the rest hidden among disks."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(labelled + hidden + negatives):
        kind = "square" if i < labelled + hidden else "disk"
        Image.fromarray(draw(kind, rng)).save(root / f"{i:03d}.png")
        rows.append([f"{i:03d}.png", "good" if i < labelled else unlabelled_name])
    path = root / "pu.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label"], *rows])
    return path


FAST = ["--model", "test_resnet", "--img-size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
        "--no-progress", "--warmup-epochs", "0", "--val-fraction", "0.3", "--test-fraction", "0"]


def test_pu_run_end_to_end_with_auto_prior(tmp_path, capsys):
    data = pu_manifest(tmp_path / "data")
    code = main(["train", str(data), "--head", "binary", "--pu", "--positive-class", "good", "--prior", "auto",
                 "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), *FAST])
    out = capsys.readouterr().out
    assert code == 0 and "prior auto: prior" in out and "best val_pu_auc" in out
    run = next((tmp_path / "runs").iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(row["train_loss"]) and "val_pu_recall" in row for row in rows)
    assert (run / "checkpoints" / "best.pt").is_file()
    config = (run / "config.yaml").read_text()
    assert "pu: true" in config and "prior: auto" not in config
    assert main(["head", str(run), "--kind", "pu_bagging", "--out", str(tmp_path / "bag")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "bag" / "oob_scores.csv")))
    assert rows  # one row per unlabelled train image (labelled positives have no out-of-bag score)
    scores = [float(row["oob_score"]) for row in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert "oob_scores.csv" in capsys.readouterr().out


def test_pu_run_with_a_given_prior_and_upu(tmp_path):
    data = pu_manifest(tmp_path / "data", unlabelled_name="bad")
    run = winnow.train(fast_config(tmp_path, data, head="binary", pu=True, positive_class="good", prior=0.3,
                                   loss="upu", select_metric="val_pu_recall", epochs=1, test_fraction=0.0))
    assert run.status == "finished" and "val_pu_auc" in run.metrics[-1]


@pytest.mark.parametrize("flags, match", [
    (["--pu", "--positive-class", "good", "--prior", "0.3"], "head: binary"),  # multiclass head
    (["--pu", "--head", "binary", "--positive-class", "good", "--prior", "1.2"], "prior"),
    (["--pu", "--head", "binary", "--positive-class", "good", "--prior", "0"], "prior"),
    (["--pu", "--head", "binary", "--positive-class", "good"], "needs prior"),
    (["--pu", "--head", "binary", "--positive-class", "good", "--prior", "0.3", "--loss", "bce"], "PU loss"),
])
def test_bad_pu_settings(tmp_path, capsys, flags, match):
    data = pu_manifest(tmp_path / "data")
    assert main(["train", str(data), "--out", str(tmp_path / "runs"), *FAST, *flags]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("counts, match", [({"labelled": 0, "hidden": 10}, r"1 class\(es\) \['unlabeled'\]"),
                                           ({"negatives": 0, "hidden": 0, "labelled": 12}, r"1 class\(es\) \['good'\]")])
def test_pu_data_without_positives_or_unlabelled(tmp_path, counts, match):
    data = pu_manifest(tmp_path / "data", **counts)
    config = fast_config(tmp_path, data, head="binary", pu=True, positive_class="good", prior=0.3,
                         select_metric="val_pu_auc", epochs=1)
    with pytest.raises(ValueError, match=match):
        winnow.train(config)


def test_pu_measures_against_a_naive_count():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    labelled = np.array([1, 0, 1, 0, 1, 0, 0, 0])
    pairs = [(s_p > s_u) + 0.5 * (s_p == s_u) for s_p in scores[labelled == 1] for s_u in scores[labelled == 0]]
    assert pu_auc(scores, labelled, 0.4) == pytest.approx((np.mean(pairs) - 0.2) / 0.6)
    expected = round(3 + 0.4 * 5)  # the top 5 hold 3 labelled positives
    assert expected == 5 and pu_recall(scores, labelled, 0.4) == pytest.approx(3 / 3)
    assert pu_recall(scores, labelled, 0.1) == pytest.approx(2 / 3)  # top round(3.5) = 4 hold 2
    assert np.isnan(pu_auc(scores, np.zeros(8), 0.4))


@pytest.mark.parametrize("labels, positive, match", [(["bad", "bad"], "good", "no labelled positives"),
                                                     (["good", "good"], "good", "no unlabelled"),
                                                     (["good", "bad", "maybe"], "good", "one other label"),
                                                     (["good", "bad"], None, "positive_class")])
def test_pu_label_checks(labels, positive, match):
    with pytest.raises(ValueError, match=match):
        check_pu_labels(labels, positive, 0.3)
