"""Deterministic preprocessing applied before caching: autolevel, automask, resize-and-pad."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import ndimage
from torchvision.transforms.v2 import functional as F


@dataclass(frozen=True)
class Preprocess:
    """Settings that fully determine the cached array of an image."""

    img_size: int
    in_chans: int
    fill: int = 0
    autolevel: bool = False
    automask: bool = False

    def key(self) -> dict:
        return asdict(self)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """`[H, W, C]` uint8 -> `[img_size, img_size, C]` uint8."""
        if self.autolevel:
            image = autolevel(image)
        if self.automask:
            image = automask(image, fill=self.fill)
        return resize_pad(image, self.img_size, fill=self.fill)


def autolevel(image: np.ndarray, *, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Percentile contrast stretch: the `low`..`high` percentiles map to 0..255."""
    lo, hi = np.percentile(image, [low, high])
    if hi - lo < 1e-6:
        return image
    stretched = (image.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.rint(stretched).clip(0, 255).astype(np.uint8)


def otsu_threshold(gray: np.ndarray) -> float:
    """Otsu's threshold on a uint8 image (maximises between-class variance)."""
    histogram = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    weight_low = np.cumsum(histogram)
    weight_high = weight_low[-1] - weight_low
    cumulative_mean = np.cumsum(histogram * np.arange(256))
    mean_low = cumulative_mean / np.maximum(weight_low, 1)
    mean_high = (cumulative_mean[-1] - cumulative_mean) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(np.argmax(between))


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """Otsu foreground `[H, W]` bool; the side that dominates the border is background."""
    gray = image.mean(axis=-1).astype(np.uint8) if image.ndim == 3 else image
    above = gray > otsu_threshold(gray)
    border = np.concatenate([above[0], above[-1], above[:, 0], above[:, -1]])
    mask = ~above if border.mean() > 0.5 else above
    return ndimage.binary_fill_holes(_drop_specks(mask))


def _drop_specks(mask: np.ndarray, *, min_share: float = 0.05) -> np.ndarray:
    """Keep connected components of at least `min_share` of the largest one (noise specks go).

    Unlike a morphological opening this keeps the object's outline, corners included.
    """
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= max(2, min_share * sizes.max())) + 1
    return np.isin(labels, keep)


def automask(image: np.ndarray, *, fill: int) -> np.ndarray:
    """Crop to the Otsu foreground and set the background to `fill`."""
    mask = foreground_mask(image)
    if not mask.any():
        return image
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    masked = np.where(mask[..., None], image, np.uint8(fill))
    return np.ascontiguousarray(masked[crop])


def resize_pad(image: np.ndarray, size: int, *, fill: int) -> np.ndarray:
    """Resize so the longer side is `size` (aspect kept), then pad to a centred square.

    `[H, W, C]` uint8 -> `[size, size, C]` uint8. Calls torchvision's image kernel (`resize_image`) directly,
    not the `resize` dispatcher, and pads by writing into a `fill` canvas: the same pixels for less
    per-image overhead (it adds up over many small images).
    """
    # PIL-backed arrays are read-only; torch needs a writable buffer
    writable = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
    height, width = writable.shape[:2]
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = F.resize_image(torch.from_numpy(writable).permute(2, 0, 1), [new_h, new_w], antialias=True)
    canvas = np.full((size, size, writable.shape[2]), fill, dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized.permute(1, 2, 0).numpy()
    return canvas
