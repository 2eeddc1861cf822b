"""Few-shot heads: a head fitted on classes the run's backbone never saw (k images each), with no retraining."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import winnow
from winnow.data.labelled import EvalData
from winnow.embeddings.extract import embed
from winnow.ensembles.build import build_head, build_summary
from winnow.ensembles.embedded import predict_embeddings
from winnow.ensembles.fit_classes import head_task
from winnow.ensembles.store import read_ensemble

from conftest import draw, fast_config, make_image_folder
from test_eval_cli import cli, read_rows

NEW_CLASSES = ("vbar", "ring")  # shapes the run (bar, disk, square) never saw


def new_class_image(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "vbar":
        return np.ascontiguousarray(draw("bar", rng).T)  # a vertical bar
    return (255 - draw("disk", rng)).astype(np.uint8)  # a bright disk on a dark ground


def write_manifest(root: Path, counts: dict[str, int], *, name: str = "new.csv", seed: int = 1) -> Path:
    """Images of the new classes and a manifest `path,label,split` with `counts[split]` images per class."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in NEW_CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for split, count in counts.items():
            for i in range(count):
                file = f"{kind}/{name[:-4]}_{split}_{i}.png"
                Image.fromarray(new_class_image(kind, rng)).save(root / file)
                rows.append([file, kind, split])
    path = root / name
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "split"], *rows])
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fewshot")
    data = make_image_folder(tmp / "shapes", per_class=10)
    return Path(winnow.train(fast_config(tmp, data, name="shapes", epochs=1)).path)


@pytest.fixture(scope="module")
def new_data(run) -> Path:
    return write_manifest(run.parent / "new", {"train": 3, "val": 4, "test": 4})


def test_a_head_on_new_classes_predicts_and_evaluates_them(run, new_data, tmp_path, capsys):
    code, out, err = cli(capsys, "head", run, "--kind", "centroid", "--data", new_data, "--reject-tpr", "0.9",
                         "--out", tmp_path / "fewshot")
    assert code == 0, err
    assert "classes from the fit data, not the run's (no retraining): ['ring', 'vbar']" in out
    assert "fitted on " in out and "(6 images)" in out and "3-fold cross-validation" in out, out
    definition = read_ensemble(tmp_path / "fewshot")
    assert definition.tasks[0]["classes"] == ["ring", "vbar"] and definition.tasks[0]["kind"] == "multiclass"
    assert "(val split)" in definition.fit["reject"]["data"]  # the data's val split, not the run's (other classes)
    assert {row["label"] for row in read_rows(tmp_path / "fewshot" / "splits.csv")} == {"ring", "vbar"}

    code, out, err = cli(capsys, "predict", tmp_path / "fewshot", new_data.parent / "vbar", "--out",
                         tmp_path / "preds.csv")
    assert code == 0, err
    rows = read_rows(tmp_path / "preds.csv")
    assert {row["predicted"] for row in rows} <= {"ring", "vbar", "unknown"} and len(rows) == 11
    assert all(abs(float(row["prob_ring"]) + float(row["prob_vbar"]) - 1) < 1e-4 for row in rows)
    assert "prob_bar" not in rows[0]

    code, out, err = cli(capsys, "eval", tmp_path / "fewshot")  # default: the test split of the data
    assert code == 0, err
    metrics = json.loads((tmp_path / "fewshot" / "eval" / "test" / "best" / "metrics.json").read_text())
    assert metrics["n_samples"] == 8 and set(metrics["per_class"]) == {"ring", "vbar"}


@pytest.mark.parametrize("kind", ["knn", "centroid"])
def test_a_one_shot_head_on_new_classes_says_it_was_not_cross_validated(run, tmp_path, kind):
    one_shot = write_manifest(tmp_path / "new", {"train": 1, "val": 3})
    build = build_head(run, kind=kind, data=one_shot, reject_tpr=0.9, out=tmp_path / "one")
    report = build.definition.fit["report"]
    assert build.definition.tasks[0]["classes"] == ["ring", "vbar"] and build.definition.fit["n_samples"] == 2
    assert report["folds"] == 0 and report["note"].startswith("no cross-validation: smallest class has 1 image")
    lines = build_summary(build)
    assert any(line.startswith("fitted on ") and "(2 images)" in line and "cross-validation" not in line
               for line in lines), lines
    assert f"  {report['note']}" in lines
    assert "(val split)" in build.definition.fit["reject"]["data"]  # the reject option: on the data's val rows


def test_a_head_on_the_run_classes_keeps_them(run, tmp_path):
    build = build_head(run, kind="knn", out=tmp_path / "own")
    assert build.definition.tasks[0]["classes"] == ["bar", "disk", "square"]
    assert (tmp_path / "own" / "splits.csv").read_bytes() == (run / "splits.csv").read_bytes()


