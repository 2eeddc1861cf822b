"""`winnow predict --backend onnx`: an exported ONNX file run by onnxruntime behind winnow's own post-processing.

`OnnxPredictor` is a `Predictor` whose network is an onnxruntime session: images are read and
preprocessed by the same data pipeline, and the logits go through the same calibration, thresholds and
decision code (`winnow.inference.postprocess`), TTA included. It needs the run folder (preprocessing.json,
operating files); the model file is `--model-file`, else `RUN/exports/<checkpoint>.onnx` from
`winnow export RUN`. A sidecar that does not match the run (other classes, input size, channels or
normalisation) is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from winnow.data.prepare import DataSpec
from winnow.export.exporter import default_export_file
from winnow.export.sidecar import INPUT_NAME, read_sidecar
from winnow.inference.predictor import Predictor, ScoringModel
from winnow.inference.predictions import ReadOutputs
from winnow.inference.tta import TTA
from winnow.loading import load
from winnow.runs.files import fingerprint
from winnow.runs.layout import is_ensemble
from winnow.tasks.spec import TaskSpec

log = logging.getLogger("winnow")
BACKENDS = ("torch", "onnx")


class OnnxModule(nn.Module):
    """An onnxruntime session as a module: `[B, C, S, S]` float32 -> logits `[B, K']` on the input's device."""

    def __init__(self, model_file: Path, *, cuda: bool) -> None:
        super().__init__()
        available = onnxruntime.get_available_providers()
        wanted = ["CUDAExecutionProvider"] if cuda and "CUDAExecutionProvider" in available else []
        self.session = onnxruntime.InferenceSession(str(model_file), providers=wanted + ["CPUExecutionProvider"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {INPUT_NAME: array})[0]).to(images.device)


class OnnxPredictor(Predictor):
    """A run whose network is its exported ONNX file.

    Args:
        run_dir: The run folder the file was exported from.
        model_file: The `.onnx` file (default: `RUN/exports/<checkpoint>.onnx`).
        checkpoint: The run's checkpoint the file should come from: it names the default model file, and
            the operating files and the sidecar's fingerprint are checked against it (a mismatch warns).
        device, calibration, thresholds: As `Predictor`.

    Raises:
        ValueError: Missing file or sidecar, not an ONNX export, or a sidecar that does not match the run.
    """

    def __init__(self, run_dir: str | Path, *, model_file: str | Path | None = None, checkpoint: str | Path = "best",
                 device: str = "auto", calibration: bool | str | Path = True,
                 thresholds: bool | str | Path = True) -> None:
        self.model_file = Path(model_file) if model_file else default_export_file(run_dir, format="onnx",
                                                                                  checkpoint=checkpoint)
        if not self.model_file.is_file():
            raise ValueError(f"ONNX model {self.model_file} not found; create it with `winnow export {run_dir} "
                             "--format onnx` or pass --model-file")
        self.sidecar, self.folder = read_sidecar(self.model_file), Path(run_dir)  # run_dir is set by the base
        if self.sidecar["format"] != "onnx":
            raise ValueError(f"{self.model_file} is a {self.sidecar['format']} export; the onnx backend needs "
                             "`winnow export RUN --format onnx`")
        super().__init__(run_dir, checkpoint=checkpoint, device=device, calibration=calibration,
                         thresholds=thresholds)

    def _load_model(self, checkpoint_path: Path, tasks: list[TaskSpec]) -> tuple[nn.Module, int | None]:
        check_matches_run(self.sidecar, self.spec, where=self.model_file, run_dir=self.folder)
        if self.sidecar["source"]["checkpoint_fingerprint"] != fingerprint(checkpoint_path):
            log.warning("%s was exported from other weights than %s; re-run `winnow export`",
                        self.model_file, checkpoint_path)
        return OnnxModule(self.model_file, cuda=self.accel.is_cuda), self.sidecar["source"].get("epoch")

    def view_embeddings(self, paths: list[str], augmentation: TTA, *, batch_size: int = 64, workers: int = 0,
                        decoded_cache: bool = False) -> ReadOutputs:
        raise ValueError(f"{self.model_file} exports logits only; embed with the PyTorch backend")


def check_matches_run(sidecar: dict, spec: DataSpec, *, where: Path, run_dir: Path) -> None:
    """Refuse a sidecar whose classes or input contract differ from the run's preprocessing.json."""
    contract = sidecar["preprocessing"]
    expected = {"classes": list(spec.classes), "channels": spec.in_chans, "img_size": spec.img_size,
                "mean": list(spec.mean), "std": list(spec.std)}
    found = {"classes": sidecar["classes"], **{key: contract[key] for key in expected if key != "classes"}}
    differ = [key for key in expected if not np.array_equal(np.asarray(found[key]), np.asarray(expected[key]))]
    if differ:
        details = "; ".join(f"{key}: {found[key]} in the sidecar, {expected[key]} in the run" for key in differ)
        raise ValueError(f"{where} was exported from another run than {run_dir} ({details}); pass this run's "
                         "export (`winnow export RUN --format onnx`) or the run it came from "
                         f"({sidecar['source']['run']})")


def load_backend(run_dir: str | Path, *, backend: str = "torch", model_file: str | Path | None = None,
                 **settings) -> ScoringModel:
    """`winnow.load` for `backend="torch"`; an `OnnxPredictor` for `"onnx"` (settings as `winnow.load`).

    Raises:
        ValueError: Unknown backend, or the onnx backend on an ensemble folder.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        if model_file is not None:
            raise ValueError("--model-file is for --backend onnx; drop it or add --backend onnx")
        return load(run_dir, **settings)
    if is_ensemble(run_dir):
        raise ValueError(f"{run_dir} is an ensemble or head-on-embeddings folder: the onnx backend serves single "
                         "runs only for now; use --backend torch")
    return OnnxPredictor(run_dir, model_file=model_file, **settings)
