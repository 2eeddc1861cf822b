"""Reading and writing a folder's JSON files (atomically), and file fingerprints."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from winnow.runs.atomic import atomic_write_text


def write_json(path: str | Path, value: Any) -> None:
    """Write `value` as indented JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(value, indent=2) + "\n")


def read_json(path: str | Path, *, what: str) -> dict[str, Any]:
    """The JSON object in `path`: the one reader of a folder's JSON files.

    Args:
        path: The file.
        what: What the file holds ("thresholds", "summary"...), for the messages.

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


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a JSON-lines file such as `metrics.jsonl` (none when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(path: str | Path, rows: list[dict]) -> None:
    """Write `rows` as JSON lines, atomically."""
    atomic_write_text(Path(path), "".join(json.dumps(row) + "\n" for row in rows))


def fingerprint(path: str | Path | None) -> str | None:
    """`"<size>-<mtime_ns>"` of a file (None when absent): tells whether saved results are stale."""
    if path is None or not Path(path).is_file():
        return None
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def check_saved_classes(saved: Any, classes: Sequence[str], path: str | Path, *, fix: str) -> None:
    """Refuse a file fitted for other classes than the run's (it was copied from another run).

    Args:
        saved: The class names saved in the file (None: the file does not record them).
        classes: The run's class names.
        path: The file, for the message.
        fix: The command that re-creates the file for this run.

    Raises:
        ValueError: The names differ.
    """
    if saved is not None and list(saved) != list(classes):
        raise ValueError(f"{path} was made for classes {list(saved)} but this run has {list(classes)}: "
                         f"it comes from another run; re-create it for this run with {fix}")
