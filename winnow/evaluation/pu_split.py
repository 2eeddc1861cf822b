"""Selecting a checkpoint and tuning a threshold on a positive-unlabelled split, which has no true negatives.

A PU run's val and train splits (and a test split held out from DATA rather than given with `--test`)
hold labelled positives and unlabelled images. There:

- precision, fpr and every measure of the unlabelled label need true negatives: a target on them
  means nothing, and `pu_target` refuses it, saying what to do instead;
- the recall of the labelled positives estimates the recall of all positives (SCAR: the labelled ones
  are a random sample of them), so `recall(P)>=x` stays a valid constraint. Its objective becomes the
  share of unlabelled images flagged positive, minimised: with ``pi`` the prior, ``flagged = pi *
  recall + (1 - pi) * fpr``, so at a fixed recall the fewest flagged is the lowest fpr, whatever
  ``pi`` is (`pu_target` rewrites the target so: the tuner's `fpr` on PU labels is that share);
- without a target a checkpoint is picked by `pu_auc` or `pu_recall` (`winnow.metrics.pu`), and its
  threshold is the prior's: the top ``pi`` of the unlabelled flagged (`PUScore`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winnow.config import read_saved
from winnow.data.labelled import EvalData
from winnow.data.sources import SPLIT_NAMES
from winnow.metrics.pu import pu_auc, pu_recall, threshold_for_prior
from winnow.operating.targets import parse_target
from winnow.runs.layout import SELECTED_CHECKPOINT, RunPaths

PU_METRICS = ("pu_auc", "pu_recall")  # `winnow select --metric` (a val_ prefix is accepted)
FLAGGED = "unlabelled_flagged"  # share of the unlabelled images predicted positive


def pu_prior(run_dir: str | Path, data: str | Path | None) -> float | None:
    """The prior of a PU run when `data` names one of its PU splits (default: val), else None.

    Its train and val splits are PU; its test split is labelled only when it was given with `--test`.
    Data named by a path (a folder or manifest) is taken as labelled: its other label must be negatives.
    """
    if data is not None and (str(data) not in SPLIT_NAMES or Path(data).exists()):
        return None
    path = RunPaths(run_dir).config
    config = read_saved(path) if path.is_file() else None  # an ensemble or head folder has none
    if config is None or not config.pu or (str(data) == "test" and config.test):
        return None
    return float(config.prior)


def pu_target(text: str, classes: Sequence[str], *, source: str, action: str) -> str:
    """The target to fit on a PU split: `recall(P)>=x` with the fewest unlabelled images flagged.

    Args:
        text: The user's target (`winnow.operating.targets` syntax).
        classes: `[unlabelled, positive]`.
        source: The split, for the message.
        action: "select" or "tune", for the message's advice.

    Raises:
        ValueError: A target that needs true negatives (precision, fpr, the unlabelled label, or an
            objective other than precision or fpr of the positives), with what to do instead.
    """
    target = parse_target(text, classes)
    unlabelled, positive = classes
    measurable = target.metric == "recall" and target.cls == positive
    if measurable and target.objective_metric in ("precision", "fpr") and target.objective_cls == positive:
        return f"recall({positive})>={target.value:.12g} minimize fpr({positive})"
    instead = {"select": "select by a PU measure (`winnow select RUN` without --target picks the best pu_auc; "
                         "--metric pu_recall), ",
               "tune": "take the prior's threshold (`winnow pu-sensitivity RUN` shows what each prior gives), "}
    raise ValueError(f"target {text!r} ({target}): {source} is a positive-unlabelled split (its {unlabelled!r} "
                     f"images are unlabelled, not negatives), and precision, fpr and any measure of {unlabelled!r} "
                     f"need true negatives, so this target cannot be measured there. Instead {instead[action]}"
                     f"constrain the recall of the labelled positives (--target \"recall({positive})>=0.9\": the fewest unlabelled images "
                     "flagged at that recall), or give labelled data with true negatives (--data LABELLED, e.g. "
                     "--data test when the run was given --test)")


@dataclass
class PUScore:
    """One checkpoint on a PU split: its PU measures, and what the prior's threshold flags.

    Attributes:
        threshold: The score of the top `prior` share of the unlabelled images.
        recall: Share of the labelled positives at or above `threshold`.
        flagged: Share of the unlabelled images at or above `threshold`.
    """

    checkpoint: str
    epoch: int | None
    pu_auc: float
    pu_recall: float
    threshold: float
    recall: float
    flagged: float

    def to_dict(self, positive: str) -> dict[str, Any]:
        """A row of selected.json's candidates, named as its `achieved` values are."""
        return {"checkpoint": self.checkpoint, "epoch": self.epoch, "pu_auc": self.pu_auc, "pu_recall": self.pu_recall,
                "threshold": self.threshold, f"recall({positive})": self.recall, FLAGGED: self.flagged}

    def rank(self, metric: str) -> tuple[float, int]:
        value = getattr(self, metric)
        return (-math.inf if math.isnan(value) else value), (-1 if self.epoch is None else self.epoch)


def pu_score(checkpoint: str, epoch: int | None, probabilities: np.ndarray, targets: np.ndarray,
             prior: float) -> PUScore:
    """`PUScore` of one checkpoint's probabilities `[N, 2]` and targets `[N]` (1: labelled positive)."""
    scores, labelled = np.asarray(probabilities)[:, 1], np.asarray(targets) == 1
    threshold = threshold_for_prior(scores[~labelled], prior)
    flagged = scores >= threshold
    return PUScore(checkpoint, epoch, pu_auc(scores, labelled, prior), pu_recall(scores, labelled, prior),
                   threshold, float(flagged[labelled].mean()), float(flagged[~labelled].mean()))


