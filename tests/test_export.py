"""`winnow export` (ONNX, TorchScript, sidecar) and `winnow predict --backend onnx` against the PyTorch predictor."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

import winnow
from winnow.export.backend import OnnxModule, OnnxPredictor, load_backend
from winnow.export.exporter import FORMATS, export_run, onnx_bytes
from winnow.export.sidecar import FORMAT_VERSION, INPUT_NAME, sidecar_path
from winnow.models.registry import FAMILIES, create_model
from winnow.runs.files import fingerprint

from conftest import fast_config, make_image_folder, shared_data_or_skip
from test_eval_cli import cli, read_rows, shape_folder

TARGET = "precision(good)>=0.9"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A binary run with calibration.json and thresholds.json, a 3-class run, and held-out images."""
    root = tmp_path_factory.mktemp("export")
    binary = winnow.train(fast_config(root, shape_folder(root / "train", 12, seed=0), head="binary",
                                      positive_class="good", epochs=1, name="binary")).path
    assert winnow.cli.main.main(["calibrate", str(binary)]) == 0
    assert winnow.cli.main.main(["tune", str(binary), "--target", TARGET, "--n-bootstrap", "50"]) == 0
    multiclass = winnow.train(fast_config(root, make_image_folder(root / "three", per_class=6), epochs=1,
                                          name="three")).path
    return {"binary": binary, "three": multiclass, "held": shape_folder(root / "held", 4, seed=1)}


@pytest.fixture(scope="module")
def onnx_file(runs) -> Path:
    return export_run(runs["binary"], format="onnx")


def test_onnx_backend_matches_torch_with_calibration_and_thresholds(runs, onnx_file):
    torch_model = winnow.load(runs["binary"])
    assert torch_model.calibration is not None and torch_model.decision is not None
    reference = torch_model.predict(runs["held"], batch_size=5)
    exported = load_backend(runs["binary"], backend="onnx")
    assert isinstance(exported.model, OnnxModule)  # the session scores, not the checkpoint
    for batch_size in (1, 5):  # the batch axis is dynamic
        predictions = exported.predict(runs["held"], batch_size=batch_size)
        assert predictions.paths == reference.paths
        assert np.abs(predictions.probabilities - reference.probabilities).max() < TOLERANCE
        assert predictions.predicted == reference.predicted


def test_onnx_backend_with_tta_matches_torch(runs, onnx_file):
    reference = winnow.load(runs["binary"]).predict(runs["held"], tta="flips")
    predictions = OnnxPredictor(runs["binary"]).predict(runs["held"], tta="flips")
    assert np.abs(predictions.probabilities - reference.probabilities).max() < TOLERANCE


def test_torchscript_export_matches_the_network(runs, tmp_path):
    out = export_run(runs["three"], format="torchscript", out=tmp_path / "three.ts")
    with pytest.warns(FutureWarning):  # torch.jit is deprecated in torch 2.14 (README, "Export")
        scripted = torch.jit.load(str(out))
    network = winnow.load(runs["three"], device="cpu").model
    channels = json.loads(sidecar_path(out).read_text())["preprocessing"]["channels"]
    for batch in (1, 5):
        images = torch.randn(batch, channels, 32, 32)
        with torch.no_grad():
            assert torch.allclose(scripted(images), network(images), atol=1e-5)
    assert json.loads(sidecar_path(out).read_text())["format"] == "torchscript"


def test_sidecar_holds_the_preprocessing_contract_and_operating_files(runs, onnx_file):
    sidecar = json.loads(sidecar_path(onnx_file).read_text())
    preprocessing = json.loads((runs["binary"] / "preprocessing.json").read_text())
    assert sidecar["format_version"] == FORMAT_VERSION and sidecar["format"] == "onnx"
    assert onnx_file == runs["binary"] / "exports" / "best.onnx"
    assert sidecar["classes"] == preprocessing["classes"] == ["bad", "good"]
    assert sidecar["head"]["kind"] == "binary"
    assert sidecar["input"]["shape"] == ["batch", preprocessing["in_chans"], 32, 32]
    assert sidecar["output"]["shape"] == ["batch", 1] and sidecar["output"]["kind"] == "logits"
    assert sidecar["test_time_views"]["mode"] == "flips" and "average the calibrated" in sidecar["test_time_views"]["how"]
    contract = sidecar["preprocessing"]
    assert (contract["mean"], contract["std"], contract["img_size"]) == (preprocessing["mean"], preprocessing["std"], 32)
    assert any("pad" in step for step in contract["steps"])
    assert sidecar["calibration"] == json.loads((runs["binary"] / "calibration.json").read_text())
    assert sidecar["thresholds"] == json.loads((runs["binary"] / "thresholds.json").read_text())
    assert "thresholds.json" in sidecar["decision"]
    assert sidecar["source"]["checkpoint_fingerprint"] == fingerprint(runs["binary"] / "checkpoints" / "best.pt")
    assert sidecar["winnow_version"] == winnow.__version__ and "git_commit" in sidecar


