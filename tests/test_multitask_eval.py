"""`winnow eval` of a multitask run: each task scored on its own column; what is not supported yet says so."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score

import winnow
from winnow.cli.main import main

from conftest import draw, fast_config
from test_eval_cli import cli, read_rows

TASKS = [{"name": "shape", "column": "label"},
         {"name": "bright", "head": "binary", "positive_class": "yes", "weight": 0.5}]


def multitask_manifest(root: Path, per_shape: int, *, seed: int, unlabelled_every: int = 0) -> Path:
    """Shapes (task "shape") and whether the image is a square (task "bright"); some "bright" cells empty."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = []
    for shape in ("bar", "disk", "square"):
        for i in range(per_shape):
            path = root / f"{shape}_{i:03d}.png"
            Image.fromarray(draw(shape, rng, 32)).save(path)
            missing = unlabelled_every and i % unlabelled_every == 0
            rows.append([str(path), shape, "" if missing else ("yes" if shape == "square" else "no")])
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "bright"], *rows])
    return manifest


@pytest.fixture(scope="module")
def multitask(tmp_path_factory):
    root = tmp_path_factory.mktemp("multitask")
    train = multitask_manifest(root / "train", 16, seed=0)
    run = winnow.train(fast_config(root, train, head="multitask", tasks=TASKS, epochs=2, save_every=1, name="mt"))
    return {"run": run.path, "held": multitask_manifest(root / "held", 10, seed=1, unlabelled_every=5)}


def test_every_task_is_scored_on_its_own_labelled_rows(multitask, capsys):
    code, out, err = cli(capsys, "eval", multitask["run"], multitask["held"])
    assert code == 0, err
    assert "task shape (30 labelled images)" in out and "task bright (24 labelled images)" in out
    folder = multitask["run"] / "eval" / "manifest" / "best"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["head"] == "multitask" and metrics["n_samples"] == 30
    for name in ("shape", "bright"):
        rows = read_rows(folder / name / "predictions.csv")
        task = metrics["tasks"][name]
        assert task["n_samples"] == len(rows)
        truth, predicted = [row["label"] for row in rows], [row["predicted"] for row in rows]
        assert task["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
        assert task["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
        assert (folder / name / "pr_curves.png").is_file()
    assert metrics["macro_f1"] == pytest.approx(np.mean([metrics["tasks"][n]["macro_f1"] for n in ("shape", "bright")]))


def test_checkpoint_all_tabulates_the_task_means(multitask, capsys):
    code, out, err = cli(capsys, "eval", multitask["run"], multitask["held"], "--checkpoint", "all", "--no-plots")
    assert code == 0, err
    rows = read_rows(multitask["run"] / "eval" / "manifest" / "checkpoints.csv")
    assert [row["checkpoint"] for row in rows] == ["epoch0001", "epoch0002", "best", "last"]
    assert all(row["macro_f1"] for row in rows)


@pytest.mark.parametrize("argv, message", [
    (("tune", "{run}", "--target", "precision(yes)>=0.9"), "multitask runs are not supported yet"),
    (("calibrate", "{run}"), "multitask runs are not supported yet"),
    (("eval", "{run}", "{held}", "--tta", "flips"), "TTA of multitask runs is not supported yet"),
    (("report", "{run}"), "multitask run: its report is not supported yet"),
])
def test_what_multitask_runs_cannot_do_yet_is_said(multitask, capsys, argv, message):
    args = [arg.format(run=multitask["run"], held=multitask["held"]) for arg in argv]
    code = main(args)
    assert code == 2 and message in capsys.readouterr().err


def test_data_without_a_task_column_is_refused(multitask, tmp_path, capsys):
    plain = tmp_path / "plain.csv"
    rows = read_rows(multitask["held"])
    with open(plain, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label"], *[[row["path"], row["label"]] for row in rows]])
    code, _, err = cli(capsys, "eval", multitask["run"], plain)
    assert code == 2 and "has no column 'bright'" in err
