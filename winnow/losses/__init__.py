"""Loss registry: pick a loss by name (`loss=NAME`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from winnow.losses.cross_entropy import cross_entropy

LOSSES: dict[str, Callable[..., nn.Module]] = {
    "ce": cross_entropy,
}


def create_loss(name: str, *, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> nn.Module:
    """Build a loss by name; unknown names list the valid ones."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](weight=weight, label_smoothing=label_smoothing)
