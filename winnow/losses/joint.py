"""A weighted sum of registry losses (`loss: joint`).

`loss_params: {terms: [{loss: ce, weight: 1.0}, {loss: focal, weight: 0.5, params: {gamma: 2},
label_smoothing: 0.1}]}`. Each term takes ``loss`` (a registry name), ``weight`` (>= 0, default
1), ``params`` (its loss_params) and ``label_smoothing`` (default: the run's). Every term shares
the run's class counts, class weights and their epoch. Terms on embeddings (the metric-learning
losses, `center`) get the model's embeddings; the classification terms train the classifier, e.g.
``terms: [{loss: ce}, {loss: arcface, weight: 0.1}]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from winnow.losses.base import WinnowLoss, call_loss
from winnow.losses.context import LossContext
from winnow.losses.params import REQUIRED, at_least, smoothing_value, take_params

TERM_KEYS: dict[str, object] = {"loss": REQUIRED, "weight": 1.0, "params": None, "label_smoothing": None}


class JointLoss(WinnowLoss):
    """`sum_i weight_i * loss_i(logits, targets[, embeddings])`; `set_epoch` reaches every term.

    It needs embeddings when a term does, and trains the classifier when a term of weight > 0 does.
    """

    def __init__(self, terms: Sequence[tuple[float, WinnowLoss]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("joint loss needs at least one term")
        self.weights = [float(weight) for weight, _ in terms]
        self.terms = nn.ModuleList(loss for _, loss in terms)
        self.needs_embeddings = any(term.needs_embeddings for term in self.terms)
        self.trains_classifier = any(weight > 0 and term.trains_classifier for weight, term in terms)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                embeddings: torch.Tensor | None = None) -> torch.Tensor:
        return sum(weight * call_loss(term, logits, targets, embeddings)
                   for weight, term in zip(self.weights, self.terms))

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


def joint_loss(params: dict | None, context: LossContext) -> JointLoss:
    """Registry factory of `joint`."""
    terms = take_params("loss_params of loss 'joint'", params, {"terms": REQUIRED})["terms"]
    if isinstance(terms, (str, dict)) or not isinstance(terms, Sequence) or not terms:
        raise ValueError(f"joint loss_params.terms must be a non-empty list of {{loss: NAME, weight: W}} "
                         f"mappings, got {terms!r}")
    built = [_term(index, term, context) for index, term in enumerate(terms)]
    if not any(weight > 0 for weight, _ in built):
        raise ValueError("joint loss: every term weight is 0, so the loss would be 0; give a term a weight > 0")
    return JointLoss(built)


def _term(index: int, term: object, context: LossContext) -> tuple[float, WinnowLoss]:
    from winnow.losses import build_loss  # the registry imports this module

    where = f"joint loss_params.terms[{index}]"
    values = take_params(where, term, TERM_KEYS)
    weight = at_least(f"{where}.weight", values["weight"], 0.0, hint="terms are added, use 0 to switch one off")
    if values["label_smoothing"] is not None:
        context = replace(context, label_smoothing=smoothing_value(f"{where}.label_smoothing",
                                                                   values["label_smoothing"]))
    return weight, build_loss(values["loss"], values["params"], context)
