"""`winnow select RUN --target T`: the checkpoint that meets an operating-point target best.

Every checkpoint's predictions on the selection data (default: the run's val split) come from its
per-checkpoint evaluation in `RUN/eval/<data>/<checkpoint>/predictions.csv`, run first when missing
or stale (other weights or calibration). A `ThresholdTuner` is refitted per checkpoint; among those
meeting the target the best objective wins (ties: the better conservative bound, then the later
epoch). The winner is copied to `checkpoints/selected.pt` and the reasons written to
`checkpoints/selected.json`. A positive-unlabelled run's own split has no true negatives: there a
checkpoint is picked by a PU measure or a recall target, and other targets are refused
(`winnow.evaluation.pu_split`).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.labelled import EvalData, resolve_eval_data
from winnow.evaluation.checkpoints import evaluate_checkpoints, run_checkpoints
from winnow.evaluation.pu_split import (PU_METRICS, check_pu_split, pu_metric_record, pu_prior, pu_score, pu_summary,
                                        pu_target, pu_target_record)
from winnow.evaluation.report_files import read_predictions
from winnow.inference.postprocess import require_softmax_head
from winnow.operating.targets import Target, parse_target
from winnow.operating.tuner import ThresholdTuner
from winnow.runs.atomic import atomic_write
from winnow.runs.files import fingerprint, read_json, write_json
from winnow.runs.layout import EVAL_METRICS_FILE, EVAL_PREDICTIONS_FILE, SELECTED_CHECKPOINT, RunPaths, is_ensemble
from winnow.tasks.heads import Head
from winnow.tasks.spec import TaskSpec


@dataclass
class Candidate:
    """One checkpoint's refitted operating point (`tuner` None when the target is out of reach)."""

    checkpoint: str
    epoch: int | None
    tuner: ThresholdTuner | None
    reason: str = ""

    def objective(self) -> float:
        target = self.tuner.target_
        value = self.tuner.achieved_[f"{target.objective_metric}({target.objective_cls})"]
        return value if target.maximize else -value

    def rank(self) -> tuple[float, float, int]:
        bound = self.tuner.conservative_bound_
        bound = -math.inf if math.isnan(bound) else (bound if self.tuner.target_.op == ">=" else -bound)
        return self.objective(), bound, -1 if self.epoch is None else self.epoch

    def to_dict(self) -> dict[str, Any]:
        if self.tuner is None:
            return {"checkpoint": self.checkpoint, "epoch": self.epoch, "feasible": False, "reason": self.reason}
        return {"checkpoint": self.checkpoint, "epoch": self.epoch, "feasible": True,
                "threshold": self.tuner.threshold_, "achieved": self.tuner.achieved_,
                "interval": list(self.tuner.to_dict()["interval"]),
                "conservative_bound": self.tuner.to_dict()["conservative_bound"]}


def run_head(run_dir: str | Path) -> Head:
    """The head of a single-task run, from preprocessing.json.

    Raises:
        ValueError: Not a run folder, or a multitask run.
    """
    path = RunPaths(run_dir).preprocessing
    if is_ensemble(run_dir):
        raise ValueError(f"{run_dir} is an ensemble: it has no checkpoints to select from; select in each member "
                         "run, then rebuild the ensemble with `winnow ensemble --checkpoint selected`")
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a winnow run folder (no preprocessing.json)")
    tasks = read_json(path, what="ensemble")["tasks"]
    if len(tasks) != 1:
        raise ValueError(f"{run_dir} is a multitask run: checkpoint selection is not supported yet for it")
    return TaskSpec.from_saved(tasks[0]).head


