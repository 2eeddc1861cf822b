"""A small synthetic microscopy dataset for `winnow demo`.

Three classes, imbalanced about 70/20/10:

* ``chromosome``: a thick, banded rod with rounded ends, straight or curved.
* ``blood_cell``: a round or slightly elliptical cell with a darker nucleus.
* ``debris``: an irregular jagged fragment, or a few small scattered blobs.

Objects are darker than a gray background; every image is blurred and noisy
and written as an 8-bit grayscale PNG. Everything is derived from one seed.
"""

from __future__ import annotations

import csv
import io
from numbers import Real
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from winnow.constraints import Interval, check_value
from winnow.runs.atomic import atomic_write_text

CLASSES = ("chromosome", "blood_cell", "debris")
CLASS_FRACTIONS = (0.7, 0.2, 0.1)
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
MIN_IMAGES = 30
MIN_SIZE = 16
MANIFEST_COLUMNS = ("path", "label", "split", "group")


def make_demo_dataset(
    root: str | Path,
    *,
    n_images: int = 600,
    size: int = 48,
    seed: int = 0,
    label_noise: float = 0.02,
) -> Path:
    """Write PNG images plus `manifest.csv` (columns path,label,split,group) into root.

    Args:
        root: Folder to write into; created if missing.
        n_images: Number of images, at least 30.
        size: Side of the square images in pixels, at least 16.
        seed: Seed for everything random; the same seed gives identical files.
        label_noise: Fraction of train images given a wrong label (val and
            test always keep the true label).

    Returns:
        The path of the manifest. Image paths in it are relative to its folder.

    Raises:
        ValueError: If an argument is out of range.
    """
    _check_args(n_images, size, label_noise)
    root = Path(root)
    layout_seq, image_seq, noise_seq = np.random.SeedSequence(seed).spawn(3)
    layout_rng = np.random.default_rng(layout_seq)
    true_labels = layout_rng.permutation(_class_labels(n_images))
    splits = _stratified_splits(true_labels, layout_rng)
    labels = _noisy_labels(true_labels, splits, label_noise, np.random.default_rng(noise_seq))
    paths = _write_images(root, true_labels, size, image_seq)
    rows = [
        (path, CLASSES[label], split, str(index))
        for index, (path, label, split) in enumerate(zip(paths, labels, splits))
    ]
    manifest = root / "manifest.csv"
    _write_manifest(manifest, rows)
    return manifest