def check_pu_split(data: EvalData, classes: Sequence[str], metric: str | None) -> str | None:
    """The metric without its val_ prefix (None stays None), checked with the split's composition.

    Raises:
        ValueError: An unknown metric, or a split without labelled positives or without unlabelled images.
    """
    name = None if metric is None else str(metric).removeprefix("val_")
    if name is not None and name not in PU_METRICS:
        raise ValueError(f"metric: expected one of {', '.join(PU_METRICS)} (a val_ prefix is fine), got {metric!r}")
    unlabelled, positive = classes
    counts = [sum(label == cls for label in data.labels) for cls in (positive, unlabelled)]
    if not all(counts):
        raise ValueError(f"{data.source} has {counts[0]} labelled {positive!r} and {counts[1]} unlabelled "
                         f"{unlabelled!r} image(s); selecting on a positive-unlabelled split needs both")
    return name


def pu_metric_record(metric: str, prior: float, data: EvalData, chosen: PUScore, scores: list[PUScore],
                     positive: str, run_dir: str | Path) -> dict[str, Any]:
    """selected.json of a checkpoint picked by a PU measure."""
    value = getattr(chosen, metric)
    return {"pu": True, "target": None, "metric": metric, "prior": prior,
            "data": {"name": data.name, "source": data.source, "n_images": len(data.paths)},
            "selected": chosen.checkpoint, "epoch": chosen.epoch,
            "source_checkpoint": str(RunPaths(run_dir).checkpoint(chosen.checkpoint)),
            "objective": {"metric": metric, "value": value}, "threshold": chosen.threshold,
            "achieved": {"pu_auc": chosen.pu_auc, "pu_recall": chosen.pu_recall,
                         f"recall({positive})": chosen.recall, FLAGGED: chosen.flagged},
            "warnings": [],
            "why": (f"{data.source} is a positive-unlabelled split (no true negatives); of {len(scores)} checkpoints "
                    f"{chosen.checkpoint} has the best {metric} ({value:.4f})"),
            "candidates": [score.to_dict(positive) for score in scores]}


def pu_achieved(achieved: dict[str, float], positive: str, prior: float) -> dict[str, float | None]:
    """A tuner's values on PU labels, named for what they measure: recall of the labelled positives, the
    unlabelled share flagged (its `fpr`), and the precision the prior implies, ``pi * recall / flagged``
    (its `precision` counts the unlabelled as negatives, so it is left out)."""
    recall, flagged = achieved[f"recall({positive})"], achieved[f"fpr({positive})"]
    estimate = min(1.0, prior * recall / flagged) if flagged > 0 else None
    return {f"recall({positive})": recall, FLAGGED: flagged, f"estimated_precision({positive})": estimate}


def pu_target_record(record: dict[str, Any], chosen: Any, candidates: Sequence[Any], positive: str,
                     prior: float) -> dict[str, Any]:
    """`selection_record` of a recall target fitted on a PU split, with its values named as `pu_achieved` does.

    Args:
        record: What `selection_record` made of it.
        chosen, candidates: `winnow.evaluation.selection.Candidate`s (`tuner` None: the target out of reach).
    """
    achieved = pu_achieved(chosen.tuner.achieved_, positive, prior)
    rows = [{**row, "achieved": pu_achieved(row["achieved"], positive, prior)} if row["feasible"] else row
            for row in (candidate.to_dict() for candidate in candidates)]
    n_feasible = sum(row["feasible"] for row in rows)
    return {**record, "pu": True, "prior": prior, "achieved": achieved,
            "objective": {"metric": FLAGGED, "value": achieved[FLAGGED]},
            "why": (f"{record['data']['source']} is a positive-unlabelled split (no true negatives): {n_feasible} of "
                    f"{len(rows)} checkpoints keep recall({positive}) of the labelled positives >= "
                    f"{chosen.tuner.target_.value:g}; {chosen.checkpoint} flags the fewest unlabelled images "
                    f"({achieved[FLAGGED]:.4f})"),
            "candidates": rows}


def pu_summary(record: dict[str, Any], run_dir: str | Path) -> list[str]:
    """Human-readable lines of a selected.json made on a PU split."""
    achieved = "  ".join(f"{key} {'n/a' if value is None else f'{value:.4f}'}"
                         for key, value in record["achieved"].items())
    how = ("the top prior share of the unlabelled flagged" if record["target"] is None
           else "the highest meeting the target")
    lines = [f"selected {record['selected']} (epoch {record['epoch']}): {record['why']}",
             f"threshold {record['threshold']:.6g} ({how}; prior {record['prior']:g}): {achieved}"]
    if record["target"] is not None:
        low, high = record["interval"]
        lines.append(f"recall bootstrap interval [{_fmt(low)}, {_fmt(high)}]; estimated_precision assumes the "
                     "prior and that the labelled positives are a random sample of the positives")
    return lines + [f"copied to {RunPaths(run_dir).checkpoint(SELECTED_CHECKPOINT)}; use it with --checkpoint "
                    f"selected (what other priors give: winnow pu-sensitivity {run_dir} --checkpoint selected)",
                    *(f"warning: {warning}" for warning in record["warnings"])]


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
