"""Tests for the synthetic demo dataset in winnow.data.synthetic."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from winnow.data.synthetic import CLASSES, make_demo_dataset

N_IMAGES = 600
SIZE = 48
NOISE = 0.05


def _read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _true_class(row: dict[str, str]) -> str:
    """The true class is the image's folder: images/<class>/<index>.png."""
    return Path(row["path"]).parent.name


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    root = tmp_path_factory.mktemp("synthetic")
    manifest = make_demo_dataset(root, n_images=N_IMAGES, size=SIZE, seed=7, label_noise=NOISE)
    return manifest, _read_manifest(manifest)


def test_manifest_columns_and_rows(dataset):
    manifest, rows = dataset
    assert manifest.name == "manifest.csv"
    with open(manifest, encoding="utf-8") as f:
        assert f.readline().strip() == "path,label,split,group"
    assert len(rows) == N_IMAGES
    assert len({row["group"] for row in rows}) == N_IMAGES
    assert not list(manifest.parent.glob(".manifest.csv.*")), "temporary file left behind"


def test_paths_are_relative_and_exist(dataset):
    manifest, rows = dataset
    for row in rows:
        path = Path(row["path"])
        assert not path.is_absolute()
        assert path.parts[0] == "images" and path.parent.name in CLASSES
        assert (manifest.parent / path).is_file()


def test_classes_are_imbalanced_70_20_10(dataset):
    _, rows = dataset
    counts = Counter(_true_class(row) for row in rows)
    assert set(counts) == set(CLASSES)
    for name, fraction in zip(CLASSES, (0.7, 0.2, 0.1)):
        assert counts[name] / N_IMAGES == pytest.approx(fraction, abs=0.01)


def test_splits_are_stratified(dataset):
    _, rows = dataset
    for name in CLASSES:
        splits = Counter(row["split"] for row in rows if _true_class(row) == name)
        total = sum(splits.values())
        assert set(splits) == {"train", "val", "test"}
        assert splits["train"] / total == pytest.approx(0.70, abs=0.03)
        assert splits["val"] / total == pytest.approx(0.15, abs=0.03)
        assert splits["test"] / total == pytest.approx(0.15, abs=0.03)


def test_images_are_8bit_grayscale_of_requested_size(dataset):
    manifest, rows = dataset
    for row in rows[::20]:
        with Image.open(manifest.parent / row["path"]) as image:
            assert image.format == "PNG"
            assert image.mode == "L"
            assert image.size == (SIZE, SIZE)


def test_other_size_and_small_dataset(tmp_path):
    manifest = make_demo_dataset(tmp_path, n_images=30, size=16, seed=1)
    rows = _read_manifest(manifest)
    assert len(rows) == 30
    for name in CLASSES:
        splits = {row["split"] for row in rows if _true_class(row) == name}
        assert splits == {"train", "val", "test"}
    with Image.open(manifest.parent / rows[0]["path"]) as image:
        assert image.size == (16, 16) and image.mode == "L"


def test_same_seed_gives_identical_files(tmp_path):
    first = make_demo_dataset(tmp_path / "a", n_images=60, size=32, seed=3)
    second = make_demo_dataset(tmp_path / "b", n_images=60, size=32, seed=3)
    assert first.read_bytes() == second.read_bytes()
    for row in _read_manifest(first)[:5]:
        path = row["path"]
        assert (first.parent / path).read_bytes() == (second.parent / path).read_bytes()


def test_different_seeds_differ(tmp_path):
    first = make_demo_dataset(tmp_path / "a", n_images=60, size=32, seed=3)
    second = make_demo_dataset(tmp_path / "b", n_images=60, size=32, seed=4)
    assert first.read_bytes() != second.read_bytes()
    first_paths = [row["path"] for row in _read_manifest(first)]
    second_paths = [row["path"] for row in _read_manifest(second)]
    for a, b in zip(first_paths[:5], second_paths[:5]):
        assert (first.parent / a).read_bytes() != (second.parent / b).read_bytes()


def test_label_noise_only_in_train_at_requested_fraction(dataset):
    _, rows = dataset
    wrong = [row for row in rows if row["label"] != _true_class(row)]
    assert all(row["split"] == "train" for row in wrong)
    assert all(row["label"] in CLASSES for row in rows)
    n_train = sum(row["split"] == "train" for row in rows)
    assert len(wrong) / n_train == pytest.approx(NOISE, abs=0.005)


def test_zero_label_noise_keeps_true_labels(tmp_path):
    rows = _read_manifest(make_demo_dataset(tmp_path, n_images=60, size=16, label_noise=0.0))
    assert all(row["label"] == _true_class(row) for row in rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_images": 29}, "n_images must be at least 30"),
        ({"size": 15}, "size must be at least 16"),
        ({"label_noise": -0.1}, r"label_noise must be a number in \[0, 1\)"),
        ({"label_noise": 1.0}, r"label_noise must be a number in \[0, 1\)"),
    ],
)
def test_bad_arguments_raise(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_demo_dataset(tmp_path, **kwargs)
    assert not (tmp_path / "manifest.csv").exists()


def _features(pixels: np.ndarray) -> list[float]:
    """Dark area, elongation, spread and contrast of the thresholded dark object."""
    image = gaussian_filter(pixels.astype(float) / 255.0, sigma=1.0)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    darkness = np.median(border) - image
    mask = darkness > 0.07
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return [0.0, 1.0, 0.0, 0.0, 0.0]
    eigen = np.sort(np.linalg.eigvalsh(np.cov(np.stack([xs, ys]))))
    elongation = np.sqrt(eigen[1] / max(eigen[0], 1e-6))
    spread = eigen.sum() / len(xs)
    inside = darkness[mask]
    return [len(xs) / mask.size, elongation, spread, inside.mean(), inside.std()]


def test_classes_are_separable_by_simple_features(dataset):
    manifest, rows = dataset

    def split(name: str) -> tuple[np.ndarray, list[str]]:
        chosen = [row for row in rows if row["split"] == name]
        x = [_features(np.asarray(Image.open(manifest.parent / row["path"]))) for row in chosen]
        return np.array(x), [_true_class(row) for row in chosen]

    x_train, y_train = split("train")
    x_test, y_test = split("test")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    assert np.mean(predicted == np.array(y_test)) >= 0.8
    assert balanced_accuracy_score(y_test, predicted) >= 0.7
