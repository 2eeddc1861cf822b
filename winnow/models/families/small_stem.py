"""``stem="small"``: a CIFAR-style stem for small crops (32-96 px).

ImageNet stems downsample 4x before the first stage (7x7 stride-2 conv + stride-2
max-pool), leaving a 1x1 map at 32 px for a ResNet. The small stem keeps full
resolution there: the first conv becomes 3x3 stride 1 and the max-pool an identity,
so the last feature map is 4x larger per side (e.g. 4x4 instead of 1x1 at 32 px).
"""

from __future__ import annotations

from collections.abc import Callable

from timm.layers import get_device_dtype
from timm.models.resnet import ResNet
from torch import nn

from winnow.constraints import Options, check_value
from winnow.models.families.base import pretrained_target

STEM_REDUCTION = 4
"""Factor by which the small stem lowers the network's total stride."""


def _resnet_small_stem(model: ResNet) -> None:
    """Make a timm ResNet's stem stride 1 in place.

    A plain stem (``conv1`` = 7x7 stride-2 conv) becomes a fresh 3x3 stride-1 conv with
    the same in/out channels. A deep stem (``conv1`` = Sequential of 3x3 convs, as in
    resnet10t/resnet50d/test_resnet) keeps its convs and weights; only the strided
    conv gets stride 1. The stem pooling (max-pool, or its conv replacement) becomes
    an identity. ``feature_info`` reductions are updated to match.
    """
    if isinstance(model.conv1, nn.Sequential):
        for conv in model.conv1:
            if isinstance(conv, nn.Conv2d):
                conv.stride = (1, 1)
    else:
        old = model.conv1
        model.conv1 = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1,
                                bias=old.bias is not None, **get_device_dtype(old))
    model.maxpool = nn.Identity()
    for info in getattr(model, "feature_info", []):
        info["reduction"] = max(1, info["reduction"] // STEM_REDUCTION)


SMALL_STEM_HANDLERS: dict[type[nn.Module], Callable[[nn.Module], None]] = {
    ResNet: _resnet_small_stem,
}
"""Model class -> in-place small-stem rewrite. Subclasses match too (isinstance)."""

_SUPPORTED = ("timm ResNet family (resnet18/34/50/..., resnet*d, resnet10t/*t deep stems, test_resnet, "
              "resnext, seresnet, ecaresnet, wide_resnet)")


def apply_small_stem(model: nn.Module) -> nn.Module:
    """Replace the ImageNet stem by a stride-1 3x3 stem for 32-96 px crops, in place.

    Works on a timm model or on a winnow family model (its ``backbone`` is changed).
    Apply it after loading pretrained weights: the new 3x3 first conv of a plain
    ResNet stem starts from fresh initialisation (deep stems keep their weights).

    Args:
        model: A supported timm model (see ``SMALL_STEM_HANDLERS``) or a family model on one.

    Returns:
        The same ``model`` object, modified.

    Raises:
        ValueError: The model's architecture has no small-stem rewrite.
    """
    target = pretrained_target(model)
    handler = next((fn for cls, fn in SMALL_STEM_HANDLERS.items() if isinstance(target, cls)), None)
    if handler is None:
        raise ValueError(f"stem='small' is not supported for {type(target).__name__} models; supported: "
                         f"{_SUPPORTED}. Fix: use stem='default' or a ResNet backbone.")
    handler(target)
    return model


def _default_stem(model: nn.Module) -> nn.Module:
    """Keep the model's own stem."""
    return model


STEMS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "default": _default_stem,
    "small": apply_small_stem,
}
"""Stem name -> function rewriting a model's stem in place and returning the model."""


def apply_stem(model: nn.Module, stem: str | None) -> nn.Module:
    """Apply the stem named ``stem`` (None or ``"default"``: unchanged), see ``STEMS``.

    Raises:
        ValueError: ``stem`` is not a key of ``STEMS`` (the message lists them).
    """
    check_value("stem", stem, [None, Options(sorted(STEMS))],
                hint="use 'small' for 32-96 px crops, else 'default'")
    return STEMS[stem or "default"](model)
