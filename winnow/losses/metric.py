"""Metric-learning losses from pytorch-metric-learning, by name, on the model's embeddings.

Each is an `EmbeddingLoss` (see `winnow.losses.embedding`): it shapes the embedding `[B, D]`
and goes in `loss: joint` next to a classification term that trains the classifier, e.g.
``terms: [{loss: ce}, {loss: triplet, weight: 0.5, params: {miner: batch_hard}}]``.

Names and `loss_params` (defaults are the library's, except triplet's miner):

- ``arcface``: ``margin`` (degrees, 28.6 = the paper's 0.5 rad), ``scale`` (64).
- ``subcenter_arcface``: ``margin``, ``scale``, ``sub_centers`` (3).
- ``cosface``: ``margin`` (0.35, on the cosine), ``scale`` (64).
- ``triplet``: ``margin`` (0.05), ``miner`` (batch_hard).
- ``multi_similarity``: ``alpha`` (2), ``beta`` (50), ``base`` (0.5), ``miner`` (none).
- ``supcon``: ``temperature`` (0.1), ``miner`` (none).
- ``contrastive``: ``pos_margin`` (0), ``neg_margin`` (1), ``miner`` (none).

``miner`` picks the pairs or triplets of each batch the loss sees: ``none`` (all of them),
``batch_hard`` (the hardest positive and negative per anchor), ``semihard`` (negatives farther
than the positive but within the margin; triplet's own margin, else the library's 0.2) or
``multi_similarity`` (the MS paper's pair mining). Pair and triplet losses need two images of a
class in a batch: use ``sampler: m_per_class`` with ``m >= 2``.

The proxy losses (arcface, subcenter_arcface, cosface) learn one weight vector per class on the
embeddings (`W [D, K]`): those weights are trained with the model's parameters and saved in
checkpoints, but predictions use the classifier that the joint's classification term trains.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real

import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from torch import nn

from winnow.constraints import Interval, check_value
from winnow.losses.context import LossContext
from winnow.losses.embedding import EmbeddingLoss
from winnow.losses.params import at_least, choice, positive, real, take_params

MINERS = ("none", "batch_hard", "semihard", "multi_similarity")
SEMIHARD_MARGIN = 0.2  # the library's TripletMarginMiner default, for losses without a margin of their own


class MetricLoss(EmbeddingLoss):
    """A pytorch-metric-learning loss (and optional miner) over embeddings `[B, D]` and labels `[B]`.

    Args:
        name: the registry name, for messages.
        loss: the library's loss module (its parameters, e.g. ArcFace's `W`, become this module's).
        num_classes: K.
        miner: the library's miner, or None for every pair/triplet of the batch.
    """

    def __init__(self, name: str, loss: nn.Module, num_classes: int, *, miner: nn.Module | None = None) -> None:
        super().__init__(num_classes)
        self.name, self.loss, self.miner = name, loss, miner

    def embedding_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self._check_size(embeddings)
        indices = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, indices)

    def _check_size(self, embeddings: torch.Tensor) -> None:
        weight = getattr(self.loss, "W", None)
        if weight is not None and embeddings.shape[1] != weight.shape[0]:
            raise ValueError(f"loss {self.name!r}: embeddings have {embeddings.shape[1]} dimensions but its class "
                             f"weights {weight.shape[0]}; build the loss with the model's embedding size")


def make_miner(name: str, *, margin: float = SEMIHARD_MARGIN) -> nn.Module | None:
    """The library's miner called `name` (one of MINERS); None for `none`."""
    if name == "batch_hard":
        return pml_miners.BatchHardMiner()
    if name == "semihard":
        return pml_miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
    if name == "multi_similarity":
        return pml_miners.MultiSimilarityMiner()
    return None


def _miner_name(loss: str, value: object) -> str:
    return choice(f"loss_params miner of loss {loss!r}", value, MINERS)


def _proxy(loss: str, context: LossContext) -> dict[str, int]:
    return {"num_classes": context.num_classes, "embedding_size": context.require_embedding_size(loss)}


