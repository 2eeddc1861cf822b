"""Everything that changes while training, and its checkpoint form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from timm.utils import ModelEmaV3

from winnow.training.checkpoint import restore_rng_states


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


@dataclass
class TrainState:
    """Model, optimiser and friends, plus progress counters."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    ema: ModelEmaV3 | None
    swa: Any = None  # a winnow.training.swa.WeightAverage when swa_epochs is set
    loss: nn.Module | None = None  # its state (GHM's bin counts, arcface's class weights, center loss's centres) is checkpointed
    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # batches of the next epoch already applied (after Ctrl-C)
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)

    def eval_model(self) -> nn.Module:
        """The weights to evaluate: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue exactly: weights, optimiser, counters, history."""
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "swa": self.swa.state_dict() if self.swa is not None else None,
            "loss": self.loss.state_dict() if self.loss is not None else {},
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            # every finished epoch's metrics row: metrics.jsonl is rebuilt from it on resume, so a
            # kill between saving last.pt and writing the row loses nothing
            "history": [dict(row) for row in self.history],
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Restore a loaded checkpoint (RNG states included)."""
        unwrap(self.model).load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        for name in ("scheduler", "scaler", "ema", "swa"):
            target = getattr(self, name)
            if target is not None and checkpoint.get(name) is not None:
                target.load_state_dict(checkpoint[name])
        if self.loss is not None:  # older checkpoints lack "loss": their losses had no state
            self.loss.load_state_dict(checkpoint.get("loss") or {})
        self.epoch, self.step_in_epoch = checkpoint["epoch"], checkpoint.get("step_in_epoch", 0)
        self.best_metric, self.best_epoch = checkpoint["best_metric"], checkpoint["best_epoch"]
        if "history" in checkpoint:  # older checkpoints lack it; the trainer reads metrics.jsonl then
            self.history = [dict(row) for row in checkpoint["history"]]
        restore_rng_states(checkpoint["rng"])

    def is_improvement(self, value: float, *, lower_is_better: bool) -> bool:
        if self.best_metric is None:
            return True
        return value < self.best_metric if lower_is_better else value > self.best_metric
