"""A run's operating files: `calibration.json` (`winnow calibrate`) and `thresholds.json` (`winnow tune`).

Both hold a fitted post-training component (its `to_dict()` form) plus the context it was fitted in
(checkpoint, data, ...). Loading checks the saved class names against the run's, so that a file
copied from another run is refused with a message saying what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from winnow.calibration.scaling import TemperatureScaling, VectorScaling
from winnow.operating.decisions import PerClassThresholds, decision_from_dict
from winnow.operating.label_thresholds import LabelThresholds
from winnow.operating.tuner import ThresholdTuner
from winnow.runs.layout import write_json

CALIBRATION_FILE = "calibration.json"
THRESHOLDS_FILE = "thresholds.json"
CALIBRATORS: dict[str, type[TemperatureScaling] | type[VectorScaling]] = {
    "temperature": TemperatureScaling, "vector": VectorScaling}

Calibrator = TemperatureScaling | VectorScaling
Decision = ThresholdTuner | PerClassThresholds | LabelThresholds


def calibration_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CALIBRATION_FILE


def thresholds_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / THRESHOLDS_FILE


def fingerprint(path: str | Path | None) -> str | None:
    """`"<size>-<mtime_ns>"` of a file (None when absent): tells whether saved results are stale."""
    if path is None or not Path(path).is_file():
        return None
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def read_json_object(path: str | Path, *, what: str) -> dict[str, Any]:
    """The JSON object in `path`.

    Raises:
        ValueError: The file is missing or not a JSON object; the message names `what` it should hold.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file {path} does not exist; check the path")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} file {path} is not valid JSON ({error}); re-create it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} file {path}: expected a JSON object, got {type(data).__name__}")
    return data


def make_calibrator(method: str, *, multilabel: bool = False) -> Calibrator:
    """An unfitted calibrator by name (`temperature` or `vector`), for a multi-label head or not."""
    if method not in CALIBRATORS:
        raise ValueError(f"method: expected one of {sorted(CALIBRATORS)}, got {method!r}")
    return CALIBRATORS[method](multilabel=multilabel)


def save_calibration(path: str | Path, calibrator: Calibrator, *, classes: Sequence[str],
                     context: Mapping[str, Any]) -> None:
    """Write a fitted calibrator with the run's classes and the fit `context`, atomically."""
    write_json(Path(path), {"calibrator": calibrator.to_dict(), "classes": list(classes), **context})


def load_calibration(path: str | Path, *, classes: Sequence[str]) -> Calibrator:
    """Read `calibration.json` for a model with `classes`.

    Raises:
        ValueError: Unreadable file, unknown method, or fitted for other classes (another run).
    """
    data = read_json_object(path, what="calibration")
    _check_classes(data.get("classes"), classes, path, fix="`winnow calibrate RUN --data VAL`")
    saved = data.get("calibrator")
    method = saved.get("method") if isinstance(saved, Mapping) else None
    if method not in CALIBRATORS:
        raise ValueError(f"calibration file {path}: expected a calibrator with method in {sorted(CALIBRATORS)}, "
                         f"got {method!r}; re-run `winnow calibrate`")
    return CALIBRATORS[method].from_dict(saved)


def save_thresholds(path: str | Path, decision: Decision, *, context: Mapping[str, Any]) -> None:
    """Write a fitted decision rule (`to_dict()`) plus the tuning `context`, atomically."""
    write_json(Path(path), {**decision.to_dict(), **context})


def load_thresholds(path: str | Path, *, classes: Sequence[str]) -> Decision:
    """Read `thresholds.json` for a model with `classes`.

    Raises:
        ValueError: Unreadable file, unknown strategy, or tuned for other classes (another run).
    """
    data = read_json_object(path, what="thresholds")
    _check_classes(data.get("classes"), classes, path, fix="`winnow tune RUN --data VAL --target ...`")
    return decision_from_dict(data, classes=classes)


def _check_classes(saved: Any, classes: Sequence[str], path: str | Path, *, fix: str) -> None:
    if saved is not None and list(saved) != list(classes):
        raise ValueError(f"{path} was made for classes {list(saved)} but this run has {list(classes)}: "
                         f"it comes from another run; re-create it for this run with {fix}")
