"""A run's `thresholds.json` (`winnow tune`): the fitted decision rule, saved and loaded.

The file holds the rule (its `to_dict()` form) plus the context it was tuned in (checkpoint, data, ...).
Loading checks the saved class names against the run's, so that a file copied from another run is
refused with a message saying what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from winnow.operating.decisions import PerClassThresholds, decision_from_dict
from winnow.operating.label_thresholds import LabelThresholds
from winnow.operating.tuner import ThresholdTuner
from winnow.runs.files import check_saved_classes, read_json, write_json

Decision = ThresholdTuner | PerClassThresholds | LabelThresholds


def save_thresholds(path: str | Path, decision: Decision, *, context: Mapping[str, Any]) -> None:
    """Write a fitted decision rule (`to_dict()`) plus the tuning `context`, atomically."""
    write_json(Path(path), {**decision.to_dict(), **context})


def load_thresholds(path: str | Path, *, classes: Sequence[str]) -> Decision:
    """Read `thresholds.json` for a model with `classes`.

    Raises:
        ValueError: Unreadable file, unknown strategy, or tuned for other classes (another run).
    """
    data = read_json(path, what="thresholds")
    check_saved_classes(data.get("classes"), classes, path, fix="`winnow tune RUN --data VAL --target ...`")
    return decision_from_dict(data, classes=classes)
