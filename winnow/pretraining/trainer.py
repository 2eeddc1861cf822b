"""`pretrain(config) -> PretrainRun`: unlabelled images, encoder + method, the training loop's pieces, save.

The run folder is a `winnow train` run folder (config.yaml with provenance, preprocessing.json,
splits.csv, metrics.jsonl, summary.json, train.log, tensorboard/, checkpoints/last.pt and best.pt by
val_loss) plus `encoder.pt`: the encoder's weights after the latest epoch, a plain state dict that
`winnow train --pretrained RUN` loads. Resume (`--resume RUN`) trusts last.pt as `train` does.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from winnow.config import Config
from winnow.data.prepare import DataSpec
from winnow.models.families.base import pretrained_target
from winnow.models.registry import create_model
from winnow.pretraining.data import Loaders, build_loaders, prepare_images
from winnow.pretraining.methods import get_method, method_params
from winnow.runs.atomic import FileWriteError, atomic_write, remove_stale_temp_files
from winnow.runs.files import write_json, write_metrics
from winnow.runs.layout import ENCODER_FILE, RunPaths
from winnow.runs.provenance import provenance
from winnow.training.checkpoint import save_checkpoint
from winnow.training.device import Accelerator, make_accelerator
from winnow.training.distributed import DistInfo
from winnow.training.engine import NonFiniteLossError, StepOptions, TrainingInterrupted, train_one_epoch
from winnow.training.optim import create_optimizer, create_schedule, current_lr
from winnow.training.progress import Progress, summary_line
from winnow.training.run_folder import default_name, open_run, restore
from winnow.training.state import TrainState

log = logging.getLogger("winnow")
ONE_PROCESS = DistInfo()  # pretraining runs in one process (no torchrun yet)


@dataclass
class PretrainRun:
    """A finished (or stopped) pretraining run; `path/encoder.pt` is its encoder."""

    path: Path
    config: Config
    metrics: list[dict]
    best_metric: float | None  # val_loss (train_loss without val images) of best.pt
    best_epoch: int | None
    status: str


def pretrain(config: Config | None, *, resume: str | Path | None = None, overrides: dict | None = None) -> PretrainRun:
    """Pretrain `config.model`'s encoder on the unlabelled images `config.data` with `config.pretrain_method`.

    Raises:
        ValueError: Bad settings or images, or a folder that cannot be resumed.
        FileWriteError: A file could not be written; the message says how to go on.
    """
    if resume is None:
        _check_method(config)
        config = config.replace(name=config.name or f"{default_name(config)}-{config.pretrain_method}")
    config, paths, from_checkpoint = open_run(config, resume, overrides or {}, ONE_PROCESS)
    if resume is not None:
        _check_method(config, resumed=paths.root)
        remove_stale_temp_files(paths.root, (ENCODER_FILE,))
    _seed_everything(config.seed)
    accel = make_accelerator(config.device, config.amp, config.channels_last, ONE_PROCESS)
    samples, spec = prepare_images(config, paths, resumed=resume is not None)
    loaders = build_loaders(samples, spec, config, get_method(config.pretrain_method), pin_memory=accel.is_cuda)
    _seed_everything(config.seed)  # the initial weights do not depend on what data preparation drew
    model = build_pretrain_model(config, spec, pretrained=config.pretrained).to(accel.device)
    loss_fn = get_method(config.pretrain_method).loss(method_params(config.pretrain_method, config.pretrain_params))
    optimizer = create_optimizer(model, config)
    updates = -(-len(loaders.train) // config.accumulate)
    scaler = torch.amp.GradScaler("cuda") if accel.amp_dtype == torch.float16 else None
    state = TrainState(model, optimizer, create_schedule(optimizer, config, updates_per_epoch=updates), scaler, None,
                       loss=loss_fn.to(accel.device))
    try:
        if from_checkpoint:
            restore(state, paths, ONE_PROCESS, save_every=config.save_every)
        status = _fit(state, loaders, config, paths, spec, accel)
        _write_summary(state, config, paths, status)
    except FileWriteError as error:
        raise error.followed_by(f", then resume with `winnow pretrain --resume {paths.root}`") from error
    log.info("run folder: %s (encoder: %s)", paths.root, paths.encoder)
    return PretrainRun(paths.root, config, state.history, state.best_metric, state.best_epoch, status)


def _check_method(config: Config, *, resumed: Path | None = None) -> None:
    if resumed is not None and config.pretrain_method is None:
        raise ValueError(f"{resumed} is a `winnow train` run (its config has no pretrain_method); resume it with "
                         f"`winnow train --resume {resumed}`")
    method_params(config.pretrain_method, config.pretrain_params)  # unknown method or keys: ValueError


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_pretrain_model(config: Config, spec: DataSpec, *, pretrained: str | None = None) -> nn.Module:
    """The method's model around a timm encoder (`create_model` with no classifier; its `encoder` attribute)."""
    encoder = create_model(config.model, num_classes=0, in_chans=spec.in_chans, pretrained=pretrained,
                           stem=config.stem)
    method = get_method(config.pretrain_method)
    return method.model(encoder, in_chans=spec.in_chans, img_size=spec.img_size,
                        params=method_params(config.pretrain_method, config.pretrain_params), name=config.model)


