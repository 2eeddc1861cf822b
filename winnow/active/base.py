"""`QueryStrategy`: the scikit-learn-style base every query strategy follows.

`fit(pool)` scores the pool (learned attributes end in `_`); `select(budget, seed=)` returns the batch
to label next as a `Selection`. A strategy implements `_fit` (scores and reasons per item) and
`_order` (candidates best first); the base checks inputs, breaks ties with the seed and keeps the
batch free of near-duplicates (`winnow.active.batch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winnow.active.batch import diverse_take
from winnow.active.pool import Pool

DEFAULT_MAX_COSINE = 0.99


@dataclass
class Selection:
    """The batch to label: `indices` `[n]` into the pool, with its `paths`, `scores` and `reasons`."""

    indices: np.ndarray
    paths: list[str]
    scores: np.ndarray
    reasons: list[str]


class QueryStrategy:
    """Base of the query strategies.

    Args:
        max_cosine: Two picks of one batch whose embedding cosine exceeds this are near-duplicates.

    Attributes:
        scores_: `[N]` score per pool item after `fit` (higher: more worth labelling).
        pool_: The fitted pool.
    """

    name = "base"
    deduplicate = True  # hold back near-duplicates of earlier picks (`winnow.active.batch`)
    binary_only = False  # scores need a binary head's P(positive)

    def __init__(self, max_cosine: float = DEFAULT_MAX_COSINE) -> None:
        self.max_cosine = max_cosine

    def fit(self, pool: Pool) -> "QueryStrategy":
        """Score `pool`; returns self."""
        if not -1.0 <= self.max_cosine <= 1.0:
            raise ValueError(f"max_cosine: expected a cosine in [-1, 1], got {self.max_cosine}")
        if len(pool) == 0:
            raise ValueError("pool: no unlabelled image left to query; add images to the pool")
        self.pool_ = pool
        self.scores_ = np.asarray(self._fit(pool), dtype=np.float64)
        return self

    def select(self, budget: int, *, seed: int = 0) -> Selection:
        """The `min(budget, N)` distinct pool items to label next, best first.

        Raises:
            ValueError: budget < 1.
            RuntimeError: `fit` was not called.
        """
        if not hasattr(self, "scores_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit(pool) first")
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"budget: expected a whole number >= 1, got {budget!r}")
        rng = np.random.default_rng(seed)
        order = np.asarray(self._order(min(int(budget), len(self.pool_)), rng), dtype=int)
        rest = np.setdiff1d(np.arange(len(self.pool_)), order)  # strategies may rank only part of the pool
        order = np.concatenate([order, rest[self._rank(rest, rng)]])
        embeddings = self.pool_.embeddings if self.deduplicate else None
        picked, held = diverse_take(order, int(budget), embeddings, max_cosine=self.max_cosine)
        reasons = [self._reason(i) + (" (near-duplicate, filled in)" if h else "") for i, h in zip(picked, held)]
        return Selection(picked, [self.pool_.paths[i] for i in picked], self.scores_[picked], reasons)

    def _rank(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Positions of `indices` by descending score, ties broken at random with `rng`."""
        return np.lexsort((rng.random(len(indices)), -self.scores_[indices]))

    def _fit(self, pool: Pool) -> np.ndarray:
        raise NotImplementedError

    def _order(self, budget: int, rng: np.random.Generator) -> np.ndarray:
        """Candidate indices, best first (default: by score); the base appends the rest."""
        everything = np.arange(len(self.pool_))
        return everything[self._rank(everything, rng)]

    def _reason(self, index: int) -> str:
        return f"{self.name} score {self.scores_[index]:.3g}"
