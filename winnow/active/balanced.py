"""Class-balanced queries: the budget is shared across predicted classes, rare classes first."""

from __future__ import annotations

import numpy as np

from winnow.active.base import QueryStrategy
from winnow.active.pool import Pool
from winnow.active.uncertainty import Margin


class Balanced(QueryStrategy):
    """Round-robin over predicted classes, rarest predicted class first, most ambiguous (margin) item within each.

    An equal share per predicted class favours rare classes: a class predicted for 2% of the pool gets
    as many picks as one predicted for 60%, until it runs out.

    Attributes:
        scores_: `[N]` margin score (as `Margin`).
        predicted_: `[N]` predicted class index.
    """

    name = "balanced"

    def _fit(self, pool: Pool) -> np.ndarray:
        self.predicted_ = pool.probabilities.argmax(axis=1)
        return Margin(max_cosine=self.max_cosine).fit(pool).scores_

    def _order(self, budget: int, rng: np.random.Generator) -> np.ndarray:
        counts = np.bincount(self.predicted_, minlength=self.pool_.probabilities.shape[1])
        queues = []
        for cls in np.lexsort((rng.random(len(counts)), counts)):  # rarest predicted class first
            members = np.flatnonzero(self.predicted_ == cls)
            queues.append(list(members[self._rank(members, rng)]))
        order = []
        while any(queues):
            order += [queue.pop(0) for queue in queues if queue]
        return np.asarray(order)

    def _reason(self, index: int) -> str:
        cls = self.predicted_[index]
        share = float(np.mean(self.predicted_ == cls))
        return f"predicted {self.pool_.class_name(cls)} ({share:.0%} of the pool), margin {-self.scores_[index]:.2f}"
