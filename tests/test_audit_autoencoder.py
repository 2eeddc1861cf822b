"""`winnow audit --run` with an autoencoder pretrain run: kNN distance on its encoder's features and its
reconstruction error rank the outliers side by side; unreadable files are skipped, not fatal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import fast_config, make_image_folder
from winnow.audit.runner import audit
from winnow.cli.main import main
from winnow.pretraining.reconstruction import reconstruction_errors
from winnow.pretraining.trainer import pretrain


def stripes(size: int = 24) -> Image.Image:
    """High-frequency stripes: unlike the smooth shapes, hard for a small autoencoder to reconstruct."""
    row = (np.arange(size) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.tile(row, (size, 1)))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """An autoencoder pretrained on the conftest shapes, and a split tree of shapes with a foreign image and a
    broken file, audited with it."""
    root = tmp_path_factory.mktemp("ae")
    run = pretrain(fast_config(root, make_image_folder(root / "unlabelled", per_class=8), pretrain_method="autoencoder",
                               epochs=3, batch_size=4, val_fraction=0.0, lr=3e-3, name="ae")).path
    data = root / "data"
    for offset, (split, n) in enumerate({"train": 12, "val": 6}.items()):
        make_image_folder(data / split, per_class=n, seed=offset + 1)
    stripes().save(data / "train" / "disk" / "foreign.png")
    (data / "train" / "bar" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    code = main(["audit", str(data), "--run", str(run), "--out", str(root / "out"), "--threads", "1",
                 "--min-support", "5", "--checks", "unreadable", "outliers"])
    return {"run": run, "data": data, "out": root / "out", "code": code}


def test_the_foreign_image_is_flagged_by_the_reconstruction_error(planted):
    summary = json.loads((planted["out"] / "summary.json").read_text())
    outliers = summary["checks"]["outliers"]
    assert summary["embeddings"].startswith("run ae (autoencoder pretrain")
    assert set(outliers["signals"]) == {"knn", "reconstruction"}
    by_name = {Path(row["path"]).name: row for row in outliers["flagged"]}
    assert "reconstruction" in by_name["foreign.png"]["flagged_by"], by_name
    assert by_name["foreign.png"]["reconstruction_rank"] == 1 and by_name["foreign.png"]["reconstruction_z"] > 6
    assert {"knn_z", "knn_rank"} <= set(by_name["foreign.png"])
    assert len(by_name) <= 4, by_name  # a few leads, not everything
    assert "not merged" in outliers["combination"]


def test_issues_csv_and_the_page_carry_both_scores_and_the_signal(planted):
    with open(planted["out"] / "issues.csv", newline="") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle) if row["issue"] == "outlier"}
    detail = rows["foreign.png"]["detail"]
    assert detail.startswith("flagged by ") and "reconstruction" in detail.split(":")[0]
    assert "mean distance to its 5 nearest images" in detail and "reconstruction error" in detail
    html = (planted["out"] / "audit.html").read_text(encoding="utf-8")
    assert "reconstruction z" in html and "knn z" in html and "not merged" in html


def test_an_unreadable_file_is_listed_and_the_run_still_scores_the_rest(planted):
    assert planted["code"] == 1  # the broken file is an error of the unreadable check
    with open(planted["out"] / "issues.csv", newline="") as handle:
        unreadable = [Path(row["path"]).name for row in csv.DictReader(handle) if row["issue"] == "unreadable"]
    assert unreadable == ["broken.png"]
    errors = reconstruction_errors(planted["run"], planted["data"], checkpoint="best")
    assert [Path(path).name for path, _ in errors.bad] == ["broken.png"]
    assert errors.errors.shape == (len(errors.paths),) == (len(errors.rows),) and np.isfinite(errors.errors).all()
    assert errors.embeddings.shape[0] == len(errors.paths) and "broken.png" not in map(
        lambda path: Path(path).name, errors.paths)


def test_a_run_without_reconstruction_keeps_one_signal(planted, tmp_path):
    result = audit([str(planted["data"])], out=tmp_path / "out", checks=["outliers"], workers=1)
    (check,) = result.checks
    assert "signals" not in check.summary_ and list(check.signals_) == ["knn"]


def test_a_pretrain_run_of_another_method_is_refused(planted, tmp_path, capsys):
    other = tmp_path / "simclr"
    other.mkdir()
    config = (planted["run"] / "config.yaml").read_text().replace("pretrain_method: autoencoder",
                                                                  "pretrain_method: simclr")
    (other / "config.yaml").write_text(config)
    assert main(["audit", str(planted["data"]), "--run", str(other), "--out", str(tmp_path / "out")]) == 2
    assert "is a `winnow pretrain --method simclr` run; audit embeds with a train run or an autoencoder" in \
        capsys.readouterr().err
