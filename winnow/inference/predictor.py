"""`winnow.load(run_dir).predict(images)`: batched inference with a run's preprocessing."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from winnow.config import read_saved
from winnow.data.dataset import ImageDataset
from winnow.data.prepare import DataSpec
from winnow.data.sources import IMAGE_SUFFIXES, Samples, read_manifest
from winnow.data.transforms import eval_transform
from winnow.data.validation import scan
from winnow.models.registry import create_model
from winnow.runs.atomic import atomic_write_text
from winnow.runs.layout import RunPaths, read_json
from winnow.training.checkpoint import load_checkpoint
from winnow.training.device import make_accelerator
from winnow.training.distributed import DistInfo
from winnow.training.engine import predict_probabilities

log = logging.getLogger("winnow")


@dataclass
class Predictions:
    """Predicted classes and probabilities `[N, K]` for the readable images; bad files listed apart."""

    paths: list[str]
    classes: list[str]
    probabilities: np.ndarray
    bad: list[tuple[str, str]] = field(default_factory=list)

    @property
    def predicted(self) -> list[str]:
        return [self.classes[i] for i in self.probabilities.argmax(axis=1)] if len(self.paths) else []

    def to_csv(self, path: str | Path) -> None:
        """Write path, predicted class and one `prob_<class>` column per class, atomically."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "predicted", *[f"prob_{name}" for name in self.classes]])
        for file, label, probs in zip(self.paths, self.predicted, self.probabilities):
            writer.writerow([file, label, *[f"{p:.6f}" for p in probs]])
        atomic_write_text(Path(path), buffer.getvalue())


def resolve_checkpoint(run_dir: Path, checkpoint: str) -> Path:
    if checkpoint in ("best", "last"):
        return RunPaths(run_dir).checkpoint(checkpoint)
    return Path(checkpoint)


def collect_images(inputs: list[str | Path]) -> list[str]:
    """Image paths from files, folders (searched recursively) and CSV manifests."""
    paths: list[str] = []
    for item in map(Path, inputs):
        if item.suffix.lower() == ".csv":
            paths += read_manifest(item).paths
        elif item.is_dir():
            paths += [str(p.resolve()) for p in sorted(item.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            paths.append(str(item.resolve()))
    if not paths:
        raise ValueError(f"no images found in {[str(i) for i in inputs]}; pass image files, folders or a CSV")
    return paths


class Predictor:
    """A trained model with its preprocessing, ready for inference."""

    def __init__(self, run_dir: str | Path, *, checkpoint: str = "best", device: str = "auto") -> None:
        self.run_dir = Path(run_dir)
        if not RunPaths(self.run_dir).preprocessing.exists():
            raise ValueError(f"{self.run_dir} is not a winnow run folder (no preprocessing.json); "
                             "pass the folder that `winnow train` printed")
        self.config = read_saved(RunPaths(self.run_dir).config)
        self.spec = DataSpec(**read_json(RunPaths(self.run_dir).preprocessing))
        self.accel = make_accelerator(device, self.config.amp, self.config.channels_last, DistInfo())
        state = load_checkpoint(resolve_checkpoint(self.run_dir, checkpoint))
        self.model = create_model(self.config.model, num_classes=len(self.spec.classes), in_chans=self.spec.in_chans)
        self.model.load_state_dict(state.get("eval_weights") or state["model"])
        self.model.to(self.accel.device).eval()

    @property
    def classes(self) -> list[str]:
        return self.spec.classes

    def predict(self, images: list[str | Path] | str | Path, *, batch_size: int = 64, workers: int = 0) -> Predictions:
        """Predict files, folders or manifests; unreadable files are listed in `Predictions.bad`."""
        paths = collect_images([images] if isinstance(images, (str, Path)) else list(images))
        report = scan(Samples(paths, [""] * len(paths), [None] * len(paths), [None] * len(paths)),
                      max_pixels=self.config.max_image_pixels)
        if report.bad:
            log.warning("predict: skipping %s", report.summary())
        good = [paths[i] for i in report.good]
        dataset = ImageDataset(good, [-1] * len(good), self.spec.preprocess(), eval_transform(self.spec.mean, self.spec.std))
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, pin_memory=self.accel.is_cuda)
        probs = predict_probabilities(self.model, loader, self.accel)[0] if good else np.zeros((0, len(self.classes)))
        return Predictions(good, self.classes, probs, report.bad)


def load(run_dir: str | Path, *, checkpoint: str = "best", device: str = "auto") -> Predictor:
    """Load a run folder for inference (`checkpoint`: best, last or a path)."""
    return Predictor(run_dir, checkpoint=checkpoint, device=device)
