"""Per-image reconstruction error of an autoencoder pretrain run (outliers reconstruct worse: the audit uses it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from winnow.config import read_saved
from winnow.data.dataset import ImageDataset
from winnow.data.prepare import DataSpec
from winnow.data.sources import Samples
from winnow.data.transforms import eval_transform
from winnow.data.unlabelled import read_unlabelled
from winnow.pretraining.autoencoder import per_image_errors
from winnow.pretraining.trainer import build_pretrain_model
from winnow.runs.files import read_json
from winnow.runs.layout import RunPaths
from winnow.training.checkpoint import load_checkpoint
from winnow.training.device import make_accelerator
from winnow.training.distributed import DistInfo


def reconstruction_errors(run: str | Path, data: str | Path | list[str] | Samples, *, checkpoint: str = "last",
                          batch_size: int = 64, device: str = "auto") -> np.ndarray:
    """`[N]` mean squared error (normalised pixels) of each image's reconstruction by the run's autoencoder.

    Args:
        run: a `winnow pretrain --method autoencoder` run folder.
        data: images (folders or manifests, read as `read_unlabelled` reads them, in that order) or Samples.
        checkpoint: which checkpoint of the run (last, best, epochNNNN).

    Raises:
        ValueError: `run` is not an autoencoder pretrain run, or an image cannot be read.
    """
    paths = RunPaths(run)
    if not paths.config.is_file():
        raise ValueError(f"{run} is not a run folder (no {paths.config.name}); pass a `winnow pretrain` run folder")
    config = read_saved(paths.config)
    if config.pretrain_method != "autoencoder":
        raise ValueError(f"{run}: reconstruction errors need an autoencoder pretrain run, got pretrain_method "
                         f"{config.pretrain_method!r}; pretrain one with `winnow pretrain IMAGES --method autoencoder`")
    spec = DataSpec(**read_json(paths.preprocessing, what="preprocessing"))
    model = build_pretrain_model(config, spec)
    model.load_state_dict(load_checkpoint(paths.checkpoint(checkpoint))["model"])
    samples = data if isinstance(data, Samples) else read_unlabelled(data)
    dataset = ImageDataset(samples.paths, [-1] * len(samples), spec.preprocess(), eval_transform(spec.mean, spec.std))
    accel = make_accelerator(device, "off", False, DistInfo())
    model = model.to(accel.device).eval()
    errors = []
    with torch.no_grad():
        for images, _ in DataLoader(dataset, batch_size=batch_size):
            errors.append(per_image_errors(model(accel.to_device(images))).cpu())
    return torch.cat(errors).numpy() if errors else np.zeros(0, np.float32)
