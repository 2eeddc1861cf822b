"""``bilinear:<backbone>``: bilinear (second-order) pooling for fine-grained recognition.

B-CNN pooling (Lin et al., 2015) of the last feature map: the average over positions
of the outer product of the channel vector with itself, then signed square root and
L2 normalisation. A 1x1 conv first reduces C to ``reduce_dim`` channels so the
embedding (``reduce_dim ** 2``) stays manageable for wide backbones (2048 -> 128).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import ConvNormAct
from torch import nn

from winnow.constraints import check_value
from winnow.models.families.base import (POSITIVE_INT, FamilyClassifier, create_trunk, neck_channels,
                                         run_in_float32)

DEFAULT_REDUCE_DIM = 128
"""Default channels after the 1x1 reduction (embedding size 128 ** 2 = 16384)."""


def signed_sqrt(x: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """``sign(x) * sqrt(|x| + eps)``, elementwise (``eps`` keeps the gradient finite near 0)."""
    return torch.sign(x) * torch.sqrt(x.abs() + eps)


def bilinear_pool(x: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Bilinear pooling with signed square root and L2 normalisation.

    Args:
        x: Feature map ``[B, C, H, W]``.
        eps: Added under the square root (see :func:`signed_sqrt`).

    Returns:
        Embedding ``[B, C * C]``: ``mean_over_positions(v v^T)`` flattened, signed
        square-rooted and scaled to unit L2 norm per sample.
    """
    flat = x.flatten(2)  # [B, C, N]
    gram = torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[2]  # [B, C, C]
    return F.normalize(signed_sqrt(gram.flatten(1), eps=eps), dim=1)


class BilinearPool(nn.Module):
    """Optional 1x1 channel reduction, then :func:`bilinear_pool`, ``[B, C, H, W] -> [B, D]``.

    Args:
        in_channels: Channels C of the input map.
        reduce_dim: Channels after a 1x1 conv + BN + ReLU; None keeps all C.
        eps: See :func:`signed_sqrt`.

    Attributes:
        out_features: Embedding size D = ``reduce_dim ** 2`` (or ``C ** 2``).
    """

    def __init__(self, in_channels: int, *, reduce_dim: int | None = DEFAULT_REDUCE_DIM,
                 eps: float = 1e-8) -> None:
        super().__init__()
        if reduce_dim is None:
            self.reduce: nn.Module = nn.Identity()
            channels = in_channels
        else:
            channels = check_value("reduce_dim", reduce_dim, [None, POSITIVE_INT],
                                   hint=f"use e.g. {DEFAULT_REDUCE_DIM}, or None to keep all channels")
            self.reduce = ConvNormAct(in_channels, channels, kernel_size=1)
        self.out_features = channels * channels
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``[B, C, H, W]`` to ``[B, out_features]`` (the product is taken in float32)."""
        return run_in_float32(partial(bilinear_pool, eps=self.eps), self.reduce(x))


def create_bilinear(backbone: str, *, num_classes: int, in_chans: int, drop_rate: float = 0.0,
                    reduce_dim: int | None = DEFAULT_REDUCE_DIM) -> FamilyClassifier:
    """Build ``bilinear:<backbone>``: timm backbone, bilinear pooling, linear classifier.

    Args:
        backbone: timm model name with a ``[B, C, H, W]`` feature map.
        num_classes: Output classes.
        in_chans: Input channels (1 or 3).
        drop_rate: Dropout before the classifier.
        reduce_dim: Channels after the 1x1 reduction; None pools all C channels
            (embedding C ** 2, e.g. 4M for a ResNet-50; only for narrow backbones).

    Returns:
        Model whose embedding is ``[B, reduce_dim ** 2]``.
    """
    trunk = create_trunk(backbone, in_chans=in_chans)
    pool = BilinearPool(neck_channels(trunk), reduce_dim=reduce_dim)
    return FamilyClassifier(trunk, name=f"bilinear:{backbone}", pool=pool, num_features=pool.out_features,
                            num_classes=num_classes, drop_rate=drop_rate)
