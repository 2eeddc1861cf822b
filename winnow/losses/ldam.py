"""LDAM loss with deferred re-weighting (Cao et al. 2019) (`loss: ldam`).

The target logit is lowered by a class margin ``m_c ∝ n_c**(-1/4)`` (the largest margin is
``max_margin``) and the logits are scaled by ``s`` before cross-entropy:
``CE(s * (z - m_y * onehot(y)), y)``. With ``drw_epoch`` set, effective-number class weights
(``drw_beta``, default 0.9999) apply from that 0-based epoch on (deferred re-weighting).

`loss_params`: ``max_margin`` (0.5), ``s`` (30), ``drw_epoch`` (None), ``drw_beta`` (0.9999).
The paper uses ``s = 30`` with a normalised (cosine) classifier whose logits lie in [-1, 1];
with a plain linear head pick a much smaller ``s`` (e.g. 1). Class-probability targets `[B, K]`
lower each logit by ``t_k * m_k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from winnow.losses.base import DeferredWeights, WinnowLoss
from winnow.losses.class_weights import class_weights, require_samples
from winnow.losses.context import LossContext, require_no_class_weights
from winnow.losses.params import beta_value, epoch_value, positive, take_params
from winnow.losses.reduction import cross_entropy_mean
from winnow.losses.targets import check_per_class, class_distribution, multiclass_inputs

LDAM_PARAMS: dict[str, object] = {"max_margin": 0.5, "s": 30.0, "drw_epoch": None, "drw_beta": 0.9999}


def ldam_margins(class_counts: Sequence[int], max_margin: float) -> torch.Tensor:
    """Margins `[K]` proportional to `n_c ** -0.25`, the largest equal to `max_margin`."""
    require_samples("ldam margins", class_counts)
    margins = torch.tensor(class_counts, dtype=torch.float64).pow(-0.25)
    return (margins * (max_margin / margins.max())).to(torch.float32)


class LDAMLoss(WinnowLoss):
    """Label-distribution-aware margin loss over logits `[B, K]` (see the module doc)."""

    margins: torch.Tensor

    def __init__(self, margins: torch.Tensor, *, s: float = 30.0, class_weight: torch.Tensor | None = None,
                 weights_epoch: int | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("margins", margins, persistent=False)
        self.s = positive("ldam s", s, hint="the paper uses 30 with a cosine classifier")
        self.class_weight = DeferredWeights(class_weight, start_epoch=weights_epoch)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = multiclass_inputs(logits, targets, "ldam")
        check_per_class("ldam", "margins (from class_counts)", self.margins, logits.shape[1])
        target_share = class_distribution(targets, logits.shape[1], label_smoothing=0.0, dtype=logits.dtype)
        shifted = self.s * (logits - target_share * self.margins.to(device=logits.device, dtype=logits.dtype))
        return cross_entropy_mean(shifted, targets, weight=self.class_weight.current(logits),
                                  label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"s={self.s}, margins={[round(m, 4) for m in self.margins.tolist()]}"


def ldam_loss(params: dict | None, context: LossContext) -> LDAMLoss:
    """Registry factory of `ldam`."""
    values = take_params("loss_params of loss 'ldam'", params, LDAM_PARAMS)
    margins = ldam_margins(context.class_counts, positive("ldam max_margin", values["max_margin"]))
    weight, start = context.class_weight, context.weights_epoch
    drw_epoch = epoch_value("ldam drw_epoch", values["drw_epoch"])
    drw_beta = beta_value("ldam drw_beta", values["drw_beta"])
    if drw_epoch is not None:
        require_no_class_weights("ldam", context, "with drw_epoch applies effective-number weights itself")
        weight, start = class_weights("effective", context.class_counts, beta=drw_beta), drw_epoch
    return LDAMLoss(margins, s=values["s"], class_weight=weight, weights_epoch=start,
                    label_smoothing=context.label_smoothing)
