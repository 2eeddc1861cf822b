"""Unlabelled images for pretraining: scan, val hold-out, DataSpec and loaders (winnow.data's pieces)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader

from winnow.config import Config
from winnow.data.cache import DecodedCache
from winnow.data.dataset import ImageDataset
from winnow.data.prepare import DataSpec, cache_folder, image_spec, make_loader, scan_or_stop, use_cache
from winnow.data.samplers import build_sampler
from winnow.data.sources import Samples
from winnow.data.splits import load_splits, save_splits
from winnow.data.unlabelled import hold_out_val, read_unlabelled
from winnow.data.validation import write_bad_files
from winnow.pretraining.methods import Method, method_params
from winnow.runs.files import read_json, write_json
from winnow.runs.layout import RunPaths

log = logging.getLogger("winnow")
VAL_SEED = 7_919  # val views are drawn with fixed seeds, so that val_loss compares epochs


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader | None


def prepare_images(config: Config, paths: RunPaths, *, resumed: bool) -> tuple[Samples, DataSpec]:
    """Images (scanned; bad ones stop the run unless skip_bad), the val hold-out and the DataSpec, saved in the run."""
    if resumed and paths.preprocessing.is_file() and paths.splits.is_file():
        return load_splits(paths.splits), DataSpec(**read_json(paths.preprocessing, what="preprocessing"))
    samples = read_unlabelled(config.data)
    report = scan_or_stop(samples, config)
    samples = hold_out_val(samples.subset(report.good), config.val_fraction, seed=config.seed)
    spec = image_spec(samples.where_split("train").paths, config, grayscale_share=report.grayscale_share())
    save_splits(samples, paths.splits)
    if report.bad:
        write_bad_files(report.bad, paths.bad_files)
    write_json(paths.preprocessing, spec.to_dict())  # last: a resume takes the saved data only once it exists
    counts = {split: len(samples.where_split(split)) for split in ("train", "val")}
    log.info("data: %d unlabelled images %s, in_chans=%d", len(samples), counts, spec.in_chans)
    return samples, spec


def build_loaders(samples: Samples, spec: DataSpec, config: Config, method: Method, *, pin_memory: bool) -> Loaders:
    """A seeded random-order training loader (resumable mid-epoch) and a val loader with fixed view seeds."""
    cache_dir = cache_folder(config)
    params = method_params(config.pretrain_method, config.pretrain_params)
    train = _dataset(samples.where_split("train"), spec, config, method.train_views(spec.mean, spec.std, config, params),
                     cache_dir)
    if len(train) < 2:
        raise ValueError(f"pretraining needs at least 2 training images, got {len(train)}; add images to IMAGES")
    sampler = build_sampler("random", [0] * len(train), 1, batch_size=config.batch_size, seed=config.seed)
    loaders = Loaders(make_loader(train, config, sampler=sampler, pin_memory=pin_memory,
                                  drop_last=len(train) > config.batch_size), None)
    val_samples = samples.where_split("val")
    if len(val_samples):
        val = _dataset(val_samples, spec, config, method.val_views(spec.mean, spec.std, config, params), cache_dir)
        keys = [(i, VAL_SEED + i) for i in range(len(val))]
        loaders.val = make_loader(val, config, sampler=keys, pin_memory=pin_memory, drop_last=False)
    return loaders


def _dataset(samples: Samples, spec: DataSpec, config: Config, transform, cache_dir: Path) -> ImageDataset:
    preprocess = spec.preprocess()
    cache = DecodedCache(cache_dir, samples.paths, preprocess) if use_cache(config, len(samples), preprocess) else None
    return ImageDataset(samples.paths, [-1] * len(samples), preprocess, transform, cache=cache)
