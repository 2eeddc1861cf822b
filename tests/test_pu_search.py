"""Positive-unlabelled data in `winnow search` and `winnow train --recipe auto`; `winnow loop --pu` refused."""

from __future__ import annotations

import csv
import re

import pytest

from winnow.cli.main import main
from winnow.config import read_saved
from winnow.runs.files import read_json, read_metrics
from winnow.runs.layout import RunPaths
from winnow.search.study import SearchSettings, search

from test_pu_tools import shapes
from test_pu_train import pu_manifest

PU = ["--head", "binary", "--pu", "--positive-class", "good"]
FLAGS = ["--model", "test_resnet", "--img-size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
         "--no-progress", "--warmup-epochs", "0", "--val-fraction", "0.3", "--test-fraction", "0"]


def test_a_pu_search_trains_pu_trials_on_val_pu_auc(tmp_path, capsys):
    data = pu_manifest(tmp_path / "data", unlabelled_name="bad")  # 10 labelled squares, 20 unlabelled
    extra = shapes(tmp_path / "extra", {"square": 2, "disk": 6}, seed=1)
    assert main(["search", str(data), "--trials", "2", *PU, "--prior", "auto", "--unlabeled", str(extra),
                 "--out", str(tmp_path / "runs"), "--name", "pu", "--cache-dir", str(tmp_path / "cache"), *FLAGS]) == 0
    out = capsys.readouterr().out
    estimated = float(re.search(r"prior auto: prior ([0-9.]+)", out)[1])  # estimated once, before the trials
    folder = tmp_path / "runs" / "search-pu"
    assert read_json(folder / "search.json", what="search")["objective"] == "val_pu_auc"  # the default with --pu
    split = (folder / "splits.csv").read_text()
    assert len(split.splitlines()) == 1 + 30 + 8  # the extra images are in the split once
    rows = list(csv.DictReader(open(folder / "trials.csv")))
    assert [row["state"] for row in rows] == ["COMPLETE", "COMPLETE"]
    for row in rows:
        config = read_saved(RunPaths(row["run"]).config)
        assert config.pu and config.select_metric == "val_pu_auc" and config.unlabeled == []
        assert config.prior == pytest.approx(estimated, abs=5e-4)
        assert RunPaths(row["run"]).splits.read_text() == split  # not added again by the trial
        epochs = read_metrics(RunPaths(row["run"]).metrics)
        assert float(row["value"]) == pytest.approx(max(epoch["val_pu_auc"] for epoch in epochs), abs=1e-4)
    assert re.search(r"val_pu_auc = [0-9.]+ on val", (folder / "best.yaml").read_text())


@pytest.mark.parametrize("objective, shown", [("val_macro_f1", "so val_macro_f1 there would count the unlabelled"),
                                              ("recall(good)@precision(good)>=0.9", "the operating point")])
def test_a_pu_search_refuses_objectives_that_need_negatives(tmp_path, capsys, objective, shown):
    data = pu_manifest(tmp_path / "data")
    assert main(["search", str(data), "--trials", "1", "--objective", objective, *PU, "--prior", "0.3",
                 "--out", str(tmp_path / "runs"), *FLAGS]) == 2
    err = capsys.readouterr().err
    assert shown in err and "use val_pu_auc (the default with --pu), val_pu_recall or val_loss" in err
    assert not (tmp_path / "runs").exists()


def test_search_wants_the_prior_estimated_before_it(tmp_path):
    values = {"data": [str(tmp_path / "data.csv")], "head": "binary", "pu": True, "positive_class": "good",
              "prior": "auto", "out": str(tmp_path / "runs")}
    with pytest.raises(ValueError, match="prior 'auto' is estimated once before the search"):
        search(SearchSettings(values, trials=1))


def test_prior_auto_with_recipe_auto(tmp_path, capsys):
    data = pu_manifest(tmp_path / "data")
    assert main(["train", str(data), *PU, "--prior", "auto", "--recipe", "auto", "--out", str(tmp_path / "runs"),
                 "--cache-dir", str(tmp_path / "cache"), *FLAGS]) == 0
    out = capsys.readouterr().out
    assert "recipe auto: chose default" in out and "best val_pu_auc" in out
    estimated = float(re.search(r"prior auto: prior ([0-9.]+)", out)[1])
    (run,) = (tmp_path / "runs").iterdir()  # a binary head has one candidate recipe: no pilot folder
    assert read_saved(RunPaths(run).config).prior == pytest.approx(estimated, abs=5e-4)


def test_loop_refuses_pu(tmp_path, capsys):
    data = pu_manifest(tmp_path / "data")
    assert main(["loop", str(data), str(data.parent), "--rounds", "1", *PU, "--prior", "0.3",
                 "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "positive-unlabelled loop (pu: true, --pu) cannot pseudo-label" in err and "winnow query RUN POOL" in err
    assert not (tmp_path / "runs").exists()
