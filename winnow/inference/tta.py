"""Test-time augmentation (TTA): several views of each image, probabilities merged per image.

Modes (`--tta`):

- ``flips``: identity, horizontal flip, vertical flip, both (4 views).
- ``d4``: the 8 symmetries of the square: rotations by 0/90/180/270 degrees, with and without a transpose.
- an integer ``N``: N random views drawn with the run's training augmentations (flips, affine, colour
  jitter; no random erasing). Each view of image `i` is seeded from `(seed, i, view)`, so results do
  not depend on the batch size or the number of workers.

Merges (`--tta-merge`): ``mean`` of the probabilities, or ``gmean``, their geometric mean
renormalised (per row for softmax heads; per label, against the complement, for multi-label heads).

Each image is decoded once; its views travel as one `[V, C, S, S]` item and the batch is flattened to
`[B * V, C, S, S]` for the model (`ViewModel` folds the logits back to `[B, V, K]`). Flip and d4 views
stay uint8 (a flip is exact on bytes), so batches travel from the loader's workers (and to the GPU) at a
quarter of the float32 size, and `ViewModel` scales and normalises each batch at once on the device, the
same `ToDtype` and `Normalize` arithmetic as per image, so the outputs are the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit, softmax
from torch import nn
from torch.utils.data import Dataset, default_collate

from winnow.data.dataset import ImageDataset
from winnow.data.transforms import eval_transform, train_transform
from winnow.data.views import view_ops

MODES = ("flips", "d4")
MERGES = ("mean", "gmean")
EPS = 1e-12

# uint8 [C, S, S] -> [C, S, S] not yet normalised: uint8 (geometric views) or float32 in [0, 1] (random views)
View = Callable[[torch.Tensor], torch.Tensor]
# torch's global generator, which the random views draw from, is one per process: loader threads take turns
_GLOBAL_RNG = threading.Lock()


@dataclass(frozen=True)
class TTA:
    """A parsed `--tta` value.

    Attributes:
        mode: "none", "flips", "d4" or "random".
        n_random: Views of the "random" mode.
        merge: "mean" or "gmean".
        seed: Seed of the random views.
    """

    mode: str = "none"
    n_random: int = 0
    merge: str = "mean"
    seed: int = 0

    @property
    def label(self) -> str:
        """Short name for folder names and reports, e.g. "flips-mean", "8random-gmean"; "" without TTA."""
        if self.mode == "none":
            return ""
        return f"{self.n_random}random-{self.merge}" if self.mode == "random" else f"{self.mode}-{self.merge}"


def parse_tta(value: str | int | None, *, merge: str = "mean", seed: int = 0) -> TTA:
    """Read `--tta` (flips, d4, a positive integer, or None/"none" for no TTA) and `--tta-merge`.

    Raises:
        ValueError: Unknown mode or merge, or a view count below 1.
    """
    if merge not in MERGES:
        raise ValueError(f"tta merge: expected one of {list(MERGES)}, got {merge!r}")
    text = "none" if value is None else str(value).strip().lower()
    if text in ("none", ""):
        return TTA(merge=merge, seed=seed)
    if text in MODES:
        return TTA(text, merge=merge, seed=seed)
    if text.isdigit() and int(text) >= 1:
        return TTA("random", int(text), merge, seed)
    raise ValueError(f"tta: expected flips, d4 or a number of random views >= 1 (e.g. 8), got {value!r}")


def build_views(tta: TTA, *, channels: int, augment: dict | None = None) -> list[View]:
    """The views of `tta` as callables uint8 `[C, S, S]` -> `[C, S, S]` before normalisation (see `View`).

    `ViewModel` normalises the batches; geometric views keep uint8, random views are float in [0, 1].

    Args:
        tta: Parsed TTA.
        channels: C.
        augment: Keyword arguments of `train_transform` (fill, hflip, rotate, ...) for random views.
    """
    if tta.mode == "random":
        unit = [0.0] * channels, [1.0] * channels  # an identity Normalize: the run's comes per batch
        return [train_transform(*unit, **{**(augment or {}), "random_erasing": 0.0})] * tta.n_random
    return view_ops(tta.mode)


class ViewDataset(Dataset):
    """Every view of one image per item: `([V, C, S, S], target)`, not yet normalised (see `View`).

    Args:
        base: Dataset supplying preprocessed uint8 images (`load_uint8`) and targets.
        views: From `build_views`.
        seed: Seed of random views; None for deterministic views (no reseeding). Seeded views are safe to
            read from several threads (they take turns on torch's global generator).
    """

    def __init__(self, base: ImageDataset, views: list[View], *, seed: int | None = None) -> None:
        self.base, self.views, self.seed = base, views, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._item(index, self.base.load_uint8(index))

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """The items of a batch (torch's batched-fetch protocol): its files decoded together (`load_uint8_many`)."""
        return [self._item(index, image) for index, image in zip(indices, self.base.load_uint8_many(indices))]

    def _item(self, index: int, image: np.ndarray) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(image).permute(2, 0, 1)
        return torch.stack([self._view(image, index, v) for v in range(len(self.views))]), self.base.targets[index]

    def _view(self, image: torch.Tensor, index: int, v: int) -> torch.Tensor:
        if self.seed is None:
            return self.views[v](image)
        with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + index) * len(self.views) + v)
            return self.views[v](image)


def collate_views(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Items `([V, C, S, S], target)` -> images `[B * V, C, S, S]` (image-major) and targets `[B]`."""
    images = torch.stack([item[0] for item in batch])
    return images.flatten(0, 1), default_collate([item[1] for item in batch])


class ViewModel(nn.Module):
    """Normalises views `[B * V, C, S, S]` as `ViewDataset` gives them, runs `model` and returns `[B, V, K]`.

    Args:
        model: Takes normalised float32 images `[N, C, S, S]`.
        n_views: V.
        mean, std: The run's normalisation (preprocessing.json): `eval_transform` runs once per batch, on
            the batch's device, with the arithmetic it has per image (uint8 scaled to [0, 1], then normalised).
    """

    def __init__(self, model: nn.Module, n_views: int, *, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model, self.n_views, self.normalize = model, n_views, eval_transform(mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(self.normalize(images))
        return logits.reshape(-1, self.n_views, logits.shape[-1])


def merge_views(probabilities: np.ndarray, how: str, *, rows_sum_to_one: bool = True) -> np.ndarray:
    """Merge per-view probabilities `[N, V, K]` into `[N, K]`.

    Args:
        probabilities: Probabilities of each view.
        how: "mean", or "gmean" (geometric mean, renormalised).
        rows_sum_to_one: Softmax rows (renormalise across K); False for independent per-label scores.
    """
    if how not in MERGES:
        raise ValueError(f"tta merge: expected one of {list(MERGES)}, got {how!r}")
    if how == "mean":
        return probabilities.mean(axis=1)
    log_mean = np.log(np.clip(probabilities, EPS, None)).mean(axis=1)
    if rows_sum_to_one:
        return softmax(log_mean, axis=1)
    complement = np.log(np.clip(1 - probabilities, EPS, None)).mean(axis=1)
    return expit(log_mean - complement)
