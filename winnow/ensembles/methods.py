"""The ensemble methods users pick by name (`winnow ensemble --method`)."""

from __future__ import annotations

from winnow.ensembles.averaging import MajorityVote, MeanCombiner
from winnow.ensembles.feature_head import EmbeddingClassifier, check_classifier
from winnow.ensembles.stacking import StackedLogistic

Combiner = MeanCombiner | MajorityVote | StackedLogistic | EmbeddingClassifier

METHODS: dict[str, type] = {
    "mean": MeanCombiner,
    "vote": MajorityVote,
    "stack": StackedLogistic,
    "svm": EmbeddingClassifier,
}
MIN_MEMBERS = {"mean": 2, "vote": 2, "stack": 2, "svm": 1}


def make_combiner(method: str, *, classifier: str = "svm", seed: int = 0) -> Combiner:
    """An unfitted combiner by name; `classifier` (a kind of `winnow.embeddings.heads.HEADS`) applies to method svm.

    Raises:
        ValueError: Unknown method or classifier; the message lists the valid ones.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    if method == "svm":
        return EmbeddingClassifier(classifier=check_classifier(classifier), seed=seed)
    return StackedLogistic(seed=seed) if method == "stack" else METHODS[method]()
