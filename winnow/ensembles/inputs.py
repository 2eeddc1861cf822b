"""What a combiner reads from the members: their probabilities, or their embeddings, per TTA view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from winnow.inference.postprocess import to_probabilities
from winnow.inference.predictor import Predictor
from winnow.inference.tta import TTA


def member_inputs(members: Sequence[Predictor], input_kind: str, paths: list[str], augmentation: TTA, *,
                  batch_size: int = 64, workers: int = 0) -> np.ndarray:
    """The members' outputs on readable images.

    Returns:
        "probabilities": each member's probabilities (its own calibration applied) `[M, N, V, K]`;
        "embeddings": the members' embeddings concatenated `[N, V, D1 + D2 + ...]`.
    """
    settings = {"batch_size": batch_size, "workers": workers}
    if input_kind == "probabilities":
        return np.stack([to_probabilities(member.head, member.view_logits(paths, augmentation, **settings),
                                          calibration=member.calibration) for member in members])
    return np.concatenate([member.view_embeddings(paths, augmentation, **settings) for member in members], axis=-1)


def combine_views(combiner: Any, inputs: np.ndarray) -> np.ndarray:
    """Apply a fitted combiner to every view: `member_inputs` output -> probabilities `[N, V, K]`."""
    if combiner.input_kind == "probabilities":
        n_members, n_images, n_views, n_classes = inputs.shape
        flat = inputs.reshape(n_members, n_images * n_views, n_classes)
        return combiner.predict_proba(flat).reshape(n_images, n_views, -1)
    n_images, n_views, n_features = inputs.shape
    return combiner.predict_proba(inputs.reshape(n_images * n_views, n_features)).reshape(n_images, n_views, -1)


def single_view(inputs: np.ndarray, input_kind: str) -> np.ndarray:
    """`member_inputs` without TTA -> what `combiner.fit` takes (`[M, N, K]` or `[N, D]`)."""
    return inputs[:, :, 0] if input_kind == "probabilities" else inputs[:, 0]
