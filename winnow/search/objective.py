"""What a search optimises: a validation metric, or a metric at an operating point.

Two forms::

    val_macro_f1                          # any metric of the epoch rows; `macro_f1` means val_macro_f1
    balanced_accuracy
    val_loss                              # minimised
    recall(good)@precision(good)>=0.9     # recall of "good" at the threshold that keeps precision(good) >= 0.9
    precision(bad)@recall(bad)>=0.95
    fpr(bad)@recall(bad)>=0.95            # minimised
    recall@precision>=0.9                 # binary heads: the class may be left out (the positive one)

An operating-point objective is measured on each epoch's validation probabilities with the threshold
search of `winnow tune` (`winnow.operating`): the best objective over every threshold meeting the
constraint. When no threshold meets it, the value is the worst possible (0, or 1 for fpr).

A positive-unlabelled search (`pu: true`) validates on labelled positives and unlabelled images, with no
true negatives: its objective is one of `PU_SELECT_METRICS` (default `val_pu_auc`, `winnow.metrics.pu`),
and any other is refused (`Objective.check_pu`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from winnow.config import PU_SELECT_METRICS, SELECT_METRICS
from winnow.operating.targets import METRIC_OPS, Target, parse_target
from winnow.operating.tuner import ThresholdCurve, select_threshold
from winnow.training.callbacks import EpochEnd

# keys of every epoch row, less the val_ prefix (micro_f1: multi-label heads only)
METRICS = ("macro_f1", "balanced_accuracy", "accuracy", "loss", "micro_f1")
OPERATING_HEADS = ("multiclass", "binary")
EXAMPLES = "val_macro_f1, balanced_accuracy, val_loss, recall(good)@precision(good)>=0.9"
DEFAULT_OBJECTIVE, DEFAULT_PU_OBJECTIVE = "val_macro_f1", PU_SELECT_METRICS[0]


def default_objective(*, pu: bool) -> str:
    """The objective of a search that names none: val_macro_f1, or val_pu_auc for positive-unlabelled data."""
    return DEFAULT_PU_OBJECTIVE if pu else DEFAULT_OBJECTIVE
_TERM = re.compile(r"^\s*(?P<metric>[A-Za-z_]+)\s*(?:\(\s*(?P<cls>[^()]*?)\s*\))?\s*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CLASSES_NAMED = re.compile(r"\(\s*([^()]*?)\s*\)")


@dataclass(frozen=True)
class Objective:
    """A parsed objective.

    Attributes:
        text: As given.
        metric: The epoch-row key (e.g. "val_macro_f1") of a metric objective; None for an operating point.
        target: The operating-point target in `winnow tune` syntax (e.g. "precision(good)>=0.9 maximize
            recall(good)"); None for a metric objective.
        direction: "maximize" or "minimize".
    """

    text: str
    metric: str | None
    target: str | None
    direction: str

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def select_metric(self) -> str | None:
        """The Config `select_metric` that keeps best.pt on this objective, when there is one."""
        return self.metric if self.metric in SELECT_METRICS else None

    def worst(self) -> float:
        return -np.inf if self.maximize else np.inf

    def better(self, a: float, b: float) -> bool:
        """Whether `a` beats `b`."""
        return a > b if self.maximize else a < b

    def check_pu(self) -> None:
        """Refuse, for a positive-unlabelled search, an objective that needs true negatives on val.

        Raises:
            ValueError: Any objective but those of `PU_SELECT_METRICS`.
        """
        if self.metric in PU_SELECT_METRICS:
            return
        what = f"the operating point {self.target!r}" if self.target else self.metric
        raise ValueError(f"objective {self.text!r}: a positive-unlabelled search (pu: true) validates on labelled "
                         f"positives and unlabelled images, with no true negatives, so {what} there would count the "
                         f"unlabelled images as negatives; use {DEFAULT_PU_OBJECTIVE} (the default with --pu), "
                         "val_pu_recall or val_loss (the PU risk), and measure operating points on a labelled test "
                         "split afterwards (winnow train --test, winnow pu-sensitivity)")

    def check_classes(self, classes: Sequence[str], *, head: str, pu: bool = False) -> None:
        """Refuse, before any training, a metric the head's epoch rows lack, or an operating point on unknown
        classes or on a head it cannot be measured for.

        Raises:
            ValueError: Unknown metric or class, class left out with more than 2 classes, or a multi-label or
                multitask head for an operating point.
        """
        if self.target is None:
            known = row_metrics(head, classes, pu=pu)
            if known is not None and self.metric not in known:
                raise ValueError(f"objective {self.text!r}: a {head} head's epoch rows have no {self.metric!r}; "
                                 f"they have {', '.join(known)}")
            return
        if head not in OPERATING_HEADS:
            raise ValueError(f"objective {self.text!r}: an operating-point objective needs a multiclass or binary "
                             f"head, this data trains a {head} head; use a metric objective such as val_macro_f1")
        parse_target(self.target, list(classes))

    def value(self, event: EpochEnd) -> float:
        """The objective after one epoch.

        Raises:
            ValueError: The metric is not in the epoch row, or the run has no validation split.
        """
        if self.metric is not None:
            if self.metric not in event.row:
                keys = sorted(k for k in event.row if k.startswith("val_"))
                raise ValueError(f"objective {self.text!r}: the epoch rows have no {self.metric!r}; "
                                 f"they have {keys or 'no validation metrics (is there a val split?)'}")
            return float(event.row[self.metric])
        if event.val_probabilities is None:
            raise ValueError(f"objective {self.text!r} needs validation predictions; the run has no val split")
        return operating_value(parse_target(self.target, event.classes), np.asarray(event.val_probabilities),
                               np.asarray(event.val_targets), event.classes)


def row_metrics(head: str, classes: Sequence[str], *, pu: bool = False) -> list[str] | None:
    """The val_ keys of a head's epoch rows (None for multitask runs, whose keys depend on the tasks)."""
    if head == "multitask":
        return None
    names = ["val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1"]
    if pu:
        names += ["val_pu_auc", "val_pu_recall"]
    if head == "multilabel":
        names += ["val_micro_f1", *(f"val_f1_{name}" for name in classes)]
    return names


def operating_value(target: Target, probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> float:
    """Best objective over the thresholds meeting the target's constraint (the worst value when none does).

    Args:
        target: Parsed target.
        probabilities: `[N, K]`.
        targets: Class indices `[N]`; rows < 0 (unlabelled for this task) are left out.
        classes: Class names `[K]`.
    """
    keep = targets >= 0
    names = list(classes)
    curve = ThresholdCurve.build(probabilities[keep], targets[keep], names.index(target.cls))
    try:
        chosen = select_threshold(curve, target, names)
    except ValueError:  # the constraint is met by no threshold
        return 0.0 if target.maximize else 1.0
    return float(curve.metric(target.objective_metric, names.index(target.objective_cls))[chosen])


def parse_objective(text: str) -> Objective:
    """Parse an objective (forms in the module docstring); class names are checked later by `check_classes`.

    Raises:
        ValueError: Malformed text or unknown metric, with valid examples.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"objective: expected a metric or an operating point such as {EXAMPLES}, got {text!r}")
    if "@" in text:
        return _operating(text)
    name = text.strip()
    if not _NAME.match(name):
        raise ValueError(f"objective {text!r}: could not read it. Valid objectives look like: {EXAMPLES}")
    metric = name if name.startswith("val_") else f"val_{name}"
    if not name.startswith("val_") and name not in METRICS:
        raise ValueError(f"objective {text!r}: unknown metric; expected one of {', '.join(METRICS)} (with or "
                         f"without the val_ prefix), another val_ column of metrics.jsonl, or an operating point "
                         f"such as recall(good)@precision(good)>=0.9")
    return Objective(text, metric, None, "minimize" if metric == "val_loss" else "maximize")


def _operating(text: str) -> Objective:
    left, _, constraint = text.partition("@")
    term = _TERM.match(left)
    if term is None or "@" in constraint or not constraint.strip():
        raise ValueError(f"objective {text!r}: expected METRIC(CLASS)@CONSTRAINT such as "
                         f"recall(good)@precision(good)>=0.9")
    metric = {"tpr": "recall"}.get(term["metric"].lower(), term["metric"].lower())
    if metric not in METRIC_OPS:
        raise ValueError(f"objective {text!r}: unknown metric {term['metric']!r} before '@'; expected one of "
                         "precision, recall, tpr, fpr")
    direction = "minimize" if metric == "fpr" else "maximize"
    cls = f"({term['cls']})" if term["cls"] else ""
    target = f"{constraint.strip()} {direction} {metric}{cls}"
    _check_target_syntax(text, target)
    return Objective(text, None, target, direction)


def _check_target_syntax(text: str, target: str) -> None:
    """Parse the target against the class names it mentions, so that only the syntax is checked here."""
    classes = list(dict.fromkeys(name for name in _CLASSES_NAMED.findall(target) if name))
    if target.count("(") < 2 and len(classes) < 2:  # a class left out stands for the positive one of two
        classes = ["other", *classes] if classes else ["negative", "positive"]
    try:
        parse_target(target, classes)
    except ValueError as error:
        raise ValueError(f"objective {text!r}: {error}") from None
