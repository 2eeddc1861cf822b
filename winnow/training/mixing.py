"""Mixup and CutMix (timm) for every head kind, by mixing whole target rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.data import Mixup

from winnow.tasks.spec import TaskSpec

SOFT_TARGET_LOSSES = ("ce", "bce", "asymmetric", "ghm")


class BatchMixer:
    """Mixes images with timm's Mixup/CutMix and targets with the same pairing and weights.

    timm mixes one-hot targets; mixing the one-hot rows of the batch positions instead
    (`mix [B, B]`) gives the same pairing for class indices, binary and multi-hot targets.
    """

    def __init__(self, tasks: list[TaskSpec], *, mixup: float, cutmix: float, prob: float) -> None:
        for task in tasks:
            if task.loss not in SOFT_TARGET_LOSSES:
                raise ValueError(f"mixup/cutmix need a loss that accepts soft targets ({', '.join(SOFT_TARGET_LOSSES)}); "
                                 f"task {task.name or 'label'} uses {task.loss!r}. Set mixup: 0 and cutmix: 0 or change the loss")
        self.tasks, self.mixup, self.cutmix, self.prob = tasks, mixup, cutmix, prob

    def __call__(self, images: torch.Tensor, targets):
        """`[B, C, H, W]` images and targets -> mixed images and soft targets."""
        batch = images.shape[0]
        if batch % 2:
            raise ValueError(f"mixup/cutmix need an even batch, got {batch}; use an even batch_size")
        mixer = Mixup(mixup_alpha=self.mixup, cutmix_alpha=self.cutmix, prob=self.prob, label_smoothing=0.0,
                      num_classes=batch)
        images, mix = mixer(images, torch.arange(batch, device=images.device))
        if len(self.tasks) == 1:
            return images, _mix_targets(self.tasks[0], targets, mix)
        return images, {t.name: _mix_targets(t, targets[t.name], mix) for t in self.tasks}


def _mix_targets(task: TaskSpec, targets: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    if task.head.kind == "multiclass":
        known = targets >= 0
        one_hot = F.one_hot(targets.clamp_min(0), task.head.num_outputs).float() * known[:, None]
        return mix @ one_hot  # ignored samples contribute an all-zero row
    return mix @ targets.float() if targets.ndim == 2 else (mix @ targets.float()[:, None])[:, 0]
