"""Asymmetric loss for multi-label classification (Ridnik et al. 2021) (`loss: asymmetric`).

Per label, with ``p = sigmoid(z)`` and the shifted probability ``p_m = max(p - clip, 0)``::

    L = -y * (1 - p)**gamma_pos * log(p) - (1 - y) * p_m**gamma_neg * log(1 - p_m)

`loss_params`: ``gamma_neg`` (4), ``gamma_pos`` (0), ``clip`` (0.05, in [0, 1)) — the paper's
recommended values. Targets as for `bce` (binary `[B]` or multi-hot `[B, K]`, NaN ignored).
The loss is the (class-weighted) mean over the labels given; the authors' code sums instead,
which only rescales the loss.
"""

from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F

from winnow.constraints import Interval, check_value
from winnow.losses.base import DeferredWeights, WinnowLoss
from winnow.losses.context import LossContext
from winnow.losses.params import at_least, take_params
from winnow.losses.reduction import label_weighted_mean, label_weights
from winnow.losses.targets import label_inputs, smooth_labels

ASYMMETRIC_PARAMS: dict[str, object] = {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05}


class AsymmetricLoss(WinnowLoss):
    """Asymmetric loss over binary `[B]` or multi-label `[B, K]` targets (see the module doc)."""

    def __init__(self, *, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05,
                 class_weight: torch.Tensor | None = None, weights_epoch: int | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma_neg = at_least("asymmetric gamma_neg", gamma_neg, 0.0, hint="the paper uses 4")
        self.gamma_pos = at_least("asymmetric gamma_pos", gamma_pos, 0.0, hint="the paper uses 0")
        self.clip = _clip_value(clip)
        self.class_weight = DeferredWeights(class_weight, start_epoch=weights_epoch)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        batch = label_inputs(logits, targets, "asymmetric")
        per_label = self._terms(batch.logits, smooth_labels(batch.targets, self.label_smoothing))
        weights = label_weights(batch, self.class_weight.current(batch.logits), "asymmetric")
        return label_weighted_mean(per_label, weights)

    def _terms(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss per label `[B, K]`."""
        positive = torch.sigmoid(-logits).pow(self.gamma_pos) * F.logsigmoid(logits)
        if self.clip > 0:
            shifted = (torch.sigmoid(logits) - self.clip).clamp(min=0)
            negative = shifted.pow(self.gamma_neg) * torch.log1p(-shifted)
        else:
            negative = torch.sigmoid(logits).pow(self.gamma_neg) * F.logsigmoid(-logits)
        return -(labels * positive + (1 - labels) * negative)

    def extra_repr(self) -> str:
        return f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}"


def _clip_value(clip: float) -> float:
    return float(check_value("asymmetric clip", clip, [Interval(Real, 0, 1, closed="left")],
                             hint="the paper uses 0.05 (0 disables it)"))


def asymmetric_loss(params: dict | None, context: LossContext) -> AsymmetricLoss:
    """Registry factory of `asymmetric`."""
    values = take_params("loss_params of loss 'asymmetric'", params, ASYMMETRIC_PARAMS)
    return AsymmetricLoss(**values, class_weight=context.class_weight, weights_epoch=context.weights_epoch,
                          label_smoothing=context.label_smoothing)
