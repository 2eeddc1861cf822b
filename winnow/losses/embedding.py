"""The base of losses on embeddings (metric learning, center loss) and their input checks.

An `EmbeddingLoss` is called as `loss(logits, targets, embeddings=E)`: `E [B, D]` are the model's
embeddings (the classifier's input), `targets [B]` class indices (IGNORE_INDEX rows are left out);
the logits are not used. It trains the embedding only (`trains_classifier` is False), so a run
combines it with a classification loss in `joint`. Class-probability targets (mixup, cutmix) are
refused: these losses compare images by their single class.
"""

from __future__ import annotations

import torch

from winnow.losses.base import WinnowLoss
from winnow.losses.targets import IGNORE_INDEX


class EmbeddingLoss(WinnowLoss):
    """A loss on embeddings `[B, D]` and class indices `[B]`, computed in float32 (or float64).

    Subclasses set `name` and implement `embedding_loss(embeddings, labels)`.

    Args:
        num_classes: K; labels must lie in [0, K).
    """

    needs_embeddings = True
    trains_classifier = False
    name = "embedding"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, logits: torch.Tensor | None, targets: torch.Tensor, *,
                embeddings: torch.Tensor | None = None) -> torch.Tensor:
        embeddings, labels = embedding_inputs(embeddings, targets, self.name, self.num_classes)
        # autocast off: distances and margins are computed in float32 even in a bf16/fp16 step
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            if len(labels) == 0:
                return embeddings.sum() * 0.0  # every target ignored: zero, still part of the graph
            return self.embedding_loss(embeddings, labels)

    def embedding_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss of checked embeddings `[N, D]` with labels `[N]` in [0, K)."""
        raise NotImplementedError


def embedding_inputs(embeddings: torch.Tensor | None, targets: torch.Tensor, loss: str,
                     num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked float embeddings `[N, D]` and labels `[N]`, ignored rows removed.

    Raises:
        TypeError: no embeddings, or not a floating-point tensor.
        ValueError: soft targets, shapes that do not match, labels out of range.
    """
    if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
        got = type(embeddings).__name__ if not isinstance(embeddings, torch.Tensor) else embeddings.dtype
        raise TypeError(f"loss {loss!r} works on embeddings: call it as loss(logits, targets, embeddings=E) with "
                        f"float embeddings E [B, D], got {got}; in a run it goes in loss: joint next to a "
                        "classification term")
    if embeddings.ndim != 2:
        raise ValueError(f"loss {loss!r}: embeddings must be [B, D], got shape {tuple(embeddings.shape)}")
    if targets.ndim != 1 or targets.is_floating_point() or targets.dtype == torch.bool:
        raise ValueError(f"loss {loss!r} needs class indices [B] (integer), got {targets.dtype} "
                         f"{tuple(targets.shape)}: it compares images by their one class, so class-probability "
                         "targets (mixup, cutmix) do not apply; set mixup: 0 and cutmix: 0")
    if len(targets) != len(embeddings):
        raise ValueError(f"loss {loss!r}: {len(embeddings)} embeddings but {len(targets)} targets; "
                         "pass one target per embedding")
    keep = targets != IGNORE_INDEX
    labels = targets[keep]
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(f"loss {loss!r}: targets must be class indices in [0, {num_classes}) or {IGNORE_INDEX} "
                         f"(ignored), got {labels[bad].unique().tolist()}; check that class_counts has one entry "
                         "per class")
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    return embeddings[keep], labels
