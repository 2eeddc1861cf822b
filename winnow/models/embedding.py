"""A model's pooled embedding, through the timm interface every winnow model exposes.

By timm's convention `model(x) == model.get_classifier()(model.forward_head(model.forward_features(x),
pre_logits=True))`: the embedding is the classifier's input. `EmbeddingModel` computes it alone;
`capture_embeddings` reads it during an ordinary forward pass, so that training gets logits and
embeddings from one pass through whatever wraps the model (DistributedDataParallel included).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class EmbeddingModel(nn.Module):
    """`images [B, C, H, W]` -> pooled pre-logits embeddings `[B, D]` of `model`.

    Uses `forward_features` then `forward_head(pre_logits=True)`, so any timm or winnow model works.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)


def single_classifier(model: nn.Module) -> nn.Module:
    """The model's one classifier module (`get_classifier()`).

    Raises:
        ValueError: the model has none, or several heads (multi-task), or an Identity (no classifier).
    """
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(classifier, nn.Module) or isinstance(classifier, (nn.Identity, nn.ModuleDict)):
        raise ValueError(f"{type(model).__name__}.get_classifier() gives {type(classifier).__name__}, not one "
                         "classifier layer; losses that need embeddings work on single-task models with a "
                         "classifier (head: multiclass)")
    return classifier


def embedding_size(model: nn.Module) -> int:
    """D of the model's embedding `[B, D]` (the input size of its classifier)."""
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    size = getattr(classifier, "in_features", None)
    return int(size or getattr(model, "head_hidden_size", None) or model.num_features)


class CapturedEmbeddings:
    """The embeddings `[B, D]` a classifier received while `capture_embeddings` was active."""

    def __init__(self, model_name: str) -> None:
        self.model_name, self.batches = model_name, []

    def hook(self, module: nn.Module, args: tuple) -> None:
        self.batches.append(args[0].flatten(1))  # a 1x1-conv classifier gets [B, D, 1, 1]

    @property
    def value(self) -> torch.Tensor:
        """The embeddings of the one forward pass run in the block."""
        if len(self.batches) != 1:
            raise RuntimeError(f"{self.model_name} called its classifier {len(self.batches)} times in one forward "
                               "pass (expected once); its embeddings cannot be read for the loss")
        return self.batches[0]


@contextmanager
def capture_embeddings(model: nn.Module) -> Iterator[CapturedEmbeddings]:
    """Within the block, the input of `model`'s classifier is recorded at each call.

    Args:
        model: the bare model (not a DDP or compile wrapper); call the wrapper inside the block.
    """
    captured = CapturedEmbeddings(type(model).__name__)
    handle = single_classifier(model).register_forward_pre_hook(captured.hook)
    try:
        yield captured
    finally:
        handle.remove()
