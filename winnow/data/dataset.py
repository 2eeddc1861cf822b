"""The torch Dataset: decode (or read from cache), preprocess, augment with a per-sample seed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from winnow.data.cache import CachedRows, DecodedCache
from winnow.data.imageio import ImageReadError, read_image
from winnow.data.preprocess import Preprocess

# Training reaches a decode error only when its header-only scan let the file through.
TRAINING_READ_HINT = "The header scan passed it; train with --verify full (and --skip-bad) to catch such files first"
GROUP_PIXELS = 1 << 24  # decoded pixels that `load_uint8_many` holds before preprocessing them (48 MB of RGB)


class ImageDataset(Dataset):
    """Images with integer targets.

    Keys are an index, or `(index, seed)` from `EpochSampler`: the seed makes the
    random augmentation of each sample independent of worker count and resumable.

    Args:
        paths: image files.
        targets: class index per file (-1 when unknown, e.g. at prediction).
        preprocess: deterministic decode-time settings.
        transform: `[C, S, S]` uint8 tensor -> float tensor.
        cache: optional decoded cache for these paths, or read-only `CachedRows` of other jobs' caches.
        read_hint: appended to the detail of a decode error (how to avoid it); "" leaves the error as is
            (prediction jobs skip such files and list them instead).
        weights: optional loss weight per file; items are then `(image, target, weight)`.
        max_pixels: refuse larger images before decoding them, as the header scan does ("too_large"); with
            it a decode makes every check of that scan (prediction jobs rely on it and scan nothing first).
    """

    def __init__(
        self,
        paths: list[str],
        targets: list[int],
        preprocess: Preprocess,
        transform: Callable[[torch.Tensor], torch.Tensor],
        *,
        cache: DecodedCache | CachedRows | None = None,
        read_hint: str = TRAINING_READ_HINT,
        weights: list[float] | None = None,
        max_pixels: int | None = None,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"paths and targets differ in length: {len(paths)} vs {len(targets)}")
        if weights is not None and len(weights) != len(paths):
            raise ValueError(f"paths and weights differ in length: {len(paths)} vs {len(weights)}")
        self.paths, self.targets, self.weights = paths, targets, weights
        self.preprocess, self.transform, self.cache = preprocess, transform, cache
        self.read_hint, self.max_pixels = read_hint, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def load_uint8(self, index: int) -> np.ndarray:
        """Preprocessed `[S, S, C]` uint8, from the cache when it holds the image."""
        if self.cache is not None and (cached := self.cache.get(index)) is not None:
            return cached
        return self._preprocessed(index, self._decoded(index))

    def load_uint8_many(self, indices: list[int]) -> list[np.ndarray]:
        """`load_uint8` of each index, decoding a group of files before preprocessing them.

        Alternating a decode (PIL) with a resize (torch) per image thrashes the CPU's caches: on small
        images the pair cost 1.4x their separate times. Groups hold up to `GROUP_PIXELS` decoded pixels, so
        that large images never pile up in memory.

        Raises:
            ImageReadError: The first file that cannot be read.
        """
        images: dict[int, np.ndarray] = {}
        group: list[tuple[int, np.ndarray]] = []
        pixels = 0
        for index in indices:
            if self.cache is not None and (cached := self.cache.get(index)) is not None:
                images[index] = cached
                continue
            decoded = self._decoded(index)
            group.append((index, decoded))
            pixels += decoded.shape[0] * decoded.shape[1]
            if pixels >= GROUP_PIXELS:
                images.update((i, self._preprocessed(i, image)) for i, image in group)
                group, pixels = [], 0
        images.update((i, self._preprocessed(i, image)) for i, image in group)
        return [images[index] for index in indices]

    def _decoded(self, index: int) -> np.ndarray:
        try:
            return read_image(self.paths[index], in_chans=self.preprocess.in_chans, fill=self.preprocess.fill,
                              max_pixels=self.max_pixels)
        except ImageReadError as error:
            if not self.read_hint:
                raise
            raise ImageReadError(error.path, error.reason, f"{error.detail}. {self.read_hint}") from error

    def _preprocessed(self, index: int, decoded: np.ndarray) -> np.ndarray:
        image = self.preprocess(decoded)
        if self.cache is not None:
            self.cache.put(index, image)
        return image

    def __getitem__(self, key: int | tuple[int, int]) -> tuple:
        index, seed = key if isinstance(key, tuple) else (key, None)
        image = torch.from_numpy(self.load_uint8(index)).permute(2, 0, 1)
        if seed is not None:
            # the CPU generator only: torch.manual_seed also seeds every CUDA device (100x slower)
            torch.default_generator.manual_seed(seed)
        if self.weights is not None:
            return self.transform(image), self.targets[index], self.weights[index]
        return self.transform(image), self.targets[index]
