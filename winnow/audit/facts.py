"""One decode of every readable image: pixel hash, perceptual hash, simple statistics and features."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import imagehash
import numpy as np
from PIL import Image, ImageFilter, ImageOps

from winnow.audit.base import ImageFacts
from winnow.data.imageio import read_image

THUMB_PX = 16
HISTOGRAM_BINS = 16
STAT_NAMES = ("intensity", "background", "contrast", "size", "aspect", "channels")
HASH_BITS = 64


def image_facts(paths: list[str], readable: np.ndarray, *, workers: int = 1) -> ImageFacts:
    """Decode each readable file once and keep only small facts of it (never the pixels).

    Args:
        paths: Image files `[N]`.
        readable: `[N]` bool; other rows get NaN statistics and empty hashes.
        workers: Decoding threads.
    """
    rows = np.flatnonzero(readable)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = list(pool.map(lambda i: _one(paths[i]), rows))
    n = len(paths)
    pixel_hash = [""] * n
    phash = np.zeros((n, HASH_BITS), np.uint8)
    stats = {name: np.full(n, np.nan) for name in STAT_NAMES}
    features = np.full((n, THUMB_PX * THUMB_PX + HISTOGRAM_BINS + len(STAT_NAMES)), np.nan, np.float32)
    for row, (digest, bits, values, vector) in zip(rows, decoded):
        pixel_hash[row], phash[row], features[row] = digest, bits, vector
        for name, value in values.items():
            stats[name][row] = value
    return ImageFacts(pixel_hash, phash, stats, features)


def _one(path: str) -> tuple[str, np.ndarray, dict[str, float], np.ndarray]:
    rgb = read_image(path, in_chans=3)  # uint8 [H, W, 3]
    digest = hashlib.sha1(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()
    gray = Image.fromarray(rgb).convert("L")
    bits = np.asarray(imagehash.phash(content(gray)).hash, np.uint8).ravel()
    values = image_statistics(rgb)
    thumb = np.asarray(gray.resize((THUMB_PX, THUMB_PX), Image.Resampling.BILINEAR), np.float32).ravel() / 255
    histogram = np.histogram(np.asarray(gray), bins=HISTOGRAM_BINS, range=(0, 256))[0] / gray.width / gray.height
    vector = np.concatenate([thumb, histogram, [values[name] for name in STAT_NAMES]]).astype(np.float32)
    return digest, bits, values, vector


def content(gray: Image.Image) -> Image.Image:
    """The image cropped to what differs from its background, contrast stretched.

    Hashing this instead of the whole image keeps a small object on a large flat background (cells,
    chromosomes) from hashing like every other such image, and makes the hash blind to shifts and padding.
    """
    array = np.asarray(gray.filter(ImageFilter.GaussianBlur(1)), np.float32)  # noise would widen the box
    background = np.median(np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]]))
    away = np.abs(array - background)
    rows, cols = np.nonzero(away > 0.25 * away.max()) if away.max() > 0 else ((), ())
    if len(rows) == 0:
        return gray
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    return ImageOps.autocontrast(gray.crop(box))


def image_statistics(rgb: np.ndarray) -> dict[str, float]:
    """The simple statistics of one image `[H, W, 3]` uint8.

    intensity: mean gray level; background: median gray level of the outer 10% border; contrast: standard
    deviation of the gray levels; size: sqrt(H * W) in pixels; aspect: W / H; channels: 1 when the three
    channels are equal (grayscale), else 3.
    """
    gray = rgb.astype(np.float32).mean(axis=2)
    height, width = gray.shape
    border = max(1, round(0.1 * min(height, width)))
    ring = np.concatenate([gray[:border].ravel(), gray[-border:].ravel(), gray[:, :border].ravel(),
                           gray[:, -border:].ravel()])
    colour = bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]))
    return {"intensity": float(gray.mean()), "background": float(np.median(ring)), "contrast": float(gray.std()),
            "size": float(np.sqrt(height * width)), "aspect": width / height, "channels": 3.0 if colour else 1.0}
