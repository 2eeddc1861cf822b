"""`winnow pretrain`: autoencoder runs, their encoder in `train --pretrained`, resume, reconstruction errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import winnow
from conftest import fast_config, make_image_folder
from winnow.cli.main import main
from winnow.models.registry import create_model
from winnow.pretraining.reconstruction import reconstruction_errors
from winnow.pretraining.trainer import pretrain


def pretrain_config(tmp_path: Path, images: Path, **overrides):
    values = dict(pretrain_method="autoencoder", epochs=2, batch_size=4, val_fraction=0.2, name="pre")
    return fast_config(tmp_path, images, **{**values, **overrides})


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pretrain")


@pytest.fixture(scope="module")
def images(shared: Path) -> Path:
    return make_image_folder(shared / "images", per_class=4)


@pytest.fixture(scope="module")
def autoencoder_run(shared: Path, images: Path) -> Path:
    return pretrain(pretrain_config(shared, images)).path


def test_pretrain_run_folder_has_the_train_run_files_and_an_encoder(autoencoder_run):
    for name in ("config.yaml", "preprocessing.json", "splits.csv", "metrics.jsonl", "summary.json", "train.log",
                 "encoder.pt", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (autoencoder_run / name).is_file(), name
    rows = [json.loads(line) for line in (autoencoder_run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2] and all(np.isfinite(row["val_loss"]) for row in rows)
    summary = json.loads((autoencoder_run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["pretrain_method"] == "autoencoder"


def test_train_pretrained_loads_the_encoder_weights(autoencoder_run):
    encoder = torch.load(autoencoder_run / "encoder.pt", weights_only=True)
    model = create_model("test_resnet", num_classes=3, in_chans=1, pretrained=str(autoencoder_run))
    for key in ("conv1.0.weight", "layer1.0.conv1.weight", "bn1.running_mean"):
        assert torch.equal(model.state_dict()[key], encoder[key])
    fresh = create_model("test_resnet", num_classes=3, in_chans=1)
    assert not torch.equal(fresh.state_dict()["layer1.0.conv1.weight"], encoder["layer1.0.conv1.weight"])
    # `winnow train --pretrained RUN` builds its model this way: test_the_staged_recipe... runs it end to end


def test_a_pretrain_run_of_another_channel_count_loads_with_its_first_conv_adapted(autoencoder_run):
    encoder = torch.load(autoencoder_run / "encoder.pt", weights_only=True)
    model = create_model("test_resnet", num_classes=3, in_chans=3, pretrained=str(autoencoder_run))
    assert model.state_dict()["conv1.0.weight"].shape[1] == 3 and encoder["conv1.0.weight"].shape[1] == 1
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], encoder["layer1.0.conv1.weight"])


def test_a_killed_run_resumes_to_the_same_metrics_and_weights(tmp_path, images):
    whole = pretrain(pretrain_config(tmp_path, images, save_every=1, name="whole"))
    killed = tmp_path / "runs" / "killed"
    shutil.copytree(whole.path, killed)
    # as killed right after epoch 1's last.pt: later files are missing or old
    shutil.copy(killed / "checkpoints" / "epoch0001.pt", killed / "checkpoints" / "last.pt")
    (killed / "checkpoints" / "epoch0002.pt").unlink()
    (killed / "metrics.jsonl").write_text((killed / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    resumed = pretrain(None, resume=killed)
    strip = lambda rows: [{k: v for k, v in row.items() if k not in ("time_s", "img_per_s")} for row in rows]
    assert strip(resumed.metrics) == strip(whole.metrics) and resumed.status == "finished"
    a, b = (torch.load(p / "checkpoints" / "last.pt", weights_only=False)["model"] for p in (whole.path, killed))
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_resume_refuses_a_train_run_and_changed_settings(tmp_path, manifest, autoencoder_run):
    from winnow.config import save_yaml

    classifier = tmp_path / "runs" / "classifier"  # a `winnow train` run killed before its first epoch
    classifier.mkdir(parents=True)
    save_yaml(fast_config(tmp_path, manifest), classifier / "config.yaml")
    with pytest.raises(ValueError, match="winnow train --resume"):
        pretrain(None, resume=classifier)
    with pytest.raises(ValueError, match="cannot change"):
        pretrain(None, resume=autoencoder_run, overrides={"lr": 0.1})


def test_reconstruction_errors_flag_a_planted_odd_image(tmp_path):
    folder = make_image_folder(tmp_path / "cells", per_class=4)
    noise = np.random.default_rng(0).integers(0, 256, (24, 24), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "disk" / "odd.png")
    run = pretrain(pretrain_config(tmp_path, folder, epochs=1, val_fraction=0.0)).path  # 3 steps
    (folder / "bar" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")  # skipped and listed, not fatal
    result = reconstruction_errors(run, folder)
    assert [Path(path).name for path, _ in result.bad] == ["cut.png"]
    paths = sorted(str(p.resolve()) for p in folder.rglob("*.png") if p.name != "cut.png")
    assert result.paths == paths and result.errors.shape == (13,) and np.isfinite(result.errors).all()
    assert result.embeddings.shape[0] == 13 and np.isfinite(result.embeddings).all()
    assert paths[int(np.argmax(result.errors))].endswith("odd.png")


def test_bad_input_is_a_clear_error(tmp_path, images, autoencoder_run, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no image files"):
        pretrain(pretrain_config(tmp_path, tmp_path / "empty"))
    with pytest.raises(ValueError, match="valid methods: autoencoder"):
        pretrain(pretrain_config(tmp_path, images, pretrain_method="mae"))
    with pytest.raises(ValueError, match="valid methods: autoencoder, simclr, byol"):
        pretrain(pretrain_config(tmp_path, images, pretrain_method="mae"))
    with pytest.raises(ValueError, match="unknown key.*valid keys: decoder_width"):
        pretrain(pretrain_config(tmp_path, images, pretrain_params={"width": 3}))
    with pytest.raises(ValueError, match="not a `winnow pretrain` run"):
        create_model("test_resnet", num_classes=3, in_chans=1, pretrained=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"model \(and stem\) the pretrain run"):
        create_model("resnet10t", num_classes=3, in_chans=1, pretrained=str(autoencoder_run))
    from winnow.pretraining.autoencoder import AutoEncoder
    from winnow.training.trainer import train

    with pytest.raises(ValueError, match=r"not a \[B, C, h, w\] feature map.*simclr / byol"):
        AutoEncoder(create_model("test_vit", num_classes=0, in_chans=1, drop_rate=0.0), in_chans=1, img_size=32,
                    params={"decoder_width": 16}, name="test_vit")
    with pytest.raises(ValueError, match="setting of `winnow pretrain`, not of train"):
        train(pretrain_config(tmp_path, images))
    with pytest.raises(ValueError, match="is a `winnow pretrain` run .*winnow train DATA --pretrained"):
        winnow.load(autoencoder_run)
    assert main(["pretrain", str(images), "--method", "nope", "--out", str(tmp_path / "runs")]) == 2
    assert "valid methods: autoencoder" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_every_two_view_method_trains_an_encoder_that_train_loads(tmp_path, images, method):
    run = pretrain(pretrain_config(tmp_path, images, pretrain_method=method, epochs=1, name=method))
    assert run.status == "finished" and np.isfinite(run.metrics[0]["train_loss"])
    assert np.isfinite(run.metrics[0]["val_loss"])
    encoder = torch.load(run.path / "encoder.pt", weights_only=True)
    model = create_model("test_resnet", num_classes=3, in_chans=1, pretrained=str(run.path))
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], encoder["layer1.0.conv1.weight"])
    if method == "byol":  # the target network followed the online one, part of the way
        weights = torch.load(run.path / "checkpoints" / "last.pt", weights_only=False)["model"]
        torch.manual_seed(0)
        initial = create_model("test_resnet", num_classes=0, in_chans=1).state_dict()
        key = "layer1.0.conv1.weight"
        target, online = weights[f"encoder_momentum.{key}"], weights[f"encoder.{key}"]
        assert not torch.equal(target, initial[key]) and not torch.equal(target, online)


def test_two_views_are_augmented_independently_and_reproducibly():
    from winnow.pretraining.two_view import SIMCLR_DEFAULTS
    from winnow.pretraining.views import view_transform

    transform = view_transform([0.5], [0.25], img_size=32, params=SIMCLR_DEFAULTS)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 32, 32), dtype=np.uint8))
    torch.manual_seed(3)
    views = transform(image)
    torch.manual_seed(3)
    assert views.shape == (2, 32, 32) and views.dtype == torch.float32
    assert torch.equal(views, transform(image)) and not torch.equal(views[0], views[1])


def test_the_staged_recipe_trains_the_head_on_the_frozen_encoder_then_everything(autoencoder_run, tmp_path, manifest,
                                                                                 capsys):
    code = main(["train", str(manifest), "--recipe", "staged", "--pretrained", str(autoencoder_run),
                 "--model", "test_resnet", "--img-size", "32", "--epochs", "2", "--unfreeze-at", "2",
                 "--batch-size", "8", "--workers", "0", "--no-progress", "--save-every", "1",
                 "--out", str(tmp_path / "runs"), "--name", "staged"])
    assert code == 0
    encoder = torch.load(autoencoder_run / "encoder.pt", weights_only=True)
    checkpoints = tmp_path / "runs" / "staged" / "checkpoints"
    first, second = (torch.load(checkpoints / f"epoch000{e}.pt", weights_only=False) for e in (1, 2))
    key = "layer1.0.conv1.weight"
    assert torch.equal(first["model"][key], encoder[key])  # epoch 1: the encoder is frozen, the head trains
    assert not torch.equal(first["model"]["fc.weight"], second["model"]["fc.weight"])
    assert not torch.equal(second["model"][key], encoder[key])  # epoch 2: unfrozen
    assert any("centers" in name for name in second["loss"])  # the center term's centres are checkpointed
    spec = json.loads((tmp_path / "runs" / "staged" / "preprocessing.json").read_text())
    assert spec["mean"] != [0.449]  # normalize auto: the encoder saw dataset statistics, not ImageNet's
    log = (tmp_path / "runs" / "staged" / "train.log").read_text() + capsys.readouterr().out
    assert "encoder.pt (matched by name)" in log
