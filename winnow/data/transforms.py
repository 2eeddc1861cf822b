"""Train and eval transform presets (torchvision.transforms.v2) on cached uint8 tensors."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_stats(in_chans: int) -> tuple[list[float], list[float]]:
    """ImageNet mean/std for 3 channels, or their average for 1 channel."""
    if in_chans == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]


def eval_transform(mean: list[float], std: list[float]) -> v2.Compose:
    """`[C, S, S]` uint8 -> normalised float32."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def train_transform(
    mean: list[float],
    std: list[float],
    *,
    fill: int = 0,
    hflip: float = 0.5,
    vflip: float = 0.5,
    rotate: float = 15.0,
    scale_jitter: float = 0.1,
    brightness: float = 0.1,
    contrast: float = 0.1,
    randaugment: bool = False,
    random_erasing: float = 0.0,
) -> v2.Compose:
    """Augmentations that keep the padded background at `fill`, then normalisation.

    Geometric and colour steps run on float32 (faster than on uint8 in torchvision); RandAugment
    needs uint8 and runs first.
    """
    steps: list[torch.nn.Module] = []
    if hflip:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if vflip:
        steps.append(v2.RandomVerticalFlip(vflip))
    if randaugment:
        steps.append(v2.RandAugment(fill=fill))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if rotate or scale_jitter:
        scale = (1 - scale_jitter, 1 + scale_jitter)
        # fill None pads with zeros inside grid_sample itself; any other fill makes torchvision sample a
        # mask too and blend, about 30% more affine time for the same black corners
        steps.append(v2.RandomAffine(degrees=rotate, scale=scale, fill=fill / 255 if fill else None))
    if brightness or contrast:
        steps.append(v2.ColorJitter(brightness=brightness, contrast=contrast))
    steps.append(v2.Normalize(mean, std))
    if random_erasing:
        steps.append(v2.RandomErasing(random_erasing, value=0))
    return v2.Compose(steps)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of `[N, C, H, W]` uint8 images, in the 0..1 range."""
    values = images.float().div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    std = values.std(dim=1).clamp_min(1e-3)
    return values.mean(dim=1).tolist(), std.tolist()
