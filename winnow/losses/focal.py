"""Focal loss (Lin et al. 2017), softmax multi-class and sigmoid variants (`loss: focal`).

`loss_params`: ``gamma`` (>= 0, default 2; 0 gives cross-entropy), ``alpha`` (None, a number
or one value per class), ``variant`` (``softmax`` or ``sigmoid``).

- softmax: per sample ``-alpha_y * (1 - p_y)**gamma * log(p_y)`` with ``p = softmax(logits)``;
  with label smoothing the same term is summed over the smoothed target distribution.
  ``alpha`` (>= 0) is a per-class factor; a single number scales every class alike.
- sigmoid: per label ``alpha_t * (1 - p_t)**gamma * BCE`` (torchvision's `sigmoid_focal_loss`) with
  ``alpha_t = alpha`` for positives and ``1 - alpha`` for negatives (alpha in [0, 1]; the paper
  uses 0.25; None: no alpha). Class indices `[B]` become one-hot labels, summed over the K
  labels and averaged over samples (the paper's normalisation by positives); binary `[B]` and
  multi-label `[B, K]` targets are averaged over the labels given.

Class weights and masking follow `winnow.losses.reduction`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from winnow.losses.base import DeferredWeights, WinnowLoss
from winnow.losses.context import LossContext
from winnow.losses.params import at_least, choice, per_class, take_params
from winnow.losses.reduction import class_weighted_mean, label_weighted_mean, label_weights, sample_weighted_mean
from winnow.losses.targets import (check_per_class, class_distribution, is_multiclass_indices, label_inputs,
                                   multiclass_inputs, smooth_labels)

FOCAL_VARIANTS = ("softmax", "sigmoid")
FOCAL_PARAMS: dict[str, object] = {"gamma": 2.0, "alpha": None, "variant": "softmax"}


class FocalLoss(WinnowLoss):
    """Focal loss over logits `[B, K]` (softmax), or `[B]`/`[B, K]` (sigmoid); see the module doc."""

    alpha: torch.Tensor | None

    def __init__(self, *, gamma: float = 2.0, alpha: torch.Tensor | None = None, variant: str = "softmax",
                 class_weight: torch.Tensor | None = None, weights_epoch: int | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma = at_least("focal gamma", gamma, 0.0, hint="0 gives cross-entropy, the paper uses 2")
        self.variant = choice("focal variant", variant, FOCAL_VARIANTS)
        self.register_buffer("alpha", alpha, persistent=False)
        self.class_weight = DeferredWeights(class_weight, start_epoch=weights_epoch)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.variant == "softmax":
            return self._softmax(multiclass_inputs(logits, targets, "focal"), targets)
        if is_multiclass_indices(logits, targets):
            return self._sigmoid_indices(multiclass_inputs(logits, targets, "focal"), targets)
        return self._sigmoid_labels(logits, targets)

    def _softmax(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        per_class = -(-torch.expm1(log_p)).clamp(min=0).pow(self.gamma) * log_p  # [B, K]
        alpha = self._alpha(logits)
        per_class = per_class if alpha is None else per_class * alpha
        return class_weighted_mean(per_class, targets, weight=self._weight(logits),
                                   label_smoothing=self.label_smoothing)

    def _sigmoid_indices(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        labels = class_distribution(targets, logits.shape[1], label_smoothing=self.label_smoothing,
                                    dtype=logits.dtype)
        per_sample = self._sigmoid_terms(logits, labels).sum(dim=1)
        return sample_weighted_mean(per_sample, targets, self._weight(logits))

    def _sigmoid_labels(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        batch = label_inputs(logits, targets, "focal")
        per_label = self._sigmoid_terms(batch.logits, smooth_labels(batch.targets, self.label_smoothing))
        return label_weighted_mean(per_label, label_weights(batch, self.class_weight.current(batch.logits), "focal"))

    def _sigmoid_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sigmoid focal loss per label `[B, K]`."""
        per_label = sigmoid_focal_loss(logits, labels, alpha=-1, gamma=self.gamma, reduction="none")
        alpha = self._alpha(logits)
        return per_label if alpha is None else per_label * (alpha * labels + (1 - alpha) * (1 - labels))

    def _alpha(self, logits: torch.Tensor) -> torch.Tensor | None:
        if self.alpha is None:
            return None
        check_per_class("focal", "alpha", self.alpha, logits.shape[1], scalar_ok=True)
        return self.alpha.to(device=logits.device, dtype=logits.dtype)

    def _weight(self, logits: torch.Tensor) -> torch.Tensor | None:
        weight = self.class_weight.current(logits)
        check_per_class("focal", "class_weights", weight, logits.shape[1])
        return weight

    def extra_repr(self) -> str:
        return f"variant={self.variant}, gamma={self.gamma}, label_smoothing={self.label_smoothing}"


def focal_loss(params: dict | None, context: LossContext) -> FocalLoss:
    """Registry factory of `focal`."""
    values = take_params("loss_params of loss 'focal'", params, FOCAL_PARAMS)
    variant = choice("focal variant", values["variant"], FOCAL_VARIANTS)
    alpha = per_class("focal alpha", values["alpha"], context.num_classes,
                      high=1.0 if variant == "sigmoid" else math.inf)
    return FocalLoss(gamma=values["gamma"], alpha=alpha, variant=variant, class_weight=context.class_weight,
                     weights_epoch=context.weights_epoch, label_smoothing=context.label_smoothing)
