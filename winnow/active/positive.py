"""`positive`: the pool images most likely positive first (a binary run, e.g. a PU run's hidden positives).

A positive-unlabelled run (`winnow train --pu`) is trained to find the positives hidden among the
unlabelled images, so the pool images worth a person's look are those it scores most positive, not
those it is least sure of. Near-duplicates are not held back: a likely positive's near-copy is as likely
positive, and a relabelling list needs both.
"""

from __future__ import annotations

import numpy as np

from winnow.active.base import QueryStrategy
from winnow.active.pool import Pool


class MostLikelyPositive(QueryStrategy):
    """Highest P(positive) first; score `p[:, 1]`, the positive class of a binary head (its last class)."""

    name = "positive"
    deduplicate = False
    binary_only = True

    def _fit(self, pool: Pool) -> np.ndarray:
        if pool.probabilities.shape[1] != 2:
            raise ValueError(f"strategy 'positive' ranks by the positive class of a binary run, but the pool has "
                             f"{pool.probabilities.shape[1]} classes ({pool.classes}); use a run trained with "
                             "--head binary (e.g. --pu), or another strategy such as margin")
        return pool.probabilities[:, 1]

    def _reason(self, index: int) -> str:
        return f"P({self.pool_.class_name(1)}) {self.scores_[index]:.3f}"
