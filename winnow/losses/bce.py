"""Binary cross-entropy for a single-logit binary head or a multi-label head (`loss: bce`).

The target shape picks the mode: targets `[B]` in {0, 1} with logits `[B]` or `[B, 1]` (binary;
integer -100 or float NaN ignored), or multi-hot float targets `[B, K]` with logits `[B, K]`
(multi-label; NaN ignored). `loss_params`: ``pos_weight`` (None, a number > 0, or one per label
for multi-label) multiplies the positive term, as in `F.binary_cross_entropy_with_logits`.
Class weights: `[w_negative, w_positive]` for binary (class_counts `[negatives, positives]`),
one per label for multi-label; the loss is their weighted mean over the labels given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from winnow.losses.base import DeferredWeights, WinnowLoss
from winnow.losses.context import LossContext
from winnow.losses.params import per_class, take_params
from winnow.losses.reduction import label_weighted_mean, label_weights
from winnow.losses.targets import check_per_class, label_inputs, smooth_labels

BCE_PARAMS: dict[str, object] = {"pos_weight": None}


class BinaryCrossEntropy(WinnowLoss):
    """Sigmoid binary cross-entropy over binary `[B]` or multi-label `[B, K]` targets (see the module doc)."""

    pos_weight: torch.Tensor | None

    def __init__(self, *, pos_weight: torch.Tensor | None = None, class_weight: torch.Tensor | None = None,
                 weights_epoch: int | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight, persistent=False)
        self.class_weight = DeferredWeights(class_weight, start_epoch=weights_epoch)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        batch = label_inputs(logits, targets, "bce")
        per_label = F.binary_cross_entropy_with_logits(
            batch.logits, smooth_labels(batch.targets, self.label_smoothing),
            pos_weight=self._pos_weight(batch.logits), reduction="none")
        return label_weighted_mean(per_label, label_weights(batch, self.class_weight.current(batch.logits), "bce"))

    def _pos_weight(self, logits: torch.Tensor) -> torch.Tensor | None:
        if self.pos_weight is None:
            return None
        check_per_class("bce", "pos_weight", self.pos_weight, logits.shape[1], scalar_ok=True)
        return self.pos_weight.to(device=logits.device, dtype=logits.dtype)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


def bce_loss(params: dict | None, context: LossContext) -> BinaryCrossEntropy:
    """Registry factory of `bce`."""
    values = take_params("loss_params of loss 'bce'", params, BCE_PARAMS)
    pos_weight = per_class("bce pos_weight", values["pos_weight"], context.num_classes, low=0.0, high=math.inf)
    if pos_weight is not None and not bool((pos_weight > 0).all()):
        raise ValueError(f"bce pos_weight must be > 0, got {pos_weight.tolist()}; e.g. negatives / positives")
    return BinaryCrossEntropy(pos_weight=pos_weight, class_weight=context.class_weight,
                              weights_epoch=context.weights_epoch, label_smoothing=context.label_smoothing)