def _fit(state: TrainState, loaders: Loaders, config: Config, paths: RunPaths, spec: DataSpec,
         accel: Accelerator) -> str:
    """Epoch loop; returns the run status (finished, interrupted or diverged)."""
    from torch.utils.tensorboard import SummaryWriter  # slow import, only when training

    writer = SummaryWriter(str(paths.tensorboard))
    try:
        while state.epoch < config.epochs:
            row = _run_epoch(state, loaders, config, accel)
            _after_epoch(state, row, config, paths, spec, writer)
    except TrainingInterrupted as stop:  # Ctrl-C: resume continues at the next batch
        state.step_in_epoch = stop.steps_done
        log.warning("interrupted after %d batches of epoch %d: saving %s", stop.steps_done, state.epoch + 1,
                    paths.checkpoint("last"))
        _save(state, "last", config, spec, paths, interrupted=True)
        return "interrupted"
    except NonFiniteLossError as error:
        log.error("pretraining stopped: %s. The last good checkpoint (%s) is kept; lower the learning rate or "
                  "enable --grad-clip", error, paths.checkpoint("last"))
        return "diverged"
    finally:
        writer.close()
    return "finished"


def _run_epoch(state: TrainState, loaders: Loaders, config: Config, accel: Accelerator) -> dict:
    epoch, start_step = state.epoch, state.step_in_epoch
    if start_step == 0:  # model-side randomness seeded per epoch so that resume is exact
        torch.manual_seed(config.seed * 1_000_003 + epoch)
    loaders.train.sampler.set_epoch(epoch, skip=start_step * config.batch_size)
    state.model.set_epoch(epoch, config.epochs)
    state.model.train()
    progress = Progress(len(loaders.train.sampler), description=f"pretrain epoch {epoch + 1}/{config.epochs}",
                        enabled=config.progress, every=config.progress_every)
    lr, start = current_lr(state.optimizer), time.perf_counter()
    try:
        stats = train_one_epoch(state.model, loaders.train, state.loss, state.optimizer, state.scheduler, accel,
                                StepOptions(config.accumulate, config.grad_clip, state.scaler), epoch=epoch,
                                progress=progress, start_step=start_step)
    finally:
        progress.close()
    row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "lr": lr, "img_per_s": stats["img_per_s"]}
    if loaders.val is not None:
        row["val_loss"] = mean_loss(state.model, loaders.val, state.loss, accel)
    row["time_s"] = round(time.perf_counter() - start, 2)
    return row


@torch.no_grad()
def mean_loss(model: nn.Module, loader, loss_fn: nn.Module, accel: Accelerator) -> float:
    """The loss over a loader's images, in eval mode (BYOL's target network does not move)."""
    model.eval()
    total, seen = 0.0, 0
    for images, _ in loader:
        images = accel.to_device(images)
        with accel.autocast():
            outputs = model(images)
        total += float(loss_fn(outputs)) * len(images)
        seen += len(images)
    return total / max(seen, 1)


def _after_epoch(state: TrainState, row: dict, config: Config, paths: RunPaths, spec: DataSpec, writer) -> None:
    state.epoch, state.step_in_epoch = row["epoch"], 0
    metric = row.get("val_loss", row["train_loss"])
    improved = state.is_improvement(metric, lower_is_better=True)
    if improved:
        state.best_metric, state.best_epoch = metric, state.epoch
    state.history.append(row)
    # last.pt first: resume trusts it alone (and rewrites metrics.jsonl and best.pt from it)
    _save(state, "last", config, spec, paths)
    if improved:
        _save(state, "best", config, spec, paths)
    if config.save_every and state.epoch % config.save_every == 0:
        _save(state, f"epoch{state.epoch:04d}", config, spec, paths)
    _save_encoder(state.model, paths.encoder)
    write_metrics(paths.metrics, state.history)
    for key, value in row.items():
        if key != "epoch":
            writer.add_scalar(key, value, state.epoch)
    _write_summary(state, config, paths, "running")
    log.info(summary_line(row, epochs=config.epochs) + ("  *best*" if improved else ""))


def _save(state: TrainState, name: str, config: Config, spec: DataSpec, paths: RunPaths, *,
          interrupted: bool = False) -> None:
    save_checkpoint(paths.checkpoint(name), {
        **state.state_dict(), "config": config.to_dict(), "data_spec": spec.to_dict(), "provenance": provenance(),
        "model_name": config.model, "pretrain_method": config.pretrain_method, "interrupted": interrupted})


def _save_encoder(model: nn.Module, path: Path) -> None:
    """The encoder's weights as a plain state dict (what --pretrained loads into a classifier's trunk)."""
    weights = {key: value.detach().cpu() for key, value in pretrained_target(model.encoder).state_dict().items()}
    atomic_write(path, lambda handle: torch.save(weights, handle))


def _write_summary(state: TrainState, config: Config, paths: RunPaths, status: str) -> None:
    write_json(paths.summary, {
        "name": paths.root.name, "model": config.model, "data": config.data, "status": status,
        "pretrain_method": config.pretrain_method, "epochs_done": state.epoch, "epochs": config.epochs,
        "select_metric": "val_loss" if any("val_loss" in row for row in state.history) else "train_loss", "best_metric": state.best_metric, "best_epoch": state.best_epoch,
        "elapsed_s": round(sum(row.get("time_s", 0.0) for row in state.history), 1), "encoder": ENCODER_FILE})
