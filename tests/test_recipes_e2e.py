"""Every loss, sampler, head, model family, stem and mixing option trains end to end on tiny data."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

import winnow
from winnow.data.samplers import SAMPLERS
from winnow.losses import LOSSES
from winnow.models.registry import FAMILIES

from conftest import fast_config

LOSS_PARAMS = {"ldam": {"s": 5.0, "drw_epoch": 1}, "joint": {"terms": [{"loss": "ce"}, {"loss": "focal", "weight": 0.5}]},
               "focal": {"gamma": 2.0}}
MULTICLASS_LOSSES = ["ce", "focal", "class_balanced", "ldam", "joint"]
LABEL_LOSSES = ["bce", "asymmetric"]


def _write_manifest(path, rows, columns=("path", "label")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


@pytest.fixture
def binary_folder(image_folder):
    shutil.rmtree(image_folder / "square")
    return image_folder


@pytest.fixture
def multilabel_manifest(image_folder):
    rows = []
    for i, file in enumerate(sorted(image_folder.rglob("*.png"))):
        label = file.parent.name + ("|odd" if i % 2 else "")
        rows.append([str(file), label])
    return _write_manifest(image_folder / "multilabel.csv", rows)


@pytest.fixture
def multitask_manifest(image_folder):
    rows = [[str(f), f.parent.name, "yes" if f.parent.name == "square" else "no"]
            for f in sorted(image_folder.rglob("*.png"))]
    return _write_manifest(image_folder / "multitask.csv", rows, ("path", "label", "bright"))


def test_registries_cover_the_issue():
    assert set(LOSSES) == {"ce", "focal", "class_balanced", "ldam", "bce", "asymmetric", "ghm", "upu", "nnpu",
                           "joint",  # on logits
                           "arcface", "subcenter_arcface", "cosface", "triplet", "multi_similarity", "supcon",
                           "contrastive", "center"}  # on embeddings (test_metric_losses.py)
    assert set(SAMPLERS) == {"random", "balanced", "sqrt", "repeat_factor", "m_per_class"}
    assert set(FAMILIES) == {"bilinear", "cbam", "gem"}


@pytest.mark.parametrize("loss", MULTICLASS_LOSSES)
def test_multiclass_losses_train(tmp_path, image_folder, loss):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=2, loss=loss, loss_params=LOSS_PARAMS.get(loss, {})))
    assert run.status == "finished" and np.isfinite(run.metrics[-1]["train_loss"])


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_samplers_train(tmp_path, image_folder, sampler):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=2, sampler=sampler, sampler_epoch=2,
                                   sampler_params={"m": 4} if sampler == "m_per_class" else {}))
    assert run.status == "finished"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_model_families_train_and_predict(tmp_path, image_folder, family):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=1, model=f"{family}:test_resnet"))
    assert winnow.load(run.path).predict(image_folder / "bar").probabilities.shape == (12, 3)


def test_small_stem_trains_and_predicts(tmp_path, image_folder):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=1, model="resnet18", stem="small"))
    assert winnow.load(run.path).predict(image_folder / "disk").probabilities.shape == (12, 3)


@pytest.mark.parametrize("loss", ["bce", "focal"])
def test_binary_head(tmp_path, binary_folder, loss):
    config = fast_config(tmp_path, binary_folder, epochs=3, head="binary", positive_class="disk", loss=loss,
                         loss_params={"variant": "sigmoid"} if loss == "focal" else {})
    run = winnow.train(config)
    predictions = winnow.load(run.path).predict(binary_folder / "disk")
    assert predictions.classes == ["bar", "disk"]  # the positive class is last
    assert predictions.probabilities.shape == (12, 2)
    assert np.allclose(predictions.probabilities.sum(1), 1)
    assert predictions.predicted == ["disk" if p >= 0.5 else "bar" for p in predictions.probabilities[:, 1]]


@pytest.mark.parametrize("loss", LABEL_LOSSES)
def test_multilabel_head(tmp_path, multilabel_manifest, loss):
    run = winnow.train(fast_config(tmp_path, multilabel_manifest, epochs=2, head="multilabel", loss=loss))
    assert {"val_micro_f1", "val_f1_odd", "val_macro_f1"} <= set(run.metrics[-1])
    predictions = winnow.load(run.path).predict(multilabel_manifest)
    assert predictions.classes == ["bar", "disk", "odd", "square"]
    assert all(set(p.split("|")) <= set(predictions.classes) for p in predictions.predicted if p)


def test_multitask_head(tmp_path, multitask_manifest):
    tasks = [{"name": "shape", "column": "label"},
             {"name": "bright", "head": "binary", "positive_class": "yes", "weight": 0.5}]
    run = winnow.train(fast_config(tmp_path, multitask_manifest, epochs=2, head="multitask", tasks=tasks))
    row = run.metrics[-1]
    assert {"val_shape_macro_f1", "val_bright_macro_f1", "val_macro_f1"} <= set(row)
    assert row["val_macro_f1"] == pytest.approx((row["val_shape_macro_f1"] + row["val_bright_macro_f1"]) / 2)
    out = tmp_path / "preds.csv"
    winnow.load(run.path).predict(multitask_manifest).to_csv(out)
    header = out.read_text().splitlines()[0].split(",")
    assert header == ["path", "shape_predicted", "shape_prob_bar", "shape_prob_disk", "shape_prob_square",
                      "bright_predicted", "bright_prob_no", "bright_prob_yes"]


@pytest.mark.parametrize("head, mixing", [("multiclass", {"mixup": 0.4}), ("multiclass", {"cutmix": 1.0}),
                                          ("binary", {"mixup": 0.4, "cutmix": 1.0}),
                                          ("multilabel", {"cutmix": 1.0})])
def test_mixup_and_cutmix_with_heads(tmp_path, image_folder, multilabel_manifest, head, mixing):
    data = multilabel_manifest if head == "multilabel" else image_folder
    if head == "binary":
        shutil.rmtree(image_folder / "square")
    run = winnow.train(fast_config(tmp_path, data, epochs=1, head=head, **mixing))
    assert run.status == "finished" and np.isfinite(run.metrics[-1]["train_loss"])


def test_mixup_with_hard_target_loss_is_refused(tmp_path, image_folder):
    with pytest.raises(ValueError, match=r"mixup/cutmix need a loss that accepts soft targets"):
        winnow.train(fast_config(tmp_path, image_folder, epochs=1, mixup=0.4, loss="focal",
                                 loss_params={"variant": "sigmoid"}))


@pytest.mark.parametrize("values, message", [
    ({"loss": "nope"}, r"unknown loss 'nope'; valid losses: ce, focal"),
    ({"sampler": "nope"}, r"unknown sampler 'nope'.*balanced"),
    ({"head": "nope"}, r"head must be one of \['multiclass', 'binary', 'multilabel', 'multitask'\]"),
    ({"model": "nope:test_resnet"}, r"unknown model family 'nope'.*bilinear, cbam, gem"),
    ({"loss": "focal", "loss_params": {"gamma": -1}}, r"gamma"),
    ({"loss": "class_balanced", "loss_params": {"beta": 1.0}}, r"beta"),
    ({"class_weights": [1.0, 2.0]}, r"3"),
    ({"head": "multitask"}, r"head=multitask needs `tasks`"),
    ({"stem": "tiny"}, r"stem"),
])
def test_bad_recipe_values_fail_before_training(tmp_path, image_folder, values, message):
    with pytest.raises(ValueError, match=message):
        winnow.train(fast_config(tmp_path, image_folder, epochs=1, **values))
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.pt")), "nothing was trained"
