"""Stochastic weight averaging (Izmailov et al. 2018) of the last epochs (`swa_epochs`, `swa_lr`).

- After each of the last `swa_epochs` epochs the weights join an equal-weight average,
  `torch.optim.swa_utils.AveragedModel` of the bare module (DDP and torch.compile unwrapped).
  Its state (n_averaged, the epochs averaged) is part of last.pt, so resume continues it.
- `swa_lr` holds the learning rate constant from the first of those epochs on (`SwaSchedule`);
  without it the run's schedule goes on as usual.
- When training finishes, `update_bn` recomputes the average's BatchNorm statistics over one
  pass of the training loader as it is: the last epoch's sample order and augmentation, without
  mixup/cutmix (they are applied by the training step, not the loader). BatchNorm layers whose
  parameters were frozen keep their statistics and stay in eval mode during that pass. The
  trainer then scores it on val and saves it as `checkpoints/swa.pt`; best.pt is never replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from winnow.models.freezing import frozen_batchnorms
from winnow.training.device import Accelerator
from winnow.training.state import unwrap

log = logging.getLogger("winnow")


class WeightAverage:
    """The running average of the weights after each of the last `swa_epochs` of `epochs` epochs.

    Attributes:
        first_epoch: the first (1-based) epoch whose weights are averaged.
        averaged: the AveragedModel, None until the first of those epochs ends.
        epochs_averaged: the 1-based epochs in the average.
    """

    def __init__(self, model: nn.Module, *, epochs: int, swa_epochs: int) -> None:
        self.model = unwrap(model)
        self.epochs, self.first_epoch = epochs, epochs - swa_epochs + 1
        self.averaged: AveragedModel | None = None
        self.epochs_averaged: list[int] = []

    @property
    def n_averaged(self) -> int:
        return 0 if self.averaged is None else int(self.averaged.n_averaged)

    def after_epoch(self, epoch: int) -> None:
        """Add the current weights if the 1-based `epoch` just finished is one of the last ones."""
        if not self.first_epoch <= epoch <= self.epochs or epoch in self.epochs_averaged:
            return
        if self.averaged is None:  # created late: the copy costs memory only while it is needed
            self.averaged = AveragedModel(self.model)
        self.averaged.update_parameters(self.model)
        self.epochs_averaged.append(epoch)

    def state_dict(self) -> dict[str, Any] | None:
        """The average for last.pt (None before its first epoch)."""
        if self.averaged is None:
            return None
        return {"averaged": self.averaged.state_dict(), "epochs_averaged": list(self.epochs_averaged)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a saved average; one of other epochs (`epochs` changed on resume) is dropped."""
        epochs = list(state["epochs_averaged"])
        if not all(self.first_epoch <= epoch <= self.epochs for epoch in epochs):
            log.warning("the saved weight average holds epochs %s, not all among the last epochs %d-%d of this "
                        "run (epochs changed on resume): starting a new average", epochs, self.first_epoch,
                        self.epochs)
            return
        self.averaged = AveragedModel(self.model)
        self.averaged.load_state_dict(state["averaged"])
        self.epochs_averaged = epochs

    def finalize(self, loader: Iterable, accel: Accelerator) -> nn.Module | None:
        """The averaged module with BatchNorm statistics recomputed over `loader` (None if nothing was averaged).

        Args:
            loader: yields `(images [B, C, H, W], targets)` batches (the training loader).
            accel: moves the images and sets autocast as training did.
        """
        if self.averaged is None:
            return None
        module = self.averaged.module
        with accel.autocast():
            update_bn((accel.to_device(images) for images, _ in loader), _KeepFrozenStatistics(module))
        return module.eval()


class _KeepFrozenStatistics(nn.Module):
    """`module` for `update_bn`: BatchNorm layers of frozen parameters keep their statistics.

    update_bn resets every BatchNorm layer, then calls `train()`; this `train()` puts the frozen
    layers' saved state back and keeps them in eval mode, as training did.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.saved = [(layer, {k: v.clone() for k, v in layer.state_dict().items()})
                      for layer in frozen_batchnorms(module)]

    def train(self, mode: bool = True) -> "_KeepFrozenStatistics":
        super().train(mode)
        for layer, state in self.saved:
            layer.load_state_dict(state)
            layer.eval()
        return self

    def forward(self, images: torch.Tensor) -> Any:
        return self.module(images)


class SwaSchedule:
    """A per-update LR schedule that holds `lr` from update `start_update` on, `schedule` before it.

    Stands in for the run's timm scheduler (same `step_update` / `state_dict` calls); `schedule`
    may be None (constant schedule).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Any, *, lr: float, start_update: int) -> None:
        self.optimizer, self.schedule, self.lr, self.start_update = optimizer, schedule, lr, start_update
        if start_update == 0:  # every epoch is averaged: the first update already uses lr
            self.step_update(0)

    def step_update(self, num_updates: int) -> None:
        """Set the LR of update `num_updates + 1`."""
        if num_updates >= self.start_update:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
        elif self.schedule is not None:
            self.schedule.step_update(num_updates)

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict() if self.schedule is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.schedule is not None and state:
            self.schedule.load_state_dict(state)


def swa_summary(average: WeightAverage, metrics: dict[str, float], *, select_metric: str,
                best_metric: float | None, better: bool | None) -> dict[str, Any]:
    """What summary.json records about swa.pt."""
    return {"checkpoint": "swa", "epochs_averaged": list(average.epochs_averaged), "n_averaged": average.n_averaged,
            "metrics": dict(metrics), "select_metric": select_metric, "best_metric": best_metric,
            "better_than_best": better}
