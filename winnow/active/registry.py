"""Query strategies by name: `make_strategy("margin")`."""

from __future__ import annotations

from winnow.active.badge import Badge
from winnow.active.balanced import Balanced
from winnow.active.base import QueryStrategy
from winnow.active.coverage import Coreset, TypiClust
from winnow.active.positive import MostLikelyPositive
from winnow.active.uncertainty import BALD, Entropy, LeastConfidence, Margin, RandomQuery

STRATEGIES: dict[str, type[QueryStrategy]] = {
    "random": RandomQuery, "least_confidence": LeastConfidence, "margin": Margin, "entropy": Entropy,
    "bald": BALD, "coreset": Coreset, "badge": Badge, "typiclust": TypiClust, "balanced": Balanced,
    "positive": MostLikelyPositive,
}
NEEDS_SAMPLES = ("bald",)


def make_strategy(name: str, **params) -> QueryStrategy:
    """A new strategy object by name.

    Raises:
        ValueError: Unknown name; the message lists the valid ones.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy: unknown {name!r}; expected one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](**params)
