"""Augmented views for pretraining, suited to grayscale microscopy (torchvision v2)."""

from __future__ import annotations

import torch
from torch import nn


class RandomRot90(nn.Module):
    """Turn a `[..., H, W]` image by 0, 90, 180 or 270 degrees (exact: no interpolation), drawn from torch's RNG."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        turns = int(torch.randint(4, (1,)).item())
        return torch.rot90(image, turns, dims=(-2, -1)) if turns else image