def _angle(loss: str, value: object) -> float:
    return float(check_value(f"{loss} margin", value, [Interval(Real, 0, 90, closed="neither")],
                             hint="it is in degrees (28.6 degrees = 0.5 rad, the ArcFace paper's margin)"))


def arcface_loss(params: dict | None, context: LossContext) -> MetricLoss:
    """Registry factory of `arcface` (ArcFaceLoss)."""
    values = take_params("loss_params of loss 'arcface'", params, {"margin": 28.6, "scale": 64.0})
    loss = pml_losses.ArcFaceLoss(**_proxy("arcface", context), margin=_angle("arcface", values["margin"]),
                                  scale=positive("arcface scale", values["scale"]))
    return MetricLoss("arcface", loss, context.num_classes)


def subcenter_arcface_loss(params: dict | None, context: LossContext) -> MetricLoss:
    """Registry factory of `subcenter_arcface` (SubCenterArcFaceLoss)."""
    values = take_params("loss_params of loss 'subcenter_arcface'", params,
                         {"margin": 28.6, "scale": 64.0, "sub_centers": 3})
    sub_centers = check_value("subcenter_arcface sub_centers", values["sub_centers"],
                              [Interval(Integral, 1, None, closed="left")], hint="the paper uses 3")
    loss = pml_losses.SubCenterArcFaceLoss(**_proxy("subcenter_arcface", context),
                                           margin=_angle("subcenter_arcface", values["margin"]),
                                           scale=positive("subcenter_arcface scale", values["scale"]),
                                           sub_centers=int(sub_centers))
    return MetricLoss("subcenter_arcface", loss, context.num_classes)


def cosface_loss(params: dict | None, context: LossContext) -> MetricLoss:
    """Registry factory of `cosface` (CosFaceLoss)."""
    values = take_params("loss_params of loss 'cosface'", params, {"margin": 0.35, "scale": 64.0})
    loss = pml_losses.CosFaceLoss(**_proxy("cosface", context),
                                  margin=positive("cosface margin", values["margin"], hint="the paper uses 0.35"),
                                  scale=positive("cosface scale", values["scale"]))
    return MetricLoss("cosface", loss, context.num_classes)


def triplet_loss(params: dict | None, context: LossContext) -> MetricLoss:
    """Registry factory of `triplet` (TripletMarginLoss)."""
    values = take_params("loss_params of loss 'triplet'", params, {"margin": 0.05, "miner": "batch_hard"})
    margin = at_least("triplet margin", values["margin"], 0.0)
    miner = make_miner(_miner_name("triplet", values["miner"]), margin=margin)
    return MetricLoss("triplet", pml_losses.TripletMarginLoss(margin=margin), context.num_classes, miner=miner)


def _pair_loss(name: str, defaults: dict[str, object], build: Callable[[dict], nn.Module]) -> Callable:
    """A registry factory for a pair loss with a `miner` param; `build(values)` makes the library loss."""

    def factory(params: dict | None, context: LossContext) -> MetricLoss:
        values = take_params(f"loss_params of loss {name!r}", params, {**defaults, "miner": "none"})
        miner = make_miner(_miner_name(name, values["miner"]))
        return MetricLoss(name, build(values), context.num_classes, miner=miner)

    factory.__doc__ = f"Registry factory of `{name}`."
    return factory


multi_similarity_loss = _pair_loss(
    "multi_similarity", {"alpha": 2.0, "beta": 50.0, "base": 0.5},
    lambda v: pml_losses.MultiSimilarityLoss(alpha=positive("multi_similarity alpha", v["alpha"]),
                                             beta=positive("multi_similarity beta", v["beta"]),
                                             base=real("multi_similarity base", v["base"])))
supcon_loss = _pair_loss(
    "supcon", {"temperature": 0.1},
    lambda v: pml_losses.SupConLoss(temperature=positive("supcon temperature", v["temperature"])))
contrastive_loss = _pair_loss(
    "contrastive", {"pos_margin": 0.0, "neg_margin": 1.0},
    lambda v: pml_losses.ContrastiveLoss(pos_margin=real("contrastive pos_margin", v["pos_margin"]),
                                         neg_margin=real("contrastive neg_margin", v["neg_margin"])))
