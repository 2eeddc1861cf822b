"""Augmented views for pretraining, suited to grayscale microscopy (torchvision v2)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms import v2


class RandomRot90(nn.Module):
    """Turn a `[..., H, W]` image by 0, 90, 180 or 270 degrees (exact: no interpolation), drawn from torch's RNG."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        turns = int(torch.randint(4, (1,)).item())
        return torch.rot90(image, turns, dims=(-2, -1)) if turns else image


VIEW_DEFAULTS = {
    "crop_scale": [0.4, 1.0],  # share of the image a random resized crop keeps: moderate, cells stay whole-ish
    "brightness": 0.4,
    "contrast": 0.4,
    "jitter_prob": 0.8,
    "blur_prob": 0.2,  # light Gaussian blur (sigma 0.1-1.5 px)
}
"""`pretrain_params` of the two-view methods (simclr, byol) that shape their views."""


class TwoViews(nn.Module):
    """`[C, S, S]` uint8 -> two independently augmented views stacked on channels, `[2C, S, S]` float.

    Stacking on channels keeps a batch `[B, 2C, S, S]` 4-D, as the training loop moves images.
    """

    def __init__(self, view: nn.Module) -> None:
        super().__init__()
        self.view = view

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.view(image), self.view(image)], dim=0)


def view_transform(mean: list[float], std: list[float], *, img_size: int, params: dict) -> TwoViews:
    """Views for grayscale microscopy: crop, flips, 90-degree turns, brightness/contrast, light blur; no hue jitter.

    Colour jitter beyond brightness and contrast (hue, saturation, grayscale conversion) means nothing
    on 1-channel images and is left out for every channel count.
    """
    low, high = params["crop_scale"]
    view = v2.Compose([
        v2.RandomResizedCrop(img_size, scale=(float(low), float(high)), antialias=True),
        v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), RandomRot90(),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomApply([v2.ColorJitter(brightness=params["brightness"], contrast=params["contrast"])],
                       p=params["jitter_prob"]),
        v2.RandomApply([v2.GaussianBlur(kernel_size=_blur_kernel(img_size), sigma=(0.1, 1.5))], p=params["blur_prob"]),
        v2.Normalize(mean, std)])
    return TwoViews(view)


def _blur_kernel(img_size: int) -> int:
    """An odd kernel of about a tenth of the image, 3 at least."""
    return max(3, img_size // 10 // 2 * 2 + 1)
