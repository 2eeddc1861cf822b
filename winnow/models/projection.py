"""`embedding_dim: D`: a linear projection between a model's pooled features and its classifier.

`ProjectedModel` wraps any timm or winnow model built without a classifier. Its embedding
(`forward_head(x, pre_logits=True)`) is the projection `[B, D]`, so `winnow embed`, the heads on
embeddings and the metric-learning losses all work on the projected space. No normalisation layer
is added: the metric losses normalise embeddings themselves (cosine or normalised L2 distances).
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from winnow.constraints import Interval, check_value

_DIM = Interval(Integral, 1, None, closed="left")


def pooled_size(model: nn.Module) -> int:
    """Size of `forward_head(x, pre_logits=True)` of a model built without a classifier."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


class ProjectedModel(nn.Module):
    """`backbone` pooled features `[B, F]` -> `Linear(F, D)` embedding `[B, D]` -> classifier `[B, K]`.

    State-dict layout: `backbone.*` (the wrapped model), `projection.*`, `fc.*`. The timm interface
    (`forward_features`, `forward_head`, `get_classifier`, `reset_classifier`, `num_features`,
    `num_classes`, `pretrained_cfg`) is kept; `num_features` is D.

    Args:
        backbone: a timm or winnow model created with `num_classes=0`.
        embedding_dim: D, an int >= 1.
        num_classes: classifier outputs K (0: no classifier, `forward` returns the embedding).
    """

    def __init__(self, backbone: nn.Module, embedding_dim: int, *, num_classes: int) -> None:
        super().__init__()
        dim = check_value("embedding_dim", embedding_dim, [_DIM],
                          hint="it is the size of the projected embedding, e.g. 128; leave it unset (null) "
                               "to use the backbone's pooled features")
        self.backbone = backbone
        self.num_features = self.head_hidden_size = int(dim)
        self.projection = nn.Linear(pooled_size(backbone), self.num_features)
        self.pretrained_cfg = {**getattr(backbone, "pretrained_cfg", {}), "classifier": "fc"}
        self.reset_classifier(num_classes)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """`[B, C, H, W]` -> the backbone's feature map."""
        return self.backbone.forward_features(images)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> projected embedding `[B, D]` with `pre_logits`, else logits `[B, K]`."""
        embedding = self.projection(self.backbone.forward_head(features, pre_logits=True))
        return embedding if pre_logits else self.fc(embedding)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier `Linear(D, num_classes)` (Identity for 0); `global_pool` is not supported."""
        if global_pool is not None:
            raise ValueError("reset_classifier(global_pool=...) is not supported with embedding_dim: the pooling "
                             "belongs to the wrapped backbone; call reset_classifier(num_classes)")
        self.num_classes = int(num_classes)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.fc.to(self.projection.weight.device)
