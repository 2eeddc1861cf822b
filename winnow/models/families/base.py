"""Shared pieces of winnow's model families: a timm trunk plus a winnow head.

Every family model is a :class:`FamilyClassifier`: a timm backbone created without
pooling and classifier (``backbone``), an optional attention module on its last
feature map (``attention``) and a winnow head (``head``: pooling, dropout, linear).
It keeps the timm classifier interface (``forward_features``, ``forward_head``,
``reset_classifier``, ``get_classifier``, ``num_classes``, ``num_features``,
``pretrained_cfg``), so the rest of winnow treats it like any timm model.

State-dict layout: ``backbone.<timm key>`` for the trunk (the timm model's own keys
minus its classifier), then ``attention.*`` and ``head.*`` for the family's modules.
Because the trunk keys carry the ``backbone.`` prefix, timm-format pretrained
weights load into ``model.backbone`` (see :func:`pretrained_target`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import Any

import timm
import torch
from timm.layers import get_device_dtype
from torch import nn

from winnow.constraints import Interval, check_value

BACKBONE = "backbone"
"""Attribute (and state-dict prefix) of the timm trunk inside a family model."""

POSITIVE_INT = Interval(Integral, 1, None, closed="left")
"""Constraint of channel counts and kernel sizes (see :func:`winnow.constraints.check_value`)."""

_CLASS_COUNT = Interval(Integral, 0, None, closed="left")  # 0: no classifier, timm's convention
_DROP_RATE = Interval(Real, 0, 1, closed="left")


def create_trunk(backbone: str, *, in_chans: int) -> nn.Module:
    """Create a timm backbone with neither global pooling nor classifier.

    Args:
        backbone: Any timm model name with a convolutional ``[B, C, H, W]`` feature map.
        in_chans: Input channels (1 for grayscale, 3 for colour).

    Returns:
        The timm model (``num_classes=0``, ``global_pool=''``, no head dropout).
    """
    if not timm.is_model(backbone):
        raise ValueError(f"unknown timm backbone {backbone!r}. Fix: pick a name from timm.list_models().")
    check_value("in_chans", in_chans, [POSITIVE_INT], hint="use 1 for grayscale, 3 for colour")
    return timm.create_model(backbone, num_classes=0, global_pool="", in_chans=in_chans, drop_rate=0.0)


def trunk_channels(trunk: nn.Module) -> int:
    """Channels C of ``trunk.forward_features`` (the last feature map ``[B, C, H, W]``)."""
    return int(trunk.num_features)


def neck_channels(trunk: nn.Module) -> int:
    """Channels of the trunk's own un-pooled head output (see ``FamilyClassifier.neck``)."""
    return int(getattr(trunk, "head_hidden_size", None) or trunk.num_features)


