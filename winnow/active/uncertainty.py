"""Strategies on the model's probabilities: random, least confidence, margin, entropy, BALD."""

from __future__ import annotations

import numpy as np

from winnow.active.base import QueryStrategy
from winnow.active.pool import Pool


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) over the last axis of `[..., K]` probabilities."""
    p = np.clip(probabilities, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1)


def mutual_information(samples: np.ndarray) -> np.ndarray:
    """BALD: entropy of the mean prediction minus the mean entropy of the `[S, N, K]` samples, `[N]`."""
    return entropy(samples.mean(axis=0)) - entropy(samples).mean(axis=0)


class RandomQuery(QueryStrategy):
    """Uniformly random picks (the baseline every other strategy must beat)."""

    name = "random"

    def _fit(self, pool: Pool) -> np.ndarray:
        return np.zeros(len(pool))

    def _reason(self, index: int) -> str:
        return "random pick"


class LeastConfidence(QueryStrategy):
    """Lowest top-class probability first; score `1 - max p`."""

    name = "least_confidence"

    def _fit(self, pool: Pool) -> np.ndarray:
        return 1.0 - pool.probabilities.max(axis=1)

    def _reason(self, index: int) -> str:
        probs = self.pool_.probabilities[index]
        return f"top probability only {probs.max():.2f}"


class Margin(QueryStrategy):
    """Smallest gap between the two most probable classes first; score `-(p1 - p2)`."""

    name = "margin"

    def _fit(self, pool: Pool) -> np.ndarray:
        top = np.sort(pool.probabilities, axis=1)
        second = top[:, -2] if top.shape[1] > 1 else 0.0
        return -(top[:, -1] - second)

    def _reason(self, index: int) -> str:
        first, second = np.argsort(self.pool_.probabilities[index])[::-1][:2]
        name = self.pool_.class_name
        return f"margin {-self.scores_[index]:.2f} between {name(first)} and {name(second)}"


class Entropy(QueryStrategy):
    """Highest predictive entropy first."""

    name = "entropy"

    def _fit(self, pool: Pool) -> np.ndarray:
        return entropy(pool.probabilities)

    def _reason(self, index: int) -> str:
        return f"entropy {self.scores_[index]:.2f} nats"


class BALD(QueryStrategy):
    """Bayesian active learning by disagreement over MC-dropout passes or ensemble members (`Pool.samples`)."""

    name = "bald"

    def _fit(self, pool: Pool) -> np.ndarray:
        return mutual_information(pool.require("samples", self.name).astype(np.float64))

    def _reason(self, index: int) -> str:
        return f"the passes disagree: mutual information {self.scores_[index]:.3f} nats"
