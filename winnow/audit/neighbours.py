"""Nearest neighbours without an N x N matrix (scikit-learn's brute search works in memory-bounded chunks)."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


def nearest(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest other rows of each row (Euclidean): distances and indices, both `[n, k]`.

    Args:
        vectors: `[n, D]` float.
        k: Neighbours per row (capped at n - 1).
    """
    k = min(k, len(vectors) - 1)
    search = NearestNeighbors(n_neighbors=k + 1).fit(vectors)
    distances, indices = search.kneighbors(vectors)
    return _without_self(distances, indices, k)


def _without_self(distances: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    # exact copies may push a row out of its own first column: drop the row itself wherever it is
    own = indices == np.arange(len(indices))[:, None]
    own[own.sum(axis=1) == 0, -1] = True  # the row was not among its k+1: drop the farthest instead
    keep = ~own
    return distances[keep].reshape(-1, k), indices[keep].reshape(-1, k)


def close_pairs(vectors: np.ndarray, radius: float, *, k: int = 5) -> list[tuple[int, int, float]]:
    """Pairs `(i, j, distance)` with i < j among each row's `k` nearest within `radius` (each pair once)."""
    if len(vectors) < 2:
        return []
    distances, indices = nearest(vectors, k)
    pairs = {}
    for i, (row_distances, row_indices) in enumerate(zip(distances, indices)):
        for distance, j in zip(row_distances, row_indices):
            if distance <= radius:
                pairs[min(i, j), max(i, j)] = float(distance)
    return [(i, j, distance) for (i, j), distance in sorted(pairs.items())]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, so that squared Euclidean distance is 2 - 2 cosine."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
