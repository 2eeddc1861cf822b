"""``cbam:<backbone>``: CBAM attention on the last feature map, then average pooling.

CBAM (Woo et al., 2018) re-weights channels (shared MLP over avg- and max-pooled
descriptors) and then positions (7x7 conv over channel-wise avg and max). timm's
``CbamModule`` implements exactly this and is used as is; it is applied once, to the
backbone's last feature map, before global average pooling and the classifier.
"""

from __future__ import annotations

from numbers import Real

from timm.layers import SelectAdaptivePool2d
from timm.layers.cbam import CbamModule  # not re-exported by timm.layers

from winnow.constraints import InvalidParameterError, Interval, check_value
from winnow.models.families.base import (POSITIVE_INT, FamilyClassifier, create_trunk, neck_channels,
                                         trunk_channels)


def create_cbam(backbone: str, *, num_classes: int, in_chans: int, drop_rate: float = 0.0,
                rd_ratio: float = 1.0 / 16, spatial_kernel_size: int = 7) -> FamilyClassifier:
    """Build ``cbam:<backbone>``: timm backbone, CBAM, global average pooling, linear classifier.

    Args:
        backbone: timm model name with a ``[B, C, H, W]`` feature map.
        num_classes: Output classes.
        in_chans: Input channels (1 or 3).
        drop_rate: Dropout before the classifier.
        rd_ratio: Channel-attention MLP reduction (hidden = C * rd_ratio, at least 1).
        spatial_kernel_size: Kernel of the spatial-attention conv (odd).

    Returns:
        Model whose ``forward_features`` returns the attended map ``[B, C, H, W]`` and
        whose embedding is ``[B, C]``.
    """
    check_value("rd_ratio", rd_ratio, [Interval(Real, 0, 1, closed="right")], hint="use 1/16 (paper) or 1/8")
    if check_value("spatial_kernel_size", spatial_kernel_size, [POSITIVE_INT]) % 2 == 0:
        raise InvalidParameterError(f"spatial_kernel_size must be odd, got {spatial_kernel_size}; "
                                    "use 7 (paper) or 3")
    trunk = create_trunk(backbone, in_chans=in_chans)
    attention = CbamModule(trunk_channels(trunk), rd_ratio=rd_ratio, spatial_kernel_size=spatial_kernel_size)
    pool = SelectAdaptivePool2d(pool_type="avg", flatten=True)
    return FamilyClassifier(trunk, name=f"cbam:{backbone}", pool=pool, num_features=neck_channels(trunk),
                            num_classes=num_classes, drop_rate=drop_rate, attention=attention)
