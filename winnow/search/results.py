"""What a search leaves in its folder: `trials.csv` (a row per trial) and `best.yaml` (the best config, a recipe)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from winnow.config import from_dict
from winnow.runs.atomic import atomic_write_text
from winnow.runs.layout import BEST_RECIPE_FILE, TRIALS_FILE

TRIAL_COLUMNS = ("number", "state", "value", "best_epoch", "epochs", "seconds", "status", "run")
# keys of a trial's config that say where and how it ran, not what it trained: left out of best.yaml
RUN_KEYS = ("data", "val", "test", "out", "name", "cache_dir", "workers", "device", "progress", "progress_every")


def trial_rows(trials: Sequence[Any], *, param_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per Optuna trial (`FrozenTrial`), by number: its state, value, params and run folder."""
    return [_row(trial, param_names) for trial in sorted(trials, key=lambda t: t.number)]


def _row(trial: Any, param_names: Sequence[str]) -> dict[str, Any]:
    attrs = trial.user_attrs
    seconds = None
    if trial.datetime_start is not None and trial.datetime_complete is not None:
        seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    value = trial.value if trial.value is not None else attrs.get("best_value")
    return {"number": trial.number, "state": trial.state.name, "value": value,
            **{name: trial.params.get(name) for name in param_names},
            "best_epoch": attrs.get("best_epoch"), "epochs": attrs.get("epochs_done"), "seconds": seconds,
            "status": attrs.get("status", attrs.get("error", "")), "run": attrs.get("run", "")}


def columns(param_names: Sequence[str]) -> list[str]:
    return [*TRIAL_COLUMNS[:3], *param_names, *TRIAL_COLUMNS[3:]]


def write_trials(folder: Path, rows: Sequence[Mapping[str, Any]], *, param_names: Sequence[str]) -> Path:
    """Write `folder/trials.csv` atomically; returns its path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(param_names), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    path = Path(folder) / TRIALS_FILE
    atomic_write_text(path, buffer.getvalue())
    return path


def read_trials(folder: str | Path) -> list[dict[str, str]]:
    """The rows of `folder/trials.csv` ([] without one)."""
    path = Path(folder) / TRIALS_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def recipe_values(config_values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a trial's config that differ from Config's defaults, less RUN_KEYS: its recipe."""
    return {key: value for key, value in config_values.items()
            if key not in RUN_KEYS and defaults.get(key) != value}


def write_best(folder: Path, values: Mapping[str, Any], *, header: Sequence[str]) -> Path:
    """Write `folder/best.yaml`, a recipe for `winnow train --config` (checked by Config first).

    Args:
        folder: The search folder.
        values: Config keys of the best trial (`recipe_values`).
        header: Comment lines put above the keys (objective, trial, how to use it).

    Raises:
        ValueError: `values` is not a valid config (a bug: every trial's config was one).
    """
    from_dict(dict(values), source="best trial's config")
    comments = "".join(f"# {line}\n" for line in header)
    path = Path(folder) / BEST_RECIPE_FILE
    atomic_write_text(path, comments + yaml.safe_dump(dict(values), sort_keys=False))
    return path


def format_rows(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """Plain aligned text table of `rows` over the columns `names` (floats to 4 significant digits)."""
    cells = [[_cell(row.get(name)) for name in names] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]
    lines = ["  ".join(name.ljust(w) for name, w in zip(names, widths))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any, *, width: int = 60) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)  # a failed trial's status is its error message: trials.csv keeps it whole
    return text if len(text) <= width else text[:width - 3] + "..."
