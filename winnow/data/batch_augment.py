"""Training augmentation of whole batches on the training device.

The per-image torchvision pipeline (`winnow.data.transforms.train_transform`) runs in data-loader
workers, one image at a time: at 64 px its random affine alone costs about 1 ms per image of CPU,
a quarter of a resnet18 training step's compute on a 2-core machine, taken from the cores the model
trains on. `BatchAugment` draws the same kinds of random parameters per image but applies them to the
whole uint8 batch `[B, C, S, S]` after it reached the device: flips and the rotation + scale go into
one `affine_grid` / `grid_sample` (bilinear), brightness and contrast are two broadcast operations,
then normalisation. On a GPU the copy is uint8 (4x smaller than float32) and the work runs there.

Each image's parameters come from a generator seeded with `(seed, epoch, step)`, so a run resumed at
a step draws what the uninterrupted run drew; distributed ranks pass their own `seed`.

RandAugment works on single uint8 images and stays in the per-image pipeline: a config with
`randaugment` trains without `BatchAugment` (`batch_augmentation` returns None).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_GRAY = (0.2989, 0.587, 0.114)  # luma weights of torchvision's rgb_to_grayscale


class BatchAugment(nn.Module):
    """Random flips, rotation, scale, brightness, contrast and erasing of a batch, then normalisation.

    Args:
        mean, std: Per-channel normalisation (of 0..1 pixels).
        fill: Background value (0-255) that rotation and zoom-out reveal, as the padding of preprocessing.
        hflip, vflip: Probability of each flip.
        rotate: Rotation drawn uniformly in [-rotate, rotate] degrees.
        scale_jitter: Zoom drawn uniformly in [1 - scale_jitter, 1 + scale_jitter].
        brightness, contrast: Factors drawn uniformly in [1 - x, 1 + x] (torchvision's ColorJitter).
        random_erasing: Probability of zeroing one random rectangle (2-33% of the area, aspect 0.3-3.3).
        seed: Base seed of the parameter draws.
    """

    def __init__(self, mean: list[float], std: list[float], *, fill: int = 0, hflip: float = 0.5,
                 vflip: float = 0.5, rotate: float = 15.0, scale_jitter: float = 0.1, brightness: float = 0.1,
                 contrast: float = 0.1, random_erasing: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have one value per channel, got {len(mean)} and {len(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.fill, self.hflip, self.vflip = fill / 255, hflip, vflip
        self.rotate, self.scale_jitter = rotate, scale_jitter
        self.brightness, self.contrast, self.random_erasing = brightness, contrast, random_erasing
        self.seed = seed

    def forward(self, images: torch.Tensor, *, epoch: int, step: int) -> torch.Tensor:
        """`[B, C, S, S]` uint8 (or float in 0..1) -> augmented, normalised float32 `[B, C, S, S]`."""
        generator = torch.Generator().manual_seed(_mix(self.seed, epoch, step))
        draws = torch.rand(len(images), 11, generator=generator).to(images.device, non_blocking=True)
        x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        x = self._geometry(x, draws[:, :4])
        x = self._colour(x, draws[:, 4:6])
        x = (x - self.mean) / self.std
        return self._erase(x, draws[:, 6:11]) if self.random_erasing else x

    def _geometry(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Flips alone as index flips; with rotation or zoom, flips fold into one bilinear resampling."""
        h_flip, v_flip = draws[:, 0] < self.hflip, draws[:, 1] < self.vflip
        if not (self.rotate or self.scale_jitter):
            x = torch.where(h_flip.view(-1, 1, 1, 1), x.flip(-1), x)
            return torch.where(v_flip.view(-1, 1, 1, 1), x.flip(-2), x)
        angle = torch.deg2rad((draws[:, 2] * 2 - 1) * self.rotate)
        zoom = 1 + (draws[:, 3] * 2 - 1) * self.scale_jitter
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        sign_x, sign_y = 1 - 2 * h_flip.float(), 1 - 2 * v_flip.float()
        # affine_grid maps output to input coordinates: rotate by -angle, shrink by zoom, then flip
        theta = torch.stack([torch.stack([cos * sign_x, sin * sign_x, torch.zeros_like(cos)], 1),
                             torch.stack([-sin * sign_y, cos * sign_y, torch.zeros_like(cos)], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + self.fill

    def _colour(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        if self.brightness:
            x = (x * (1 + (draws[:, 0] * 2 - 1) * self.brightness).view(-1, 1, 1, 1)).clamp_(0, 1)
        if self.contrast:
            factor = (1 + (draws[:, 1] * 2 - 1) * self.contrast).view(-1, 1, 1, 1)
            x = ((x - _gray_mean(x)) * factor + _gray_mean(x)).clamp_(0, 1)
        return x

    def _erase(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Zero one rectangle per image with probability `random_erasing` (of the normalised image)."""
        size = x.shape[-1]
        area = 0.02 + draws[:, 1] * (0.33 - 0.02)
        aspect = torch.exp(math.log(0.3) + draws[:, 2] * (math.log(3.3) - math.log(0.3)))
        height = (torch.sqrt(area * aspect) * size).clamp(1, size).floor()
        width = (torch.sqrt(area / aspect) * size).clamp(1, size).floor()
        top = ((size - height + 1) * draws[:, 3]).floor()
        left = ((size - width + 1) * draws[:, 4]).floor()
        rows = torch.arange(size, device=x.device).view(1, -1, 1)
        cols = torch.arange(size, device=x.device).view(1, 1, -1)
        inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + height).view(-1, 1, 1))
                  & (cols >= left.view(-1, 1, 1)) & (cols < (left + width).view(-1, 1, 1)))
        erase = (draws[:, 0] < self.random_erasing).view(-1, 1, 1) & inside
        return x.masked_fill(erase.unsqueeze(1), 0.0)


def _gray_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean grey level of each image `[B, 1, 1, 1]` (luma for 3 channels, as torchvision's contrast)."""
    if x.shape[1] == 3:
        weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    return x.mean((1, 2, 3), keepdim=True)


def _mix(seed: int, epoch: int, step: int) -> int:
    """One 63-bit seed per (seed, epoch, step): distinct for every step of every epoch."""
    return ((seed * 1_000_003 + epoch) * 1_000_033 + step) & (2**63 - 1)


def uses_batch_augment(config) -> bool:
    """Whether a training config augments whole batches on the device (`batch_augment`, not with RandAugment).

    Opt-in: SWA's BatchNorm refresh, the distributed-equals-single-process guarantee and bench/pipeline.py
    still expect normalised float batches from the loader.
    """
    return config.batch_augment and not config.randaugment


def keep_uint8(image: torch.Tensor) -> torch.Tensor:
    """The training datasets' transform under `BatchAugment`: the `[C, S, S]` uint8 image as it is."""
    return image


def batch_augmentation(config, mean: list[float], std: list[float], *, rank: int = 0) -> BatchAugment | None:
    """The `BatchAugment` of a training config (resolved `augment` values), or None with `randaugment`.

    Args:
        config: A `winnow.config.Config` whose rotate/scale_jitter/brightness/contrast are resolved.
        mean, std: The run's normalisation.
        rank: Distributed rank (each rank draws its own parameters).
    """
    if not uses_batch_augment(config):
        return None
    return BatchAugment(mean, std, fill=config.fill, hflip=config.hflip, vflip=config.vflip, rotate=config.rotate,
                        scale_jitter=config.scale_jitter, brightness=config.brightness, contrast=config.contrast,
                        random_erasing=config.random_erasing, seed=config.seed * 1009 + rank)
