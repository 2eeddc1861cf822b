"""``gem:<backbone>``: generalized-mean (GeM) pooling instead of global average pooling.

GeM (Radenović et al., 2018) pools each channel as ``mean(x ** p) ** (1 / p)`` with a
learnable exponent p: p = 1 is average pooling, p -> inf approaches max pooling.
timm 1.0 has no GeM in ``timm.layers`` (``SelectAdaptivePool2d`` offers avg/max/
avgmax/catavgmax only), so it is implemented here.
"""

from __future__ import annotations

from functools import partial
from numbers import Real

import torch
from torch import nn

from winnow.constraints import Interval, check_value
from winnow.models.families.base import (FamilyClassifier, create_trunk, neck_channels,
                                         run_in_float32)


def gem_pool(x: torch.Tensor, p: torch.Tensor | float, *, eps: float = 1e-6) -> torch.Tensor:
    """Generalized-mean pooling over all positions.

    Args:
        x: Feature map ``[B, C, H, W]``; values are clamped to ``eps`` first, so GeM
            suits non-negative (post-ReLU/SiLU) maps.
        p: Exponent (scalar tensor or float); 1 gives average pooling.
        eps: Lower clamp that keeps ``x ** p`` and its root finite.

    Returns:
        Pooled embedding ``[B, C]``.
    """
    return x.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class GeneralizedMeanPool2d(nn.Module):
    """GeM pooling ``[B, C, H, W] -> [B, C]`` with a (by default learnable) exponent ``p``.

    Args:
        p: Initial exponent (3 as in the GeM paper).
        eps: Lower clamp of the input (see :func:`gem_pool`).
        learn_p: Train ``p`` with the model (False: fixed exponent).
    """

    def __init__(self, p: float = 3.0, *, eps: float = 1e-6, learn_p: bool = True) -> None:
        super().__init__()
        check_value("GeM exponent p", p, [Interval(Real, 0, None, closed="neither")],
                    hint="use p=3.0 (paper) or p=1.0 (average)")
        self.p = nn.Parameter(torch.full((1,), float(p)), requires_grad=learn_p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``[B, C, H, W]`` to ``[B, C]`` (computed in float32)."""
        return run_in_float32(partial(gem_pool, p=self.p.float(), eps=self.eps), x)

    def extra_repr(self) -> str:
        """Current exponent and eps, shown in ``print(model)``."""
        return f"p={self.p.item():.4f}, eps={self.eps}"


def create_gem(backbone: str, *, num_classes: int, in_chans: int, drop_rate: float = 0.0,
               p: float = 3.0, learn_p: bool = True) -> FamilyClassifier:
    """Build ``gem:<backbone>``: the timm backbone with GeM pooling and a linear classifier.

    Args:
        backbone: timm model name with a ``[B, C, H, W]`` feature map.
        num_classes: Output classes.
        in_chans: Input channels (1 or 3).
        drop_rate: Dropout before the classifier.
        p: Initial GeM exponent.
        learn_p: Whether p is trained.

    Returns:
        Model whose embedding (``forward_head(..., pre_logits=True)``) is ``[B, C]``.
    """
    trunk = create_trunk(backbone, in_chans=in_chans)
    channels = neck_channels(trunk)
    return FamilyClassifier(trunk, name=f"gem:{backbone}", pool=GeneralizedMeanPool2d(p, learn_p=learn_p),
                            num_features=channels, num_classes=num_classes, drop_rate=drop_rate)
