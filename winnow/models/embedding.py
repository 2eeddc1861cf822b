"""A model's pooled embedding as a module, through the timm interface every winnow model exposes."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingModel(nn.Module):
    """`images [B, C, H, W]` -> pooled pre-logits embeddings `[B, D]` of `model`.

    Uses `forward_features` then `forward_head(pre_logits=True)`, so any timm or winnow model works.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)
