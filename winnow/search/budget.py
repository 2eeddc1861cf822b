"""Wall-clock budgets: `--budget 2h|30m|1800s|1h30m` and the clock a search checks against it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from statistics import median

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])", re.IGNORECASE)
_WHOLE = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*[hms]\s*)+", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration such as "2h", "30m", "1800s", "1h30m" or a plain number of seconds.

    Raises:
        ValueError: Not a positive duration; the message shows the accepted forms.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    elif isinstance(text, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", text):
        seconds = float(text)
    elif isinstance(text, str) and _WHOLE.fullmatch(text):
        seconds = sum(float(value) * _UNITS[unit.lower()] for value, unit in _PART.findall(text))
    else:
        raise ValueError(f"budget: expected a duration such as 2h, 30m, 1800s or 1h30m, got {text!r}")
    if seconds <= 0:
        raise ValueError(f"budget: expected a duration above zero, got {text!r}")
    return seconds


class Budget:
    """A wall-clock allowance that starts when it is made.

    Args:
        seconds: The allowance; None for no limit.
        clock: Seconds since some origin (tests pass a fake one).
    """

    def __init__(self, seconds: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()

    def remaining(self) -> float:
        """Seconds left (inf without a limit; negative once overrun)."""
        if self.seconds is None:
            return float("inf")
        return self.seconds - (self.clock() - self.started)

    def exhausted(self) -> bool:
        return self.remaining() <= 0

    def fits(self, estimate: float | None) -> bool:
        """Whether a job expected to take `estimate` seconds fits in what is left (unknown: whenever any is left)."""
        remaining = self.remaining()
        return remaining > 0 and (estimate is None or estimate <= remaining)


def estimate_trial_seconds(finished: Sequence[float], per_epoch: Sequence[float], *, epochs: int,
                           startup: Sequence[float] = ()) -> float | None:
    """Expected seconds of one more trial.

    Args:
        finished: Durations of trials that ran all their epochs.
        per_epoch: Seconds per epoch of every trial that ran at least one (pruned ones included).
        epochs: Epochs of a full trial.
        startup: Seconds each trial spent before its first epoch (data scan, model build).

    Returns:
        The median finished duration; without one, the median epoch time x epochs plus the median start-up;
        None when nothing has run yet.
    """
    if finished:
        return float(median(finished))
    if per_epoch:
        return float(median(per_epoch)) * epochs + (float(median(startup)) if startup else 0.0)
    return None
