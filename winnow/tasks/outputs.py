"""Turning model outputs into probabilities, losses and metrics for one task or several."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from winnow.tasks.spec import TaskSpec

SELECT_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")


def probabilities(tasks: list[TaskSpec], logits):
    """Logits (a tensor, or {task: tensor}) -> probabilities in the same form."""
    if len(tasks) == 1:
        return tasks[0].head.probabilities(logits)
    return {task.name: task.head.probabilities(logits[task.name]) for task in tasks}


def task_metrics(tasks: list[TaskSpec], probs, targets, *, prefix: str) -> dict[str, float]:
    """Each task's metrics (prefixed by its name) plus their means under the plain keys."""
    if len(tasks) == 1:
        return tasks[0].head.metrics(np.asarray(probs), np.asarray(targets), prefix=prefix)
    result: dict[str, float] = {}
    for task in tasks:
        result.update(task.head.metrics(np.asarray(probs[task.name]), np.asarray(targets[task.name]),
                                        prefix=f"{prefix}{task.name}_"))
    for key in SELECT_KEYS:  # the means drive best-checkpoint selection
        result[f"{prefix}{key}"] = float(np.mean([result[f"{prefix}{t.name}_{key}"] for t in tasks]))
    return result


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses over `{task: logits}` and `{task: targets}`."""

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float]) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.weights = weights

    def set_epoch(self, epoch: int) -> None:
        for loss in self.losses.values():
            loss.set_epoch(epoch)

    def forward(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[name] * loss(outputs[name], targets[name]) for name, loss in self.losses.items())
