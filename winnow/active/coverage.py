"""Strategies that cover the embedding space: coreset (k-center greedy) and TypiClust."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from winnow.active.base import QueryStrategy
from winnow.active.pool import Pool


class Coreset(QueryStrategy):
    """k-center greedy (Sener & Savarese): each pick is the pool item farthest from everything labelled or picked.

    Attributes:
        scores_: `[N]` distance to the nearest labelled image (inf when nothing is labelled yet).
    """

    name = "coreset"

    def _fit(self, pool: Pool) -> np.ndarray:
        self.embeddings_ = pool.require("embeddings", self.name).astype(np.float64)
        if pool.labelled_embeddings is None or len(pool.labelled_embeddings) == 0:
            return np.full(len(pool), np.inf)
        return pairwise_distances(self.embeddings_, pool.labelled_embeddings).min(axis=1)

    def _order(self, budget: int, rng: np.random.Generator) -> np.ndarray:
        nearest = self.scores_.copy()
        self.gaps_ = np.zeros(len(nearest))
        picks: list[int] = []
        # the diverse filter may drop a few picks: rank a few more than the budget
        for _ in range(min(len(nearest), budget + 8)):
            pick = int(rng.integers(len(nearest))) if np.isinf(nearest).all() else int(np.argmax(nearest))
            self.gaps_[pick] = nearest[pick]
            picks.append(pick)
            nearest = np.minimum(nearest, pairwise_distances(self.embeddings_, self.embeddings_[pick:pick + 1])[:, 0])
        return np.asarray(picks)

    def _reason(self, index: int) -> str:
        gap = self.gaps_[index]
        return "first centre" if np.isinf(gap) else f"distance {gap:.3g} to the nearest labelled or picked image"


class TypiClust(QueryStrategy):
    """TypiClust (Hacohen et al.): the most typical item of each of `budget` k-means clusters, for tiny budgets.

    Typicality is the inverse mean distance to the `neighbours` nearest items of the same cluster;
    clusters with the fewest labelled images and then the largest come first.

    Args:
        neighbours: k of the typicality.
        max_cosine: As `QueryStrategy`.
    """

    name = "typiclust"

    def __init__(self, neighbours: int = 20, max_cosine: float = 0.99) -> None:
        super().__init__(max_cosine=max_cosine)
        self.neighbours = neighbours

    def _fit(self, pool: Pool) -> np.ndarray:
        self.embeddings_ = pool.require("embeddings", self.name).astype(np.float64)
        return np.zeros(len(pool))

    def _order(self, budget: int, rng: np.random.Generator) -> np.ndarray:
        clusters = min(budget, len(self.embeddings_))
        kmeans = KMeans(clusters, n_init=3, random_state=int(rng.integers(2**31))).fit(self.embeddings_)
        covered = np.zeros(clusters)
        if self.pool_.labelled_embeddings is not None and len(self.pool_.labelled_embeddings):
            covered = np.bincount(kmeans.predict(self.pool_.labelled_embeddings.astype(np.float64)),
                                  minlength=clusters)
        sizes = np.bincount(kmeans.labels_, minlength=clusters)
        picks = [self._most_typical(np.flatnonzero(kmeans.labels_ == c)) for c in np.lexsort((-sizes, covered))]
        return np.asarray([p for p in picks if p >= 0])

    def _most_typical(self, members: np.ndarray) -> int:
        if len(members) == 0:
            return -1
        k = min(self.neighbours, len(members) - 1)
        if k == 0:
            return int(members[0])
        distances, _ = NearestNeighbors(n_neighbors=k).fit(self.embeddings_[members]).kneighbors()  # self excluded
        typicality = 1.0 / (distances.mean(axis=1) + 1e-12)
        best = int(np.argmax(typicality))
        self.scores_[members[best]] = typicality[best]
        return int(members[best])

    def _reason(self, index: int) -> str:
        return f"most typical item of its cluster (typicality {self.scores_[index]:.3g})"
