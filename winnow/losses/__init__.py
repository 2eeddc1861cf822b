"""Loss registry: pick a loss by name (`loss: NAME`, `loss_params: {...}`).

Every loss is a `WinnowLoss`: called as `loss(logits, targets) -> scalar`, with
`set_epoch(epoch)` (0-based epoch about to start) for weights that switch on later. Names and
their `loss_params` (see each module's doc):

- ``ce``: cross-entropy; no params.
- ``focal``: ``gamma``, ``alpha``, ``variant`` (softmax | sigmoid).
- ``class_balanced``: ``beta``, ``base`` (ce | focal) and the base's params.
- ``ldam``: ``max_margin``, ``s``, ``drw_epoch``, ``drw_beta``.
- ``bce``: ``pos_weight`` (binary `[B]` or multi-label `[B, K]` targets).
- ``asymmetric``: ``gamma_neg``, ``gamma_pos``, ``clip`` (binary or multi-label targets).
- ``ghm``: ``bins``, ``momentum``, ``variant`` (softmax | sigmoid).
- ``joint``: ``terms``: a list of ``{loss, weight, params, label_smoothing}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from winnow.losses.asymmetric import AsymmetricLoss, asymmetric_loss
from winnow.losses.base import DeferredWeights, WinnowLoss
from winnow.losses.bce import BinaryCrossEntropy, bce_loss
from winnow.losses.class_balanced import class_balanced_loss
from winnow.losses.context import LossContext, make_context
from winnow.losses.cross_entropy import CrossEntropy, cross_entropy_loss
from winnow.losses.focal import FocalLoss, focal_loss
from winnow.losses.ghm import GHMLoss, ghm_loss
from winnow.losses.joint import JointLoss, joint_loss
from winnow.losses.ldam import LDAMLoss, ldam_loss
from winnow.losses.targets import IGNORE_INDEX

LossFactory = Callable[[dict | None, LossContext], WinnowLoss]

LOSSES: dict[str, LossFactory] = {
    "ce": cross_entropy_loss,
    "focal": focal_loss,
    "class_balanced": class_balanced_loss,
    "ldam": ldam_loss,
    "bce": bce_loss,
    "asymmetric": asymmetric_loss,
    "ghm": ghm_loss,
    "joint": joint_loss,
}


def create_loss(name: str, *, params: dict | None = None, class_counts: Sequence[int],
                class_weights: str | Sequence[float] = "none", class_weights_epoch: int | None = None,
                effective_beta: float = 0.999, label_smoothing: float = 0.0) -> WinnowLoss:
    """Build the loss `name`, validating every setting before training starts.

    Args:
        name: a key of LOSSES.
        params: the loss's `loss_params` (unknown names are refused, listing the valid ones).
        class_counts: training samples per class `[K]` (multi-label: positives per label;
            single-logit binary head: `[negatives, positives]`).
        class_weights: a scheme of `winnow.losses.class_weights` or a list of K weights.
        class_weights_epoch: 0-based epoch from which class weights apply (None: from the start);
            needs `set_epoch` calls.
        effective_beta: beta of the "effective" scheme (and default of class_balanced's beta).
        label_smoothing: in [0, 1).

    Returns:
        a WinnowLoss; move it with `.to(device)` or let it move its buffers at call time.
    """
    context = make_context(class_counts=class_counts, class_weights=class_weights,
                           class_weights_epoch=class_weights_epoch, effective_beta=effective_beta,
                           label_smoothing=label_smoothing)
    return build_loss(name, params, context)


def build_loss(name: str, params: dict | None, context: LossContext) -> WinnowLoss:
    """Build a registry loss from an already validated context (used by `joint` for its terms)."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    return LOSSES[name](params, context)


__all__ = [
    "IGNORE_INDEX", "LOSSES", "AsymmetricLoss", "BinaryCrossEntropy", "CrossEntropy", "DeferredWeights",
    "FocalLoss", "GHMLoss", "JointLoss", "LDAMLoss", "LossContext", "WinnowLoss", "build_loss", "create_loss",
]
