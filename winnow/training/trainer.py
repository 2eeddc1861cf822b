"""`train(config) -> Run`: data, model, loss, optimiser, loop, save; and `--resume`."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from winnow.config import Config, read_saved, save_yaml
from winnow.data.prepare import (DataSpec, build_spec, eval_loader, make_dataset, resolve_samples, train_loader,
                                 validate_samples)
from winnow.data.sources import Samples
from winnow.data.splits import load_splits, save_splits
from winnow.data.validation import write_bad_files
from winnow.losses import create_loss
from winnow.models.freezing import apply_freeze, set_train_mode, trainable_count, unfreeze_all
from winnow.models.registry import create_model
from winnow.runs.files import read_json, read_metrics, write_json, write_metrics
from winnow.runs.layout import RunPaths, dataset_name, unique_run_dir
from winnow.runs.provenance import provenance
from winnow.tasks.outputs import MultiTaskLoss, probabilities, task_metrics
from winnow.tasks.spec import TaskSpec, build_tasks, model_outputs, task_targets
from winnow.training.checkpoint import evaluation_weights, load_checkpoint, save_checkpoint
from winnow.training.device import Accelerator, make_accelerator
from winnow.training.distributed import DistInfo, init_distributed
from winnow.training.engine import (NonFiniteLossError, StepOptions, TrainingInterrupted, predict_probabilities,
                                    train_one_epoch)
from winnow.training.mixing import BatchMixer
from winnow.training.optim import create_optimizer, create_schedule, current_lr
from winnow.training.progress import Progress, summary_line
from winnow.training.state import TrainState, unwrap

log = logging.getLogger("winnow")
RESUME_OVERRIDES = ("epochs", "workers", "device", "progress", "progress_every", "save_every", "cache", "cache_dir")


@dataclass
class Run:
    """A finished (or stopped) training run."""

    path: Path
    config: Config
    metrics: list[dict]
    best_metric: float | None
    best_epoch: int | None
    test_metrics: dict[str, float] | None
    status: str


@dataclass
class Loaders:
    train: Any
    val: Any | None
    test: Any | None


def train(config: Config, *, resume: str | Path | None = None, overrides: dict | None = None) -> Run:
    """Train a classifier as configured, or continue the run folder `resume`."""
    dist_info = init_distributed()
    config, paths = _open_run(config, resume, overrides or {}, dist_info)
    _seed_everything(config.seed)
    accel = make_accelerator(config.device, config.amp, config.channels_last, dist_info)
    samples, spec = _prepare_data(config, paths, resumed=resume is not None, dist_info=dist_info)
    tasks = build_tasks(config, samples.where_split("train").column)
    loaders = _build_loaders(samples, spec, config, tasks, accel, dist_info)
    model = _build_model(config, tasks, spec, accel, dist_info)
    loss_fn = _build_loss(config, tasks, loaders.train.dataset.targets).to(accel.device)
    state = _build_state(model, config, accel, updates_per_epoch=math.ceil(len(loaders.train) / config.accumulate))
    mixer = BatchMixer(tasks, mixup=config.mixup, cutmix=config.cutmix, prob=config.mix_prob) \
        if config.mixup or config.cutmix else None
    if resume is not None:
        state.load_state_dict(load_checkpoint(paths.checkpoint("last")))
        state.history = [row for row in read_metrics(paths.metrics) if row["epoch"] <= state.epoch]
        log.info("resuming %s after epoch %d", paths.root, state.epoch)
    context = FitContext(config, tasks, accel, paths, spec, dist_info, mixer)
    status = _fit(state, loss_fn, loaders, context)
    return _finish(state, loss_fn, loaders, context, status)


def _open_run(config: Config, resume: str | Path | None, overrides: dict,
              dist_info: DistInfo) -> tuple[Config, RunPaths]:
    if resume is None:
        root = unique_run_dir(config.out, config.name or _default_name(config))
        paths = RunPaths(root)
        if dist_info.is_main:
            paths.checkpoints.mkdir(parents=True, exist_ok=True)
            save_yaml(config, paths.config, extra=provenance())
        _attach_log_file(paths)
        return config, paths
    paths = RunPaths(Path(resume))
    if not paths.checkpoint("last").is_file():
        raise ValueError(f"cannot resume {resume}: {paths.checkpoint('last')} is missing; "
                         "is this a winnow run folder that finished at least one epoch?")
    not_allowed = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if not_allowed:
        raise ValueError(f"--resume keeps the run's settings; cannot change {not_allowed}. "
                         f"Only {list(RESUME_OVERRIDES)} may change on resume; start a new run otherwise")
    config = read_saved(paths.config).replace(**overrides)
    if dist_info.is_main:
        save_yaml(config, paths.config, extra=provenance())
    _attach_log_file(paths)
    return config, paths


def _default_name(config: Config) -> str:
    data_name = dataset_name(config.data[0]) if config.data else "data"
    return f"{data_name}-{config.model.replace(':', '-').replace('/', '-')}"


def _attach_log_file(paths: RunPaths) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    for handler in [h for h in log.handlers if getattr(h, "winnow_run_log", False)]:
        log.removeHandler(handler)
        handler.close()
    handler = logging.FileHandler(paths.train_log)
    handler.winnow_run_log = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _prepare_data(config: Config, paths: RunPaths, *, resumed: bool,
                  dist_info: DistInfo) -> tuple[Samples, DataSpec]:
    """Splits (new or saved), file scan, classes and normalisation."""
    if resumed:
        return load_splits(paths.splits), DataSpec(**read_json(paths.preprocessing, what="preprocessing"))
    samples, bad, grayscale_share = validate_samples(resolve_samples(config), config)
    spec = build_spec(samples, config, grayscale_share=grayscale_share)
    if dist_info.is_main:
        save_splits(samples, paths.splits)
        write_json(paths.classes, spec.classes)
        write_json(paths.preprocessing, spec.to_dict())
        if bad:
            write_bad_files(bad, paths.bad_files)
    counts = {split: len(samples.where_split(split)) for split in ("train", "val", "test")}
    log.info("data: %s images %s, %d classes, in_chans=%d", len(samples), counts, len(spec.classes), spec.in_chans)
    return samples, spec


@dataclass
class FitContext:
    """What the epoch loop needs besides the changing state."""

    config: Config
    tasks: list[TaskSpec]
    accel: Accelerator
    paths: RunPaths
    spec: DataSpec
    dist_info: DistInfo
    mixer: BatchMixer | None = None

    def to_probabilities(self, logits):
        return probabilities(self.tasks, logits)


def _build_loaders(samples: Samples, spec: DataSpec, config: Config, tasks: list[TaskSpec],
                   accel: Accelerator, dist_info: DistInfo) -> Loaders:
    cache_dir = Path(config.cache_dir) if config.cache_dir else Path(config.out) / ".cache"
    split_loader = {}
    for split in ("val", "test"):
        subset = samples.where_split(split)
        dataset = make_dataset(subset, spec, config, tasks, train=False, cache_dir=cache_dir)
        split_loader[split] = eval_loader(dataset, config, pin_memory=accel.is_cuda) if len(subset) else None
    train_set = make_dataset(samples.where_split("train"), spec, config, tasks, train=True, cache_dir=cache_dir)
    loader = train_loader(train_set, config, tasks, rank=dist_info.rank, world_size=dist_info.world_size,
                          pin_memory=accel.is_cuda)
    return Loaders(loader, split_loader["val"], split_loader["test"])


def _build_model(config: Config, tasks: list[TaskSpec], spec: DataSpec, accel: Accelerator,
                 dist_info: DistInfo) -> torch.nn.Module:
    model = create_model(config.model, num_classes=model_outputs(tasks), in_chans=spec.in_chans, drop_rate=config.drop_rate,
                         pretrained=config.pretrained, stem=config.stem)
    model = model.to(accel.device)
    if accel.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist_info.enabled:
        model = DistributedDataParallel(model, device_ids=[accel.device.index] if accel.is_cuda else None)
    if config.compile:
        model = torch.compile(model)
    return model


def _build_loss(config: Config, tasks: list[TaskSpec], train_targets: list) -> torch.nn.Module:
    """One registry loss per task (weights from that task's training class counts)."""
    weights_epoch = config.class_weights_epoch - 1 if config.class_weights_epoch else None
    losses = {}
    for task in tasks:
        counts = task.head.class_counts(task_targets(tasks, train_targets, task))
        losses[task.name] = create_loss(task.loss, params=task.loss_params, class_counts=counts,
                                        class_weights=task.class_weights, class_weights_epoch=weights_epoch,
                                        effective_beta=config.effective_beta, label_smoothing=config.label_smoothing)
    if len(tasks) == 1:
        return losses[tasks[0].name]
    return MultiTaskLoss(losses, {t.name: t.weight for t in tasks})


def _build_state(model: torch.nn.Module, config: Config, accel: Accelerator, *, updates_per_epoch: int) -> TrainState:
    # The optimiser sees every parameter, so unfreezing later needs no rebuild.
    optimizer = create_optimizer(unwrap(model), config)
    frozen = apply_freeze(unwrap(model), config.freeze)
    if frozen:
        log.info("froze %d tensors (%s); %d parameters trainable", frozen, config.freeze, trainable_count(model))
    scheduler = create_schedule(optimizer, config, updates_per_epoch=updates_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if accel.amp_dtype == torch.float16 else None
    ema = ModelEmaV3(unwrap(model), decay=config.ema_decay) if config.ema else None
    return TrainState(model, optimizer, scheduler, scaler, ema)


def _fit(state: TrainState, loss_fn, loaders: Loaders, ctx: FitContext) -> str:
    """Epoch loop; returns the run status (finished, interrupted, diverged)."""
    writer = _tensorboard(ctx.paths) if ctx.dist_info.is_main else None
    options = StepOptions(ctx.config.accumulate, ctx.config.grad_clip, state.scaler, state.ema, ctx.mixer)
    try:
        while state.epoch < ctx.config.epochs:
            row = _run_epoch(state, loss_fn, loaders, ctx, options)
            _after_epoch(state, row, ctx, writer)
    except (TrainingInterrupted, KeyboardInterrupt) as stop:
        # Ctrl-C in the training loop: resume continues at the next batch; elsewhere (validation)
        # every batch of the epoch was applied.
        steps = stop.steps_done if isinstance(stop, TrainingInterrupted) else len(loaders.train)
        state.step_in_epoch = steps
        log.warning("interrupted after %d batches of epoch %d: saving %s", steps, state.epoch + 1,
                    ctx.paths.checkpoint("last"))
        _save(state, "last", ctx, interrupted=True)
        return "interrupted"
    except NonFiniteLossError as error:
        log.error("training stopped: %s. The last good checkpoint (%s) is kept; lower the learning "
                  "rate, enable --grad-clip, or check the data", error, ctx.paths.checkpoint("last"))
        return "diverged"
    finally:
        if writer is not None:
            writer.close()
    return "finished"


def _run_epoch(state: TrainState, loss_fn, loaders: Loaders, ctx: FitContext, options: StepOptions) -> dict[str, Any]:
    config, epoch = ctx.config, state.epoch
    if config.freeze and config.unfreeze_at and epoch + 1 >= config.unfreeze_at:
        unfreeze_all(unwrap(state.model))
    start_step = state.step_in_epoch
    if start_step == 0:  # model-side randomness seeded per epoch so that resume is exact
        torch.manual_seed(config.seed * 1_000_003 + epoch)
    loaders.train.sampler.set_epoch(epoch, skip=start_step * config.batch_size)
    loss_fn.set_epoch(epoch)
    set_train_mode(state.model)
    progress = Progress(len(loaders.train.sampler), description=f"epoch {epoch + 1}/{config.epochs}",
                        enabled=config.progress and ctx.dist_info.is_main, every=config.progress_every)
    lr, start = current_lr(state.optimizer), time.perf_counter()
    try:
        train_stats = train_one_epoch(state.model, loaders.train, loss_fn, state.optimizer, state.scheduler,
                                      ctx.accel, options, epoch=epoch, progress=progress, start_step=start_step)
    finally:
        progress.close()
    row = {"epoch": epoch + 1, "train_loss": train_stats["train_loss"], "lr": lr,
           "img_per_s": train_stats["img_per_s"]}
    if loaders.val is not None:
        row.update(_evaluate(state.eval_model(), loaders.val, loss_fn, ctx, prefix="val_"))
    row["time_s"] = round(time.perf_counter() - start, 2)
    return row


def _evaluate(model: torch.nn.Module, loader, loss_fn, ctx: FitContext, *, prefix: str) -> dict[str, float]:
    probs, targets, loss = predict_probabilities(model, loader, ctx.accel, loss_fn,
                                                 to_probabilities=ctx.to_probabilities)
    return {f"{prefix}loss": loss, **task_metrics(ctx.tasks, probs, targets, prefix=prefix)}


def _after_epoch(state: TrainState, row: dict, ctx: FitContext, writer) -> None:
    config = ctx.config
    state.epoch, state.step_in_epoch = row["epoch"], 0
    metric = row.get(config.select_metric)
    improved = metric is None or state.is_improvement(metric, lower_is_better=config.select_metric == "val_loss")
    if improved:
        state.best_metric, state.best_epoch = metric, state.epoch
    _save(state, "last", ctx)
    if improved:
        _save(state, "best", ctx)
    if config.save_every and state.epoch % config.save_every == 0:
        _save(state, f"epoch{state.epoch:04d}", ctx)
    state.history.append(row)
    if ctx.dist_info.is_main:
        write_metrics(ctx.paths.metrics, state.history)
        for key, value in row.items():
            if key != "epoch":
                writer.add_scalar(key, value, state.epoch)
        _write_summary(state, config, ctx.paths, "running")
    log.info(summary_line(row, epochs=config.epochs) + ("  *best*" if improved else ""))


def _save(state: TrainState, name: str, ctx: FitContext, *, interrupted: bool = False) -> None:
    if not ctx.dist_info.is_main:
        return
    weights = state.eval_model().state_dict() if state.ema is not None else None
    save_checkpoint(ctx.paths.checkpoint(name), {
        **state.state_dict(), "eval_weights": weights, "config": ctx.config.to_dict(),
        "data_spec": ctx.spec.to_dict(), "provenance": provenance(), "model_name": ctx.config.model,
        "interrupted": interrupted})


def _tensorboard(paths: RunPaths):
    from torch.utils.tensorboard import SummaryWriter  # slow import, only when training

    return SummaryWriter(str(paths.tensorboard))


def _write_summary(state: TrainState, config: Config, paths: RunPaths, status: str,
                   test_metrics: dict | None = None) -> None:
    elapsed = sum(row.get("time_s", 0.0) for row in state.history)
    write_json(paths.summary, {
        "name": paths.root.name, "model": config.model, "data": config.data, "status": status,
        "epochs_done": state.epoch, "epochs": config.epochs, "select_metric": config.select_metric,
        "best_metric": state.best_metric, "best_epoch": state.best_epoch, "elapsed_s": round(elapsed, 1),
        "test": test_metrics})


def _finish(state: TrainState, loss_fn, loaders: Loaders, ctx: FitContext, status: str) -> Run:
    test_metrics = None
    if loaders.test is not None and status == "finished" and ctx.paths.checkpoint("best").exists():
        model = unwrap(state.eval_model())
        checkpoint = load_checkpoint(ctx.paths.checkpoint("best"))
        model.load_state_dict(evaluation_weights(checkpoint))
        test_metrics = _evaluate(model, loaders.test, loss_fn, ctx, prefix="test_")
        log.info("test (best checkpoint, epoch %s): %s", state.best_epoch,
                 "  ".join(f"{k} {v:.4f}" for k, v in test_metrics.items()))
    if ctx.dist_info.is_main:
        _write_summary(state, ctx.config, ctx.paths, status, test_metrics)
    log.info("run folder: %s", ctx.paths.root)
    return Run(ctx.paths.root, ctx.config, state.history, state.best_metric, state.best_epoch, test_metrics, status)
