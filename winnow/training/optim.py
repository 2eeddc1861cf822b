"""Optimizers and LR schedules through timm."""

from __future__ import annotations

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler

from winnow.config import Config

TIMM_SCHEDULES = {"cosine": "cosine", "step": "multistep"}


def create_optimizer(model: torch.nn.Module, config: Config, *,
                     loss: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    """Optimizer over all parameters (frozen ones simply get no gradient).

    Args:
        loss: a loss with parameters of its own (arcface's class weights `[D, K]`): they are one more
            parameter group, without weight decay (the loss normalises them, so decay would only
            shrink their scale).
    """
    extra = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
    optimizer = create_optimizer_v2(model, opt=config.optimizer, lr=config.lr,
                                    weight_decay=config.weight_decay, **extra)
    loss_params = list(loss.parameters()) if loss is not None else []
    if loss_params:
        optimizer.add_param_group({"params": loss_params, "weight_decay": 0.0})
    return optimizer


def create_schedule(optimizer: torch.optim.Optimizer, config: Config, *, updates_per_epoch: int) -> Scheduler | None:
    """Per-update LR schedule (cosine with warmup or step milestones); None for constant."""
    if config.schedule == "constant":
        return None
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=TIMM_SCHEDULES[config.schedule], num_epochs=config.epochs,
        warmup_epochs=min(config.warmup_epochs, config.epochs - 1), warmup_lr=config.lr * 0.01,
        min_lr=config.lr * 0.01, decay_milestones=config.milestones or [config.epochs],
        decay_rate=config.step_gamma, step_on_epochs=False, updates_per_epoch=updates_per_epoch)
    return scheduler


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
