"""The sidecar JSON beside an exported model (`<file>.json`): everything a server needs besides the graph.

The exported graph maps normalised images `[B, C, S, S]` float32 to raw logits `[B, K']` (`K' = 1` for
a binary head); probabilities and decisions are left to the caller because calibration and the tuned
decision rule live in operating files that change without re-exporting. The sidecar copies them as
they were at export (`calibration`, `thresholds`) and says in words and parameters how to preprocess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winnow.data.prepare import DataSpec
from winnow.runs.files import read_json

FORMAT_VERSION = 1
SIDECAR_SUFFIX = ".json"
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def sidecar_path(model_file: str | Path) -> Path:
    """`best.onnx` -> `best.onnx.json`."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + SIDECAR_SUFFIX)


def preprocessing_contract(spec: DataSpec) -> dict[str, Any]:
    """The run's eval preprocessing (`DataSpec`) as parameters and ordered steps in words."""
    size = spec.img_size
    steps = [f"decode the image to uint8 [H, W, {spec.in_chans}] ({'gray' if spec.in_chans == 1 else 'RGB'})"]
    if spec.autolevel:
        steps.append("autolevel: stretch the 1st..99th intensity percentiles to 0..255")
    if spec.automask:
        steps.append(f"automask: crop to the Otsu foreground, set the background to {spec.fill}")
    steps += [f"resize (antialiased bilinear) so that the longer side is {size} px, keeping the aspect ratio",
              f"pad to a centred {size}x{size} square with the value {spec.fill}",
              "scale to float32 in [0, 1] (divide by 255)",
              "normalise per channel: (x - mean) / std",
              f"stack as [B, {spec.in_chans}, {size}, {size}] (NCHW)"]
    return {"img_size": size, "channels": spec.in_chans, "fill": spec.fill, "autolevel": spec.autolevel,
            "automask": spec.automask, "mean": list(spec.mean), "std": list(spec.std), "steps": steps}


def output_contract(head_kind: str, n_outputs: int) -> dict[str, Any]:
    """What the graph's output means and how to turn it into probabilities."""
    to_probabilities = {"multiclass": "softmax over the K logits (after calibration, when present)",
                        "binary": "one logit z: P(classes[1]) = sigmoid(z) (softmax of [0, z], after calibration)",
                        "multilabel": "sigmoid of each label's logit (after calibration, when present)"}
    return {"name": OUTPUT_NAME, "shape": ["batch", n_outputs], "dtype": "float32", "kind": "logits",
            "probabilities": to_probabilities[head_kind]}


def test_time_views(mode: str) -> dict[str, Any]:
    """How the run scores an image: its deterministic views (`winnow.data.views`), merged after calibration."""
    steps = {"none": "one view: the image as it is",
             "flips": "4 views: the image, flipped left-right, flipped top-bottom, and both",
             "d4": "8 views: rotations by 0, 90, 180 and 270 degrees, each also transposed"}
    merge = "" if mode == "none" else "; average the calibrated probabilities of the views (winnow predict does)"
    return {"mode": mode, "how": steps[mode] + merge}


def read_sidecar(model_file: str | Path) -> dict[str, Any]:
    """The sidecar of an exported model file.

    Raises:
        ValueError: The sidecar is missing, or written by a newer winnow.
    """
    path = sidecar_path(model_file)
    if not path.is_file():
        raise ValueError(f"{path} not found: an exported model needs its sidecar JSON beside it; "
                         "re-create both with `winnow export RUN`")
    sidecar = read_json(path, what="export sidecar")
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: sidecar format_version {sidecar.get('format_version')!r}, this winnow reads "
                         f"{FORMAT_VERSION}; re-export with this winnow")
    return sidecar
