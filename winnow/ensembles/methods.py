"""The ensemble methods users pick by name (`winnow ensemble --method`)."""

from __future__ import annotations

from winnow.embeddings.oversample import NONE, check_method
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


def make_combiner(method: str, *, classifier: str = "svm", seed: int = 0, oversample: str = "none") -> Combiner:
    """An unfitted combiner by name; `classifier` (a kind of `winnow.embeddings.heads.HEADS`) and `oversample`
    (`winnow.embeddings.oversample.OVERSAMPLERS`) apply to method svm.

    Raises:
        ValueError: Unknown method, classifier or oversampling method (the message lists the valid ones), or
            oversampling asked of a method without a head on embeddings.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    check_method(oversample)
    if method == "svm":
        return EmbeddingClassifier(classifier=check_classifier(classifier), seed=seed, oversample=oversample)
    if oversample != NONE:
        raise ValueError(f"oversample: method {method} fits no head on embeddings to oversample for; use --method "
                         "svm (any --classifier) or `winnow head`, or drop --oversample")
    return StackedLogistic(seed=seed) if method == "stack" else METHODS[method]()
