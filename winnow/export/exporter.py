"""`export_run(RUN, format=...)`: a run's network as ONNX or TorchScript, plus the sidecar JSON.

ONNX uses torch's TorchScript-based exporter (`dynamo=False`): the torch.export-based one needs
onnxscript, which winnow does not depend on, and the legacy one exports timm's CNNs and winnow's
families offline with a dynamic batch axis. The exported graph is the eval-mode fp32 network:
`input [B, C, S, S]` normalised float32 -> `logits [B, K']`.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

from winnow.export.sidecar import (FORMAT_VERSION, INPUT_NAME, OUTPUT_NAME, output_contract, preprocessing_contract,
                                   sidecar_path, test_time_views)
from winnow.inference.postprocess import describe_decision
from winnow.inference.predictor import Predictor
from winnow.runs.atomic import atomic_write
from winnow.runs.files import fingerprint, read_json, write_json
from winnow.runs.layout import is_ensemble
from winnow.runs.provenance import provenance

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}  # format -> default file suffix
DEFAULT_OPSET = 17
EXPORTS_DIR = "exports"


def default_export_file(run_dir: str | Path, *, format: str, checkpoint: str | Path = "best") -> Path:
    """`RUN/exports/<checkpoint name><suffix>`, where `winnow predict --backend onnx` looks by default."""
    check_format(format)
    return Path(run_dir) / EXPORTS_DIR / f"{Path(str(checkpoint)).stem}{FORMATS[format]}"


def check_format(format: str) -> None:
    """Raise a ValueError listing the formats when `format` is not one."""
    if format not in FORMATS:
        raise ValueError(f"export format: expected one of {sorted(FORMATS)}, got {format!r}")


def export_run(run_dir: str | Path, *, format: str, out: str | Path | None = None, checkpoint: str | Path = "best",
               opset: int = DEFAULT_OPSET) -> Path:
    """Export a run's network and write its sidecar `<out>.json`, both atomically.

    Args:
        run_dir: Run folder from `winnow train`.
        format: "onnx" or "torchscript".
        out: Model file (default: `RUN/exports/<checkpoint><suffix>`).
        checkpoint: Checkpoint name or `.pt` path.
        opset: ONNX opset version.

    Returns:
        The model file.

    Raises:
        ValueError: Unknown format, an ensemble or head-on-embeddings folder, or a multi-task run.
    """
    check_format(format)
    if is_ensemble(run_dir):
        raise ValueError(f"{run_dir} is an ensemble or head-on-embeddings folder: exporting those is not supported "
                         "yet; export its member runs (listed in its ensemble.json) one by one")
    predictor = Predictor(run_dir, checkpoint=checkpoint, device="cpu")
    if len(predictor.tasks) > 1:
        raise ValueError(f"{run_dir} is a multi-task run ({[t.name for t in predictor.tasks]}): exporting those "
                         "is not supported yet")
    out = Path(out) if out is not None else default_export_file(run_dir, format=format, checkpoint=checkpoint)
    model = predictor.model.float().eval()
    example = torch.zeros(2, predictor.spec.in_chans, predictor.spec.img_size, predictor.spec.img_size)
    data = onnx_bytes(model, example, opset) if format == "onnx" else torchscript_bytes(model, example)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda handle: handle.write(data))
    write_json(sidecar_path(out), sidecar(predictor, format=format, model_file=out, opset=opset,
                                          n_outputs=int(model(example).shape[-1])))
    return out


def onnx_bytes(model: nn.Module, example: torch.Tensor, opset: int = DEFAULT_OPSET) -> bytes:
    """An ONNX graph of `model` traced on `example [B, C, S, S]`, batch axis dynamic."""
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        # the legacy exporter is deprecated in favour of the dynamo one, chosen here on purpose (module docstring)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset)
    return buffer.getvalue()


def torchscript_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """A TorchScript module of `model` traced on `example [B, C, S, S]` (saved by `torch.jit.save`)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # torch.jit is deprecated in torch 2.14 but still the one format C++ and Java runtimes load without Python
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.jit.save(torch.jit.trace(model, example), buffer)
    return buffer.getvalue()


def sidecar(predictor: Predictor, *, format: str, model_file: Path, opset: int, n_outputs: int) -> dict:
    """The sidecar content (see `winnow.export.sidecar`)."""
    head, spec = predictor.head, predictor.spec
    operating = {name: read_json(path, what=name) if path is not None else None
                 for name, path in (("calibration", predictor.calibration_file),
                                    ("thresholds", predictor.thresholds_file))}
    return {"format_version": FORMAT_VERSION, "format": format, "model_file": model_file.name,
            "opset": opset if format == "onnx" else None,
            "input": {"name": INPUT_NAME, "shape": ["batch", spec.in_chans, spec.img_size, spec.img_size],
                      "dtype": "float32", "layout": "NCHW"},
            "output": output_contract(head.kind, n_outputs),
            "classes": list(spec.classes), "head": {"kind": head.kind, "threshold": head.threshold},
            "preprocessing": preprocessing_contract(spec), **operating,
            "decision": describe_decision(head, predictor.decision),
            "test_time_views": test_time_views(predictor.default_tta),
            "source": {"run": str(Path(predictor.run_dir).resolve()), "checkpoint": predictor.checkpoint_path.stem,
                       "checkpoint_file": str(predictor.checkpoint_path.resolve()),
                       "checkpoint_fingerprint": fingerprint(predictor.checkpoint_path), "epoch": predictor.epoch,
                       "calibration_fingerprint": fingerprint(predictor.calibration_file),
                       "thresholds_fingerprint": fingerprint(predictor.thresholds_file)},
            **provenance()}
