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

    Args:
        max_candidates: Seeds are drawn among this many pool items of largest gradient norm (memory:
            `max_candidates * K * D` floats).
        max_cosine: As `QueryStrategy`.

    Attributes:
        candidates_: Pool indices the seeds are drawn from.
        scores_: `[N]` gradient-embedding norm (large: uncertain and far from the decision's features).
    """

    name = "badge"

    def __init__(self, max_candidates: int = 5000, max_cosine: float = 0.99) -> None:
        super().__init__(max_cosine=max_cosine)
        self.max_candidates = max_candidates

    def _fit(self, pool: Pool) -> np.ndarray:
        features = pool.require("embeddings", self.name).astype(np.float32)
        residual_norm = np.linalg.norm(pool.probabilities - np.eye(pool.probabilities.shape[1])[
            pool.probabilities.argmax(axis=1)], axis=1)
        scores = residual_norm * np.linalg.norm(features, axis=1)  # = norm of the outer product
        # the [N, K * D] matrix of a 70,000-image pool does not fit in memory: seed among the largest norms
        self.candidates_ = np.sort(np.argsort(-scores, kind="stable")[:self.max_candidates])
        self.gradients_ = gradient_embeddings(pool.probabilities[self.candidates_].astype(np.float32),
                                              features[self.candidates_])
        return scores

    def _order(self, budget: int, rng: np.random.Generator) -> np.ndarray:
        seeds = min(len(self.gradients_), budget + 8)  # a few spare for the near-duplicate filter
        if not self.scores_[self.candidates_].any():  # every prediction certain: kmeans++ has no mass to sample
            return self.candidates_[rng.permutation(len(self.candidates_))[:seeds]]
        _, indices = kmeans_plusplus(self.gradients_, seeds, random_state=int(rng.integers(2**31)))
        return self.candidates_[np.asarray(indices)]

    def _reason(self, index: int) -> str:
        return f"k-means++ seed of gradient embeddings (norm {self.scores_[index]:.3g})"
