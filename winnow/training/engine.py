"""The plain training loop: one epoch of training, one pass of evaluation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from timm.utils import ModelEmaV3

from winnow.data.views import ViewOp, identity
from winnow.losses import call_loss
from winnow.models.embedding import capture_embeddings
from winnow.training.device import Accelerator
from winnow.training.profiling import NULL_CLOCK, NullClock, StepClock
from winnow.training.progress import Progress
from winnow.training.state import unwrap


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Ctrl-C during an epoch; `steps_done` batches were fully applied (an update boundary)."""

    def __init__(self, steps_done: int) -> None:
        super().__init__(f"interrupted after {steps_done} steps")
        self.steps_done = steps_done


@dataclass
class StepOptions:
    """How each optimisation step is taken; `mixer` mixes (images, targets) batches; `clock` times the phases."""

    accumulate: int = 1
    grad_clip: float | None = None
    scaler: torch.amp.GradScaler | None = None
    ema: ModelEmaV3 | None = None
    mixer: Callable | None = None
    clock: StepClock | NullClock = NULL_CLOCK
    augment: Callable | None = None  # `winnow.data.batch_augment.BatchAugment`: uint8 batch -> augmented float
    resize: Callable | None = None  # `winnow.training.progressive_resize.ResizeSchedule`: the epoch's image size


def to_device(targets, device: torch.device):
    """Targets (a tensor, or {task: tensor}) onto the device."""
    if isinstance(targets, dict):
        return {name: value.to(device, non_blocking=True) for name, value in targets.items()}
    return targets.to(device, non_blocking=True)


def forward_outputs(model: nn.Module, images: torch.Tensor, loss_fn: nn.Module | None):
    """Logits of `images [B, C, H, W]`, and the embeddings `[B, D]` when `loss_fn` needs them (else None).

    The embeddings are the classifier's input in the same forward pass (timm's
    `forward_head(pre_logits=True)`, projected with `embedding_dim`), read through the wrappers
    (DDP) that `model` may have.
    """
    if not getattr(loss_fn, "needs_embeddings", False):
        return model(images), None
    with capture_embeddings(unwrap(model)) as captured:
        logits = model(images)
    return logits, captured.value


def weight_gradients(logits: torch.Tensor, weights: torch.Tensor) -> None:
    """Scale each sample's gradient through `logits` `[B, ...]` by its weight `[B]` (manifest `weight` column).

    Every loss reduces per-sample terms of its logits, so scaling row i of d(loss)/d(logits) by w_i is
    the gradient of the loss with sample i's term multiplied by w_i, for every loss at once, without
    a weighted variant of each. The logged loss stays unweighted; terms on embeddings (metric losses)
    are not weighted.
    """
    shape = (-1,) + (1,) * (logits.dim() - 1)
    logits.register_hook(lambda grad: grad * weights.to(grad.dtype).view(shape))


def train_one_epoch(model: nn.Module, loader: Iterable, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, accel: Accelerator, options: StepOptions, *, epoch: int,
                    progress: Progress, start_step: int = 0) -> dict[str, float]:
    """Train for one epoch (from batch `start_step` when resuming mid-epoch).

    Returns:
        mean `train_loss` and `img_per_s` over the batches run here.

    Raises:
        NonFiniteLossError: the loss was NaN/inf (weights of this step are not applied).
        TrainingInterrupted: Ctrl-C; says how many batches were applied.
    """
    total_loss, seen, start = 0.0, 0, time.perf_counter()
    steps_per_epoch = start_step + len(loader)
    updates_done = epoch * math.ceil(steps_per_epoch / options.accumulate) + start_step // options.accumulate
    applied = start_step
    optimizer.zero_grad(set_to_none=True)
    clock = options.clock
    clock.restart()
    try:
        for step, batch in enumerate(loader, start=start_step):
            clock.mark("data" if step > start_step else "first_batch")
            images, targets = accel.to_device(batch[0]), to_device(batch[1], accel.device)
            weights = batch[2].to(accel.device, non_blocking=True) if len(batch) == 3 else None
            clock.mark("copy")
            if options.augment is not None:
                images = accel.to_device(options.augment(images, epoch=epoch, step=step))  # memory format again
            if options.mixer is not None:
                images, targets = options.mixer(images, targets)
            if options.resize is not None:
                images = accel.to_device(options.resize(images, epoch=epoch))  # memory format again
            clock.mark("augment")
            with accel.autocast():
                logits, embeddings = forward_outputs(model, images, loss_fn)
                if weights is not None:
                    weight_gradients(logits, weights)
                loss = call_loss(loss_fn, logits, targets, embeddings)
            clock.mark("forward")
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            _backward(loss / options.accumulate, options.scaler)
            clock.mark("backward")
            if (step + 1) % options.accumulate == 0 or step + 1 == steps_per_epoch:
                updates_done += 1
                _optimizer_step(model, optimizer, options, scheduler, updates_done)
                applied = step + 1
            clock.mark("optimizer")
            total_loss += loss.item() * len(images)
            seen += len(images)
            progress.update(len(images), loss=loss.item(), img_per_s=seen / (time.perf_counter() - start))
            clock.mark("bookkeeping")
            clock.count_step(len(images))
    except KeyboardInterrupt:
        raise TrainingInterrupted(applied) from None
    return {"train_loss": total_loss / max(seen, 1), "img_per_s": seen / (time.perf_counter() - start)}


