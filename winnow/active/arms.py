"""The random arm of a query: a share of the picks drawn uniformly from the pool images the strategy left.

Labelled alongside the strategy's picks, the random arm is an unbiased sample of the pool: the next
round compares the two arms on the previous model's mistakes (`winnow.active.arm_report`) and
estimates the model's accuracy on the pool from the random arm alone.
"""

from __future__ import annotations

import numpy as np

from winnow.active.base import Selection
from winnow.active.pool import Pool

STRATEGY_ARM, RANDOM_ARM = "strategy", "random"
RANDOM_REASON = "random arm: uniform over the pool images the strategy did not pick"
_STREAM = 1  # the random arm's own stream of the seed, apart from the strategy's ties


def check_random_arm(fraction: float) -> float:
    """`fraction` as a float in [0, 1).

    Raises:
        ValueError: Not a number in [0, 1).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(f"random_arm (--random-arm): expected a fraction of the budget in [0, 1), got {fraction!r}; "
                         "use e.g. 0.2, or 0 to pick with the strategy alone")
    return float(fraction)


def random_arm_size(budget: int, fraction: float) -> int:
    """Picks of `budget` that go to the random arm: round(fraction * budget), at least 1 when fraction > 0
    and budget >= 2, and never all of them (the strategy keeps at least one)."""
    if fraction <= 0 or budget < 2:
        return 0
    return min(max(round(fraction * budget), 1), budget - 1)


def random_picks(taken: np.ndarray, size: int, count: int, *, seed: int = 0) -> np.ndarray:
    """`min(count, size - len(taken))` indices `[n]` of `range(size)` outside `taken`, uniformly without replacement."""
    rest = np.setdiff1d(np.arange(size), taken)
    rng = np.random.default_rng([seed, _STREAM])
    return rng.choice(rest, size=min(count, len(rest)), replace=False).astype(int)


def with_random_arm(selection: Selection, pool: Pool, scores: np.ndarray, count: int, *,
                    seed: int = 0) -> tuple[Selection, list[str]]:
    """The strategy's `selection` followed by `count` random picks from the rest of `pool`, and each pick's arm.

    Args:
        selection: The strategy's picks.
        pool: The pool they were picked from.
        scores: `[N]` the strategy's score of every pool item (shown for the random picks too).
        count: Random picks wanted (fewer when the pool runs out).
        seed: Seeds the draw.
    """
    picked = random_picks(selection.indices, len(pool), count, seed=seed)
    merged = Selection(np.concatenate([np.asarray(selection.indices, dtype=int), picked]),
                       [*selection.paths, *(pool.paths[i] for i in picked)],
                       np.concatenate([np.asarray(selection.scores, dtype=np.float64), scores[picked]]),
                       [*selection.reasons, *[RANDOM_REASON] * len(picked)])
    return merged, [STRATEGY_ARM] * len(selection.indices) + [RANDOM_ARM] * len(picked)
