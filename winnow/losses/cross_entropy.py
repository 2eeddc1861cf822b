"""Cross-entropy with label smoothing and class weights."""

from __future__ import annotations

import torch
from torch import nn


def cross_entropy(*, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> nn.Module:
    """Softmax cross-entropy over logits `[B, K]` and targets `[B]`."""
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
