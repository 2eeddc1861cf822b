"""The audit's single pass: each readable file is decoded once, and everything the checks read of its pixels
is taken then (the full decode `train --verify full` does, the pixel hash, the perceptual hash, simple
statistics and features, and cleanvision's properties); the pixels are not kept.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageFilter, ImageOps

from winnow.audit.base import ImageFacts
from winnow.audit.imagelab import image_properties
from winnow.data.imageio import ImageReadError, decode_file, to_channels

THUMB_PX = 16
HISTOGRAM_BINS = 16
STAT_NAMES = ("intensity", "background", "contrast", "size", "aspect", "channels")
HASH_BITS = 64
CLEANVISION = "cleanvision"  # the optional fact: cleanvision's properties (the quality check's)


def image_facts(paths: list[str], rows: np.ndarray, *, workers: int = 1,
                extras: frozenset[str] = frozenset()) -> tuple[ImageFacts, list[tuple[int, str]]]:
    """Decode each file of `rows` once and keep only small facts of it (never the pixels).

    Memory holds at most `workers` decoded images at a time.

    Args:
        paths: Image files `[N]`.
        rows: The rows to decode (those whose header reads); other rows get NaN statistics and empty hashes.
        workers: Decoding threads.
        extras: Optional facts to take too: `CLEANVISION`.

    Returns:
        The facts, and `(row, reason)` of the rows that did not decode completely (reason as in bad_files.csv).
    """
    properties = CLEANVISION in extras
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = list(pool.map(lambda i: _safe_one(paths[i], properties), rows))
    n = len(paths)
    pixel_hash = [""] * n
    phash = np.zeros((n, HASH_BITS), np.uint8)
    stats = {name: np.full(n, np.nan) for name in STAT_NAMES}
    features = np.full((n, THUMB_PX * THUMB_PX + HISTOGRAM_BINS + len(STAT_NAMES)), np.nan, np.float32)
    bad, cleanvision = [], {}
    for row, outcome in zip(rows, decoded):
        if isinstance(outcome, str):
            bad.append((int(row), outcome))
            continue
        (digest, bits, values, vector), extra = outcome
        pixel_hash[row], phash[row], features[row] = digest, bits, vector
        for name, value in values.items():
            stats[name][row] = value
        if extra is not None:
            cleanvision[int(row)] = extra
    table = pd.DataFrame.from_dict(cleanvision, orient="index") if properties else None
    return ImageFacts(pixel_hash, phash, stats, features, table), bad


def _safe_one(path: str, properties: bool) -> tuple[tuple, dict | None] | str:
    """The facts of one file, or the reason it does not decode (`tag: detail`)."""
    try:
        decoded = decode_file(path)
    except ImageReadError as error:
        return f"{error.reason}: {error.detail}"
    rgb = to_channels(decoded.pixels, 3)  # uint8 [H, W, 3], what read_image(in_chans=3) gives
    return _facts(rgb), (image_properties(decoded.image) if properties else None)


def _facts(rgb: np.ndarray) -> tuple[str, np.ndarray, dict[str, float], np.ndarray]:
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
