"""Per-image reconstruction error of an autoencoder pretrain run (outliers reconstruct worse: the audit uses it),
with the encoder's pooled features of the same pass. Unreadable images are skipped and listed, as in every
scoring job."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from winnow.config import Config, read_saved
from winnow.data.dataset import ImageDataset
from winnow.data.prepare import DataSpec
from winnow.data.sources import Samples
from winnow.data.transforms import eval_transform
from winnow.data.unlabelled import read_unlabelled
from winnow.data.unreadable import NothingRead, skipping_loader
from winnow.data.validation import bad_summary, check_readable, scan
from winnow.pretraining.autoencoder import per_image_errors
from winnow.pretraining.trainer import build_pretrain_model
from winnow.runs.files import read_json
from winnow.runs.layout import RunPaths
from winnow.training.checkpoint import load_checkpoint
from winnow.training.device import make_accelerator
from winnow.training.distributed import DistInfo

log = logging.getLogger("winnow")


@dataclass
class Reconstructions:
    """What an autoencoder run makes of the images it could read.

    Attributes:
        errors: `[n]` mean squared error (normalised pixels) of each read image's reconstruction.
        embeddings: `[n, F]` float32 pooled features of the run's encoder for the same images.
        rows: Position of each read image in the input `[n]`.
        paths: The read images `[n]`.
        bad: `(path, reason)` of the images that could not be read (skipped; reasons as in bad_files.csv).
    """

    errors: np.ndarray
    embeddings: np.ndarray
    rows: list[int]
    paths: list[str]
    bad: list[tuple[str, str]] = field(default_factory=list)


def autoencoder_config(run: str | Path) -> Config:
    """The saved config of an autoencoder pretrain run.

    Raises:
        ValueError: Not a run folder, or not an autoencoder pretrain run.
    """
    paths = RunPaths(run)
    if not paths.config.is_file():
        raise ValueError(f"{run} is not a run folder (no {paths.config.name}); pass a `winnow pretrain` run folder")
    config = read_saved(paths.config)
    if config.pretrain_method != "autoencoder":
        raise ValueError(f"{run}: reconstruction errors need an autoencoder pretrain run, got pretrain_method "
                         f"{config.pretrain_method!r}; pretrain one with `winnow pretrain IMAGES --method autoencoder`")
    return config


def reconstruction_errors(run: str | Path, data: str | Path | list[str] | Samples, *, checkpoint: str = "last",
                          batch_size: int = 64, device: str = "auto") -> Reconstructions:
    """Reconstruction errors (and encoder features) of the images of `data` by the run's autoencoder.

    Args:
        run: a `winnow pretrain --method autoencoder` run folder.
        data: images (folders or manifests, read as `read_unlabelled` reads them, in that order) or Samples.
        checkpoint: which checkpoint of the run (last, best, epochNNNN).

    Raises:
        ValueError: `run` is not an autoencoder pretrain run, or no image can be read.
    """
    samples = data if isinstance(data, Samples) else read_unlabelled(data)
    return reconstruct(run, samples.paths, checkpoint=checkpoint, batch_size=batch_size, device=device)


def reconstruct(run: str | Path, paths: list[str], *, checkpoint: str = "last", batch_size: int = 64,
                device: str = "auto") -> Reconstructions:
    """`Reconstructions` of `paths` `[N]`: a header scan, then one loader pass that skips files failing to decode.

    Raises:
        ValueError: `run` is not an autoencoder pretrain run, or none of `paths` can be read.
    """
    config = autoencoder_config(run)
    spec = DataSpec(**read_json(RunPaths(run).preprocessing, what="preprocessing"))
    model = build_pretrain_model(config, spec)
    model.load_state_dict(load_checkpoint(RunPaths(run).checkpoint(checkpoint))["model"])
    report = scan(Samples(paths, [""] * len(paths), [None] * len(paths), [None] * len(paths)),
                  max_pixels=config.max_image_pixels)
    check_readable(len(paths), len(report.good), report.bad, strict=False)
    kept = [paths[i] for i in report.good]
    dataset = ImageDataset(kept, [-1] * len(kept), spec.preprocess(), eval_transform(spec.mean, spec.std),
                           read_hint="")
    try:
        errors, embeddings, rows, bad = _run(model, dataset, kept, batch_size=batch_size, device=device)
    except NothingRead as error:  # every file that passed the scan failed to decode
        errors, embeddings, rows, bad = np.zeros(0, np.float32), np.zeros((0, 0), np.float32), [], error.bad
    bad = report.bad + bad
    check_readable(len(paths), len(rows), bad, strict=False)
    if bad:
        log.warning("skipping %s", bad_summary(bad))
    rows = [report.good[row] for row in rows]
    return Reconstructions(errors, embeddings, rows, [paths[i] for i in rows], bad)


def _run(model: nn.Module, dataset: ImageDataset, paths: list[str], *, batch_size: int,
         device: str) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[str, str]]]:
    """Errors `[n]`, embeddings `[n, F]`, rows read and `(path, reason)` of the files that failed to decode."""
    accel = make_accelerator(device, "off", False, DistInfo())
    model = model.to(accel.device).eval()
    reads = skipping_loader(dataset, paths, batch_size=batch_size)
    errors, embeddings = [], []
    with torch.no_grad():
        for images, _ in reads:
            images = accel.to_device(images)
            pooled, reconstruction = model.embed_and_reconstruct(images)
            errors.append(per_image_errors((reconstruction, images)).cpu())
            embeddings.append(pooled.float().cpu())
    return torch.cat(errors).numpy(), torch.cat(embeddings).numpy(), reads.rows, reads.bad