def test_few_shot_data_is_checked_before_any_image_is_read(run, tmp_path):
    one = write_manifest(tmp_path / "one", {"train": 1})
    with pytest.raises(ValueError, match=r"a logistic head needs at least 2 images per class \(k >= 2\), but "
                                         r"\{'ring': 1, 'vbar': 1\} have fewer; add images of those classes, or use "
                                         r"the knn or centroid head, which work with 1 image per class"):
        build_head(run, kind="logistic", data=one, out=tmp_path / "a")
    three = write_manifest(tmp_path / "three", {"train": 3})
    with pytest.raises(ValueError, match=r"a gmm head needs at least 5 images per class .*\{'ring': 3, 'vbar': 3\} "
                                         r"have fewer; .*use the knn or centroid head"):
        build_head(run, kind="gmm", data=three, out=tmp_path / "b")
    single = tmp_path / "single.csv"
    single.write_text("path,label\n" + "".join(f"three/vbar/three_train_{i}.png,vbar\n" for i in range(3)))
    with pytest.raises(ValueError, match=r"a head tells classes apart, but the fit images have only the class\(es\) "
                                         r"\['vbar'\]"):
        build_head(run, kind="logistic", data=single, out=tmp_path / "c")
    with pytest.raises(ValueError, match=r"reject_data: the head is fitted on other classes than the run's .*"
                                         r"pass --reject-data"):
        build_head(run, kind="centroid", data=three, reject_tpr=0.9, out=tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_embeddings_files_must_match_the_head(run, new_data, tmp_path):
    build_head(run, kind="centroid", data=new_data, out=tmp_path / "fewshot")
    new = embed(run, new_data).save(tmp_path / "new.npz")
    loaded, probabilities = predict_embeddings(tmp_path / "fewshot", new)
    assert probabilities.shape == (len(loaded.paths), 2)
    predicted = np.asarray(["ring", "vbar"])[probabilities.argmax(axis=1)]
    assert (predicted == np.asarray(loaded.labels)).mean() > 0.5  # any embedding separates these two shapes a bit
    own = embed(run, "test").save(tmp_path / "own.npz")
    with pytest.raises(ValueError, match=r"own.npz has label\(s\) \['bar', 'disk', 'square'\] that are not classes "
                                         r"of the head .*\['ring', 'vbar'\]; the file's run has \['bar', 'disk', "
                                         r"'square'\]\): the head was fitted on other classes"):
        predict_embeddings(tmp_path / "fewshot", own)
    other = Path(winnow.train(fast_config(tmp_path, run.parent / "new", name="other", epochs=1)).path)
    with pytest.raises(ValueError, match=r"these embeddings come from .*other.* not from .*shapes.*embed again"):
        predict_embeddings(tmp_path / "fewshot", embed(other, new_data).save(tmp_path / "other.npz"))


def test_files_of_the_run_are_refused_by_a_head_on_new_classes(run, new_data, tmp_path, capsys):
    build_head(run, kind="knn", data=new_data, out=tmp_path / "fewshot")
    code, _, err = cli(capsys, "calibrate", run)
    assert code == 0, err
    try:  # the run's calibration.json (bar, disk, square) copied into the head folder (ring, vbar)
        shutil.copy2(run / "calibration.json", tmp_path / "fewshot" / "calibration.json")
    finally:
        (run / "calibration.json").unlink()
    with pytest.raises(ValueError, match=r"calibration.json was made for classes \['bar', 'disk', 'square'\] but "
                                         r"this run has \['ring', 'vbar'\]"):
        winnow.load(tmp_path / "fewshot")


def test_fit_data_with_some_of_the_run_classes_is_flagged(run, tmp_path):
    subset = tmp_path / "subset.csv"
    rows = [row for row in read_rows(run / "splits.csv") if row["split"] == "train" and row["label"] != "square"]
    subset.write_text("path,label\n" + "".join(f"{row['path']},{row['label']}\n" for row in rows))
    build = build_head(run, kind="centroid", data=subset, out=tmp_path / "subset")
    assert build.definition.tasks[0]["classes"] == ["bar", "disk"]
    assert any("the fit data lacks the run's class(es) ['square']: the head has only ['bar', 'disk']" in warning
               for warning in build.warnings), build.warnings
    assert not (tmp_path / "subset" / "splits.csv").exists()  # the run's test split has a class the head lacks


def test_new_classes_are_sorted_as_a_run_sorts_them():
    task = {"name": "", "column": "label", "kind": "binary", "classes": ["a", "b"], "threshold": 0.3}
    member = SimpleNamespace(classes=["a", "b"], tasks=[SimpleNamespace(to_dict=lambda: dict(task))])
    labels = ["10", "2", "10", "2", "9", "9"]
    new = head_task(member, EvalData("d", "d.csv", [f"{i}.png" for i in range(6)], labels), classifier="knn")
    assert new["classes"] == ["2", "9", "10"] and new["kind"] == "multiclass" and new["threshold"] == 0.5
    same = head_task(member, EvalData("d", "d.csv", ["0.png", "1.png", "2.png", "3.png"], ["b", "a", "b", "a"]),
                     classifier="knn")
    assert same == task  # the run's own classes keep the run's task (a binary run's positive class last)
