"""A run's `calibration.json` (`winnow calibrate`): the calibrators by name, saved and loaded.

The file holds a fitted calibrator (its `to_dict()` form), the run's class names and the context it was
fitted in (checkpoint, data, ...). Loading checks the saved class names against the run's, so that a file
copied from another run is refused with a message saying what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from winnow.calibration.scaling import TemperatureScaling, VectorScaling
from winnow.runs.files import check_saved_classes, read_json, write_json

CALIBRATORS: dict[str, type[TemperatureScaling] | type[VectorScaling]] = {
    "temperature": TemperatureScaling, "vector": VectorScaling}

Calibrator = TemperatureScaling | VectorScaling


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
    data = read_json(path, what="calibration")
    check_saved_classes(data.get("classes"), classes, path, fix="`winnow calibrate RUN --data VAL`")
    saved = data.get("calibrator")
    method = saved.get("method") if isinstance(saved, Mapping) else None
    if method not in CALIBRATORS:
        raise ValueError(f"calibration file {path}: expected a calibrator with method in {sorted(CALIBRATORS)}, "
                         f"got {method!r}; re-run `winnow calibrate`")
    return CALIBRATORS[method].from_dict(saved)
