"""`train(config) -> Run`: data, model, loss, optimiser, loop, save; and `--resume`."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from winnow.config import Config, save_yaml, tta_views
from winnow.data.prepare import (DataSpec, build_spec, cache_folder, eval_loader, make_dataset, resolve_augmentation,
                                 resolve_samples, train_loader, validate_samples)
from winnow.data.batch_augment import BatchAugment, batch_augmentation
from winnow.data.loader_workers import resolve_workers
from winnow.data.sources import Samples
from winnow.data.splits import load_splits, save_splits
from winnow.data.validation import write_bad_files
from winnow.data.views import view_ops
from winnow.losses import create_loss, unsynced_state
from winnow.models.embedding import embedding_size
from winnow.models.freezing import apply_freeze, set_train_mode, trainable_count, unfreeze_all
from winnow.models.registry import create_model
from winnow.runs.atomic import FileWriteError
from winnow.runs.files import read_json, write_json, write_metrics
from winnow.runs.layout import PROFILE_FILE, RunPaths
from winnow.runs.provenance import provenance
from winnow.tasks.outputs import MultiTaskLoss, probabilities, task_metrics
from winnow.tasks.spec import TaskSpec, build_tasks, model_outputs, task_targets
from winnow.training.callbacks import EpochCallback, EpochEnd, StopTraining
from winnow.training.checkpoint import evaluation_weights, load_checkpoint, save_checkpoint
from winnow.training.device import Accelerator, make_accelerator
from winnow.training.distributed import (DistInfo, all_reduce, broadcast_object, gather_predictions, init_distributed,
                                         sync_module)
from winnow.training.engine import (NonFiniteLossError, StepOptions, TrainingInterrupted, predict_probabilities,
                                    train_one_epoch)
from winnow.training.mixing import BatchMixer
from winnow.training.optim import create_optimizer, create_schedule, current_lr
from winnow.training.profiling import NULL_CLOCK, NullClock, StepClock, format_profile, profile_report
from winnow.training.progress import Progress, summary_line
from winnow.training.progressive_resize import resize_schedule
from winnow.training.run_folder import open_run, restore
from winnow.training.state import TrainState, unwrap
from winnow.training.swa import SwaSchedule, WeightAverage, swa_summary

log = logging.getLogger("winnow")


@dataclass
class Run:
    """A finished (or stopped) training run.

    Under torchrun every process returns the same Run; `rank` says which process this is
    (only rank 0 writes files, so only rank 0 should print).
    """

    path: Path
    config: Config
    metrics: list[dict]
    best_metric: float | None
    best_epoch: int | None
    test_metrics: dict[str, float] | None
    status: str
    rank: int = 0
    swa: dict | None = None  # summary.json's record of checkpoints/swa.pt (swa_epochs runs)


@dataclass
class Loaders:
    train: Any
    val: Any | None
    test: Any | None


def train(config: Config, *, resume: str | Path | None = None, overrides: dict | None = None,
          callbacks: Sequence[EpochCallback] = ()) -> Run:
    """Train a classifier as configured, or continue the run folder `resume`.

    Under torchrun each process calls this; they share one run folder, which rank 0 alone writes.
    `callbacks` are called with an `EpochEnd` after each epoch is saved; one that raises
    `StopTraining` ends the run there with the status it names (`winnow.training.callbacks`).

    Raises:
        ValueError: Bad settings or data, or a folder that cannot be resumed.
        FileWriteError: A file could not be written (disk full...); the message says how to go on.
    """
    if config is not None and config.pretrain_method:
        raise ValueError(f"pretrain_method is {config.pretrain_method!r}: it is a setting of `winnow pretrain`, not of "
                         "train; pretrain with `winnow pretrain IMAGES --method ...`, or remove pretrain_method")
    dist_info = init_distributed()
    config, paths, from_checkpoint = open_run(config, resume, overrides or {}, dist_info)
    _seed_everything(config.seed)
    accel = make_accelerator(config.device, config.amp, config.channels_last, dist_info)
    clock = StepClock(accel.device) if config.profile else NULL_CLOCK  # setup is timed from here
    samples, spec = _prepare_data(config, paths, resumed=resume is not None, dist_info=dist_info)
    tasks = build_tasks(config, samples.where_split("train").column)
    config = _resolve_augmentation(config, tasks, samples.where_split("train"), paths, dist_info)
    loaders = _build_loaders(samples, spec, config, tasks, accel, dist_info)
    # Seeded again so that the initial weights do not depend on what data preparation drew: a run
    # killed before its first checkpoint restarts from the same weights.
    _seed_everything(config.seed)
    model = _build_model(config, tasks, spec, accel, dist_info)
    loss_fn = _build_loss(config, tasks, loaders.train.dataset.targets,
                          embedding_size=embedding_size(unwrap(model))).to(accel.device)
    _check_loss_fits_run(config, loss_fn, dist_info)
    state = _build_state(model, loss_fn, config, accel,
                         updates_per_epoch=math.ceil(len(loaders.train) / config.accumulate))
    mixer = BatchMixer(tasks, mixup=config.mixup, cutmix=config.cutmix, prob=config.mix_prob) \
        if config.mixup or config.cutmix else None
    if mixer is not None and loaders.train.dataset.weights is not None:
        raise ValueError("the training data has a `weight` column, which mixup/cutmix do not support yet; "
                         "set mixup: 0 and cutmix: 0, or drop the column")
    context = FitContext(config, tasks, accel, paths, spec, dist_info, mixer, callbacks=tuple(callbacks), clock=clock,
                         augment=_batch_augment(config, spec, accel, dist_info))
    try:
        if from_checkpoint:
            restore(state, paths, dist_info, save_every=config.save_every)
        status = _fit(state, loss_fn, loaders, context)
        return _finish(state, loss_fn, loaders, context, status)
    except FileWriteError as error:
        raise error.followed_by(f", then resume with `winnow train --resume {paths.root}`") from error


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _prepare_data(config: Config, paths: RunPaths, *, resumed: bool,
                  dist_info: DistInfo) -> tuple[Samples, DataSpec]:
    """Splits (new or saved), file scan, classes and normalisation."""
    if resumed and paths.preprocessing.is_file() and paths.splits.is_file():
        return load_splits(paths.splits), DataSpec(**read_json(paths.preprocessing, what="preprocessing"))
    samples, bad, grayscale_share = validate_samples(resolve_samples(config), config)
    spec = build_spec(samples, config, grayscale_share=grayscale_share)
    if dist_info.is_main:
        save_splits(samples, paths.splits)
        write_json(paths.classes, spec.classes)
        if bad:
            write_bad_files(bad, paths.bad_files)
        # last: a resume takes the saved data only once this file exists
        write_json(paths.preprocessing, spec.to_dict())
    counts = {split: len(samples.where_split(split)) for split in ("train", "val", "test")}
    log.info("data: %s images %s, %d classes, in_chans=%d", len(samples), counts, len(spec.classes), spec.in_chans)
    return samples, spec


def _resolve_augmentation(config: Config, tasks: list[TaskSpec], train: Samples, paths: RunPaths,
                          dist_info: DistInfo) -> Config:
    """The config with its augmentation values resolved from the training split, saved in config.yaml."""
    resolved = resolve_augmentation(config, tasks, train)
    if resolved != config and dist_info.is_main:
        save_yaml(resolved, paths.config, extra=provenance())
    return resolved


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
    evaluated: dict[str, int] = field(default_factory=dict)  # images scored by the last val / test pass
    swa: dict | None = None  # the record of swa.pt once it is saved
    callbacks: tuple[EpochCallback, ...] = ()
    val_predictions: tuple[Any, Any] | None = None  # (probabilities, targets) of the last val pass
    clock: StepClock | NullClock = NULL_CLOCK  # --profile's timer of the run's phases
    augment: BatchAugment | None = None  # training augmentation of whole batches on the device

    def to_probabilities(self, logits):
        return probabilities(self.tasks, logits)


def _build_loaders(samples: Samples, spec: DataSpec, config: Config, tasks: list[TaskSpec],
                   accel: Accelerator, dist_info: DistInfo) -> Loaders:
    cache_dir = cache_folder(config)
    split_loader = {}
    for split in ("val", "test"):
        subset = samples.where_split(split)
        dataset = make_dataset(subset, spec, config, tasks, train=False, cache_dir=cache_dir)
        # each rank scores its own shard (all GPUs work, and no rank waits idle for a collective
        # timeout while rank 0 scores a large split); _evaluate gathers them
        split_loader[split] = eval_loader(dataset, config, pin_memory=accel.is_cuda, rank=dist_info.rank,
                                          world_size=dist_info.world_size) if len(subset) else None
    train_set = make_dataset(samples.where_split("train"), spec, config, tasks, train=True, cache_dir=cache_dir)
    loader = train_loader(train_set, config, tasks, rank=dist_info.rank, world_size=dist_info.world_size,
                          pin_memory=accel.is_cuda)
    return Loaders(loader, split_loader["val"], split_loader["test"])


def _batch_augment(config: Config, spec: DataSpec, accel: Accelerator, dist_info: DistInfo) -> BatchAugment | None:
    """The on-device augmentation of training batches (None: the per-image pipeline, for RandAugment)."""
    augment = batch_augmentation(config, spec.mean, spec.std, rank=dist_info.rank)
    return augment.to(accel.device) if augment is not None else None


def _build_model(config: Config, tasks: list[TaskSpec], spec: DataSpec, accel: Accelerator,
                 dist_info: DistInfo) -> torch.nn.Module:
    model = create_model(config.model, num_classes=model_outputs(tasks), in_chans=spec.in_chans, drop_rate=config.drop_rate,
                         pretrained=config.pretrained, stem=config.stem, embedding_dim=config.embedding_dim)
    model = model.to(accel.device)
    if accel.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist_info.enabled:
        model = DistributedDataParallel(model, device_ids=[accel.device.index] if accel.is_cuda else None)
    if config.compile:
        model = torch.compile(model)
    return model


def _build_loss(config: Config, tasks: list[TaskSpec], train_targets: list, *,
                embedding_size: int) -> torch.nn.Module:
    """One registry loss per task (weights from that task's training class counts).

    `embedding_size` is D of the model's embeddings, for the losses on embeddings.
    """
    weights_epoch = config.class_weights_epoch - 1 if config.class_weights_epoch else None
    losses = {}
    for task in tasks:
        counts = task.head.class_counts(task_targets(tasks, train_targets, task))
        losses[task.name] = create_loss(task.loss, params=task.loss_params, class_counts=counts,
                                        class_weights=task.class_weights, class_weights_epoch=weights_epoch,
                                        effective_beta=config.effective_beta, label_smoothing=config.label_smoothing,
                                        embedding_size=embedding_size)
    if len(tasks) == 1:
        return losses[tasks[0].name]
    for task in tasks:
        if losses[task.name].needs_embeddings:
            raise ValueError(f"task {task.name!r}: loss {task.loss!r} works on embeddings, which multitask runs do not "
                             "pass to their task losses yet; use it in a single-task run (head: multiclass) or "
                             "pick a loss on logits for this task")
    return MultiTaskLoss(losses, {t.name: t.weight for t in tasks})


def _check_loss_fits_run(config: Config, loss_fn: torch.nn.Module, dist_info: DistInfo) -> None:
    """Refuse what losses on embeddings cannot do yet, naming the fix."""
    if getattr(loss_fn, "needs_embeddings", False) and config.compile:
        raise ValueError(f"loss {config.loss!r} reads the model's embeddings during its forward pass, which a "
                         "compiled model does not expose; set compile: false")
    unsynced = unsynced_state(loss_fn)
    if dist_info.enabled and unsynced:
        raise ValueError(f"loss {config.loss!r} has state of its own ({', '.join(unsynced)}) that "
                         "torchrun processes would not keep in sync; train it in one process, or use a loss "
                         "without state (triplet, multi_similarity, supcon, contrastive)")


def _build_state(model: torch.nn.Module, loss_fn: torch.nn.Module, config: Config, accel: Accelerator, *,
                 updates_per_epoch: int) -> TrainState:
    # The optimiser sees every parameter, so unfreezing later needs no rebuild.
    optimizer = create_optimizer(unwrap(model), config, loss=loss_fn)
    frozen = apply_freeze(unwrap(model), config.freeze)
    if frozen:
        log.info("froze %d tensors (%s); %d parameters trainable", frozen, config.freeze, trainable_count(model))
    scheduler = create_schedule(optimizer, config, updates_per_epoch=updates_per_epoch)
    swa = None
    if config.swa_epochs:
        swa = WeightAverage(model, epochs=config.epochs, swa_epochs=config.swa_epochs)
        if config.swa_lr is not None:
            scheduler = SwaSchedule(optimizer, scheduler, lr=config.swa_lr,
                                    start_update=(swa.first_epoch - 1) * updates_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if accel.amp_dtype == torch.float16 else None
    # the decay warms up (1 - (1 + step)^(-2/3), capped at ema_decay): a fixed 0.999 would keep the
    # random initial weights in the average of a run of a few hundred steps
    ema = ModelEmaV3(unwrap(model), decay=config.ema_decay, use_warmup=True) if config.ema else None
    return TrainState(model, optimizer, scheduler, scaler, ema, swa=swa, loss=loss_fn)


def _fit(state: TrainState, loss_fn, loaders: Loaders, ctx: FitContext) -> str:
    """Epoch loop; returns the run status (finished, interrupted, diverged, or a callback's)."""
    writer = _tensorboard(ctx.paths) if ctx.dist_info.is_main else None
    resize = resize_schedule(ctx.config)
    if resize is not None:
        log.info("progressive resizing: training image side per epoch %s", resize.sizes())
    options = StepOptions(ctx.config.accumulate, ctx.config.grad_clip, state.scaler, state.ema, ctx.mixer,
                          clock=ctx.clock, augment=ctx.augment, resize=resize)
    ctx.clock.mark("setup")
    epoch_started = state.epoch
    try:
        while state.epoch < ctx.config.epochs:
            epoch_started = state.epoch
            row = _run_epoch(state, loss_fn, loaders, ctx, options)
            _after_epoch(state, row, ctx, writer)
            _call_back(state, row, ctx)
    except StopTraining as stop:
        log.info("training stopped after epoch %d of %d: %s (status %s)", state.epoch, ctx.config.epochs,
                 stop.reason or "asked by a callback", stop.status)
        return stop.status
    except (TrainingInterrupted, KeyboardInterrupt) as stop:
        # Ctrl-C in the training loop: resume continues at the next batch; in validation every
        # batch of the epoch was applied (the loader's length counts those after a mid-epoch
        # resume's skip); while saving, the epoch is complete and its row recorded.
        if isinstance(stop, TrainingInterrupted):
            steps = stop.steps_done
        elif state.epoch > epoch_started:
            steps = 0
        else:
            steps = state.step_in_epoch + len(loaders.train)
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
    loss_fn.train()  # a loss with state (center loss's centres) updates it in training mode only
    set_train_mode(state.model)
    progress = Progress(len(loaders.train.sampler), description=f"epoch {epoch + 1}/{config.epochs}",
                        enabled=config.progress and ctx.dist_info.is_main, every=config.progress_every)
    lr, start = current_lr(state.optimizer), time.perf_counter()
    try:
        train_stats = train_one_epoch(state.model, loaders.train, loss_fn, state.optimizer, state.scheduler,
                                      ctx.accel, options, epoch=epoch, progress=progress, start_step=start_step)
    finally:
        progress.close()
    info, device = ctx.dist_info, ctx.accel.device
    # every rank trained on as many images: the mean of the ranks' means is the global mean
    row = {"epoch": epoch + 1, "train_loss": all_reduce(train_stats["train_loss"], info, device), "lr": lr,
           "img_per_s": all_reduce(train_stats["img_per_s"], info, device, op="sum")}
    if loaders.val is not None:
        with ctx.clock.phase("evaluation"):
            metrics, ctx.evaluated["val"] = _evaluate(state.eval_model(), loaders.val, loss_fn, ctx, prefix="val_")
        row.update(metrics)
    row["time_s"] = round(time.perf_counter() - start, 2)
    # rank 0's row everywhere, so that every rank takes the same best-checkpoint decision
    return broadcast_object(row, info)


def _evaluate(model: torch.nn.Module, loader, loss_fn, ctx: FitContext, *,
              prefix: str, views: list | None = None) -> tuple[dict[str, float], int]:
    """Loss and metrics of `model` over a split, and the number of images scored.

    `views` (`winnow.data.views.view_ops`): probabilities averaged over these views of each image.

    Under torchrun each rank scores its shard with rank 0's weights and statistics; every rank
    gets the metrics of the whole split.
    """
    if ctx.dist_info.enabled:
        # DDP's forward broadcasts buffers, a collective that ranks with unequal shards would not all
        # reach; the bare module runs without it
        model = unwrap(model)
        sync_module(model, ctx.dist_info)
    loss_fn.eval()
    probs, targets, loss = predict_probabilities(model, loader, ctx.accel, loss_fn,
                                                 to_probabilities=ctx.to_probabilities, views=views)
    probs, targets, loss, count = gather_predictions(probs, targets, loss, ctx.dist_info)
    if prefix == "val_":  # for the epoch callbacks (e.g. an operating-point objective)
        ctx.val_predictions = (probs, targets)
    return {f"{prefix}loss": loss, **task_metrics(ctx.tasks, probs, targets, prefix=prefix)}, count


def _after_epoch(state: TrainState, row: dict, ctx: FitContext, writer) -> None:
    config = ctx.config
    state.epoch, state.step_in_epoch = row["epoch"], 0
    metric = row.get(config.select_metric)
    improved = metric is None or state.is_improvement(metric, lower_is_better=config.select_metric == "val_loss")
    if improved:
        state.best_metric, state.best_epoch = metric, state.epoch
    state.history.append(row)
    if state.swa is not None:
        state.swa.after_epoch(state.epoch)
    # last.pt first: it carries the history and the best epoch, and resume trusts it alone. A kill
    # after it loses nothing: resume rewrites metrics.jsonl from it and copies it to best.pt (or
    # epochNNNN.pt) when this epoch's copy is missing. A kill before it redoes the epoch.
    with ctx.clock.phase("checkpoint"):
        _save(state, "last", ctx)
        if improved:
            _save(state, "best", ctx)
        if config.save_every and state.epoch % config.save_every == 0:
            _save(state, f"epoch{state.epoch:04d}", ctx)
        if ctx.dist_info.is_main:
            write_metrics(ctx.paths.metrics, state.history)
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(key, value, state.epoch)
            _write_summary(state, ctx, "running")
    log.info(summary_line(row, epochs=config.epochs) + ("  *best*" if improved else ""))


def _call_back(state: TrainState, row: dict, ctx: FitContext) -> None:
    """Show the saved epoch to every callback (a StopTraining from one ends the loop)."""
    if not ctx.callbacks:
        return
    probs, targets = ctx.val_predictions or (None, None)
    head = ctx.tasks[0].head.kind if len(ctx.tasks) == 1 else "multitask"
    event = EpochEnd(state.epoch, ctx.config.epochs, dict(row), ctx.paths.root, list(ctx.tasks[0].head.classes), head,
                     probs, targets, state.best_metric, state.best_epoch)
    for callback in ctx.callbacks:
        callback(event)


def _save(state: TrainState, name: str, ctx: FitContext, *, interrupted: bool = False,
          eval_weights: dict | None = None) -> None:
    """Save the training state as checkpoints/NAME.pt; `eval_weights` (default: the EMA's) are what eval loads."""
    if not ctx.dist_info.is_main:
        return
    weights = eval_weights if eval_weights is not None else (
        state.eval_model().state_dict() if state.ema is not None else None)
    save_checkpoint(ctx.paths.checkpoint(name), {
        **state.state_dict(), "eval_weights": weights, "config": ctx.config.to_dict(),
        "data_spec": ctx.spec.to_dict(), "provenance": provenance(), "model_name": ctx.config.model,
        "interrupted": interrupted})


def _tensorboard(paths: RunPaths):
    from torch.utils.tensorboard import SummaryWriter  # slow import, only when training

    return SummaryWriter(str(paths.tensorboard))


def _write_summary(state: TrainState, ctx: FitContext, status: str, test_metrics: dict | None = None) -> None:
    config, paths = ctx.config, ctx.paths
    elapsed = sum(row.get("time_s", 0.0) for row in state.history)
    write_json(paths.summary, {
        "name": paths.root.name, "model": config.model, "data": config.data, "status": status,
        "epochs_done": state.epoch, "epochs": config.epochs, "select_metric": config.select_metric,
        "best_metric": state.best_metric, "best_epoch": state.best_epoch, "elapsed_s": round(elapsed, 1),
        "test": test_metrics, "images_evaluated": dict(ctx.evaluated), **({"swa": ctx.swa} if ctx.swa else {})})


def _finish(state: TrainState, loss_fn, loaders: Loaders, ctx: FitContext, status: str) -> Run:
    test_metrics = None
    info = ctx.dist_info
    if state.swa is not None and status == "finished":
        _finish_swa(state, loss_fn, loaders, ctx)
    has_best = broadcast_object(info.is_main and ctx.paths.checkpoint("best").exists(), info)
    if loaders.test is not None and status == "finished" and has_best:
        model = unwrap(state.eval_model())
        if info.is_main:  # _evaluate hands rank 0's weights to the other ranks
            model.load_state_dict(evaluation_weights(load_checkpoint(ctx.paths.checkpoint("best"))))
        with ctx.clock.phase("evaluation"):
            test_metrics, ctx.evaluated["test"] = _evaluate(model, loaders.test, loss_fn, ctx, prefix="test_",
                                                            views=view_ops(tta_views(ctx.config)))
        log.info("test (best checkpoint, epoch %s%s): %s", state.best_epoch,
                 "" if tta_views(ctx.config) == "none" else f", test-time views {tta_views(ctx.config)}",
                 "  ".join(f"{k} {v:.4f}" for k, v in test_metrics.items()))
    if info.is_main:
        _write_summary(state, ctx, status, test_metrics)
        _write_profile(ctx)
    log.info("run folder: %s", ctx.paths.root)
    return Run(ctx.paths.root, ctx.config, state.history, state.best_metric, state.best_epoch, test_metrics, status,
               rank=info.rank, swa=ctx.swa)


def _finish_swa(state: TrainState, loss_fn, loaders: Loaders, ctx: FitContext) -> None:
    """BatchNorm statistics of the weight average, its val metrics, and swa.pt (best.pt stays as it is)."""
    config = ctx.config
    loaders.train.sampler.set_epoch(config.epochs - 1)  # a whole epoch, drawn as the last one was
    torch.manual_seed(config.seed * 1_000_003 + config.epochs)  # the same statistics after a resume
    model = state.swa.finalize(loaders.train, ctx.accel)
    if model is None:
        log.warning("swa_epochs=%s but no epoch was averaged; no swa.pt", config.swa_epochs)
        return
    metrics = _evaluate(model, loaders.val, loss_fn, ctx, prefix="val_")[0] if loaders.val is not None else {}
    value, lower = metrics.get(config.select_metric), config.select_metric == "val_loss"
    better = None if value is None or state.best_metric is None else state.is_improvement(value, lower_is_better=lower)
    ctx.swa = swa_summary(state.swa, metrics, select_metric=config.select_metric, best_metric=state.best_metric,
                          better=better)
    _save(state, "swa", ctx, eval_weights=model.state_dict())
    epochs = state.swa.epochs_averaged
    log.info("swa.pt: average of epochs %d-%d (%d), %s %s; best.pt (epoch %s) %s%s", epochs[0], epochs[-1],
             len(epochs), config.select_metric, _fmt(value), state.best_epoch, _fmt(state.best_metric),
             "; swa.pt is better: evaluate it with --checkpoint swa (best.pt is kept)" if better else "")


def _write_profile(ctx: FitContext) -> None:
    """--profile: profile.json in the run folder and the table in the log."""
    if not isinstance(ctx.clock, StepClock):
        return
    report = profile_report(ctx.clock, workers=resolve_workers(ctx.config.workers, cuda=ctx.accel.is_cuda), threads=torch.get_num_threads(),
                            device=str(ctx.accel.device))
    write_json(ctx.paths.root / PROFILE_FILE, report)
    log.info(format_profile(report))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
