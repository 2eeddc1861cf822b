"""Vectorised bootstrap: resampled row indices `[B, N]` in memory-bounded chunks and percentile intervals.

A statistic is a function of an index array `[b, N]` (one bootstrap sample per row) returning `[b]`
values; `ratio_statistic` builds the usual one (precision, recall, FPR: a ratio of flag counts).
Replicates whose statistic is undefined are NaN and are left out of the interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from winnow import constraints

MAX_CHUNK_ELEMENTS = 4_000_000  # indices drawn at once (32 MB of int64)

Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval.

    Attributes:
        low: Lower end (NaN when every replicate was undefined).
        high: Upper end.
        confidence: Coverage of the interval, e.g. 0.95.
        n_bootstrap: Replicates drawn.
        n_undefined: Replicates whose statistic was undefined (e.g. no positive prediction).
    """

    low: float
    high: float
    confidence: float
    n_bootstrap: int
    n_undefined: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: NaN ends become None."""
        return {"low": json_float(self.low), "high": json_float(self.high), "confidence": self.confidence,
                "n_bootstrap": self.n_bootstrap, "n_undefined": self.n_undefined}


def check_bootstrap_params(*, n_bootstrap: int, confidence: float) -> None:
    """Raise InvalidParameterError (a ValueError) for n_bootstrap < 1 or confidence outside (0, 1)."""
    constraints.check_value("n_bootstrap", n_bootstrap, [constraints.Interval(Integral, 1, None)],
                            hint="1000 is a good default")
    constraints.check_value("confidence", confidence, [constraints.Interval(Real, 0, 1, closed="neither")],
                            hint="e.g. 0.95 for a 95% interval")


def resample_indices(n_samples: int, n_bootstrap: int, *, random_state: int | np.random.Generator | None = 0,
                     max_elements: int = MAX_CHUNK_ELEMENTS) -> Iterator[np.ndarray]:
    """Yield index chunks `[b, n_samples]` drawn with replacement, `n_bootstrap` rows in all.

    Args:
        n_samples: Rows of the data set.
        n_bootstrap: Bootstrap samples to draw.
        random_state: Seed or Generator (`numpy.random.default_rng`).
        max_elements: Upper bound on indices held at once; sets the chunk size.
    """
    if n_samples < 1:
        raise ValueError(f"cannot bootstrap an empty data set (n_samples={n_samples})")
    rng = np.random.default_rng(random_state)
    per_chunk = max(1, max_elements // n_samples)
    for start in range(0, n_bootstrap, per_chunk):
        yield rng.integers(0, n_samples, size=(min(per_chunk, n_bootstrap - start), n_samples))


def bootstrap_replicates(statistic: Statistic, n_samples: int, *, n_bootstrap: int = 1000,
                         random_state: int | np.random.Generator | None = 0) -> np.ndarray:
    """Values `[n_bootstrap]` of `statistic(indices [b, N]) -> [b]` over bootstrap samples."""
    chunks = resample_indices(n_samples, n_bootstrap, random_state=random_state)
    return np.concatenate([np.asarray(statistic(indices), dtype=np.float64) for indices in chunks])


def ratio_statistic(numerator: np.ndarray, denominator: np.ndarray) -> Statistic:
    """`sum(numerator[idx]) / sum(denominator[idx])` per bootstrap row; NaN where the denominator is 0.

    Args:
        numerator: Flags `[N]` counted above the line (e.g. true positives).
        denominator: Flags `[N]` counted below the line (e.g. predicted positives).
    """
    numerator, denominator = np.asarray(numerator, np.int64), np.asarray(denominator, np.int64)

    def statistic(indices: np.ndarray) -> np.ndarray:
        top, bottom = numerator[indices].sum(axis=1), denominator[indices].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.maximum(bottom, 1), np.nan)

    return statistic


def percentile_interval(replicates: np.ndarray, *, confidence: float = 0.95) -> Interval:
    """Percentile interval of replicates `[B]`, ignoring NaN (undefined) ones."""
    check_bootstrap_params(n_bootstrap=max(len(replicates), 1), confidence=confidence)
    defined = replicates[~np.isnan(replicates)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail]) if len(defined) else (np.nan, np.nan)
    return Interval(float(low), float(high), float(confidence), len(replicates), int(len(replicates) - len(defined)))


def bootstrap_interval(statistic: Statistic, n_samples: int, *, n_bootstrap: int = 1000, confidence: float = 0.95,
                       random_state: int | np.random.Generator | None = 0) -> Interval:
    """Percentile bootstrap interval of `statistic` over `n_samples` rows."""
    check_bootstrap_params(n_bootstrap=n_bootstrap, confidence=confidence)
    replicates = bootstrap_replicates(statistic, n_samples, n_bootstrap=n_bootstrap, random_state=random_state)
    return percentile_interval(replicates, confidence=confidence)


def json_float(value: float) -> float | None:
    """`float(value)`, or None for NaN (strict JSON has no NaN)."""
    return None if np.isnan(value) else float(value)
