"""Reducing per-sample or per-element losses to a scalar, with class weights.

One rule for every loss: the batch loss is ``sum(w * loss) / sum(w)`` over the entries that are
not ignored, where ``w`` is the class weight of the entry (1 without weights). For class indices
this is PyTorch's ``cross_entropy(weight=...)`` mean; class-probability targets `[B, K]` use
PyTorch's plain mean over the batch. A batch whose targets are all ignored gives 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from winnow.losses.targets import IGNORE_INDEX, LabelBatch, class_distribution, is_hard


def safe_ratio(total: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """`total / denominator`, 0 (not NaN) when both are 0 (nothing left after masking)."""
    return total / denominator.clamp(min=torch.finfo(total.dtype).tiny)


def sample_weights(targets: torch.Tensor, weight: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Weight of each sample's class `[B]` for class indices `[B]`; 0 for ignored samples."""
    given = (targets != IGNORE_INDEX).to(dtype)
    return given if weight is None else given * weight[targets.clamp(min=0)]


def cross_entropy_mean(logits: torch.Tensor, targets: torch.Tensor, *, weight: torch.Tensor | None,
                       label_smoothing: float) -> torch.Tensor:
    """`F.cross_entropy` of logits `[B, K]`, 0 instead of NaN when every target is ignored."""
    if not is_hard(targets):
        return F.cross_entropy(logits, targets.to(logits.dtype), weight=weight, label_smoothing=label_smoothing)
    total = F.cross_entropy(logits, targets, weight=weight, ignore_index=IGNORE_INDEX,
                            label_smoothing=label_smoothing, reduction="sum")
    return safe_ratio(total, sample_weights(targets, weight, logits.dtype).sum())


def class_weighted_mean(per_class: torch.Tensor, targets: torch.Tensor, *, weight: torch.Tensor | None,
                        label_smoothing: float) -> torch.Tensor:
    """Reduce a loss per sample and candidate class `[B, K]` as cross-entropy reduces `-log p`.

    Each sample's loss is ``sum_k t_k * w_k * per_class[k]`` with ``t`` the (smoothed) target
    distribution, so `per_class = -log_softmax(logits)` reproduces `F.cross_entropy` exactly.
    """
    dist = class_distribution(targets, per_class.shape[1], label_smoothing=label_smoothing, dtype=per_class.dtype)
    weighted = per_class if weight is None else per_class * weight
    per_sample = (dist * weighted).sum(dim=1)
    if not is_hard(targets):
        return per_sample.mean()
    given = targets != IGNORE_INDEX
    total = torch.where(given, per_sample, torch.zeros_like(per_sample)).sum()
    return safe_ratio(total, sample_weights(targets, weight, per_class.dtype).sum())


def sample_weighted_mean(per_sample: torch.Tensor, targets: torch.Tensor,
                         weight: torch.Tensor | None) -> torch.Tensor:
    """Class-weighted mean of per-sample losses `[B]` for class indices `[B]`, ignored ones excluded."""
    weights = sample_weights(targets, weight, per_sample.dtype)
    total = torch.where(weights > 0, per_sample * weights, torch.zeros_like(per_sample)).sum()
    return safe_ratio(total, weights.sum())


def label_weights(batch: LabelBatch, weight: torch.Tensor | None, loss: str) -> torch.Tensor:
    """Weight of each label `[B, K]`: 0 where ignored, else its class weight (1 without weights).

    A binary head's weights are `[w_negative, w_positive]`; multi-label weights are one per label.
    """
    if weight is None:
        return batch.mask
    expected = 2 if batch.binary else batch.logits.shape[1]
    if weight.numel() != expected:
        what = "a binary head needs [negative, positive]" if batch.binary else "one per label"
        raise ValueError(f"loss {loss!r}: {weight.numel()} class weights for {expected} classes ({what}); "
                         "make class_counts / class_weights match the head")
    if batch.binary:
        return batch.mask * (weight[0] * (1 - batch.targets) + weight[1] * batch.targets)
    return batch.mask * weight


def label_weighted_mean(per_label: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`sum(w * loss) / sum(w)` over labels `[B, K]` (ignored labels have weight 0)."""
    total = torch.where(weights > 0, per_label * weights, torch.zeros_like(per_label)).sum()
    return safe_ratio(total, weights.sum())
