"""`self_train(settings)`: rounds of train -> pseudo-label -> retrain on one split, in a loop folder.

The loop folder (`runs/loop-NAME/`) holds:

- `r0/`, `r1/`...: a normal run folder per round. Round 0 trains on the labelled data alone; round k
  trains on r0's `splits.csv` plus `pseudo<k>.csv`, the pseudo-labels of round k-1's run
  (`winnow.active.pseudo_label`). Every round thus has r0's split: val and test images are never
  pseudo-labelled (the pool leaves out every image of the run's splits.csv) nor trained on, and the
  rounds' val and test metrics compare.
- `pseudo<k>.json`: what `pseudo<k>.csv` holds per class, its thresholds and their val precision.
- `loop.json` (settings and finished rounds), `loop.csv` and `loop.md` (the table of the rounds).

Every file is written atomically. Running the same loop again continues it: finished rounds are kept,
a round's run continues from its last.pt, pseudo-labels already written are reused, and a larger
`rounds` adds rounds. Other settings are refused (give another name for another loop).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.active.loop_table import METRICS, RoundResult, write_tables
from winnow.active.pseudo import DEFAULT_LEVELS
from winnow.active.pseudo_label import PseudoResult, pseudo_label, pu_refusal, write_pseudo_labels
from winnow.active.scoring import PSEUDO_MARK
from winnow.config import Config, from_dict
from winnow.data.loader_workers import resolve_workers
from winnow.data.splits import load_splits
from winnow.runs.files import read_json, read_metrics, write_json
from winnow.runs.layout import (LOOP_FILE, LOOP_PREFIX, LOOP_TABLE_CSV, LOOP_TABLE_MD, PSEUDO_PREFIX, ROUND_PREFIX,
                                RunPaths, dataset_name)
from winnow.training.trainer import train

MACHINE_KEYS = ("workers", "device", "progress", "progress_every", "cache", "cache_dir")  # may change on continuing
FOLDER_KEYS = ("name", "out")  # they place the loop folder; each round's run is named r<k> inside it
UNSUPPORTED_HEADS = ("multilabel", "multitask")  # pseudo-labels need one class per image


@dataclass
class LoopSettings:
    """A self-training loop as asked for.

    Attributes:
        user_values: Config values from the user (--config file and flags, `data` included) that every
            round's run uses; `name` names the loop (default: the data set), `out` holds its folder.
        unlabelled: Folder or manifest of unlabelled images (images of the split are left out).
        rounds: Rounds of pseudo-labelling and retraining after round 0 (runs r0 ... r<rounds>).
        levels, max_tilt, min_keep: As `winnow.active.pseudo.PseudoLabeller`.
        folder: The loop folder; None: `out/loop-NAME`.
    """

    user_values: dict[str, Any]
    unlabelled: str | Path
    rounds: int
    levels: Sequence[tuple[float, float]] = DEFAULT_LEVELS
    max_tilt: float = 2.0
    min_keep: int = 10
    folder: Path | None = None


@dataclass
class LoopResult:
    """The rounds done so far and why the loop ended.

    Attributes:
        folder: The loop folder.
        rounds: One `RoundResult` per finished round, round 0 first.
        status: "finished"; "no pseudo-labels" (a round had none to add, so later rounds would repeat
            the last); or the status of a round's run that stopped ("interrupted", "diverged").
        message: What happened and what to do, when not finished.
    """

    folder: Path
    rounds: list[RoundResult] = field(default_factory=list)
    status: str = "finished"
    message: str | None = None


class _LoopStopped(Exception):
    """A round could not finish; the loop ends there with `status` (see `LoopResult`)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def self_train(settings: LoopSettings, *,
               on_round: Callable[[RoundResult, bool], None] | None = None) -> LoopResult:
    """Run (or continue) the loop until round `settings.rounds` is done.

    Args:
        settings: The loop.
        on_round: Called with each round's result as it finishes, and `True` for rounds kept from an
            earlier, stopped call.

    Raises:
        ValueError: Bad settings (rounds < 1, a multi-label head, mixup...), a missing pool, a loop folder
            holding other settings, or an error of a round's training or pseudo-labelling.
    """
    config, report = round_zero_config(settings), on_round or _ignore
    result = LoopResult(loop_folder(settings, config))
    result.rounds = _open_loop(result.folder, settings)
    for row in result.rounds:
        report(row, True)
    while len(result.rounds) <= settings.rounds:
        try:
            row = _play_round(len(result.rounds), result.folder, settings, config)
        except _LoopStopped as stop:
            result.status, result.message = stop.status, stop.message
            break
        result.rounds.append(row)
        _save_rounds(result.folder, result.rounds)
        report(row, False)
    return result


def _ignore(row: RoundResult, kept: bool) -> None:
    return None


