"""Diverse batches: no two picks of one batch are near-duplicates in embedding space."""

from __future__ import annotations

import numpy as np


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows of `embeddings` `[N, D]` scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.where(norms > 0, norms, 1.0)


def diverse_take(order: np.ndarray, budget: int, embeddings: np.ndarray | None, *,
                 max_cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """The first `budget` items of `order` skipping near-duplicates of an earlier pick.

    A candidate whose cosine similarity to an already picked item exceeds `max_cosine` is held back;
    held-back items fill the batch only when the pool has too few distinct ones.

    Args:
        order: `[C]` candidate indices, best first.
        budget: Items wanted.
        embeddings: `[N, D]` or None (then no filtering).
        max_cosine: Similarity above which two items count as duplicates.

    Returns:
        Picked indices `[min(budget, C)]` and a `[same]` bool flag, True where a pick was held back first.
    """
    if embeddings is None:
        picked = np.asarray(order[:budget], dtype=int)
        return picked, np.zeros(len(picked), bool)
    unit = unit_rows(np.asarray(embeddings, dtype=np.float64))
    picked: list[int] = []
    held: list[int] = []
    for index in order:
        if len(picked) == budget:
            break
        if picked and float((unit[picked] @ unit[index]).max()) > max_cosine:
            held.append(int(index))
        else:
            picked.append(int(index))
    fill = held[: budget - len(picked)]
    return np.asarray(picked + fill, dtype=int), np.asarray([False] * len(picked) + [True] * len(fill))
