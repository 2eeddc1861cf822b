"""Stochastic weight averaging (`swa_epochs`, `swa_lr`): swa.pt, its metrics, eval/select, resume, settings."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from torch import nn

import winnow
from winnow.cli.main import main
from winnow.config import Config, save_yaml
from winnow.evaluation.checkpoints import run_checkpoints
from winnow.runs.layout import RunPaths
from winnow.training.checkpoint import evaluation_weights, load_checkpoint
from winnow.training.device import make_accelerator
from winnow.training.distributed import DistInfo
from winnow.training.swa import SwaSchedule, WeightAverage

from conftest import fast_config, make_image_folder
from test_training import crash_at_epoch

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _parameters(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value for name, value in weights.items() if not name.endswith(BN_BUFFERS)}


@pytest.fixture(scope="module")
def swa_run(tmp_path_factory):
    """3 epochs, the last 2 averaged at a constant lr of 1e-3, every epoch's checkpoint kept."""
    root = tmp_path_factory.mktemp("swa")
    data = make_image_folder(root / "folder")
    return winnow.train(fast_config(root, data, epochs=3, swa_epochs=2, swa_lr=1e-3, save_every=1, name="swa"))


def test_swa_pt_is_the_average_of_the_last_epochs_with_fresh_batchnorm_statistics(swa_run):
    paths = RunPaths(swa_run.path)
    averaged = evaluation_weights(load_checkpoint(paths.checkpoint("swa")))
    second, third = (load_checkpoint(paths.checkpoint(f"epoch000{n}"))["model"] for n in (2, 3))
    for name, value in _parameters(averaged).items():
        assert torch.allclose(value, (second[name] + third[name]) / 2, atol=1e-6), name
    means = [name for name in averaged if name.endswith("running_mean")]
    assert means and any(not torch.allclose(averaged[name], third[name]) for name in means)
    assert [row["lr"] for row in swa_run.metrics] == pytest.approx([3e-3, 1e-3, 1e-3])


def test_swa_metrics_are_recorded_and_best_pt_is_kept(swa_run):
    summary = json.loads(RunPaths(swa_run.path).summary.read_text())
    record = summary["swa"]
    assert record == swa_run.swa
    assert record["epochs_averaged"] == [2, 3] and record["n_averaged"] == 2 and record["checkpoint"] == "swa"
    assert {"val_loss", "val_accuracy", "val_macro_f1"} <= set(record["metrics"])
    assert record["select_metric"] == "val_macro_f1" and record["best_metric"] == summary["best_metric"]
    assert record["better_than_best"] == (record["metrics"]["val_macro_f1"] > summary["best_metric"])
    paths = RunPaths(swa_run.path)
    best = load_checkpoint(paths.checkpoint("best"))
    kept = load_checkpoint(paths.checkpoint(f"epoch{summary['best_epoch']:04d}"))
    assert best["eval_weights"] is None
    assert all(torch.equal(best["model"][name], kept["model"][name]) for name in best["model"])


def test_eval_and_select_take_the_swa_checkpoint(swa_run, tmp_path, capsys):
    run = shutil.copytree(swa_run.path, tmp_path / "run")
    assert main(["eval", str(run), "--checkpoint", "swa", "--no-plots"]) == 0
    metrics = json.loads((run / "eval" / "test" / "swa" / "metrics.json").read_text())
    assert metrics["checkpoint"]["name"] == "swa" and metrics["checkpoint"]["epoch"] == 3
    assert "swa" in run_checkpoints(run)
    assert main(["select", str(run), "--target", "recall(disk)>=0.1"]) == 0
    record = json.loads((run / "checkpoints" / "selected.json").read_text())
    assert "swa" in [candidate["checkpoint"] for candidate in record["candidates"]]
    capsys.readouterr()


