"""Models: the registry over timm, pretrained weights, freezing."""

from winnow.models.registry import create_model

__all__ = ["create_model"]
