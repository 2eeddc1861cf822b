"""What a combiner reads from the members: their probabilities, or their embeddings, per TTA view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from winnow.inference.postprocess import to_probabilities
from winnow.inference.predictions import ReadOutputs
from winnow.inference.predictor import Predictor
from winnow.inference.tta import TTA


def member_inputs(members: Sequence[Predictor], input_kind: str, paths: list[str], augmentation: TTA, *,
                  batch_size: int = 64, workers: int = 0) -> ReadOutputs:
    """The members' outputs on the images that every member could read.

    Each member reads the files itself, so a file that vanishes between two members is dropped for all.

    Returns:
        `values`: for "probabilities", each member's probabilities (its own calibration applied)
        `[M, n, V, K]`; for "embeddings", the members' embeddings concatenated `[n, V, D1 + D2 + ...]`.
        `rows` index `paths`; `bad` lists each file some member could not read, once.
    """
    settings = {"batch_size": batch_size, "workers": workers}
    if input_kind == "probabilities":
        outputs = [member.view_logits(paths, augmentation, **settings) for member in members]
    else:
        outputs = [member.view_embeddings(paths, augmentation, **settings) for member in members]
    rows = sorted(set.intersection(*(set(output.rows) for output in outputs)))
    bad = list(dict(pair for output in outputs for pair in output.bad).items())
    if input_kind == "probabilities":
        values = np.stack([to_probabilities(member.head, values_at(output, rows), calibration=member.calibration)
                           for member, output in zip(members, outputs)])
    else:
        values = np.concatenate([values_at(output, rows) for output in outputs], axis=-1)
    return ReadOutputs(values, rows, bad)


def values_at(outputs: ReadOutputs, rows: list[int]) -> np.ndarray:
    """`outputs.values` (image axis first) of the images at input positions `rows`, each of them read."""
    position = {row: i for i, row in enumerate(outputs.rows)}
    return outputs.values[[position[row] for row in rows]]


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
