"""End-to-end training on tiny data: run folder, resume equivalence, stops, API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import winnow
from winnow.models.freezing import apply_freeze
from winnow.models.registry import create_model
from winnow.runs.files import read_metrics
from winnow.runs.layout import RunPaths
from winnow.training import engine
from winnow.training.checkpoint import load_checkpoint

from conftest import fast_config

EPOCH_KEYS = {"epoch", "train_loss", "lr", "img_per_s", "val_loss", "val_accuracy",
              "val_balanced_accuracy", "val_macro_f1"}


def test_run_folder_has_every_artefact(tmp_path, manifest):
    run = winnow.train(fast_config(tmp_path, manifest, name="full"))
    paths = RunPaths(run.path)
    assert run.status == "finished" and run.path.name == "full"
    for file in (paths.config, paths.classes, paths.splits, paths.metrics, paths.preprocessing,
                 paths.checkpoint("last"), paths.checkpoint("best"), paths.summary):
        assert file.is_file(), file
    assert list(paths.tensorboard.glob("events.out.tfevents.*"))
    saved = yaml.safe_load(paths.config.read_text())
    assert saved["model"] == "test_resnet"
    assert saved["_provenance"]["winnow_version"] == winnow.__version__
    assert "git_commit" in saved["_provenance"]
    assert json.loads(paths.classes.read_text()) == ["bar", "disk", "square"]
    rows = read_metrics(paths.metrics)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert EPOCH_KEYS <= set(rows[0])
    checkpoint = load_checkpoint(paths.checkpoint("best"))
    assert checkpoint["config"]["model"] == "test_resnet" and checkpoint["provenance"]["winnow_version"]
    assert set(run.test_metrics) >= {"test_accuracy", "test_macro_f1"}


def test_tiny_data_is_learned(tmp_path, image_folder):
    # the standard jitter: these 36 synthetic shapes are not learned from flips alone in 6 epochs (the
    # default `augment: auto` gives balanced data flips only); this test is about the loop learning
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=6, val_fraction=0.25, test_fraction=0.0,
                                   augment="standard"))
    assert run.best_metric >= 0.8, run.metrics


def crash_at_epoch(monkeypatch, crash_epoch: int) -> None:
    """Make training die (like a killed process) when epoch `crash_epoch` (0-based) starts."""
    original = engine.train_one_epoch

    def maybe_crash(*args, **kwargs):
        if kwargs["epoch"] == crash_epoch:
            raise SystemExit("simulated kill")
        return original(*args, **kwargs)

    monkeypatch.setattr("winnow.training.trainer.train_one_epoch", maybe_crash)


def _interrupt_at(monkeypatch, epoch: int, batch: int) -> None:
    """Press Ctrl-C while batch `batch` of epoch `epoch` (0-based) is loaded."""
    original = engine.train_one_epoch

    def with_ctrl_c(model, loader, *args, **kwargs):
        if kwargs["epoch"] == epoch:
            loader = _interrupting(loader, batch)
        return original(model, loader, *args, **kwargs)

    monkeypatch.setattr("winnow.training.trainer.train_one_epoch", with_ctrl_c)


class _interrupting:
    def __init__(self, loader, batch):
        self.loader, self.batch = loader, batch

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, item in enumerate(self.loader):
            if i == self.batch:
                raise KeyboardInterrupt
            yield item


def _assert_same_history(straight, resumed, keys=("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr")):
    assert [r["epoch"] for r in resumed.metrics] == [1, 2, 3, 4]
    for a, b in zip(straight.metrics, resumed.metrics):
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (key, a, b)
    assert straight.test_metrics == pytest.approx(resumed.test_metrics, rel=1e-6)


def test_resume_after_kill_gives_identical_metrics(tmp_path, manifest, monkeypatch):
    straight = winnow.train(fast_config(tmp_path, manifest, name="straight", epochs=4, ema=True))
    crash_at_epoch(monkeypatch, 2)
    with pytest.raises(SystemExit):
        winnow.train(fast_config(tmp_path, manifest, name="killed", epochs=4, ema=True))
    monkeypatch.undo()
    resumed = winnow.train(None, resume=tmp_path / "runs" / "killed")
    _assert_same_history(straight, resumed)


def test_resume_after_ctrl_c_mid_epoch_continues_exactly(tmp_path, manifest, monkeypatch):
    straight = winnow.train(fast_config(tmp_path, manifest, name="straight", epochs=4))
    _interrupt_at(monkeypatch, epoch=1, batch=2)
    stopped = winnow.train(fast_config(tmp_path, manifest, name="stopped", epochs=4))
    assert stopped.status == "interrupted"
    assert load_checkpoint(RunPaths(stopped.path).checkpoint("last"))["step_in_epoch"] == 2
    monkeypatch.undo()
    resumed = winnow.train(None, resume=stopped.path)
    # the interrupted epoch's train_loss covers only the batches run after resuming
    _assert_same_history(straight, resumed, keys=("val_loss", "val_accuracy", "val_macro_f1"))


def test_resume_refuses_changed_settings(tmp_path, manifest):
    run = winnow.train(fast_config(tmp_path, manifest, epochs=1))
    with pytest.raises(ValueError, match=r"cannot change \['lr'\]"):
        winnow.train(None, resume=run.path, overrides={"lr": 0.1})
    with pytest.raises(ValueError, match="last.pt is missing"):
        winnow.train(None, resume=tmp_path / "nothing")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, manifest, monkeypatch, caplog):
    original = engine.train_one_epoch
    calls = {"n": 0}

    def poisoned(model, loader, loss_fn, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            loss_fn = lambda logits, targets: logits.sum() * float("nan")  # noqa: E731
        return original(model, loader, loss_fn, *args, **kwargs)

    monkeypatch.setattr("winnow.training.trainer.train_one_epoch", poisoned)
    run = winnow.train(fast_config(tmp_path, manifest, epochs=3))
    assert run.status == "diverged"
    assert "loss is nan" in caplog.text and "last good checkpoint" in caplog.text
    assert load_checkpoint(RunPaths(run.path).checkpoint("last"))["epoch"] == 1


def test_load_and_predict(tmp_path, image_folder):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=4, augment="standard"))  # as above
    predictor = winnow.load(run.path)
    predictions = predictor.predict(image_folder / "disk")
    assert predictions.probabilities.shape == (12, 3)
    assert np.allclose(predictions.probabilities.sum(1), 1.0, atol=1e-4)
    assert predictions.predicted.count("disk") >= 9
    out = tmp_path / "preds.csv"
    predictions.to_csv(out)
    assert out.read_text().splitlines()[0] == "path,predicted,prob_bar,prob_disk,prob_square"


def test_skip_bad_writes_bad_files_csv(tmp_path, image_folder):
    (image_folder / "disk" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"1 bad file.*broken.png.*--skip-bad"):
        winnow.train(fast_config(tmp_path, image_folder, epochs=1))
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=1, skip_bad=True))
    bad = (run.path / "bad_files.csv").read_text()
    assert "broken.png" in bad and "not_an_image" in bad


def test_truncated_file_is_caught_before_training(tmp_path, image_folder):
    data = (image_folder / "bar" / "bar_000.png").read_bytes()
    (image_folder / "bar" / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"1 bad file\(s\) \{'corrupt': 1\}.*cut.png"):
        winnow.train(fast_config(tmp_path, image_folder, epochs=1))
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=1, skip_bad=True))
    assert "cut.png" in (run.path / "bad_files.csv").read_text()


@pytest.mark.parametrize("spec", ["backbone", "until=layer3"])
def test_freeze_keeps_frozen_weights_and_bn_stats(tmp_path, image_folder, spec):
    config = fast_config(tmp_path, image_folder, epochs=1, freeze=spec)
    run = winnow.train(config)
    torch.manual_seed(config.seed)  # the trainer seeds before building the model
    initial = create_model("test_resnet", num_classes=3, in_chans=1).state_dict()
    trained = load_checkpoint(RunPaths(run.path).checkpoint("last"))["model"]
    frozen_prefixes = ("conv1.", "bn1.", "layer1.", "layer2.")
    for key, value in trained.items():
        if key.startswith(frozen_prefixes):
            assert torch.equal(value, initial[key]), f"{key} changed although frozen ({spec})"
    assert not torch.equal(trained["fc.weight"], initial["fc.weight"])
    changed_l3 = not torch.equal(trained["layer3.0.conv1.weight"], initial["layer3.0.conv1.weight"])
    assert changed_l3 == (spec != "backbone")


def test_unfreeze_at_trains_backbone_later(tmp_path, image_folder):
    config = fast_config(tmp_path, image_folder, epochs=2, freeze="backbone", unfreeze_at=2)
    run = winnow.train(config)
    torch.manual_seed(config.seed)
    initial = create_model("test_resnet", num_classes=3, in_chans=1).state_dict()
    trained = load_checkpoint(RunPaths(run.path).checkpoint("last"))["model"]
    assert not torch.equal(trained["conv1.1.running_mean"], initial["conv1.1.running_mean"])
    assert not torch.equal(trained["conv1.0.weight"], initial["conv1.0.weight"])


def test_freeze_errors_name_the_fix():
    model = create_model("test_resnet", num_classes=3, in_chans=1)
    with pytest.raises(ValueError, match=r"no such module; top-level modules: \['conv1'"):
        apply_freeze(model, "until=nope")
    with pytest.raises(ValueError, match="freeze must be 'backbone' or 'until=<module name>'"):
        apply_freeze(model, "everything")


def test_gradient_accumulation_and_clipping_run(tmp_path, image_folder):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=1, accumulate=2, grad_clip=1.0,
                                   optimizer="sgd", schedule="step", milestones=[1], class_weights="balanced",
                                   sampler="balanced", label_smoothing=0.1))
    assert run.status == "finished"


@pytest.mark.parametrize("optimizer", ["radam", "lookahead_radam"])
def test_timm_optimizers(tmp_path, image_folder, optimizer):
    assert winnow.train(fast_config(tmp_path, image_folder, epochs=1, optimizer=optimizer)).status == "finished"
