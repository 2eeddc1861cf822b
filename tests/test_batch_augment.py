"""BatchAugment: whole-batch training augmentation against torchvision's per-image functions."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from winnow.data.batch_augment import BatchAugment, batch_augmentation

from conftest import fast_config

UNIT = ([0.0], [1.0])  # no normalisation: outputs are 0..1 pixels


def _images(n: int = 6, channels: int = 1, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, size), generator=torch.Generator().manual_seed(0),
                         dtype=torch.uint8)


def _draws(n: int, **columns: float) -> torch.Tensor:
    """Parameter draws `[n, 4]` for `_geometry` / `[n, 2]` for `_colour`, every row alike."""
    return torch.tensor([list(columns.values())] * n)


def test_flips_alone_are_exact_index_flips():
    x = _images().float() / 255
    augment = BatchAugment(*UNIT, hflip=0.5, vflip=0.5, rotate=0, scale_jitter=0, brightness=0, contrast=0)
    both = augment._geometry(x, _draws(len(x), h=0.0, v=0.0, a=0.5, z=0.5))
    none = augment._geometry(x, _draws(len(x), h=0.9, v=0.9, a=0.5, z=0.5))
    assert torch.equal(both, x.flip(-1).flip(-2)) and torch.equal(none, x)


def test_a_quarter_turn_matches_rot90_and_a_flip_folds_into_the_same_resampling():
    x = _images(channels=3).float() / 255
    augment = BatchAugment([0.0] * 3, [1.0] * 3, hflip=0.5, vflip=0.5, rotate=90, scale_jitter=0.1)
    turned = augment._geometry(x, _draws(len(x), h=0.9, v=0.9, a=1.0, z=0.5))  # +90 degrees, zoom 1
    turned_back = augment._geometry(x, _draws(len(x), h=0.9, v=0.9, a=0.0, z=0.5))  # -90 degrees
    def is_rot90(out: torch.Tensor, k: int) -> bool:
        return torch.allclose(out, torch.rot90(x, k, dims=(-2, -1)), atol=1e-5)

    # the sign convention of the angle does not matter (the draw is symmetric); exactness does
    assert (is_rot90(turned, 1) and is_rot90(turned_back, -1)) or (is_rot90(turned, -1) and is_rot90(turned_back, 1))
    flipped = augment._geometry(x, _draws(len(x), h=0.0, v=0.9, a=0.5, z=0.5))  # no turn, horizontal flip
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)


def test_zoom_out_reveals_the_fill_value():
    x = torch.full((2, 1, 16, 16), 200, dtype=torch.uint8).float() / 255
    augment = BatchAugment(*UNIT, fill=40, rotate=0, scale_jitter=0.5)
    out = augment._geometry(x, _draws(2, h=0.9, v=0.9, a=0.5, z=0.0))  # zoom 0.5: the image shrinks
    assert out[0, 0, 0, 0] == pytest.approx(40 / 255, abs=1e-6)
    assert out[0, 0, 8, 8] == pytest.approx(200 / 255, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_brightness_and_contrast_equal_torchvisions_functions(channels):
    x = _images(channels=channels).float() / 255
    augment = BatchAugment([0.0] * channels, [1.0] * channels, brightness=0.4, contrast=0.4)
    out = augment._colour(x, _draws(len(x), b=1.0, c=0.0))  # brightness 1.4, contrast 0.6
    expected = TF.adjust_contrast(TF.adjust_brightness(x, 1.4), 0.6)
    assert torch.allclose(out, expected, atol=1e-5)


def test_normalisation_and_output_type():
    augment = BatchAugment([0.5], [0.25], hflip=0, vflip=0, rotate=0, scale_jitter=0, brightness=0, contrast=0)
    x = _images()
    out = augment(x, epoch=0, step=0)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.allclose(out, (x.float() / 255 - 0.5) / 0.25)


def test_draws_depend_on_epoch_and_step_only():
    augment = BatchAugment(*UNIT, seed=3)
    x = _images(n=32)
    assert torch.equal(augment(x, epoch=2, step=5), augment(x, epoch=2, step=5))  # a resumed step redraws it
    assert not torch.equal(augment(x, epoch=2, step=5), augment(x, epoch=2, step=6))
    assert not torch.equal(augment(x, epoch=2, step=5), BatchAugment(*UNIT, seed=4)(x, epoch=2, step=5))


def test_flip_and_erasing_rates_follow_their_probabilities():
    x = torch.full((4000, 1, 8, 8), 255, dtype=torch.uint8)
    x[:, :, :, :4] = 0  # left half dark: a horizontal flip moves it right
    flips = BatchAugment(*UNIT, hflip=0.3, vflip=0, rotate=0, scale_jitter=0, brightness=0, contrast=0)
    assert (flips(x, epoch=0, step=0)[:, 0, 0, 0] == 1).float().mean() == pytest.approx(0.3, abs=0.03)
    erasing = BatchAugment(*UNIT, hflip=0, vflip=0, rotate=0, scale_jitter=0, brightness=0, contrast=0,
                           random_erasing=0.25)
    erased = (erasing(torch.full((4000, 1, 32, 32), 255, dtype=torch.uint8), epoch=0, step=0) == 0).float()
    share = erased.mean((1, 2, 3))
    assert (share > 0).float().mean() == pytest.approx(0.25, abs=0.03)
    assert share[share > 0].min() >= 0.005 and share.max() <= 0.40


def test_config_picks_the_batch_path_when_asked_unless_randaugment(tmp_path):
    config = fast_config(tmp_path, tmp_path, augment="standard", rotate=15.0, scale_jitter=0.1, brightness=0.1,
                         contrast=0.1, batch_augment=True)
    assert isinstance(batch_augmentation(config, [0.5], [0.2]), BatchAugment)
    assert batch_augmentation(config.replace(randaugment=True), [0.5], [0.2]) is None
    assert batch_augmentation(config.replace(batch_augment=False), [0.5], [0.2]) is None  # the default


def test_mean_and_std_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one value per channel, got 3 and 1"):
        BatchAugment([0.5, 0.5, 0.5], [0.2])
