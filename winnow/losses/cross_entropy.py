"""Cross-entropy with label smoothing and class weights (`loss: ce`)."""

from __future__ import annotations

import torch

from winnow.losses.base import DeferredWeights, WinnowLoss
from winnow.losses.context import LossContext
from winnow.losses.params import take_params
from winnow.losses.reduction import cross_entropy_mean
from winnow.losses.targets import check_per_class, multiclass_inputs

CE_PARAMS: dict[str, object] = {}  # ce takes no loss_params: weights and smoothing are run-level settings


class CrossEntropy(WinnowLoss):
    """Softmax cross-entropy (`F.cross_entropy`).

    Called with logits `[B, K]` and class indices `[B]` (-100 ignored) or class probabilities
    `[B, K]`; returns the class-weighted mean (see `winnow.losses.reduction`).
    """

    def __init__(self, *, class_weight: torch.Tensor | None = None, weights_epoch: int | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.class_weight = DeferredWeights(class_weight, start_epoch=weights_epoch)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = multiclass_inputs(logits, targets, "ce")
        weight = self.class_weight.current(logits)
        check_per_class("ce", "class_weights", weight, logits.shape[1])
        return cross_entropy_mean(logits, targets, weight=weight, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


def cross_entropy_loss(params: dict | None, context: LossContext) -> CrossEntropy:
    """Registry factory of `ce`."""
    take_params("loss_params of loss 'ce'", params, CE_PARAMS)
    return CrossEntropy(class_weight=context.class_weight, weights_epoch=context.weights_epoch,
                        label_smoothing=context.label_smoothing)
