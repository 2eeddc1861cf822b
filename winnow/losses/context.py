"""What every loss factory gets besides its own `loss_params`: class counts, weights, smoothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import torch

from winnow.constraints import Interval, check_value
from winnow.losses.class_weights import as_counts, class_weights as compute_class_weights
from winnow.losses.params import beta_value, epoch_value, smoothing_value


@dataclass(frozen=True, eq=False)
class LossContext:
    """Run-level loss settings, validated.

    Attributes:
        class_counts: training samples per class `[K]`.
        class_weight: weights `[K]` from the `class_weights` scheme, or None.
        weights_epoch: 0-based epoch from which `class_weight` applies (None: from the start).
        effective_beta: beta of effective-number weights.
        label_smoothing: label smoothing in [0, 1).
        embedding_size: D of the model's embeddings `[B, D]`, for losses that own per-class
            weights on them (arcface...); None when unknown.
    """

    class_counts: tuple[int, ...]
    class_weight: torch.Tensor | None
    weights_epoch: int | None
    effective_beta: float
    label_smoothing: float
    embedding_size: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    def require_embedding_size(self, loss: str) -> int:
        """`embedding_size`, or a ValueError saying that `loss` needs it."""
        if self.embedding_size is None:
            raise ValueError(f"loss {loss!r} learns one weight vector per class on the embeddings and needs their "
                             "size D; pass create_loss(..., embedding_size=D) (training passes the model's)")
        return self.embedding_size


def make_context(*, class_counts: Sequence[int], class_weights: str | Sequence[float] = "none",
                 class_weights_epoch: int | None = None, effective_beta: float = 0.999,
                 label_smoothing: float = 0.0, embedding_size: int | None = None) -> LossContext:
    """Validate the run-level settings and compute the class weights."""
    counts = as_counts(class_counts)
    beta = beta_value("effective_beta", effective_beta)
    weight = compute_class_weights(class_weights, counts, beta=beta)
    return LossContext(
        class_counts=counts,
        class_weight=weight,
        weights_epoch=epoch_value("class_weights_epoch", class_weights_epoch),
        effective_beta=beta,
        label_smoothing=smoothing_value("label_smoothing", label_smoothing),
        embedding_size=None if embedding_size is None else int(
            check_value("embedding_size", embedding_size, [Interval(Integral, 1, None, closed="left")])),
    )


def require_no_class_weights(loss: str, context: LossContext, reason: str) -> None:
    """Raise when `class_weights` is set for a loss that computes its own weights."""
    if context.class_weight is not None:
        raise ValueError(f"loss {loss!r} {reason}, so class_weights must be 'none'; "
                         "set class_weights: none (or pick another loss to use class_weights)")