def _check_args(n_images: int, size: int, label_noise: float) -> None:
    """Raise ValueError for arguments out of range."""
    if n_images < MIN_IMAGES:
        raise ValueError(f"n_images must be at least {MIN_IMAGES}, got {n_images}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    check_value("label_noise", label_noise, [Interval(Real, 0, 1, closed="left")])


def class_counts(n_images: int) -> list[int]:
    """Return the number of images of each class in CLASSES order (about 70/20/10)."""
    main = round(n_images * CLASS_FRACTIONS[0])
    second = round(n_images * CLASS_FRACTIONS[1])
    return [main, second, n_images - main - second]


def _class_labels(n_images: int) -> np.ndarray:
    """Return class indices, grouped by class, with the counts of `class_counts`."""
    return np.repeat(np.arange(len(CLASSES)), class_counts(n_images))


def _stratified_splits(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a train/val/test split per image, about 70/15/15 within each class."""
    splits = np.full(len(labels), "train", dtype=object)
    for cls in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = max(1, round(len(members) * VAL_FRACTION))
        n_test = max(1, round(len(members) * TEST_FRACTION))
        splits[members[:n_val]] = "val"
        splits[members[n_val : n_val + n_test]] = "test"
    return splits


def _noisy_labels(
    labels: np.ndarray, splits: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Return a copy of labels where `fraction` of the train images get a wrong class."""
    noisy = labels.copy()
    train = np.flatnonzero(splits == "train")
    flipped = rng.choice(train, size=round(len(train) * fraction), replace=False)
    shifts = rng.integers(1, len(CLASSES), size=len(flipped))
    noisy[flipped] = (labels[flipped] + shifts) % len(CLASSES)
    return noisy


def _write_images(
    root: Path, labels: np.ndarray, size: int, seq: np.random.SeedSequence
) -> list[str]:
    """Render and save one PNG per label; return their paths relative to root."""
    for name in CLASSES:
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    paths = []
    for index, (label, child) in enumerate(zip(labels, seq.spawn(len(labels)))):
        pixels = render_image(CLASSES[label], size, np.random.default_rng(child), grid=(yy, xx))
        rel = f"images/{CLASSES[label]}/{index:05d}.png"
        Image.fromarray(pixels).save(root / rel, format="PNG")
        paths.append(rel)
    return paths


def _write_manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """Write the manifest CSV atomically: a temporary file beside it, then a rename."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


# --- rendering --------------------------------------------------------------


def render_image(
    name: str,
    size: int,
    rng: np.random.Generator,
    *,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Render one image of class `name` as a (size, size) uint8 array.

    Args:
        name: One of CLASSES.
        size: Side of the square image in pixels.
        rng: Source of randomness.
        grid: Pixel-centre coordinates (yy, xx); computed when not given.
    """
    if name not in _DRAWERS:
        raise ValueError(f"unknown class {name!r}; expected one of {CLASSES}")
    yy, xx = grid if grid is not None else np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    background = _background(size, rng, yy, xx)
    darkness = _DRAWERS[name](size, rng, yy, xx)
    image = gaussian_filter(background - darkness, sigma=rng.uniform(0.6, 1.1))
    image += rng.normal(0.0, rng.uniform(0.015, 0.04), image.shape)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _background(
    size: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Return a gray level around 0.5-0.7 with a faint illumination gradient."""
    level = rng.uniform(0.5, 0.7)
    gx, gy = rng.uniform(-0.03, 0.03, size=2)
    return level + (gx * (xx - size / 2) + gy * (yy - size / 2)) / size


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Turn a signed distance in pixels (negative inside) into anti-aliased coverage."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


def _centre(size: int, rng: np.random.Generator, jitter: float = 0.1) -> np.ndarray:
    """Return a random object centre (x, y) near the middle of the image."""
    return size / 2 + rng.uniform(-jitter, jitter, size=2) * size


def _draw_chromosome(
    size: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Return the darkness of a thick, banded, straight or curved rod."""
    length = rng.uniform(0.42, 0.68) * size
    half_width = rng.uniform(0.065, 0.09) * size
    centreline = _bent_centreline(_centre(size, rng), length, rng)
    distance, along = _polyline_distance(centreline, yy, xx)
    bands = _band_profile(along, length, rng)
    body = rng.uniform(0.17, 0.26)
    band_depth = rng.uniform(0.14, 0.22)
    return _coverage(distance - half_width) * (body + band_depth * bands)


def _bent_centreline(centre: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """Return points (x, y) along a quadratic Bezier of about `length`, randomly oriented."""
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    bend = rng.uniform(-0.3, 0.3) * length if rng.random() < 0.7 else 0.0
    start, end = centre - direction * length / 2, centre + direction * length / 2
    control = centre + normal * bend
    t = np.linspace(0.0, 1.0, 10)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    return curve - (curve.mean(axis=0) - centre)


def _polyline_distance(
    points: np.ndarray, yy: np.ndarray, xx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return each pixel's distance to a polyline and the arc-length fraction (0..1) there."""
    start, seg = points[:-1, :, None, None], np.diff(points, axis=0)[:, :, None, None]
    px, py = xx - start[:, 0], yy - start[:, 1]
    seg_len2 = seg[:, 0] ** 2 + seg[:, 1] ** 2
    t = np.clip((px * seg[:, 0] + py * seg[:, 1]) / seg_len2, 0.0, 1.0)
    d2 = (px - t * seg[:, 0]) ** 2 + (py - t * seg[:, 1]) ** 2
    nearest = d2.argmin(axis=0)[None]
    seg_len = np.sqrt(seg_len2[:, 0, 0])
    offsets = np.concatenate([[0.0], np.cumsum(seg_len)])
    along = offsets[nearest[0]] + np.take_along_axis(t, nearest, axis=0)[0] * seg_len[nearest[0]]
    return np.sqrt(np.take_along_axis(d2, nearest, axis=0)[0]), along / offsets[-1]


def _band_profile(along: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """Return 0..1 transverse band strength at each arc-length fraction of a rod."""
    n_bands = int(rng.integers(3, 7))
    spacing = 0.7 / (n_bands - 1)
    centres = np.linspace(0.15, 0.85, n_bands) + rng.uniform(-0.2, 0.2, n_bands) * spacing
    widths = rng.uniform(0.9, 1.6, n_bands) / length
    profile = np.exp(-(((along[None] - centres[:, None, None]) / widths[:, None, None]) ** 2))
    return np.clip(profile.sum(axis=0), 0.0, 1.0)


def _ellipse_distance(
    centre: np.ndarray, axes: tuple[float, float], angle: float, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Return an approximate signed distance in pixels to a rotated ellipse."""
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    radius = np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2)
    return (radius - 1.0) * min(axes)


def _draw_blood_cell(
    size: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Return the darkness of a round or slightly elliptical cell with a darker nucleus."""
    centre = _centre(size, rng)
    radius = rng.uniform(0.16, 0.23) * size
    axes = (radius, radius * rng.uniform(0.8, 1.0))
    cell = _coverage(_ellipse_distance(centre, axes, rng.uniform(0, np.pi), yy, xx))
    nucleus_radius = radius * rng.uniform(0.38, 0.55)
    nucleus_centre = centre + rng.uniform(-0.2, 0.2, size=2) * radius
    nucleus_axes = (nucleus_radius, nucleus_radius * rng.uniform(0.75, 1.0))
    nucleus_angle = rng.uniform(0, np.pi)
    nucleus = _coverage(_ellipse_distance(nucleus_centre, nucleus_axes, nucleus_angle, yy, xx))
    return cell * rng.uniform(0.12, 0.2) + nucleus * cell * rng.uniform(0.2, 0.3)


def _draw_debris(
    size: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Return the darkness of one jagged fragment or a few small scattered blobs."""
    centre = _centre(size, rng)
    if rng.random() < 0.5:
        mask = _jagged_blob(centre, rng.uniform(0.14, 0.24) * size, rng, yy, xx)
    else:
        offsets = rng.uniform(-0.22, 0.22, size=(int(rng.integers(3, 7)), 2)) * size
        radii = rng.uniform(0.05, 0.09, size=len(offsets)) * size
        blobs = [_jagged_blob(centre + o, r, rng, yy, xx) for o, r in zip(offsets, radii)]
        mask = np.max(blobs, axis=0)
    return mask * rng.uniform(0.2, 0.38)


def _jagged_blob(
    centre: np.ndarray, radius: float, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Return the coverage of a star-shaped random polygon with jagged edges."""
    n_vertices = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0.0, 2 * np.pi, n_vertices))
    radii = radius * rng.uniform(0.3, 1.0, n_vertices)
    dx, dy = xx - centre[0], yy - centre[1]
    theta = np.arctan2(dy, dx) % (2 * np.pi)
    edge = np.interp(theta, angles, radii, period=2 * np.pi)
    edge = edge * (1 + 0.18 * np.sin(rng.integers(9, 16) * theta + rng.uniform(0, 2 * np.pi)))
    return _coverage(np.hypot(dx, dy) - edge)


_DRAWERS = {
    "chromosome": _draw_chromosome,
    "blood_cell": _draw_blood_cell,
    "debris": _draw_debris,
}
