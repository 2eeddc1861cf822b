"""Gradient harmonizing classification loss GHM-C (Li, Liu, Wang, AAAI 2019) (`loss: ghm`).

Cross-entropy in which each entry (a sample for softmax, a label for sigmoid) is weighted by the
inverse density of its gradient norm ``g``: crowded ranges of g count less, sparse ones more. The
crowds are the many easy entries (g near 0) and, as the paper found, a pile-up of very hard,
often mislabelled ones (g near 1); a lone outlier in a bin of its own is not damped.

- ``g`` is the gradient norm of cross-entropy with respect to the logits, in [0, 1]: softmax
  ``0.5 * sum_k |p_k - t_k|`` over the (smoothed) target distribution ``t``, which is ``1 - p_y``
  for a class index y without label smoothing; sigmoid ``|sigmoid(z) - t|`` per label (the paper's).
- [0, 1] is cut into ``bins`` equal bins. With N entries given, ``R_b`` of them in g's bin and n
  non-empty bins, an entry's weight is ``N / (R_b * n)`` (the paper's ``N / GD(g)`` with the
  normalisation of the authors' code: without momentum the weights sum to N, so the loss keeps
  the scale of cross-entropy, which it equals when every entry falls in one bin).
- ``momentum`` > 0 replaces ``R_b`` by a moving average over training batches,
  ``R_b <- momentum * R_b + (1 - momentum) * count`` for the non-empty bins. A bin starts at its
  first count (the authors' code starts at 0, which inflates the first batches' weights by
  ``1 / (1 - momentum)``). Only calls with gradients enabled in training mode update it;
  validation passes use it as it stands. Under DDP each process keeps its own counts.

The weights are constants (no gradient flows through them). The weighted loss is reduced as the
other losses are (`winnow.losses.reduction`): ``sum(c * w * loss) / sum(c)`` with c the class weight.

`loss_params`: ``bins`` (10), ``momentum`` (0.75, the paper's best, in [0, 1)), ``variant``
(``softmax`` for class indices `[B]` or class probabilities `[B, K]` with logits `[B, K]`;
``sigmoid`` for binary `[B]` or multi-hot `[B, K]` targets, NaN or -100 ignored).
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
import torch.nn.functional as F

from winnow.constraints import Interval, check_value
from winnow.losses.base import DeferredWeights, WinnowLoss
from winnow.losses.context import LossContext
from winnow.losses.params import choice, take_params
from winnow.losses.reduction import class_weighted_mean, label_weighted_mean, label_weights
from winnow.losses.targets import (IGNORE_INDEX, check_per_class, class_distribution, is_hard, label_inputs,
                                   multiclass_inputs, smooth_labels)

GHM_VARIANTS = ("softmax", "sigmoid")
GHM_PARAMS: dict[str, object] = {"bins": 10, "momentum": 0.75, "variant": "softmax"}


class GHMLoss(WinnowLoss):
    """GHM-C over logits `[B, K]` (softmax) or `[B]`/`[B, K]` (sigmoid); see the module doc.

    Attributes:
        density: moving-average bin counts `[bins]` (0: no batch has filled the bin yet); a
            persistent buffer, so it is saved with the loss's state_dict.
    """

    density: torch.Tensor
    rank_local_state = True  # each torchrun process counts its own batches (see the module doc)

    def __init__(self, *, bins: int = 10, momentum: float = 0.75, variant: str = "softmax",
                 class_weight: torch.Tensor | None = None, weights_epoch: int | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.bins = int(check_value("ghm bins", bins, [Interval(Integral, 1, None, closed="left")],
                                    hint="the paper uses 10 to 30 bins of the gradient norm"))
        self.momentum = _momentum(momentum)
        self.variant = choice("ghm variant", variant, GHM_VARIANTS)
        self.register_buffer("density", torch.zeros(self.bins, dtype=torch.float64))  # counts, kept exact
        self.class_weight = DeferredWeights(class_weight, start_epoch=weights_epoch)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_variant(self.variant, logits, targets)
        update = self.training and torch.is_grad_enabled()  # a training step, not a validation pass
        if self.variant == "softmax":
            return self._softmax(multiclass_inputs(logits, targets, "ghm"), targets, update=update)
        return self._sigmoid(logits, targets, update=update)

    def _softmax(self, logits: torch.Tensor, targets: torch.Tensor, *, update: bool) -> torch.Tensor:
        weight = self.class_weight.current(logits)
        check_per_class("ghm", "class_weights", weight, logits.shape[1])
        log_p = F.log_softmax(logits, dim=1)
        with torch.no_grad():
            dist = class_distribution(targets, logits.shape[1], label_smoothing=self.label_smoothing,
                                      dtype=logits.dtype)
            norm = 0.5 * (log_p.exp() - dist).abs().sum(dim=1)  # [B]
            given = targets != IGNORE_INDEX if is_hard(targets) else targets.sum(dim=1) > 0
            harmonizing = self.harmonizing_weights(norm, given, update=update)
        return class_weighted_mean(-log_p * harmonizing[:, None], targets, weight=weight,
                                   label_smoothing=self.label_smoothing)

    def _sigmoid(self, logits: torch.Tensor, targets: torch.Tensor, *, update: bool) -> torch.Tensor:
        batch = label_inputs(logits, targets, "ghm")
        labels = smooth_labels(batch.targets, self.label_smoothing)
        with torch.no_grad():
            norm = (torch.sigmoid(batch.logits) - labels).abs()  # [B, K]
            harmonizing = self.harmonizing_weights(norm, batch.mask > 0, update=update)
        per_label = F.binary_cross_entropy_with_logits(batch.logits, labels, reduction="none") * harmonizing
        return label_weighted_mean(per_label, label_weights(batch, self.class_weight.current(batch.logits), "ghm"))

    def harmonizing_weights(self, norm: torch.Tensor, given: torch.Tensor, *, update: bool) -> torch.Tensor:
        """Weights of gradient norms in [0, 1] (shape of `norm`, 0 where `given` is False).

        Args:
            norm: gradient norms `[B]` or `[B, K]`.
            given: bool mask of the same shape; entries not given are neither counted nor weighted.
            update: store the new moving-average bin counts (training steps).
        """
        index = torch.bucketize(norm, self._inner_edges(norm), right=True)  # bin b holds [b/M, (b+1)/M)
        # one-hot sums, not bincount of index[given]: no host sync, deterministic on CUDA
        counts = (F.one_hot(index, self.bins) * given[..., None]).flatten(0, -2).sum(0).to(self.density)
        density = self._density(counts, update=update)
        filled = counts > 0
        # a filled bin's density is >= 1 (an average of counts >= 1); the clamp only keeps empty bins finite
        per_bin = torch.where(filled, counts.sum() / (density.clamp(min=1.0) * filled.sum()), 0.0)
        return torch.where(given, per_bin.to(norm.dtype)[index], torch.zeros_like(norm))

    def _inner_edges(self, like: torch.Tensor) -> torch.Tensor:
        return torch.arange(1, self.bins, device=like.device, dtype=like.dtype) / self.bins

    def _density(self, counts: torch.Tensor, *, update: bool) -> torch.Tensor:
        """Bin counts `[bins]` to divide by: this batch's, or their moving average."""
        if self.momentum == 0:
            return counts
        density = self.density.to(counts.device)
        seen = density > 0
        moved = torch.where(seen, self.momentum * density + (1 - self.momentum) * counts, counts)
        density = torch.where(counts > 0, moved, density)
        if update:
            self.density.copy_(density)
        return density

    def extra_repr(self) -> str:
        return (f"variant={self.variant}, bins={self.bins}, momentum={self.momentum}, "
                f"label_smoothing={self.label_smoothing}")