def test_resume_mid_swa_continues_the_average(tmp_path, image_folder, monkeypatch):
    settings = dict(epochs=3, swa_epochs=2, test_fraction=0.0)
    straight = winnow.train(fast_config(tmp_path, image_folder, name="straight", **settings))
    crash_at_epoch(monkeypatch, 2)
    with pytest.raises(SystemExit):
        winnow.train(fast_config(tmp_path, image_folder, name="killed", **settings))
    monkeypatch.undo()
    last = load_checkpoint(RunPaths(tmp_path / "runs" / "killed").checkpoint("last"))
    assert last["swa"]["epochs_averaged"] == [2] and int(last["swa"]["averaged"]["n_averaged"]) == 1
    resumed = winnow.train(None, resume=tmp_path / "runs" / "killed")
    assert resumed.swa["n_averaged"] == straight.swa["n_averaged"] == 2
    assert resumed.swa["epochs_averaged"] == [2, 3]
    assert resumed.swa["metrics"] == pytest.approx(straight.swa["metrics"], rel=1e-6)
    expected = evaluation_weights(load_checkpoint(RunPaths(straight.path).checkpoint("swa")))
    got = evaluation_weights(load_checkpoint(RunPaths(resumed.path).checkpoint("swa")))
    assert all(torch.allclose(got[name].double(), expected[name].double(), atol=1e-6) for name in expected)


def test_weight_average_takes_only_the_last_epochs_and_drops_a_stale_one(caplog):
    model = nn.Linear(2, 1)
    average = WeightAverage(model, epochs=5, swa_epochs=2)
    for epoch in range(1, 6):
        nn.init.constant_(model.weight, float(epoch))
        average.after_epoch(epoch)
    assert average.epochs_averaged == [4, 5] and average.n_averaged == 2
    assert torch.allclose(average.averaged.module.weight, torch.full((1, 2), 4.5))
    same = WeightAverage(model, epochs=5, swa_epochs=2)
    same.load_state_dict(average.state_dict())
    assert same.n_averaged == 2 and torch.equal(same.averaged.module.weight, average.averaged.module.weight)
    longer = WeightAverage(model, epochs=8, swa_epochs=2)  # epochs raised on resume
    with caplog.at_level(logging.WARNING, logger="winnow"):
        longer.load_state_dict(average.state_dict())
    assert longer.averaged is None and "starting a new average" in caplog.text


def test_batchnorm_of_frozen_layers_keeps_its_statistics():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
    frozen_bn = model[1]
    for parameter in [*model[0].parameters(), *frozen_bn.parameters()]:
        parameter.requires_grad_(False)
    frozen_bn.running_mean.fill_(0.3)
    frozen_bn.running_var.fill_(2.0)
    average = WeightAverage(model, epochs=1, swa_epochs=1)
    average.after_epoch(1)
    images = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    result = average.finalize([(images, None)], make_accelerator("cpu", "off", False, DistInfo()))
    assert torch.equal(result[1].running_mean, frozen_bn.running_mean)
    assert torch.equal(result[1].running_var, frozen_bn.running_var)
    with torch.no_grad():
        expected = model[2](frozen_bn.eval()(model[0](images))).mean(dim=(0, 2, 3))
    assert torch.allclose(result[3].running_mean, expected, atol=1e-6)


def test_swa_lr_from_the_first_update_when_every_epoch_is_averaged():
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    schedule = SwaSchedule(optimizer, None, lr=0.02, start_update=0)
    assert optimizer.param_groups[0]["lr"] == 0.02
    schedule.step_update(5)
    assert optimizer.param_groups[0]["lr"] == 0.02 and schedule.state_dict() == {}


@pytest.mark.parametrize("settings, match", [
    ({"swa_epochs": 0}, r"swa_epochs must be None or a positive integer, got 0"),
    ({"swa_epochs": 5, "epochs": 3}, r"swa_epochs must be <= epochs \(3\), got 5.*lower swa_epochs or raise epochs"),
    ({"swa_epochs": 2, "ema": True}, r"ema and swa_epochs both average the weights.*set ema: false"),
    ({"swa_lr": 0.01}, r"swa_lr is 0.01 but swa_epochs is not set"),
    ({"swa_epochs": 2, "swa_lr": 0}, r"swa_lr must be None or a number > 0, got 0"),
])
def test_bad_swa_settings_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        Config(**settings)


def test_resume_cannot_cut_epochs_below_swa_epochs(tmp_path, image_folder):
    run = tmp_path / "run"
    save_yaml(fast_config(tmp_path, image_folder, epochs=2, swa_epochs=2), RunPaths(run).config)
    with pytest.raises(ValueError, match=r"swa_epochs must be <= epochs \(1\), got 2"):
        winnow.train(None, resume=run, overrides={"epochs": 1})
