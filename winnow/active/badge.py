"""BADGE (Ash et al.): k-means++ seeding on gradient embeddings, uncertain and diverse at once."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import kmeans_plusplus

from winnow.active.base import QueryStrategy
from winnow.active.pool import Pool


def gradient_embeddings(probabilities: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Last-layer cross-entropy gradients at the predicted label: `(p - onehot(argmax p)) ⊗ h`.

    Args:
        probabilities: `[N, K]`.
        features: `[N, D]` penultimate (pre-logits) features.

    Returns:
        `[N, K * D]`.
    """
    residual = probabilities.copy()
    residual[np.arange(len(residual)), residual.argmax(axis=1)] -= 1.0
    return (residual[:, :, None] * features[:, None, :]).reshape(len(residual), -1)


class Badge(QueryStrategy):
    """k-means++ seeds (scikit-learn's `kmeans_plusplus`) of the gradient embeddings.

    Attributes:
        scores_: `[N]` gradient-embedding norm (large: uncertain and far from the decision's features).
    """

    name = "badge"

    def _fit(self, pool: Pool) -> np.ndarray:
        features = pool.require("embeddings", self.name).astype(np.float64)
        self.gradients_ = gradient_embeddings(pool.probabilities, features)
        return np.linalg.norm(self.gradients_, axis=1)

    def _order(self, budget: int, rng: np.random.Generator) -> np.ndarray:
        seeds = min(len(self.gradients_), budget + 8)  # a few spare for the near-duplicate filter
        if not self.scores_.any():  # every prediction certain: kmeans++ has no mass to sample from
            return rng.permutation(len(self.gradients_))[:seeds]
        _, indices = kmeans_plusplus(self.gradients_, seeds, random_state=int(rng.integers(2**31)))
        return np.asarray(indices)

    def _reason(self, index: int) -> str:
        return f"k-means++ seed of gradient embeddings (norm {self.scores_[index]:.3g})"
