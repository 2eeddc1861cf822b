"""Class-balanced loss (Cui et al. 2019): a base loss weighted by effective numbers (`loss: class_balanced`).

Class c gets the weight ``(1 - beta) / (1 - beta**n_c)``, normalised to sum to K (see
`winnow.losses.class_weights`). `loss_params`: ``beta`` in [0, 1) (default: the run's
``effective_beta``), ``base`` (``ce`` or ``focal``) and, for ``base: focal``, the focal params
(``gamma``, ``alpha``, ``variant``). ``class_weights_epoch`` defers the weights as usual; the
run's ``class_weights`` must stay ``none``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from winnow.losses.base import WinnowLoss
from winnow.losses.class_weights import class_weights
from winnow.losses.context import LossContext, require_no_class_weights
from winnow.losses.cross_entropy import CE_PARAMS, cross_entropy_loss
from winnow.losses.focal import FOCAL_PARAMS, focal_loss
from winnow.losses.params import as_mapping, beta_value, choice, take_params

WHERE = "loss_params of loss 'class_balanced'"
BASES: dict[str, tuple[Callable[[dict, LossContext], WinnowLoss], Mapping[str, object]]] = {
    "ce": (cross_entropy_loss, CE_PARAMS),
    "focal": (focal_loss, FOCAL_PARAMS),
}


def class_balanced_loss(params: dict | None, context: LossContext) -> WinnowLoss:
    """Registry factory of `class_balanced`: the base loss with effective-number class weights."""
    require_no_class_weights("class_balanced", context, "computes its own effective-number weights")
    base = choice("class_balanced base", as_mapping(WHERE, params).get("base", "ce"), list(BASES))
    factory, base_defaults = BASES[base]
    values = take_params(f"{WHERE} (base {base})", params,
                         {"beta": context.effective_beta, "base": "ce", **base_defaults})
    beta = beta_value("class_balanced beta", values["beta"])
    weight = class_weights("effective", context.class_counts, beta=beta)
    return factory({name: values[name] for name in base_defaults}, replace(context, class_weight=weight))
