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
from winnow.tasks.outputs import probabilities
from winnow.tasks.spec import TaskSpec
from winnow.training.engine import predict_probabilities

log = logging.getLogger("winnow")


@dataclass
class Predictions:
    """Probabilities for the readable images; bad files listed apart.

    `probabilities` is `[N, K]` for one task, `{task: [N, K]}` for several.
    """

    paths: list[str]
    tasks: list[TaskSpec]
    probabilities: np.ndarray | dict[str, np.ndarray]
    bad: list[tuple[str, str]] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.tasks[0].head.classes

    @property
    def predicted(self) -> list[str] | dict[str, list[str]]:
        """Predicted labels (binary and multi-label heads apply their thresholds)."""
        if len(self.tasks) == 1:
            return self.tasks[0].head.predict(self.probabilities)
        return {t.name: t.head.predict(self.probabilities[t.name]) for t in self.tasks}

    def columns(self) -> list[tuple[str, list]]:
        """(header, values) pairs of the CSV after `path`."""
        columns = []
        for task in self.tasks:
            prefix = f"{task.name}_" if len(self.tasks) > 1 else ""
            probs = self.probabilities[task.name] if len(self.tasks) > 1 else self.probabilities
            columns.append((f"{prefix}predicted", task.head.predict(probs)))
            columns += [(f"{prefix}prob_{name}", [f"{p:.6f}" for p in probs[:, k]])
                        for k, name in enumerate(task.head.classes)]
        return columns

    def to_csv(self, path: str | Path) -> None:
        """Write path, predicted class and one `prob_<class>` column per class (per task), atomically."""
        columns = self.columns()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", *[header for header, _ in columns]])
        for i, file in enumerate(self.paths):
            writer.writerow([file, *[values[i] for _, values in columns]])
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
        self.tasks = [TaskSpec.from_saved(task) for task in self.spec.tasks]
        outputs = {t.name: t.head.num_outputs for t in self.tasks} if len(self.tasks) > 1 else self.tasks[0].head.num_outputs
        self.model = create_model(self.config.model, num_classes=outputs, in_chans=self.spec.in_chans,
                                  stem=self.config.stem)
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
        if not good:
            raise ValueError(f"none of the {len(paths)} images can be read: {report.summary()}")
        probs = predict_probabilities(self.model, loader, self.accel,
                                      to_probabilities=lambda logits: probabilities(self.tasks, logits))[0]
        return Predictions(good, self.tasks, probs, report.bad)


def load(run_dir: str | Path, *, checkpoint: str = "best", device: str = "auto") -> Predictor:
    """Load a run folder for inference (`checkpoint`: best, last or a path)."""
    return Predictor(run_dir, checkpoint=checkpoint, device=device)
