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
- ``upu``, ``nnpu``: positive-unlabelled risks (`winnow.losses.pu`): ``prior``, nnpu's ``beta``, ``gamma``.
- ``joint``: ``terms``: a list of ``{loss, weight, params, label_smoothing}``.

Losses on embeddings (`EMBEDDING_LOSSES`, called `loss(logits, targets, embeddings=E [B, D])`,
see `winnow.losses.embedding`): the metric-learning losses of pytorch-metric-learning
(``arcface``, ``subcenter_arcface``, ``cosface``, ``triplet``, ``multi_similarity``, ``supcon``,
``contrastive``; `winnow.losses.metric`) and ``center`` (`winnow.losses.center`). They train the
embedding, not the classifier, so a run uses them as terms of ``joint`` with a classification loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from winnow.losses.asymmetric import AsymmetricLoss, asymmetric_loss
from winnow.losses.base import DeferredWeights, WinnowLoss, call_loss, unsynced_state
from winnow.losses.bce import BinaryCrossEntropy, bce_loss
from winnow.losses.center import CenterLoss, center_loss
from winnow.losses.class_balanced import class_balanced_loss
from winnow.losses.context import LossContext, make_context
from winnow.losses.cross_entropy import CrossEntropy, cross_entropy_loss
from winnow.losses.focal import FocalLoss, focal_loss
from winnow.losses.ghm import GHMLoss, ghm_loss
from winnow.losses.joint import JointLoss, joint_loss
from winnow.losses.embedding import EmbeddingLoss
from winnow.losses.ldam import LDAMLoss, ldam_loss
from winnow.losses.metric import (MINERS, MetricLoss, arcface_loss, contrastive_loss, cosface_loss,
                                  multi_similarity_loss, subcenter_arcface_loss, supcon_loss, triplet_loss)
from winnow.losses.pu import NNPULoss, UPULoss, nnpu_loss, upu_loss
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
    "upu": upu_loss,
    "nnpu": nnpu_loss,
    "joint": joint_loss,
    "arcface": arcface_loss,
    "subcenter_arcface": subcenter_arcface_loss,
    "cosface": cosface_loss,
    "triplet": triplet_loss,
    "multi_similarity": multi_similarity_loss,
    "supcon": supcon_loss,
    "contrastive": contrastive_loss,
    "center": center_loss,
}

EMBEDDING_LOSSES = ("arcface", "subcenter_arcface", "cosface", "triplet", "multi_similarity", "supcon",
                    "contrastive", "center")
"""Registry names of the losses on embeddings (they go in `joint` with a classification term)."""


def create_loss(name: str, *, params: dict | None = None, class_counts: Sequence[int],
                class_weights: str | Sequence[float] = "none", class_weights_epoch: int | None = None,
                effective_beta: float = 0.999, label_smoothing: float = 0.0,
                embedding_size: int | None = None) -> WinnowLoss:
    """Build the loss `name` a run trains with, validating every setting before training starts.

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
        embedding_size: D of the model's embeddings `[B, D]` (needed by arcface, cosface, center...).

    Returns:
        a WinnowLoss; move it with `.to(device)` or let it move its buffers at call time. Its
        parameters (arcface's class weights...) train with the model's.

    Raises:
        ValueError: bad settings, or a loss that does not train the classifier (an embedding loss
            alone: predictions, validation metrics and checkpoint selection would use an untrained head).
    """
    context = make_context(class_counts=class_counts, class_weights=class_weights,
                           class_weights_epoch=class_weights_epoch, effective_beta=effective_beta,
                           label_smoothing=label_smoothing, embedding_size=embedding_size)
    loss = build_loss(name, params, context)
    if not loss.trains_classifier:
        raise ValueError(
            f"loss {name!r} trains only the embedding, not the classifier that predictions, validation metrics "
            "and checkpoint selection use; combine it with a classification loss, e.g. loss: joint, loss_params: "
            f"{{terms: [{{loss: ce}}, {{loss: {_embedding_term(name, params)}, weight: 0.1}}]}}")
    return loss


def _embedding_term(name: str, params: dict | None) -> str:
    """The term to suggest in the error: the loss itself, or joint's first embedding term."""
    if name != "joint":
        return name
    terms = (params or {}).get("terms") or [{}]
    return next((t.get("loss") for t in terms if t.get("loss") in EMBEDDING_LOSSES), "arcface")


def build_loss(name: str, params: dict | None, context: LossContext) -> WinnowLoss:
    """Build a registry loss from an already validated context (used by `joint` for its terms)."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    return LOSSES[name](params, context)


__all__ = [
    "EMBEDDING_LOSSES", "IGNORE_INDEX", "LOSSES", "MINERS", "AsymmetricLoss", "BinaryCrossEntropy", "CenterLoss",
    "CrossEntropy", "DeferredWeights", "EmbeddingLoss", "FocalLoss", "GHMLoss", "JointLoss", "LDAMLoss", "LossContext",
    "MetricLoss", "NNPULoss", "UPULoss", "WinnowLoss", "build_loss", "call_loss", "create_loss", "unsynced_state",
]
