"""Model registry: any timm model name, plus winnow's own families registered by prefix."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import timm
import torch

from winnow.models.families.bilinear import create_bilinear
from winnow.models.families.cbam import create_cbam
from winnow.models.families.gem import create_gem
from winnow.models.families.base import pretrained_target
from winnow.models.families.small_stem import apply_stem
from winnow.models.multitask import MultiTaskModel
from winnow.models.pretrained import load_pretrained
from winnow.models.projection import ProjectedModel
from winnow.runs.layout import is_pretrain_run

# winnow's own families, picked as "<family>:<timm backbone>"; filled by explicit imports.
FAMILIES: dict[str, Callable[..., torch.nn.Module]] = {
    "bilinear": create_bilinear,
    "cbam": create_cbam,
    "gem": create_gem,
}


def check_model_name(name: str) -> None:
    """Raise a helpful error for a name that neither timm nor winnow knows."""
    family, _, backbone = name.partition(":")
    if backbone:
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r} in {name!r}; valid families: "
                             f"{', '.join(sorted(FAMILIES)) or '(none)'}")
        return check_model_name(backbone)
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise ValueError(f"unknown model {name!r}; close timm names: {close or 'none'}. "
                         "Any name from timm.list_models() is valid")


def create_model(name: str, *, num_classes: int | dict[str, int], in_chans: int, drop_rate: float = 0.0,
                 pretrained: str | None = None, stem: str | None = None,
                 embedding_dim: int | None = None) -> torch.nn.Module:
    """Build a classifier with the timm interface.

    Args:
        name: a timm model name, or "<family>:<timm name>" for winnow's families.
        num_classes: head size, or task name -> head size for a multi-task model.
        in_chans: input channels (1 for grayscale, 3 for colour).
        drop_rate: dropout before the classifier.
        pretrained: local weights file, a `winnow pretrain` run folder, "hub", or None for random initialisation.
        stem: "default" or "small" (stride-1 stem for 32-96 px crops; ResNet family).
        embedding_dim: None, or D: a linear projection to `[B, D]` before the classifier(s)
            (`winnow.models.projection`).
    """
    check_model_name(name)
    heads = num_classes if isinstance(num_classes, dict) else None
    size = 0 if heads or embedding_dim is not None else num_classes
    family, _, backbone = name.partition(":")
    if backbone:
        model = FAMILIES[family](backbone, num_classes=size, in_chans=in_chans, drop_rate=drop_rate)
    else:
        model = timm.create_model(name, num_classes=size, in_chans=in_chans, drop_rate=drop_rate)
    # a `winnow pretrain` encoder was saved with its stem, so it loads after the stem is applied
    after_stem = bool(pretrained) and is_pretrain_run(pretrained)
    if pretrained and not after_stem:
        load_pretrained(pretrained_target(model), pretrained)
    model = apply_stem(model, stem)  # after loading: a new small stem has no pretrained weights
    if after_stem:
        load_pretrained(pretrained_target(model), pretrained)
    if embedding_dim is not None:
        model = ProjectedModel(model, embedding_dim, num_classes=0 if heads else num_classes)
    return MultiTaskModel(model, heads, drop_rate=drop_rate) if heads else model