def test_predict_cli_onnx_backend_writes_the_same_csv(runs, onnx_file, tmp_path, capsys):
    for backend in ("torch", "onnx"):
        code, out, err = cli(capsys, "predict", runs["binary"], runs["held"], "--backend", backend,
                             "--out", tmp_path / f"{backend}.csv")
        assert code == 0, err
    torch_rows, onnx_rows = read_rows(tmp_path / "torch.csv"), read_rows(tmp_path / "onnx.csv")
    assert [r["predicted"] for r in torch_rows] == [r["predicted"] for r in onnx_rows]
    assert "thresholds.json" in out


def test_export_cli(runs, tmp_path, capsys):
    code, out, err = cli(capsys, "export", runs["three"], "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert code == 0, err
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.onnx.json").is_file()


@pytest.mark.parametrize("name", ["test_resnet", *[f"{family}:test_resnet" for family in FAMILIES]])
def test_every_model_family_exports_to_onnx_with_a_dynamic_batch(name):
    network = create_model(name, num_classes=3, in_chans=1).eval()
    session = onnxruntime.InferenceSession(onnx_bytes(network, torch.zeros(2, 1, 32, 32)),
                                           providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        images = torch.randn(batch, 1, 32, 32)
        with torch.no_grad():
            expected = network(images).numpy()
        assert np.abs(session.run(None, {INPUT_NAME: images.numpy()})[0] - expected).max() < 1e-4


# --------------------------------------------------------------------------------------------- bad input


def test_unknown_format_lists_the_valid_ones(runs):
    with pytest.raises(ValueError, match=r"expected one of \['onnx', 'torchscript'\], got 'tflite'"):
        export_run(runs["three"], format="tflite")
    assert sorted(FORMATS) == ["onnx", "torchscript"]


def test_exporting_an_ensemble_folder_is_refused(tmp_path, runs):
    folder = tmp_path / "ens"
    folder.mkdir()
    (folder / "ensemble.json").write_text("{}")
    with pytest.raises(ValueError, match="ensemble or head-on-embeddings folder.*not supported yet"):
        export_run(folder, format="onnx")


def test_onnx_file_of_another_run_is_refused(runs, tmp_path):
    other = export_run(runs["three"], format="onnx", out=tmp_path / "three.onnx")
    with pytest.raises(ValueError, match=r"exported from another run.*classes: \['bar', 'disk', 'square'\]"):
        OnnxPredictor(runs["binary"], model_file=other)


def test_missing_export_and_missing_sidecar_are_explained(runs, tmp_path):
    with pytest.raises(ValueError, match="not found; create it with `winnow export"):
        OnnxPredictor(runs["three"], model_file=tmp_path / "absent.onnx")
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(export_run(runs["three"], format="onnx", out=tmp_path / "x.onnx"), lonely)
    with pytest.raises(ValueError, match="needs its sidecar JSON"):
        OnnxPredictor(runs["three"], model_file=lonely)


def test_unknown_backend_and_model_file_without_onnx(runs):
    with pytest.raises(ValueError, match=r"backend: expected one of \['torch', 'onnx'\]"):
        load_backend(runs["three"], backend="tensorrt")
    with pytest.raises(ValueError, match="--model-file is for --backend onnx"):
        load_backend(runs["three"], model_file="x.onnx")


# --------------------------------------------------------------------------------------------- real images


def chromosome_slice(data: Path, out: Path, *, labels: tuple[str, ...], groups: set[str]) -> Path:
    """A manifest of the crops of `labels` from the spreads `groups` (absolute paths)."""
    with open(data / "manifest.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"] in labels and row["group"] in groups]
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "group"])
        writer.writeheader()
        writer.writerows({**row, "path": str(data / row["path"])} for row in rows)
    return out


def test_real_chromosome_images_parity(tmp_path):
    """A 1-epoch run on a slice of real Q-band chromosome crops: ONNX matches PyTorch on other spreads' crops."""
    data = shared_data_or_skip("chromosomes-qband")
    labels = ("1", "2", "3")
    train = chromosome_slice(data, tmp_path / "train.csv", labels=labels, groups={str(g) for g in range(1, 13)})
    held = chromosome_slice(data, tmp_path / "held.csv", labels=labels, groups={str(g) for g in range(20, 24)})
    run = winnow.train(fast_config(tmp_path, train, epochs=1, name="chromosomes")).path
    assert winnow.cli.main.main(["calibrate", str(run)]) == 0
    reference = winnow.load(run).predict(held)
    export_run(run, format="onnx")
    predictions = load_backend(run, backend="onnx").predict(held, batch_size=7)
    assert len(predictions.paths) == len(reference.paths) >= 20
    assert np.abs(predictions.probabilities - reference.probabilities).max() < TOLERANCE
    assert predictions.predicted == reference.predicted


def test_export_from_other_weights_warns(runs, tmp_path, caplog):
    run = Path(shutil.copytree(runs["three"], tmp_path / "run"))
    export_run(run, format="onnx")
    shutil.copy(run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt")  # new weights since the export
    OnnxPredictor(run)
    assert "exported from other weights" in caplog.text
