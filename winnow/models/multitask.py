"""One backbone, several heads: the model behind `head: multitask`."""

from __future__ import annotations

import torch
from torch import nn


class MultiTaskModel(nn.Module):
    """A timm backbone (no classifier) with one linear head per task.

    `forward` returns `{task: logits [B, outputs]}`; the timm feature interface is the
    backbone's, so embeddings work as for any model.

    Args:
        backbone: a timm model created with `num_classes=0`.
        outputs: task name -> number of outputs of its head.
        drop_rate: dropout before the heads.
    """

    def __init__(self, backbone: nn.Module, outputs: dict[str, int], *, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = backbone.num_features
        self.pretrained_cfg = {**getattr(backbone, "pretrained_cfg", {}), "classifier": "heads"}
        self.drop = nn.Dropout(drop_rate)
        self.reset_classifier(outputs)

    @property
    def num_classes(self) -> dict[str, int]:
        return {name: head.out_features for name, head in self.heads.items()}

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """`[B, C, H, W]` -> the backbone's feature map."""
        return self.backbone.forward_features(images)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False):
        """Pooled embedding `[B, D]` with `pre_logits`, else `{task: logits}`."""
        embedding = self.backbone.forward_head(features, pre_logits=True)
        if pre_logits:
            return embedding
        embedding = self.drop(embedding)
        return {name: head(embedding) for name, head in self.heads.items()}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(images))

    def get_classifier(self) -> nn.ModuleDict:
        return self.heads

    def reset_classifier(self, num_classes: dict[str, int] | int) -> None:
        """New heads: a dict of task -> outputs, or an int for every existing task."""
        if isinstance(num_classes, int):
            num_classes = {name: num_classes for name in self.heads}
        self.heads = nn.ModuleDict({name: nn.Linear(self.num_features, n) for name, n in num_classes.items()})
