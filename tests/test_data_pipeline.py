"""Preprocessing, the decoded cache, the dataset, samplers and transforms (winnow.data.*)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_factory import save
from winnow.data.cache import CachedRows, DecodedCache, cache_bytes, cache_key
from winnow.data import dataset as dataset_module
from winnow.data.dataset import ImageDataset
from winnow.data.imageio import ImageReadError, read_image
from winnow.data.preprocess import Preprocess, autolevel, automask, otsu_threshold, resize_pad
from winnow.data.samplers import build_sampler
from winnow.data.transforms import (channel_stats, eval_transform, imagenet_stats, train_transform)

# --------------------------------------------------------------------- preprocess


def test_autolevel_stretches_percentiles():
    rng = np.random.default_rng(0)
    image = rng.integers(60, 141, (32, 32, 1), dtype=np.uint8)  # a low-contrast image
    out = autolevel(image)
    lo, hi = np.percentile(image, [1, 99])
    expected = np.clip(np.rint((image.astype(np.float64) - lo) * 255 / (hi - lo)), 0, 255)
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert 0.005 <= (out == 0).mean() <= 0.03 and 0.005 <= (out == 255).mean() <= 0.03
    order = np.argsort(image.ravel(), kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all(), "the stretch must keep the gray order"


def test_autolevel_leaves_flat_images_alone():
    image = np.full((8, 8, 3), 42, np.uint8)
    np.testing.assert_array_equal(autolevel(image), image)


def _naive_otsu(gray: np.ndarray) -> int:
    """Try all 256 thresholds (class low = values <= t) and keep the first maximum of between-class variance."""
    values = gray.ravel().astype(np.float64)
    scores = []
    for t in range(256):
        low, high = values[values <= t], values[values > t]
        if len(low) == 0 or len(high) == 0:
            scores.append(0.0)
            continue
        w0, w1 = len(low) / len(values), len(high) / len(values)
        scores.append(w0 * w1 * (low.mean() - high.mean()) ** 2)
    scores = np.array(scores)
    return int(np.flatnonzero(scores >= scores.max() * (1 - 1e-12))[0])


@pytest.mark.parametrize("kind", ["uniform", "bimodal", "skewed", "narrow", "two_levels"])
def test_otsu_threshold_matches_brute_force(kind):
    rng = np.random.default_rng(len(kind))
    shape = (24, 20)
    if kind == "uniform":
        gray = rng.integers(0, 256, shape)
    elif kind == "bimodal":
        gray = np.where(rng.random(shape) < 0.3, rng.normal(60, 15, shape), rng.normal(180, 25, shape))
    elif kind == "skewed":
        gray = rng.exponential(30, shape)
    elif kind == "narrow":
        gray = rng.integers(100, 108, shape)
    else:
        gray = np.where(rng.random(shape) < 0.5, 40, 200)
    gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    assert otsu_threshold(gray) == _naive_otsu(gray)


def _disk(height: int, width: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


@pytest.mark.parametrize("background,foreground", [(200, 30), (20, 220)], ids=["dark_on_light", "light_on_dark"])
def test_automask_crops_to_object_and_fills_background(background, foreground):
    disk = _disk(40, 50, (18, 30), 8)
    image = np.where(disk, foreground, background).astype(np.uint8)[..., None]
    out = automask(image, fill=99)
    rows, cols = np.nonzero(disk)
    expected = np.where(disk, foreground, 99)[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert out.shape == (17, 17, 1)
    np.testing.assert_array_equal(out[..., 0], expected)


def test_automask_on_noisy_rgb():
    rng = np.random.default_rng(1)
    disk = _disk(48, 48, (20, 26), 10)
    image = np.where(disk[..., None], [40, 60, 80], [210, 200, 190]) + rng.normal(0, 6, (48, 48, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    out = automask(image, fill=0)
    assert out.shape[-1] == 3 and abs(out.shape[0] - 21) <= 1 and abs(out.shape[1] - 21) <= 1
    assert (out[0, 0] == 0).all() and (out[-1, -1] == 0).all(), "corners outside the disk become fill"
    centre = out[out.shape[0] // 2, out.shape[1] // 2]
    assert np.abs(centre.astype(int) - [40, 60, 80]).max() < 30


def test_automask_without_foreground_is_a_no_op():
    image = np.full((10, 12, 1), 128, np.uint8)
    np.testing.assert_array_equal(automask(image, fill=0), image)


def test_resize_pad_keeps_aspect_and_centres():
    image = np.full((20, 10, 1), 200, np.uint8)  # an object 20 tall, 10 wide
    out = resize_pad(image, 32, fill=7)
    assert out.shape == (32, 32, 1) and out.dtype == np.uint8
    assert (out[:, 8:24] == 200).all(), "content is 32x16, centred"
    assert (out[:, :8] == 7).all() and (out[:, 24:] == 7).all(), "padding is the fill level"


def test_resize_pad_wide_rgb_and_read_only_input():
    image = np.zeros((10, 20, 3), np.uint8)
    image[..., 0] = 255
    image.setflags(write=False)  # as arrays backed by PIL are
    out = resize_pad(image, 16, fill=50)
    assert out.shape == (16, 16, 3)
    assert (out[4:12, :, 0] == 255).all() and (out[4:12, :, 1:] == 0).all()
    assert (out[:4] == 50).all() and (out[12:] == 50).all()


def test_preprocess_call_composes_steps():
    disk = _disk(30, 40, (14, 12), 6)
    image = np.where(disk, 110, 100).astype(np.uint8)[..., None]  # faint: autolevel makes it visible
    out = Preprocess(img_size=26, in_chans=1, fill=3, autolevel=True, automask=True)(image)
    assert out.shape == (26, 26, 1)
    assert (out[10:16, 10:16] == 255).all(), "the stretched object fills the output"
    assert out[0, 0, 0] == out[-1, -1, 0] == 3, "background outside the object is fill"
    plain = Preprocess(img_size=26, in_chans=1, fill=3)(image)
    assert (plain[:3] == 3).all() and (plain[3:23] >= 100).all(), "no stretch, no crop: letterbox only"


# --------------------------------------------------------------------- decoded cache and dataset


@pytest.fixture
def files(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        shape = (12 + 2 * i, 16, 3) if i % 2 else (16, 10 + i)
        paths.append(str(save(tmp_path / "img" / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))))
    return paths


PRE = Preprocess(img_size=16, in_chans=3, fill=9)


def test_cache_put_get_round_trip(tmp_path, files):
    cache = DecodedCache(tmp_path / "cache", files, PRE)
    assert cache.shape == (6, 16, 16, 3)
    assert cache.filled_count() == 0 and cache.get(2) is None
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    cache.put(2, image)
    np.testing.assert_array_equal(cache.get(2), image)
    assert cache.filled_count() == 1 and cache.get(3) is None
    again = DecodedCache(tmp_path / "cache", files, PRE)  # e.g. the next run
    assert again.filled_count() == 1
    np.testing.assert_array_equal(again.get(2), image)
    assert cache_bytes(6, PRE) == 6 * 16 * 16 * 3
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_cache_key_changes_with_mtime_and_settings(files):
    key = cache_key(files, PRE)
    assert key == cache_key(list(files), Preprocess(16, 3, 9))
    assert key != cache_key(files, Preprocess(16, 3, 10))
    assert key != cache_key(files, Preprocess(16, 1, 9))
    assert key != cache_key(files, Preprocess(16, 3, 9, autolevel=True))
    assert key != cache_key(files[::-1], PRE)
    stat = os.stat(files[0])
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache_key(files, PRE) != key


def test_cache_changed_file_is_not_served_stale(tmp_path, files):
    cache = DecodedCache(tmp_path / "cache", files, PRE)
    cache.put(0, np.zeros((16, 16, 3), np.uint8))
    stat = os.stat(files[0])
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert DecodedCache(tmp_path / "cache", files, PRE).filled_count() == 0


def test_cache_survives_pickling(tmp_path, files):
    cache = DecodedCache(tmp_path / "cache", files, PRE)
    image = np.full((16, 16, 3), 123, np.uint8)
    cache.put(4, image)
    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.get(4), image)
    clone.put(1, image + 1)  # writes through the shared file
    np.testing.assert_array_equal(cache.get(1), image + 1)
    assert cache.filled_count() == 2


def test_existing_cache_is_found_read_only_and_never_created(tmp_path, files):
    folder = tmp_path / "cache"
    assert DecodedCache.existing(folder, files, PRE) is None and not folder.exists()
    DecodedCache(folder, files, PRE).put(1, np.full((16, 16, 3), 7, np.uint8))
    found = DecodedCache.existing(folder, files, PRE)
    np.testing.assert_array_equal(found.get(1), np.full((16, 16, 3), 7, np.uint8))
    assert found.get(0) is None
    with pytest.raises(ValueError, match="read-only"):
        found.put(0, np.zeros((16, 16, 3), np.uint8))
    assert DecodedCache.existing(folder, files, Preprocess(16, 3, 10)) is None  # other preprocessing
    assert DecodedCache.existing(folder, files[:-1], PRE) is None  # other images
    stat = os.stat(files[2])
    os.utime(files[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert DecodedCache.existing(folder, files, PRE) is None, "a changed file makes the cache stale"
    os.remove(files[3])
    assert DecodedCache.existing(folder, files, PRE) is None


def test_cached_rows_serve_the_rows_of_any_path_order(tmp_path, files):
    parts = files[:3], files[3:]
    for part, value in zip(parts, (10, 20)):
        cache = DecodedCache(tmp_path / "cache", part, PRE)
        for row in range(3):
            cache.put(row, np.full((16, 16, 3), value + row, np.uint8))
    paths = [files[4], str(tmp_path / "elsewhere.png"), files[0]]
    rows = CachedRows([DecodedCache.existing(tmp_path / "cache", part, PRE) for part in parts], paths)
    assert rows.found == 2
    assert rows.get(0)[0, 0, 0] == 21 and rows.get(1) is None and rows.get(2)[0, 0, 0] == 10
    rows.put(1, np.zeros((16, 16, 3), np.uint8))  # read-only: nothing is added
    assert rows.get(1) is None
    dataset = _dataset(paths, lambda x: x, rows)  # rows the dataset would otherwise decode
    assert torch.equal(dataset[0][0], torch.full((3, 16, 16), 21, dtype=torch.uint8))


def _dataset(files: list[str], transform, cache=None) -> ImageDataset:
    return ImageDataset(files, list(range(len(files))), PRE, transform, cache=cache)


def test_dataset_same_with_and_without_cache(tmp_path, files):
    transform = eval_transform(*imagenet_stats(3))
    plain = _dataset(files, transform)
    cache = DecodedCache(tmp_path / "cache", files, PRE)
    cached = _dataset(files, transform, cache)
    for round_ in range(2):  # first fills the cache, second reads it
        for i in range(len(files)):
            x, y = plain[i]
            xc, yc = cached[i]
            assert x.shape == (3, 16, 16) and x.dtype == torch.float32
            assert torch.equal(x, xc) and y == yc == i
        assert cache.filled_count() == len(files)
    sentinel = np.full((16, 16, 3), 1, np.uint8)
    cache.put(0, sentinel)
    np.testing.assert_array_equal(cached.load_uint8(0), sentinel)  # proves the cache is read


@pytest.mark.parametrize("group_pixels", [1, 400, 1 << 24], ids=["one-per-group", "some", "all"])
def test_load_uint8_many_matches_one_by_one(tmp_path, files, monkeypatch, group_pixels):
    monkeypatch.setattr(dataset_module, "GROUP_PIXELS", group_pixels)
    cache = DecodedCache(tmp_path / "cache", files, PRE)
    dataset = _dataset(files, lambda x: x, cache)
    cache.put(1, np.full((16, 16, 3), 7, np.uint8))  # a cached row is served as it is, not decoded
    indices = [4, 1, 0, 4, 5, 2]
    many = dataset.load_uint8_many(indices)
    expected = [np.full((16, 16, 3), 7, np.uint8) if i == 1 else PRE(read_image(files[i], in_chans=3, fill=9))
                for i in indices]
    assert len(many) == len(indices) and all(np.array_equal(a, b) for a, b in zip(many, expected))
    assert cache.filled_count() == 5, "the decoded images were put in the cache"


def test_load_uint8_many_raises_the_first_bad_file(tmp_path, files):
    (tmp_path / "text.png").write_text("not an image")
    dataset = _dataset([files[0], str(tmp_path / "text.png")], lambda x: x)
    with pytest.raises(ImageReadError, match="text.png: not_an_image"):
        dataset.load_uint8_many([0, 1])


def test_dataset_uint8_matches_preprocess(files):
    from winnow.data.imageio import read_image
    dataset = _dataset(files, lambda x: x)
    image, target = dataset[3]
    expected = PRE(read_image(files[3], in_chans=3, fill=9))
    assert target == 3 and image.dtype == torch.uint8
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), expected)


def test_dataset_seeded_augmentation_is_reproducible(files):
    dataset = _dataset(files, train_transform(*imagenet_stats(3), fill=9, rotate=30))
    first, _ = dataset[(2, 1234)]
    torch.manual_seed(999)  # global RNG state must not matter
    again, _ = dataset[(2, 1234)]
    other, _ = dataset[(2, 1235)]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_dataset_length_mismatch(files):
    with pytest.raises(ValueError, match="differ in length: 6 vs 5"):
        ImageDataset(files, [0] * 5, PRE, lambda x: x)


def _batches(dataset: ImageDataset, workers: int) -> list[torch.Tensor]:
    sampler = build_sampler("random", [0] * len(dataset), 1, batch_size=4, seed=5)
    sampler.set_epoch(1)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=workers)
    return [torch.cat([x.flatten(1), y[:, None].float()], 1) for x, y in loader]


def test_dataloader_workers_and_cache_give_identical_batches(tmp_path, files):
    transform = train_transform(*imagenet_stats(3), fill=9)
    reference = _batches(_dataset(files, transform), workers=0)
    cache = DecodedCache(tmp_path / "cache", files, PRE)
    with_workers = _batches(_dataset(files, transform, cache), workers=2)
    assert len(reference) == len(with_workers) == 2
    for a, b in zip(reference, with_workers):
        assert torch.equal(a, b)
    assert cache.filled_count() == len(files), "workers fill the shared cache"
    from_cache = _batches(_dataset(files, transform, DecodedCache(tmp_path / "cache", files, PRE)), workers=0)
    assert all(torch.equal(a, b) for a, b in zip(reference, from_cache))


# --------------------------------------------------------------------- transforms


def _denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]) * 255


@pytest.mark.parametrize("in_chans,fill", [(1, 128), (3, 200)])
def test_train_transform_keeps_padding_at_fill(in_chans, fill):
    mean, std = imagenet_stats(in_chans)
    transform = train_transform(mean, std, fill=fill, rotate=45, scale_jitter=0.3, brightness=0, contrast=0)
    image = torch.full((in_chans, 24, 24), fill, dtype=torch.uint8)
    for seed in range(8):
        torch.manual_seed(seed)
        out = transform(image)
        assert out.shape == (in_chans, 24, 24) and out.dtype == torch.float32
        assert torch.allclose(_denormalize(out, mean, std), torch.tensor(float(fill)), atol=1e-3)


@pytest.mark.parametrize("fill,other", [(60, 0.0), (0, 60.0)])
def test_train_transform_rotation_pads_with_fill(fill, other):
    """A white square rotated by up to 45 degrees shows fill (and no other level) in its corners."""
    mean, std = [0.0], [1.0]
    transform = train_transform(mean, std, fill=fill, hflip=0, vflip=0, rotate=45, scale_jitter=0,
                                brightness=0, contrast=0)
    values = set()
    for seed in range(6):
        torch.manual_seed(seed)
        out = _denormalize(transform(torch.full((1, 32, 32), 255, dtype=torch.uint8)), mean, std)
        values |= set(torch.round(out).unique().tolist())
    assert float(fill) in values and other not in values


def test_eval_transform_normalises():
    mean, std = imagenet_stats(3)
    image = torch.randint(0, 256, (3, 5, 5), dtype=torch.uint8)
    out = eval_transform(mean, std)(image)
    expected = (image.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(out, expected, atol=1e-6)
    gray_mean, gray_std = imagenet_stats(1)
    assert gray_mean == [pytest.approx(sum(mean) / 3)] and gray_std == [pytest.approx(sum(std) / 3)]


def test_channel_stats_equals_numpy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    images[:, 1] //= 4  # channels with different statistics
    mean, std = channel_stats(torch.from_numpy(images))
    values = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(mean, values.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(std, values.std(axis=1), rtol=5e-4)


def test_channel_stats_flat_images_have_floor_std():
    mean, std = channel_stats(torch.full((2, 1, 4, 4), 51, dtype=torch.uint8))
    assert mean == [pytest.approx(0.2)] and std == [pytest.approx(1e-3)]