def _momentum(value: object) -> float:
    return float(check_value("ghm momentum", value, [Interval(Real, 0, 1, closed="left")],
                             hint="0 uses each batch's counts alone, the paper uses 0.75"))


def _check_variant(variant: str, logits: torch.Tensor, targets: torch.Tensor) -> None:
    """Name the variant to set when the batch's shapes belong to the other one."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return  # the input checks give the message
    single_logit = logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1)
    if variant == "softmax" and single_logit:
        raise ValueError(f"loss 'ghm' with variant softmax needs logits [B, K] with K >= 2 classes, got shape "
                         f"{tuple(logits.shape)}; for a binary or multi-label head set loss_params: {{variant: sigmoid}}")
    if variant == "sigmoid" and logits.ndim == 2 and logits.shape[1] > 1 and targets.ndim == 1:
        raise ValueError(f"loss 'ghm' with variant sigmoid needs binary [B] or multi-hot [B, K] targets, got class "
                         f"indices {tuple(targets.shape)} for logits {tuple(logits.shape)}; for a multi-class head set "
                         "loss_params: {variant: softmax}")


def ghm_loss(params: dict | None, context: LossContext) -> GHMLoss:
    """Registry factory of `ghm`."""
    values = take_params("loss_params of loss 'ghm'", params, GHM_PARAMS)
    return GHMLoss(**values, class_weight=context.class_weight, weights_epoch=context.weights_epoch,
                   label_smoothing=context.label_smoothing)