def round_zero_config(settings: LoopSettings) -> Config:
    """The config of round 0 (the user's data and settings), checked for what a loop cannot do.

    Raises:
        ValueError: rounds < 1, no data, a missing pool, a head without one class per image, PU, or mixup/cutmix.
    """
    if settings.rounds < 1:
        raise ValueError(f"rounds: expected at least 1 round of pseudo-labelling after round 0, got {settings.rounds}")
    if not Path(settings.unlabelled).exists():
        raise ValueError(f"unlabelled images {settings.unlabelled} do not exist; pass a folder or CSV manifest "
                         "of the images to pseudo-label")
    if settings.user_values.get("pu"):  # before from_dict, whose PU checks would name select_metric instead
        raise ValueError(f"loop: {pu_refusal('a positive-unlabelled loop (pu: true, --pu)')}")
    config = from_dict({k: v for k, v in settings.user_values.items() if k not in FOLDER_KEYS}, source="loop")
    if not config.data:
        raise ValueError("loop: no labelled data; pass DATA (a folder of class folders, a split tree or a manifest)")
    if config.head in UNSUPPORTED_HEADS:
        raise ValueError(f"loop: pseudo-labels need one known class per image (head multiclass or binary); "
                         f"got head {config.head!r}")
    if config.mixup or config.cutmix:
        raise ValueError("loop: pseudo-labels carry a weight, which mixup/cutmix do not support yet; "
                         "set mixup: 0 and cutmix: 0")
    return config


def loop_folder(settings: LoopSettings, config: Config) -> Path:
    """`settings.folder`, or `out/loop-NAME` (NAME: `name`, or the first data set's name)."""
    if settings.folder is not None:
        return Path(settings.folder)
    name = settings.user_values.get("name") or dataset_name(config.data[0])
    return Path(settings.user_values.get("out") or config.out) / f"{LOOP_PREFIX}{name}"


# ----------------------------------------------------------------------------------- the loop folder


def _checked_settings(settings: LoopSettings) -> dict[str, Any]:
    """What loop.json keeps and a continuation must match (paths made absolute)."""
    values = {k: v for k, v in settings.user_values.items() if k not in (*MACHINE_KEYS, *FOLDER_KEYS)}
    for key in ("data", "val", "test"):
        if key in values:
            values[key] = [os.path.abspath(v) for v in ([values[key]] if isinstance(values[key], str) else values[key])]
    checked = {"unlabelled": os.path.abspath(settings.unlabelled), "levels": [list(level) for level in settings.levels],
               "max_tilt": settings.max_tilt, "min_keep": settings.min_keep, "config": values}
    return json.loads(json.dumps(checked, default=str))


def _open_loop(folder: Path, settings: LoopSettings) -> list[RoundResult]:
    """The finished rounds of the loop in `folder`; a new loop's loop.json is written first.

    Raises:
        ValueError: `folder` holds a loop with other settings.
    """
    path = folder / LOOP_FILE
    current = _checked_settings(settings)
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_json(path, {"settings": current, "rounds": []})
        return []
    saved = read_json(path, what="loop")
    changed = sorted(key for key in current if saved["settings"].get(key) != current[key])
    if changed:
        raise ValueError(f"{folder} holds a loop with other settings ({', '.join(changed)} differ: saved "
                         f"{ {k: saved['settings'].get(k) for k in changed} }); give the same settings to continue it, "
                         "or another --name to start a new loop")
    return [RoundResult.from_dict(row) for row in saved["rounds"]]


def _save_rounds(folder: Path, rounds: list[RoundResult]) -> None:
    """loop.json with the finished rounds, then loop.csv and loop.md (each write atomic)."""
    path = folder / LOOP_FILE
    saved = read_json(path, what="loop")
    write_json(path, {**saved, "rounds": [asdict(row) for row in rounds]})
    write_tables(rounds, folder / LOOP_TABLE_CSV, folder / LOOP_TABLE_MD)


def run_dir(folder: Path, k: int) -> Path:
    """The run folder of round `k`."""
    return folder / f"{ROUND_PREFIX}{k}"


def pseudo_file(folder: Path, k: int, suffix: str = ".csv") -> Path:
    """The pseudo-labels round `k` trains on (`.csv`), or their record (`.json`)."""
    return folder / f"{PSEUDO_PREFIX}{k}{suffix}"


# ---------------------------------------------------------------------------------------- one round


def _play_round(k: int, folder: Path, settings: LoopSettings, config: Config) -> RoundResult:
    """Pseudo-label with round k-1's run (k > 0), train round k's run, and read its results."""
    record = _pseudo_labels(k, folder, settings, config) if k else None
    if record is not None and not sum(record["counts"].values()):
        raise _LoopStopped("no pseudo-labels", f"round {k}: no pseudo-label of the {record['pool']} unlabelled "
                                               f"images passed the thresholds of {record['from_run']}, so later rounds "
                                               "would repeat it; lower --levels or label more images")
    status = _train_round(round_config(config, folder, k), run_dir(folder, k))
    if status != "finished":
        raise _LoopStopped(status, f"round {k}: the run {run_dir(folder, k)} stopped ({status}); run the same "
                                   "command again to continue it")
    return _round_result(k, folder, record)


