"""Shared fixtures: tiny image datasets on disk and a fast training config."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from winnow.config import Config

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLASS_NAMES = ("bar", "disk", "square")


def draw(kind: str, rng: np.random.Generator, size: int = 24) -> np.ndarray:
    """A gray `[size, size]` uint8 image of a simple shape with noise."""
    image = np.full((size, size), 150, np.float32)
    y, x = np.mgrid[:size, :size]
    cy, cx = rng.integers(9, size - 9, 2)
    if kind == "disk":
        image[(y - cy) ** 2 + (x - cx) ** 2 < 36] = 40
    elif kind == "square":
        image[cy - 5 : cy + 5, cx - 5 : cx + 5] = 240
    else:
        image[cy - 2 : cy + 2, 2:-2] = 60
    image += rng.normal(0, 8, image.shape)
    return image.clip(0, 255).astype(np.uint8)


def make_image_folder(root: Path, *, per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in CLASS_NAMES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(draw(name, rng)).save(root / name / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "folder")


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A CSV manifest with groups (two images per group) over an ImageFolder tree."""
    root = make_image_folder(tmp_path / "data", per_class=16)
    path = root / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group"])
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for i, file in enumerate(sorted(class_dir.iterdir())):
                writer.writerow([f"{class_dir.name}/{file.name}", class_dir.name, f"{class_dir.name}-g{i // 2}"])
    return path


def fast_config(tmp_path: Path, data: Path, **overrides) -> Config:
    """A config that trains in seconds on CPU."""
    values = dict(data=[str(data)], out=str(tmp_path / "runs"), model="test_resnet", img_size=32,
                  epochs=2, batch_size=8, workers=0, progress=False, lr=3e-3, warmup_epochs=0,
                  cache_dir=str(tmp_path / "cache"), val_fraction=0.25, test_fraction=0.25)
    values.update(overrides)
    return Config(**values)


def shared_data_or_skip(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny calibrated 3-class run, a second one (its copy with other weights: a new version) and images.

    Session-wide: test_serve and test_serve_celery share one training.
    """
    import winnow  # here, not at the top: conftest stays light for the tests that train nothing
    from winnow.cli.main import main
    import torch

    from winnow.training.checkpoint import load_checkpoint

    root = tmp_path_factory.mktemp("serve")
    data = make_image_folder(root / "data", per_class=6)
    first = winnow.train(fast_config(root, data, epochs=1, name="first")).path
    assert main(["calibrate", str(first)]) == 0
    second = Path(shutil.copytree(first, first.parent / "second"))
    state = load_checkpoint(second / "checkpoints" / "best.pt")
    state["model"] = {k: v * 1.01 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, second / "checkpoints" / "best.pt")
    return {"first": first, "second": second, "images": sorted((data / "disk").glob("*.png"))[:3]
            + sorted((data / "bar").glob("*.png"))[:2]}
