"""From a config to validated splits, classes, preprocessing settings and data loaders."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from winnow.config import Config
from winnow.data.augment_policy import preset_name, resolve_augment
from winnow.data.batch_augment import keep_uint8, uses_batch_augment
from winnow.data.cache import DecodedCache, cache_bytes
from winnow.data.dataset import ImageDataset
from winnow.data.loader_workers import resolve_workers
from winnow.data.preprocess import Preprocess
from winnow.data.sample_weights import sample_weights
from winnow.data.samplers import (AUTO, IMBALANCE_THRESHOLD, build_sampler, class_imbalance, describe_mix,
                                  resolve_sampler)
from winnow.data.sources import Samples
from winnow.data.splits import assign_splits, check_groups_disjoint
from winnow.data.transforms import channel_stats, eval_transform, imagenet_stats, train_transform
from winnow.data.validation import ScanReport, bad_input_message, check_labels, log_decode_notes, scan
from winnow.runs.layout import is_pretrain_run
from winnow.tasks.spec import TaskSpec, build_tasks, encode_targets, task_entries, task_targets

log = logging.getLogger("winnow")
STATS_SAMPLE = 256
FULL_VERIFY_MAX_IMAGES = 50_000  # verify=auto decodes every file up to this many images


@dataclass
class DataSpec:
    """What a model needs to read images like its training data (saved as preprocessing.json)."""

    classes: list[str]
    in_chans: int
    img_size: int
    fill: int
    autolevel: bool
    automask: bool
    mean: list[float]
    std: list[float]
    tasks: list[dict] = field(default_factory=list)

    def preprocess(self) -> Preprocess:
        return Preprocess(self.img_size, self.in_chans, self.fill, self.autolevel, self.automask)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_samples(config: Config) -> Samples:
    if not config.data:
        raise ValueError("no training data: pass DATA (a folder or a CSV manifest) or set `data` in the config")
    return assign_splits(config.data, val=config.val, test=config.test, val_fraction=config.val_fraction,
                         test_fraction=config.test_fraction,
                         seed=config.seed if config.split_seed is None else config.split_seed,
                         unlabelled=config.unlabeled, positive_class=config.positive_class)


def validate_samples(samples: Samples, config: Config) -> tuple[Samples, list[tuple[str, str]], float]:
    """Scan every file (`scan_or_stop`), check labels and groups. Returns good samples, bad list, gray share."""
    report = scan_or_stop(samples, config)
    good = samples.subset(report.good)
    for entry in task_entries(config):
        check_labels(good, column=entry["column"], multilabel=entry["head"] == "multilabel")
    check_groups_disjoint(good)
    return good, report.bad, report.grayscale_share()


def scan_or_stop(samples: Samples, config: Config) -> ScanReport:
    """Scan every file as `config.verify` says; bad files stop here unless `skip_bad` (then they are logged).

    `verify=full` (and `auto` up to FULL_VERIFY_MAX_IMAGES images) decodes every file, so a
    truncated file cannot stop training mid-epoch; `header` only reads headers.
    """
    full = config.verify == "full" or config.verify == "auto" and len(samples) <= FULL_VERIFY_MAX_IMAGES
    report = scan(samples, max_pixels=config.max_image_pixels, full=full)
    if report.bad and not config.skip_bad:
        raise ValueError(bad_input_message(report))
    if report.bad:
        log.warning("skipping %s", report.summary())
    log_decode_notes(report.decode)
    return report


def build_spec(samples: Samples, config: Config, *, grayscale_share: float) -> DataSpec:
    """Tasks and classes from train, channel count from the data, normalisation stats."""
    train = samples.where_split("train")
    tasks = build_tasks(config, train.column)
    return image_spec(train.paths, config, grayscale_share=grayscale_share, classes=tasks[0].head.classes,
                      tasks=[t.to_dict() for t in tasks])


def image_spec(train_paths: list[str], config: Config, *, grayscale_share: float, classes: list[str] = (),
               tasks: list[dict] = ()) -> DataSpec:
    """Channel count from the data and normalisation stats of `train_paths` (also for unlabelled images)."""
    in_chans = config.in_chans if config.in_chans != "auto" else (1 if grayscale_share >= 0.9 else 3)
    spec = DataSpec(list(classes), in_chans, config.img_size, config.fill, config.autolevel,
                    config.automask, [0.0] * in_chans, [1.0] * in_chans, list(tasks))
    mode = config.normalize
    if mode == "auto":
        # hub and file weights expect ImageNet statistics; a `winnow pretrain` encoder was trained on
        # dataset-normalised images
        mode = "imagenet" if config.pretrained and not is_pretrain_run(config.pretrained) else "dataset"
    if mode == "imagenet":  # pretrained weights expect these
        spec.mean, spec.std = imagenet_stats(in_chans)
    elif mode == "dataset":
        spec.mean, spec.std = _dataset_stats(train_paths, spec.preprocess())
    return spec


def _dataset_stats(paths: list[str], preprocess: Preprocess) -> tuple[list[float], list[float]]:
    step = max(1, len(paths) // STATS_SAMPLE)
    dataset = ImageDataset(paths[::step], [0] * len(paths[::step]), preprocess, lambda x: x)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return channel_stats(images)


def cache_folder(config: Config, *, out: str | Path | None = None) -> Path:
    """Where decoded caches live: `cache_dir`, else `.cache` in the runs folder (`out`; default: `config.out`)."""
    return Path(config.cache_dir) if config.cache_dir else Path(out if out is not None else config.out) / ".cache"


def use_cache(config: Config, n_images: int, preprocess: Preprocess) -> bool:
    """`cache` true/false as set; None means on when the decoded set fits the memory budget."""
    if config.cache is not None:
        return config.cache
    return cache_bytes(n_images, preprocess) <= config.cache_memory_mb * 2**20


def make_dataset(samples: Samples, spec: DataSpec, config: Config, tasks: list[TaskSpec], *, train: bool,
                 cache_dir: Path | None) -> ImageDataset:
    preprocess = spec.preprocess()
    if train:
        config = resolve_augmentation(config, tasks, samples)  # a no-op when the trainer resolved it already
        # uint8 images, augmented as whole batches on the device (`winnow.data.batch_augment`); with
        # RandAugment, per image here
        transform = keep_uint8 if uses_batch_augment(config) else train_transform(
            spec.mean, spec.std, fill=config.fill, hflip=config.hflip, vflip=config.vflip,
            rotate=config.rotate, scale_jitter=config.scale_jitter, brightness=config.brightness,
            contrast=config.contrast, randaugment=config.randaugment, random_erasing=config.random_erasing)
    else:
        transform = eval_transform(spec.mean, spec.std)
    cache = None
    if cache_dir is not None and use_cache(config, len(samples), preprocess):
        cache = DecodedCache(cache_dir, samples.paths, preprocess)
    weights = sample_weights(samples) if train else None  # val and test are scored unweighted
    return ImageDataset(samples.paths, encode_targets(tasks, samples.column), preprocess, transform, cache=cache,
                        weights=weights)


def sampling_targets(tasks: list[TaskSpec], samples: Samples) -> list[int]:
    """Class index per image of `samples` that samplers balance: the first task's (multi-label: each image's
    rarest label)."""
    return tasks[0].head.sampling_targets(task_targets(tasks, encode_targets(tasks, samples.column), tasks[0]))


def resolve_augmentation(config: Config, tasks: list[TaskSpec], train: Samples) -> Config:
    """`config` with `rotate`, `scale_jitter`, `brightness` and `contrast` set: `augment`'s preset for the
    training split `train` where the config leaves them unset (`winnow.data.augment_policy`)."""
    targets, num_classes = sampling_targets(tasks, train), len(tasks[0].head.classes)
    values = resolve_augment(config, targets, num_classes)
    if config.augment == "auto" and any(getattr(config, key) is None for key in values):
        log.info("augment auto: %s (class shares %.2f from uniform; standard from %.2f)",
                 preset_name("auto", targets, num_classes), class_imbalance(targets, num_classes), IMBALANCE_THRESHOLD)
    return config.replace(**values)


def train_loader(dataset: ImageDataset, config: Config, tasks: list[TaskSpec], *, rank: int = 0,
                 world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """Loader over an `EpochSampler` (call `loader.sampler.set_epoch(e)` each epoch).

    Samplers balance the first task's classes (multi-label: each image's rarest label).
    """
    head = tasks[0].head
    classes = head.classes
    targets = head.sampling_targets(task_targets(tasks, dataset.targets, tasks[0]))
    sampler = build_sampler(config.sampler, targets, len(classes), batch_size=config.batch_size,
                            seed=config.seed, params=config.sampler_params, switch_epoch=config.sampler_epoch,
                            rank=rank, world_size=world_size)
    if config.sampler == AUTO:
        log.info("sampler auto: %s (class shares %.2f from uniform; sqrt from %.2f)",
                 resolve_sampler(AUTO, targets, len(classes)), class_imbalance(targets, len(classes)),
                 IMBALANCE_THRESHOLD)
    log.info("%s", describe_mix(sampler, 0, classes=classes))
    if config.sampler_epoch and config.sampler_epoch > 1:
        log.info("%s", describe_mix(sampler, config.sampler_epoch - 1, classes=classes))
    return make_loader(dataset, config, sampler=sampler, pin_memory=pin_memory, drop_last=len(dataset) > config.batch_size)


def eval_loader(dataset: ImageDataset, config: Config, *, pin_memory: bool = False, rank: int = 0,
                world_size: int = 1) -> DataLoader:
    """Loader over every image of `dataset` in order, or over one rank's shard of it.

    With `world_size` > 1, rank r reads images r, r + world_size, r + 2 * world_size...: the shards
    are disjoint, cover every image once and are not padded (they differ in length by at most one),
    so metrics over the gathered shards count each image once.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
    shard = range(rank, len(dataset), world_size) if world_size > 1 else None
    return make_loader(dataset, config, sampler=shard, pin_memory=pin_memory, drop_last=False)


def make_loader(dataset: ImageDataset, config: Config, *, sampler, pin_memory: bool, drop_last: bool) -> DataLoader:
    """A DataLoader with the config's batch size and workers over `sampler`'s keys (indices or (index, seed)).

    `pin_memory` is set for a CUDA model, which also decides what `workers: auto` means.
    """
    workers = resolve_workers(config.workers, cuda=pin_memory)
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, shuffle=False,
                      num_workers=workers, pin_memory=pin_memory, drop_last=drop_last,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)
