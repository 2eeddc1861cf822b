"""Test-time views: the batch views of the trainer's test pass, and a run's default `tta` in predict."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

import winnow
from winnow.data.views import flip_ops, view_ops
from winnow.training.device import make_accelerator
from winnow.training.distributed import DistInfo
from winnow.training.engine import predict_probabilities

from conftest import fast_config, make_image_folder


def _loader(images: torch.Tensor, batch_size: int = 4):
    return [(images[i:i + batch_size], torch.zeros(len(images[i:i + batch_size]), dtype=torch.long))
            for i in range(0, len(images), batch_size)]


def test_batch_views_average_the_probabilities_of_each_view():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.LazyLinear(3))
    images = torch.randn(10, 1, 8, 8)
    model(images)  # materialise the lazy layer
    accel = make_accelerator("cpu", "off", False, DistInfo())
    merged, _, _ = predict_probabilities(model, _loader(images), accel, views=flip_ops())
    model.eval()
    with torch.no_grad():  # the naive loop: every flip of every image on its own
        expected = np.stack([np.mean([model(op(image[None])).softmax(1)[0].numpy() for op in flip_ops()], axis=0)
                             for image in images])
    np.testing.assert_allclose(merged, expected, atol=1e-6)
    single, _, _ = predict_probabilities(model, _loader(images), accel, views=view_ops("none"))
    assert not np.allclose(single, merged, atol=1e-4)  # the views change the scores


def test_unknown_view_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"expected one of \['none', 'flips', 'd4'\], got 'rot'"):
        view_ops("rot")


def test_config_refuses_an_unknown_tta(tmp_path):
    with pytest.raises(ValueError, match="tta"):
        fast_config(tmp_path, tmp_path, tta="flip")


def test_run_tta_scores_the_test_split_and_is_the_default_of_predict(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=10)
    run = winnow.train(fast_config(tmp_path, data, epochs=2, name="views", tta="flips"))
    summary = json.loads((run.path / "summary.json").read_text())
    with open(run.path / "splits.csv", newline="") as handle:
        test = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    predictor = winnow.load(run.path, device="cpu")
    default, plain = predictor.predict([r["path"] for r in test]), predictor.predict([r["path"] for r in test],
                                                                                     tta="none")
    assert default.tta.label == "flips-mean" and plain.tta.label == ""
    classes = predictor.classes
    truth = np.array([classes.index(r["label"]) for r in test])
    assert summary["test"]["test_accuracy"] == pytest.approx(float((default.probabilities.argmax(1) == truth).mean()))
    assert not np.allclose(default.probabilities, plain.probabilities, atol=1e-4)


def test_eval_folder_is_the_runs_own_views_and_other_views_are_named(tmp_path):
    from winnow.evaluation.runner import evaluate

    data = make_image_folder(tmp_path / "data", per_class=6)
    run = winnow.train(fast_config(tmp_path, data, epochs=1, name="views", tta="flips"))
    own = evaluate(run.path, device="cpu", plots=False)
    single = evaluate(run.path, tta="none", device="cpu", plots=False)
    d4 = evaluate(run.path, tta="d4", tta_merge="gmean", device="cpu", plots=False)
    assert own.directory == run.path / "eval" / "test" / "best"  # what select, tune and the report read
    assert own.metrics["tta"] == "flips-mean"
    assert single.directory.name == "best-tta-none" and d4.directory.name == "best-tta-d4-gmean"


def test_served_scores_use_the_runs_views_like_offline_predict(tmp_path):
    from PIL import Image

    from winnow.serve.images import decode_image
    from winnow.serve.model import ServedModel

    data = make_image_folder(tmp_path / "data", per_class=6)
    run = winnow.train(fast_config(tmp_path, data, epochs=1, name="views", tta="flips"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):  # noise: no flip symmetry, so one view and four views give different scores
        paths.append(tmp_path / f"noise{i}.png")
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(paths[-1])
    served = ServedModel.load(run.path, device="cpu")
    batch = torch.stack([decode_image(path.read_bytes(), i, preprocess=served.preprocess, transform=served.transform,
                                      max_pixels=10**8) for i, path in enumerate(paths)])
    scored = np.array([[row["probabilities"][c] for c in served.head.classes] for row in served.score(batch)])
    predictor = winnow.load(run.path, device="cpu")
    np.testing.assert_allclose(scored, predictor.predict(paths).probabilities, atol=1e-5)
    assert not np.allclose(scored, predictor.predict(paths, tta="none").probabilities, atol=1e-4)
