"""Tasks of a run: one head per label column, each with its own loss and weight.

A single-task run has one unnamed task on the `label` column; `head: multitask` reads
`tasks` from the config, e.g.::

    head: multitask
    tasks:
      - {name: kind, column: label, head: multiclass, loss: ce}
      - {name: usable, column: usable, head: binary, loss: bce, weight: 0.5}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
import torch

from winnow.constraints import Interval, check_value
from winnow.tasks.heads import Head, head_classes, make_head

TASK_KEYS = ("name", "column", "head", "loss", "loss_params", "weight", "class_weights", "positive_class",
             "threshold")


@dataclass
class TaskSpec:
    """One head of the model and how it is trained."""

    name: str
    column: str
    head: Head
    loss: str
    loss_params: dict = field(default_factory=dict)
    weight: float = 1.0
    class_weights: str | list[float] = "none"

    def to_dict(self) -> dict[str, Any]:
        """What inference needs (saved in preprocessing.json)."""
        return {"name": self.name, "column": self.column, "kind": self.head.kind, "classes": self.head.classes,
                "threshold": self.head.threshold}

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "TaskSpec":
        head = make_head(saved["kind"], saved["classes"], threshold=saved["threshold"])
        return cls(saved["name"], saved["column"], head, head.default_loss)


def model_outputs(tasks: list[TaskSpec]) -> int | dict[str, int]:
    """`num_classes` for `create_model`: the head size, or task name -> head size for several tasks."""
    if len(tasks) == 1:
        return tasks[0].head.num_outputs
    return {task.name: task.head.num_outputs for task in tasks}


def task_entries(config) -> list[dict[str, Any]]:
    """The raw task definitions: `tasks` for multitask, else one task from the top-level keys."""
    if config.head != "multitask":
        if config.tasks:
            raise ValueError("`tasks` is set but head is not 'multitask'; set head: multitask or remove tasks")
        return [{"name": "", "column": "label", "head": config.head, "loss": config.loss,
                 "loss_params": config.loss_params, "class_weights": config.class_weights,
                 "positive_class": config.positive_class, "threshold": config.threshold,
                 "pu": config.pu, "prior": config.prior}]
    if not config.tasks:
        raise ValueError("head=multitask needs `tasks`: a list of {name, column, head, loss, weight} in the config")
    return [_checked_entry(entry, i) for i, entry in enumerate(config.tasks)]


def _checked_entry(entry: Any, position: int) -> dict[str, Any]:
    if not isinstance(entry, dict) or "name" not in entry:
        raise ValueError(f"tasks[{position}] must be a mapping with at least `name`, got {entry!r}")
    unknown = sorted(set(entry) - set(TASK_KEYS))
    if unknown:
        raise ValueError(f"tasks[{position}] ({entry['name']}): unknown key(s) {unknown}; valid: {list(TASK_KEYS)}")
    if entry.get("head", "multiclass") == "multitask":
        raise ValueError(f"tasks[{position}]: a task's head must be multiclass, binary or multilabel")
    check_value(f"tasks[{position}] ({entry['name']}): weight", entry.get("weight", 1.0), [Interval(Real, 0, None)])
    return {"column": entry["name"], "head": "multiclass", "loss": "auto", "loss_params": {},
            "class_weights": "none", "positive_class": None, "threshold": 0.5, **entry}


def build_tasks(config, train_columns) -> list[TaskSpec]:
    """Task specs with classes taken from the training split.

    Args:
        config: the run config.
        train_columns: callable column name -> list of training labels.
    """
    tasks = []
    for entry in task_entries(config):
        labels = [label for label in train_columns(entry["column"]) if label != ""]
        if not labels:
            raise ValueError(f"task {entry['name'] or 'label'}: column {entry['column']!r} has no labels in train; "
                             "check the manifest's column names")
        kind = entry["head"]
        positive = entry["positive_class"] or (_rarest(labels) if kind == "binary" else None)
        if entry.get("pu"):
            check_pu_labels(labels, positive, entry["prior"])
        head = make_head(kind, head_classes(kind, labels, positive=positive), threshold=float(entry["threshold"]))
        loss = head.default_loss if entry["loss"] in ("auto", None) else entry["loss"]
        loss_params = dict(entry["loss_params"] or {})
        if entry.get("pu"):
            head.prior = float(entry["prior"])
            loss = "nnpu" if entry["loss"] in ("auto", None) else loss
            loss_params = {"prior": head.prior, **loss_params}
        tasks.append(TaskSpec(entry["name"], entry["column"], head, loss, loss_params,
                              float(entry.get("weight", 1.0)), entry["class_weights"]))
    return tasks


def check_pu_labels(labels: list[str], positive: str | None, prior: object) -> None:
    """A PU run's training labels: the labelled positives and exactly one other label (the unlabelled)."""
    if positive is None:
        raise ValueError("pu: true needs positive_class, the label of the labelled positives; set --positive-class")
    if isinstance(prior, str):
        raise ValueError(f"prior {prior!r} is estimated by `winnow train --prior auto` (winnow.pu.estimate_prior) "
                         "before training; pass a number in (0, 1) to winnow.train")
    others = sorted(set(labels) - {positive})
    if positive not in labels:
        raise ValueError(f"pu: the training split has no labelled positives (label {positive!r}); labels: "
                         f"{sorted(set(labels))}; check --positive-class")
    if not others:
        raise ValueError(f"pu: the training split has no unlabelled images, only {positive!r}; add the unlabelled "
                         "images under another label (e.g. 'unlabeled')")
    if len(others) > 1:
        raise ValueError(f"pu: every non-positive image is unlabelled, so one other label is expected, got {others}; "
                         "relabel them all e.g. 'unlabeled'")


def _rarest(labels: list[str]) -> str:
    """The least frequent label (the usual positive class of a binary task: rare and important)."""
    values, counts = np.unique(labels, return_counts=True)
    return str(values[np.argmin(counts)])


def encode_targets(tasks: list[TaskSpec], columns) -> list:
    """Per-sample targets: a value for one task, a {task: value} dict for several.

    Multi-label rows become float tensors so that batches collate to `[B, K]`.
    """
    per_task = {}
    for task in tasks:
        encoded = task.head.encode(columns(task.column))
        if task.head.kind == "multilabel":
            encoded = [torch.tensor(row, dtype=torch.float32) for row in encoded]
        per_task[task.name] = encoded
    if len(tasks) == 1:
        return per_task[tasks[0].name]
    return [dict(zip(per_task, values)) for values in zip(*per_task.values())]


def task_targets(tasks: list[TaskSpec], targets: list, task: TaskSpec) -> list:
    """One task's targets out of `encode_targets` output."""
    return targets if len(tasks) == 1 else [row[task.name] for row in targets]