def _backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


def _optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, options: StepOptions,
                    scheduler, updates_done: int) -> None:
    if options.scaler is not None:
        options.scaler.unscale_(optimizer)
    if options.grad_clip:
        # every parameter the optimiser steps: the model's and a loss's own (arcface's class weights)
        nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], options.grad_clip)
    if options.scaler is not None:
        options.scaler.step(optimizer)
        options.scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if options.ema is not None:
        options.ema.update(model, step=updates_done)
    if scheduler is not None:
        scheduler.step_update(updates_done)


@torch.no_grad()
def predict_probabilities(model: nn.Module, loader: Iterable, accel: Accelerator, loss_fn: nn.Module | None = None,
                          *, to_probabilities: Callable = lambda logits: logits.float().softmax(dim=1),
                          progress: Progress | None = None, views: list[ViewOp] | None = None):
    """Probabilities, targets and mean loss (nan without loss_fn) over a loader.

    Probabilities are `[N, K]` arrays (or {task: array} for multi-task models); targets likewise.
    A `loss_fn` with state (center loss's centres) should be in eval mode, so that it keeps it.
    `progress` is told the images of each batch. `views` (`winnow.data.views`, applied to each
    batch `[B, C, S, S]`) average the probabilities of several views of every image; the loss is
    that of the first view.
    """
    model.eval()
    views = views or [identity]
    probabilities, targets_all, total_loss, seen = [], [], 0.0, 0
    for images, targets in loader:
        images = accel.to_device(images)
        with accel.autocast():
            logits, embeddings = forward_outputs(model, views[0](images), loss_fn)
        if loss_fn is not None:
            total_loss += _float_loss(loss_fn, logits, to_device(targets, accel.device), embeddings) * len(images)
        batch = [to_probabilities(logits)]
        for view in views[1:]:
            with accel.autocast():
                batch.append(to_probabilities(forward_outputs(model, view(images), None)[0]))
        probabilities.append(_to_cpu(_mean(batch)))
        targets_all.append(targets)
        seen += len(images)
        if progress is not None:
            progress.update(len(images))
    return _concat(probabilities), _concat(targets_all), total_loss / seen if loss_fn and seen else float("nan")


def _float_loss(loss_fn: nn.Module, logits, targets, embeddings: torch.Tensor | None) -> float:
    if isinstance(logits, dict):
        logits = {name: value.float() for name, value in logits.items()}
    else:
        logits = logits.float()
    return call_loss(loss_fn, logits, targets, None if embeddings is None else embeddings.float()).item()


def _mean(batches: list):
    """Element-wise mean of views' probabilities (tensors `[B, K]` or {task: tensor})."""
    if len(batches) == 1:
        return batches[0]
    if isinstance(batches[0], dict):
        return {name: torch.stack([b[name].float() for b in batches]).mean(0) for name in batches[0]}
    return torch.stack([b.float() for b in batches]).mean(0)


def _to_cpu(value):
    if isinstance(value, dict):
        return {name: tensor.float().cpu() for name, tensor in value.items()}
    return value.float().cpu()


def _concat(batches: list):
    """Concatenate batches of tensors (or of {name: tensor}) into numpy arrays."""
    if batches and isinstance(batches[0], dict):
        return {name: torch.cat([b[name] for b in batches]).numpy() for name in batches[0]}
    return torch.cat(batches).numpy() if batches else np.zeros((0,))
