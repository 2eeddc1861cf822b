"""`ServedModel`: a loaded run that scores batches of decoded images, named by run and version.

It wraps winnow's `Predictor` (or its ONNX backend): the network, device and autocast of
`predict_probabilities`, then the run's calibration and decision rule from
`winnow.inference.postprocess` -- the decisions are the ones `winnow predict` writes, over the same
test-time views (the run's `tta`, e.g. flips: each view calibrated, then their probabilities averaged).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from winnow.data.transforms import eval_transform
from winnow.data.views import view_ops
from winnow.export.backend import load_backend
from winnow.inference.postprocess import decided_labels, softmax_logits, to_probabilities
from winnow.inference.predictor import ScoringModel
from winnow.inference.tta import merge_views
from winnow.training.engine import predict_probabilities

VERSION_CHARS = 12


def weights_version(path: Path) -> str:
    """First 12 hex digits of the SHA-256 of a weights file: names the model that answered."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:VERSION_CHARS]


class ServedModel:
    """A single-task run ready to score batches.

    Args:
        predictor: A loaded run (`winnow.load` / `load_backend`), single task, no reject option.
        name: Name in responses (default: the run folder's name).

    Raises:
        ValueError: A multi-task run, or a folder with a reject option (not served yet).
    """

    def __init__(self, predictor: ScoringModel, *, name: str | None = None) -> None:
        if len(predictor.tasks) > 1 or not hasattr(predictor, "model"):
            raise ValueError(f"{predictor.run_dir}: winnow serve takes single-task run folders for now; "
                             "serve a run (not an ensemble, head or multi-task folder)")
        self.predictor, self.head = predictor, predictor.head
        self.name = name or Path(predictor.run_dir).name
        self.version = weights_version(predictor.checkpoint_path)
        spec = predictor.spec
        self.preprocess, self.transform = spec.preprocess(), eval_transform(spec.mean, spec.std)
        self.input_shape = (spec.in_chans, spec.img_size, spec.img_size)
        self.views = view_ops(predictor.default_tta)  # what `winnow predict` scores with by default
        # images decoded for one model fit another only when this matches (checked by the batcher at a swap)
        self.input_key = (tuple(sorted(spec.preprocess().key().items())), tuple(spec.mean), tuple(spec.std))

    @classmethod
    def load(cls, run_dir: str | Path, *, checkpoint: str = "best", device: str = "auto",
             backend: str = "torch", name: str | None = None) -> ServedModel:
        """Load a run folder with its calibration.json and thresholds.json."""
        return cls(load_backend(run_dir, backend=backend, model_file=None, checkpoint=checkpoint, device=device),
                   name=name)

    @property
    def identity(self) -> dict[str, str]:
        return {"model": self.name, "version": self.version}

    def score(self, images: torch.Tensor) -> list[dict[str, Any]]:
        """Images `[B, C, S, S]` (normalised) -> per image its decision and class probabilities."""
        logits = np.stack([self._logits(view(images)) for view in self.views], axis=1)  # [B, V, K]
        views = to_probabilities(self.head, softmax_logits(self.head, logits), calibration=self.predictor.calibration)
        probs = merge_views(views, "mean", rows_sum_to_one=self.head.kind != "multilabel")
        labels = decided_labels(self.head, self.predictor.decision, probs)
        return [{"decision": label, "probabilities": dict(zip(self.head.classes, map(float, row))), **self.identity}
                for label, row in zip(labels, np.asarray(probs))]

    def _logits(self, images: torch.Tensor) -> np.ndarray:
        return np.asarray(predict_probabilities(self.predictor.model, [(images, torch.zeros(len(images)))],
                                                self.predictor.accel, to_probabilities=lambda raw: raw.float())[0])

    def warm_up(self, batch_size: int) -> None:
        """One batch of zeros through the model (first-call allocations, cuDNN autotuning) before serving."""
        self.score(torch.zeros((batch_size, *self.input_shape)))

    def release(self) -> None:
        """Drop the network (and the device memory it held) once no batch uses it any more."""
        self.predictor.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
