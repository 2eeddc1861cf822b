"""Progressive resizing (`progressive_resize`, `progressive_resize_until`): the schedule, the batches, a run."""

from __future__ import annotations

import logging

import pytest
import torch

import winnow
from winnow.config import from_dict
from winnow.training.progressive_resize import ResizeSchedule

from conftest import fast_config, make_image_folder


@pytest.mark.parametrize("img_size, scale, until, epochs", [
    (64, 0.5, 0.75, 15), (64, 0.5, 1.0, 15), (224, 0.25, 0.5, 30), (32, 0.5, 0.75, 3), (64, 1.0, 0.75, 8)])
def test_schedule_rises_in_steps_of_8_to_the_full_size(img_size, scale, until, epochs):
    sizes = ResizeSchedule(img_size, start_scale=scale, until=until, epochs=epochs).sizes()
    assert len(sizes) == epochs
    assert sizes == sorted(sizes), "the size never goes down"
    assert sizes[-1] == img_size
    assert all(size == img_size or size % 8 == 0 for size in sizes)
    assert abs(sizes[0] - scale * img_size) <= 4 or sizes[0] == img_size
    # full size from `until` of the epochs on (0-based epoch ceil(until * epochs) - 1)
    assert all(size == img_size for size in sizes[max(0, -(-int(until * epochs * 1000) // 1000) - 1):])


def test_a_one_epoch_run_trains_at_full_size():
    assert ResizeSchedule(64, start_scale=0.5, until=0.75, epochs=1).sizes() == [64]


def test_batches_shrink_and_full_size_batches_pass_through():
    schedule = ResizeSchedule(32, start_scale=0.5, until=1.0, epochs=4)
    images = torch.rand(3, 2, 32, 32)
    small = schedule(images, epoch=0)
    assert small.shape == (3, 2, 16, 16)
    assert torch.allclose(small.mean(), images.mean(), atol=0.05)  # an average, not a crop
    assert schedule(images, epoch=3) is images


@pytest.mark.parametrize("key, value", [("progressive_resize", 0), ("progressive_resize", 1.5),
                                        ("progressive_resize_until", 0), ("progressive_resize_until", 2)])
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        from_dict({key: value})


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match=r"progressive_resize must be in \(0, 1\]"):
        ResizeSchedule(64, start_scale=0, until=0.5, epochs=4)
    with pytest.raises(ValueError, match="progressive_resize_until"):
        ResizeSchedule(64, start_scale=0.5, until=1.5, epochs=4)


def test_a_run_trains_small_first_and_scores_at_full_size(tmp_path, caplog):
    data = make_image_folder(tmp_path / "folder")
    sizes: list[int] = []
    original = ResizeSchedule.__call__

    def recording(self, images, *, epoch):
        out = original(self, images, epoch=epoch)
        sizes.append(out.shape[-1])
        return out

    with caplog.at_level(logging.INFO, logger="winnow"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ResizeSchedule, "__call__", recording)
            run = winnow.train(fast_config(tmp_path, data, epochs=3, progressive_resize=0.5,
                                           progressive_resize_until=1.0))
    assert "training image side per epoch [16, 24, 32]" in caplog.text
    assert sorted(set(sizes)) == [16, 24, 32] and sizes == sorted(sizes)
    assert run.status == "finished" and "test_accuracy" in run.test_metrics