def run_in_float32(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply ``fn`` to ``x`` in float32 with autocast off (pooling powers/roots overflow in fp16)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return fn(x.float())


def make_fc(in_features: int, num_classes: int) -> nn.Module:
    """Linear classifier, or ``nn.Identity`` for ``num_classes == 0`` (timm's convention)."""
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


class FamilyHead(nn.Module):
    """Pool a feature map, apply dropout, classify.

    Args:
        pool: Maps ``[B, C, H, W]`` to an embedding ``[B, in_features]``.
        in_features: Embedding size D produced by ``pool``.
        num_classes: Output classes (0: no classifier, the embedding is returned).
        drop_rate: Dropout probability before the classifier.
    """

    def __init__(self, pool: nn.Module, *, in_features: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.in_features = in_features
        self.pool = pool
        self.drop = nn.Dropout(drop_rate)
        self.fc = make_fc(in_features, num_classes)

    def reset(self, num_classes: int, *, device: torch.device | None = None,
              dtype: torch.dtype | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` on ``device``/``dtype``."""
        self.fc = make_fc(self.in_features, num_classes).to(device=device, dtype=dtype).train(self.training)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Map ``[B, C, H, W]`` to logits ``[B, num_classes]`` (or the embedding ``[B, D]``)."""
        x = self.drop(self.pool(x))
        return x if pre_logits else self.fc(x)


class FamilyClassifier(nn.Module):
    """A timm trunk, optional attention on its last feature map, and a winnow head.

    Args:
        trunk: timm model from :func:`create_trunk` (no pooling, no classifier).
        name: winnow model name, e.g. ``"gem:resnet18"`` (``pretrained_cfg['architecture']``).
        pool: Head pooling ``[B, C, H, W] -> [B, num_features]``.
        num_features: Embedding size D produced by ``pool``.
        num_classes: Output classes (0: ``forward`` returns the embedding).
        drop_rate: Dropout before the classifier.
        attention: Module applied to the last feature map (shape preserving); None for none.
    """

    def __init__(self, trunk: nn.Module, *, name: str, pool: nn.Module, num_features: int,
                 num_classes: int, drop_rate: float, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        self.drop_rate = float(check_value("drop_rate", drop_rate, [_DROP_RATE], hint="use e.g. 0.0 or 0.2"))
        self.num_features = self.head_hidden_size = num_features
        self.backbone = trunk
        self.attention = attention if attention is not None else nn.Identity()
        self.head = FamilyHead(pool, in_features=num_features, num_classes=num_classes, drop_rate=drop_rate)
        self.pretrained_cfg = family_cfg(trunk.pretrained_cfg, name=name, classifier="head.fc")

    @property
    def default_cfg(self) -> dict[str, Any]:
        """Alias of ``pretrained_cfg`` (older timm name)."""
        return self.pretrained_cfg

    def get_classifier(self) -> nn.Module:
        """The final linear layer (``nn.Identity`` when ``num_classes == 0``)."""
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier for ``num_classes`` outputs; the family's pooling is kept.

        Raises:
            ValueError: ``global_pool`` is given (the pooling is what defines the family).
        """
        if global_pool is not None:
            raise ValueError(f"reset_classifier(global_pool={global_pool!r}) is not supported by "
                             f"{self.pretrained_cfg['architecture']!r}: its pooling is fixed by the family. "
                             "Fix: call reset_classifier(num_classes) only.")
        self.num_classes = _num_classes(num_classes)
        self.head.reset(num_classes, **get_device_dtype(self))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Enable activation checkpointing in the timm trunk."""
        self.backbone.set_grad_checkpointing(enable)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, in_chans, H, W]`` to the last feature map ``[B, C, H', W']`` (after attention)."""
        x = self._check_map(self.backbone.forward_features(x), trunk_channels(self.backbone))
        return self.attention(x)

    def neck(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's own head with pooling and classifier removed, ``[B, C, H, W]`` in and out.

        Identity for ResNet/EfficientNet; the final LayerNorm for ConvNeXt.
        """
        return self._check_map(self.backbone.forward_head(x, pre_logits=True), neck_channels(self.backbone))

    def _check_map(self, x: torch.Tensor, channels: int) -> torch.Tensor:
        """Return ``x`` if it is a ``[B, channels, H, W]`` map, else raise a ValueError saying why."""
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(
                f"{self.pretrained_cfg['architecture']!r} needs a [B, {channels}, H, W] feature map from its "
                f"backbone; got shape {tuple(x.shape)}. Fix: use a convolutional timm backbone with NCHW "
                "features (ResNet, EfficientNet, ConvNeXt, RegNet, ...), not a ViT/Swin token model.")
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map ``[B, C, H, W]`` to logits ``[B, num_classes]``, or the embedding ``[B, num_features]``."""
        return self.head(self.neck(x), pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, in_chans, H, W]`` to logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x))


def _num_classes(value: object) -> int:
    """``value`` if it is a valid class count (0 returns the embedding), else raise."""
    return check_value("num_classes", value, [_CLASS_COUNT], hint="use 0 for no classifier")


def _prefixed(value: object) -> object:
    """Prefix a pretrained_cfg module name (str or tuple of str) with ``backbone.``."""
    if isinstance(value, str):
        return f"{BACKBONE}.{value}"
    if isinstance(value, (list, tuple)):
        return tuple(f"{BACKBONE}.{v}" for v in value)
    return value


def family_cfg(trunk_cfg: Mapping[str, Any] | None, *, name: str, classifier: str) -> dict[str, Any]:
    """Copy of the trunk's pretrained_cfg with module names pointing into the family model.

    ``first_conv`` gets the ``backbone.`` prefix, ``classifier`` names the new head,
    ``architecture`` is the winnow name; input size, mean/std etc. are kept.
    """
    cfg = dict(trunk_cfg or {})
    cfg["first_conv"] = _prefixed(cfg.get("first_conv"))
    cfg["classifier"] = classifier
    cfg["architecture"] = name
    return cfg


def pretrained_target(model: nn.Module) -> nn.Module:
    """The module timm-format pretrained weights should be loaded into.

    For a family model that is its timm trunk ``model.backbone`` (whose keys are the
    plain timm keys); for anything else the model itself.
    """
    return model.backbone if isinstance(model, FamilyClassifier) else model
