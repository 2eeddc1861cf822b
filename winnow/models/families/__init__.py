"""winnow's own model families on any convolutional timm backbone, and the small stem.

Each family is picked as ``"<family>:<timm backbone>"`` through
``winnow.models.registry.FAMILIES`` and built as a :class:`FamilyClassifier`
(state dict: ``backbone.<timm key>``, ``attention.*``, ``head.*``).
"""

from winnow.models.families.base import FamilyClassifier, pretrained_target
from winnow.models.families.bilinear import BilinearPool, bilinear_pool, create_bilinear
from winnow.models.families.cbam import create_cbam
from winnow.models.families.gem import GeneralizedMeanPool2d, create_gem, gem_pool
from winnow.models.families.small_stem import STEMS, apply_small_stem, apply_stem

__all__ = [
    "STEMS",
    "BilinearPool",
    "FamilyClassifier",
    "GeneralizedMeanPool2d",
    "apply_small_stem",
    "apply_stem",
    "bilinear_pool",
    "create_bilinear",
    "create_cbam",
    "create_gem",
    "gem_pool",
    "pretrained_target",
]
