"""Pretraining methods by name: each builds the model around an encoder, its loss and its views."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from winnow.pretraining import autoencoder, two_view


@dataclass(frozen=True)
class Method:
    """One pretraining method.

    `model(encoder, in_chans=, img_size=, params=, name=)` wraps the encoder; its forward gives what
    `loss()` takes. `train_views` / `val_views` `(mean, std, config, params)` turn a `[C, S, S]` uint8 image into
    the model's input. `defaults` are the method's `pretrain_params`.
    """

    model: Callable[..., nn.Module]
    loss: Callable[[dict], nn.Module]
    train_views: Callable
    val_views: Callable
    defaults: dict


METHODS: dict[str, Method] = {
    "autoencoder": Method(autoencoder.AutoEncoder, lambda params: autoencoder.ReconstructionLoss(),
                          autoencoder.train_transform, autoencoder.val_transform, autoencoder.DEFAULTS),
    # val views are augmented too (with fixed seeds): their loss compares epochs
    "simclr": Method(two_view.SimCLR, two_view.NTXent, two_view.train_views, two_view.train_views,
                     two_view.SIMCLR_DEFAULTS),
    "byol": Method(two_view.BYOL, two_view.SymmetricNegativeCosine, two_view.train_views, two_view.train_views,
                   two_view.BYOL_DEFAULTS),
}


def get_method(name: str | None) -> Method:
    """The method called `name`.

    Raises:
        ValueError: Unknown name (the valid ones are listed).
    """
    if name not in METHODS:
        raise ValueError(f"unknown pretrain method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def method_params(name: str, params: dict | None) -> dict:
    """The method's defaults updated with `params` (pretrain_params).

    Raises:
        ValueError: A key the method does not take (its keys are listed).
    """
    defaults = get_method(name).defaults
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ValueError(f"pretrain_params: unknown key(s) {unknown} for method {name!r}; valid keys: "
                         f"{', '.join(defaults) or '(none)'}")
    return {**defaults, **(params or {})}
