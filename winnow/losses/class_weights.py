"""Per-class loss weights computed from training-set class counts."""

from __future__ import annotations

import numpy as np
import torch


def class_weights(scheme: str, targets: list[int], num_classes: int) -> torch.Tensor | None:
    """Weights `[num_classes]` for a scheme, or None for "none".

    "balanced" is inverse frequency scaled so that the weights average to 1 over the
    samples (as scikit-learn's `compute_class_weight("balanced")`).
    """
    if scheme == "none":
        return None
    counts = np.bincount(np.asarray(targets), minlength=num_classes)
    if scheme == "balanced":
        if (counts == 0).any():
            empty = np.flatnonzero(counts == 0).tolist()
            raise ValueError(f"class_weights=balanced: class index(es) {empty} have no training samples; "
                             "add samples or use class_weights=none")
        return torch.as_tensor(counts.sum() / (num_classes * counts), dtype=torch.float32)
    raise ValueError(f"class_weights must be one of ['none', 'balanced'], got {scheme!r}")
