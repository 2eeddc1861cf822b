"""Validation of evaluation inputs: probabilities, targets and class names, with clear messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ROW_SUM_TOLERANCE = 1e-3
UNCERTAIN = -1  # class index of a rejected ("uncertain") prediction


def check_probabilities(probabilities: Any, *, name: str = "probabilities", rows_sum_to_one: bool = True) -> np.ndarray:
    """Validate scores in [0, 1] of shape `[N, K]` and return them as float64.

    Args:
        probabilities: Scores `[N, K]`.
        name: Parameter name used in error messages.
        rows_sum_to_one: Require each row to sum to 1 (softmax outputs), within 1e-3.

    Raises:
        ValueError: Wrong shape, non-finite values, values outside [0, 1] or rows not summing to 1.
    """
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D array [N, K], got shape {array.shape}; "
                         "pass one row of scores per sample")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name}: expected finite values in [0, 1], got range [{np.nanmin(array):.4g}, "
                         f"{np.nanmax(array):.4g}]; pass probabilities (softmax/sigmoid outputs), not logits")
    if rows_sum_to_one:
        sums = array.sum(axis=1)
        if np.abs(sums - 1).max() > ROW_SUM_TOLERANCE:
            raise ValueError(f"{name}: expected rows summing to 1, got sums in [{sums.min():.4g}, {sums.max():.4g}]; "
                             "pass softmax outputs, or use full_metrics_multilabel for independent scores")
    return array


def check_targets(targets: Any, *, n_samples: int, n_classes: int) -> np.ndarray:
    """Validate integer class indices `[N]` in `[0, n_classes)` and return them as int64.

    Raises:
        ValueError: Wrong shape/length or an index outside `[0, n_classes)`.
        TypeError: Non-integer targets.
    """
    array = np.asarray(targets)
    if array.ndim != 1 or len(array) != n_samples:
        raise ValueError(f"targets: expected shape [{n_samples}] (one class index per row of scores), "
                         f"got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        raise TypeError(f"targets: expected integer class indices, got dtype {array.dtype}; "
                        "map class names to indices with classes.index(name)")
    if n_samples and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(f"targets: expected class indices in [0, {n_classes}), got range "
                         f"[{array.min()}, {array.max()}]; check that targets and classes come from the same run")
    return array.astype(np.int64)


def check_multilabel_targets(targets: Any, *, shape: tuple[int, int]) -> np.ndarray:
    """Validate multi-hot targets `[N, L]` of 0/1 values and return them as int64."""
    array = np.asarray(targets)
    if array.shape != shape:
        raise ValueError(f"targets: expected multi-hot shape {list(shape)} like the scores, got {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError("targets: expected multi-hot values 0 or 1, got other values; "
                         "encode each label as one 0/1 column")
    return array.astype(np.int64)


def check_classes(classes: Sequence[str], *, n_classes: int, name: str = "classes") -> list[str]:
    """Validate `n_classes` distinct names (one per column of scores) and return them as a list."""
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError(f"{name}: expected a list of names, got {type(classes).__name__}")
    names = [str(name_) for name_ in classes]
    if len(names) != n_classes or len(set(names)) != len(names):
        raise ValueError(f"{name}: expected {n_classes} distinct names (one per score column), got {names}")
    return names