def round_config(config: Config, folder: Path, k: int) -> Config:
    """Round k's config: round 0's, in the loop folder as r<k>; from round 1 on r0's split plus the pseudo-labels."""
    values = {**config.to_dict(), "out": str(folder), "name": run_dir(folder, k).name}
    if k:
        values.update(data=[str(RunPaths(run_dir(folder, 0)).splits), str(pseudo_file(folder, k))], val=[], test=[])
    return from_dict(values, source=f"round {k}")


def _pseudo_labels(k: int, folder: Path, settings: LoopSettings, config: Config) -> dict[str, Any]:
    """Pseudo-labels of round k-1's run, written as pseudo<k>.csv; their record (reused when written already)."""
    record_path = pseudo_file(folder, k, ".json")
    if record_path.is_file():  # written after the CSV: both are complete
        return read_json(record_path, what="pseudo-label record")
    result = pseudo_label(run_dir(folder, k - 1), settings.unlabelled, levels=settings.levels,
                          max_tilt=settings.max_tilt, min_keep=settings.min_keep, device=config.device,
                          batch_size=config.batch_size,
                          workers=resolve_workers(config.workers, cuda=str(config.device).startswith("cuda")))
    write_pseudo_labels(result, pseudo_file(folder, k))
    record = pseudo_record(result, from_run=run_dir(folder, k - 1).name)
    write_json(record_path, record)
    return record


def pseudo_record(result: PseudoResult, *, from_run: str) -> dict[str, Any]:
    """JSON-ready: pool size, kept pseudo-labels per class, thresholds, their val precision, warnings."""
    labels, labeller = result.labels, result.labeller
    counts = np.bincount(labels.indices[labels.kept], minlength=len(labeller.classes_))
    precision = labeller.loosest_val_precision()
    return {"from_run": from_run, "pool": len(result.paths),
            "counts": {name: int(n) for name, n in zip(labeller.classes_, counts)},
            "val_precision": {name: _finite(p) for name, p in zip(labeller.classes_, precision)},
            "levels": [list(level) for level in labeller.levels],
            "thresholds": [[_finite(t) for t in row] for row in labeller.thresholds_],
            "warnings": list(labeller.warnings_)}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _train_round(config: Config, folder: Path) -> str:
    """Train round's run in `folder`, or continue it where a stopped loop left it; its status.

    Raises:
        ValueError: `folder` exists without a config.yaml (the loop stopped as the run was being created).
    """
    paths = RunPaths(folder)
    if not folder.exists():
        return train(config).status
    if paths.summary.is_file() and read_json(paths.summary, what="run summary").get("status") == "finished":
        return "finished"
    if not paths.config.is_file():
        raise ValueError(f"{folder} exists but has no {paths.config.name}: the loop stopped as the round's run was "
                         f"being created; delete {folder} and run the same command again")
    return train(None, resume=folder, overrides={key: getattr(config, key) for key in MACHINE_KEYS}).status


def _round_result(k: int, folder: Path, record: dict[str, Any] | None) -> RoundResult:
    """Round k's row: labelled counts of r0's train split, the pseudo-labels' record, the run's metrics."""
    labelled = _labelled_counts(folder)
    pseudo = {c: int((record or {}).get("counts", {}).get(c, 0)) for c in labelled}
    precision = (record or {}).get("val_precision", {})
    val, test, best_epoch = _run_metrics(run_dir(folder, k))
    return RoundResult(round=k, run=run_dir(folder, k).name, labelled=labelled, pseudo=pseudo,
                       pseudo_val_precision={c: precision.get(c) if pseudo[c] else None for c in labelled},
                       val=val, test=test, best_epoch=best_epoch)


def _labelled_counts(folder: Path) -> dict[str, int]:
    """Class -> labelled images in the train split of r0 (every round's split), every class of the split listed."""
    splits = load_splits(RunPaths(run_dir(folder, 0)).splits)
    counts = Counter(label for label, split, extra in zip(splits.labels, splits.splits, splits.extras)
                     if split == "train" and not extra.get(PSEUDO_MARK))
    return {c: counts[c] for c in sorted(set(splits.labels))}


def _run_metrics(folder: Path) -> tuple[dict[str, float | None], dict[str, float | None] | None, int | None]:
    """Val metrics at the best epoch, test metrics of the best checkpoint (None: no test split), the best epoch."""
    paths = RunPaths(folder)
    summary = read_json(paths.summary, what="run summary")
    best_epoch = summary.get("best_epoch")
    best = next((row for row in read_metrics(paths.metrics) if row["epoch"] == best_epoch), {})
    test = summary.get("test")
    return ({m: best.get(f"val_{m}") for m in METRICS},
            {m: test.get(f"test_{m}") for m in METRICS} if test else None, best_epoch)