def select_checkpoint(run_dir: str | Path, target: str | None = None, *, data: str | Path | None = None,
                      metric: str | None = None, device: str = "auto", batch_size: int = 64, workers: int = 0,
                      n_bootstrap: int = 1000, confidence: float = 0.95, min_support: int = 20,
                      strict: bool = False) -> dict[str, Any]:
    """Choose, copy and record the checkpoint that meets `target` best (see the module docstring).

    On a positive-unlabelled split (`winnow.evaluation.pu_split`) `target` may be left out (the best
    `metric`, pu_auc by default, wins) or be `recall(P)>=x` (the fewest unlabelled images flagged wins).
    Evaluations it runs skip unreadable images (`strict`: refuse them) and list them in their bad_files.csv.

    Returns:
        The content of selected.json.

    Raises:
        ValueError: Malformed target, unknown class, a target a PU split cannot measure, no target where
            one is needed, or no checkpoint reaches the target.
    """
    head = run_head(run_dir)
    require_softmax_head(head, action="winnow select")
    prior = pu_prior(run_dir, data)
    eval_data = resolve_eval_data(run_dir, data, split="val")
    fitted = _fitted_target(target, metric, prior, eval_data, head.classes, run_dir)  # checked before inference
    tables = checkpoint_tables(run_dir, eval_data, head.classes, device=device, batch_size=batch_size,
                               workers=workers, strict=strict)
    if fitted is None:
        chosen, record = _by_pu_metric(tables, metric, prior, eval_data, head.classes, run_dir)
    else:
        settings = {"n_bootstrap": n_bootstrap, "confidence": confidence, "min_support": min_support}
        chosen, record = _by_target(tables, target, fitted, prior, eval_data, head.classes, run_dir, **settings)
    paths = RunPaths(run_dir)
    copy_file(paths.checkpoint(chosen), paths.checkpoint(SELECTED_CHECKPOINT))
    write_json(paths.selection, record)
    return record


def _fitted_target(target: str | None, metric: str | None, prior: float | None, data: EvalData,
                   classes: list[str], run_dir: str | Path) -> str | None:
    """The target to fit (a PU split's recall target rewritten by `pu_target`), None to select by a PU measure.

    Raises:
        ValueError: A malformed target, both a target and a metric, no target for data with true
            negatives, a metric off a PU split, or what `pu_target` and `check_pu_split` refuse.
    """
    if target is not None and metric is not None:
        raise ValueError("winnow select: give --target or --metric, not both (--metric picks a checkpoint on a "
                         "positive-unlabelled split without a target)")
    if prior is None and (target is None or metric is not None):
        raise ValueError(f"winnow select {run_dir}: {data.source} has true negatives, so give --target (e.g. "
                         f"precision({classes[-1]})>=0.9); only a positive-unlabelled run's own split (winnow train "
                         "--pu) is selected on without one, by --metric pu_auc or pu_recall")
    if prior is not None:
        check_pu_split(data, classes, metric)
        return None if target is None else pu_target(target, classes, source=data.source, action="select")
    parse_target(target, classes)
    return target


def _by_target(tables: dict[str, tuple[int | None, np.ndarray, np.ndarray]], target: str, fitted: str,
               prior: float | None, data: EvalData, classes: list[str], run_dir: str | Path,
               **settings: Any) -> tuple[str, dict[str, Any]]:
    """The checkpoint meeting `fitted` best, and its selected.json (on a PU split: see `pu_target_record`)."""
    parsed = parse_target(fitted, classes)
    candidates = [fit_candidate(name, epoch, fitted, probabilities, targets, classes, **settings)
                  for name, (epoch, probabilities, targets) in tables.items()]
    chosen = best_candidate(candidates, parsed, data, run_dir)
    record = selection_record(target, parsed, data, chosen, candidates, RunPaths(run_dir).checkpoint(chosen.checkpoint))
    if prior is not None:
        record = pu_target_record(record, chosen, candidates, classes[1], prior)
    return chosen.checkpoint, record


def _by_pu_metric(tables: dict[str, tuple[int | None, np.ndarray, np.ndarray]], metric: str | None, prior: float,
                  data: EvalData, classes: list[str], run_dir: str | Path) -> tuple[str, dict[str, Any]]:
    """The checkpoint with the best PU measure on a PU split, and its selected.json."""
    metric = (metric or PU_METRICS[0]).removeprefix("val_")
    scores = [pu_score(name, epoch, probabilities, targets, prior)
              for name, (epoch, probabilities, targets) in tables.items()]
    chosen = max(scores, key=lambda score: score.rank(metric))
    return chosen.checkpoint, pu_metric_record(metric, prior, data, chosen, scores, classes[1], run_dir)


def checkpoint_tables(run_dir: str | Path, data: EvalData, classes: list[str], *, device: str, batch_size: int,
                      workers: int, strict: bool = False) -> dict[str, tuple[int | None, np.ndarray, np.ndarray]]:
    """`{checkpoint: (epoch, probabilities [N, K], targets [N])}` from the per-checkpoint evaluation."""
    names = run_checkpoints(run_dir)
    if not all(is_fresh(run_dir, data, name) for name in names):
        evaluate_checkpoints(run_dir, data, device=device, batch_size=batch_size, workers=workers, strict=strict,
                             plots=False)
    tables = {}
    for name in names:
        directory = RunPaths(run_dir).evaluation(data.name, name)
        epoch = read_json(directory / EVAL_METRICS_FILE, what="metrics")["checkpoint"]["epoch"]
        tables[name] = (epoch, *read_predictions(directory / EVAL_PREDICTIONS_FILE, classes))
    return tables


def is_fresh(run_dir: str | Path, data: EvalData, checkpoint: str) -> bool:
    """Whether the saved evaluation of `checkpoint` on `data` matches the current weights and calibration."""
    directory = RunPaths(run_dir).evaluation(data.name, checkpoint)
    if not (directory / EVAL_METRICS_FILE).is_file() or not (directory / EVAL_PREDICTIONS_FILE).is_file():
        return False
    metrics = read_json(directory / EVAL_METRICS_FILE, what="metrics")
    weights = fingerprint(RunPaths(run_dir).checkpoint(checkpoint))
    return (metrics.get("checkpoint", {}).get("fingerprint") == weights
            and metrics.get("files", {}).get("calibration") == fingerprint(RunPaths(run_dir).calibration)
            and metrics.get("data", {}).get("source") == data.source)


def fit_candidate(name: str, epoch: int | None, target: str, probabilities: np.ndarray, targets: np.ndarray,
                  classes: list[str], **settings: Any) -> Candidate:
    """Refit the threshold on one checkpoint's predictions; an unreachable target gives a reason instead."""
    try:
        return Candidate(name, epoch, ThresholdTuner(target, **settings).fit(probabilities, targets, classes))
    except ValueError as error:
        return Candidate(name, epoch, None, str(error).split(";")[0])


def best_candidate(candidates: list[Candidate], target: Target, data: EvalData, run_dir: str | Path) -> Candidate:
    """The feasible candidate of highest rank.

    Raises:
        ValueError: No checkpoint reaches the target; the message gives each one's best value.
    """
    feasible = [candidate for candidate in candidates if candidate.tuner is not None]
    if not feasible:
        reasons = "\n  ".join(f"{c.checkpoint}: {c.reason}" for c in candidates)
        raise ValueError(f"no checkpoint of {run_dir} reaches {target} on {data.source}:\n  {reasons}\n"
                         "relax the target, train longer, or add labelled data for the class")
    return max(feasible, key=Candidate.rank)


def copy_file(source: Path, destination: Path) -> None:
    """Copy `source` to `destination` atomically."""
    with open(source, "rb") as handle:
        atomic_write(destination, lambda out: shutil.copyfileobj(handle, out))


def selection_record(text: str, target: Target, data: EvalData, chosen: Candidate, candidates: list[Candidate],
                     source: Path) -> dict[str, Any]:
    """The content of selected.json: the target, the winner, its threshold and values, and every candidate."""
    objective = f"{target.objective_metric}({target.objective_cls})"
    n_feasible = sum(candidate.tuner is not None for candidate in candidates)
    value = chosen.tuner.achieved_[objective]
    return {"target": text, "parsed_target": str(target),
            "data": {"name": data.name, "source": data.source, "n_images": len(data.paths)},
            "selected": chosen.checkpoint, "epoch": chosen.epoch, "source_checkpoint": str(source),
            "objective": {"metric": objective, "value": value},
            **{key: item for key, item in chosen.to_dict().items() if key not in ("checkpoint", "epoch", "feasible")},
            "warnings": chosen.tuner.warnings_,
            "why": (f"{n_feasible} of {len(candidates)} checkpoints meet {target.metric}({target.cls}) {target.op} "
                    f"{target.value:g} on {data.source}; {chosen.checkpoint} has the best {objective} ({value:.4f})"),
            "candidates": [candidate.to_dict() for candidate in candidates]}


def selection_summary(record: dict[str, Any], run_dir: str | Path) -> list[str]:
    """Human-readable lines of a selected.json."""
    if record.get("pu"):
        return pu_summary(record, run_dir)
    achieved = "  ".join(f"{key} {value:.4f}" for key, value in record["achieved"].items())
    low, high = record["interval"]
    lines = [f"selected {record['selected']} (epoch {record['epoch']}): {record['why']}",
             f"threshold {record['threshold']:.6g}: {achieved}",
             f"{record['parsed_target'].split()[0]} bootstrap interval [{_fmt(low)}, {_fmt(high)}]",
             f"copied to {RunPaths(run_dir).checkpoint(SELECTED_CHECKPOINT)}; use it with --checkpoint selected "
             f"(tune its threshold: winnow tune {run_dir} --checkpoint selected --target \"{record['target']}\")"]
    return lines + [f"warning: {warning}" for warning in record["warnings"]]


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
