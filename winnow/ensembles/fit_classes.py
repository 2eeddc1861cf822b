"""The classes of a head on embeddings: those of its fit data, which may be classes the backbone never saw.

A run's backbone embeds any image; a head fitted on a manifest of new classes (k images each) classifies
them with no retraining ("few-shot"). Its folder's ensemble.json then names the head's classes, which
`predict`, `eval`, `tune` and `calibrate` of that folder use; the run's own classes stay the run's.
Stacking and averaging combine the members' probabilities and so keep the members' classes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from winnow.data.labelled import EvalData
from winnow.data.sources import SPLIT_NAMES, Samples, read_source
from winnow.embeddings.heads import HEADS
from winnow.inference.predictor import Predictor
from winnow.tasks.heads import head_classes


def head_task(member: Predictor, fit_data: EvalData | None, *, classifier: str | None) -> dict[str, Any]:
    """The task of the folder (as saved in ensemble.json): the member's, or a multiclass task on the fit
    data's classes (sorted as a run sorts its classes) when they differ.

    Args:
        member: The first member run.
        fit_data: The head's fit data (None: a method that fits nothing, or on probabilities).
        classifier: The kind of head on embeddings (None: the method has none).

    Raises:
        ValueError: Unlabelled fit images, fewer than two classes, or a class with fewer images than the head
            needs.
    """
    saved = member.tasks[0].to_dict()
    if fit_data is None or classifier is None:
        return saved
    counts = check_fit_labels(fit_data, classifier=classifier)
    classes = head_classes("multiclass", list(counts))
    if set(classes) == set(member.classes):
        return saved  # the run's own classes, in the run's order (a binary run keeps its positive class last)
    return {**saved, "kind": "multiclass", "classes": classes, "threshold": 0.5}


def class_warnings(task: dict[str, Any], member: Predictor) -> list[str]:
    """Fit data with only some of the run's classes gives a head that never predicts the others: say so."""
    missing = [name for name in member.classes if name not in task["classes"]]
    if not missing or set(task["classes"]) - set(member.classes):
        return []  # the run's classes, or new ones
    return [f"the fit data lacks the run's class(es) {missing[:20]}: the head has only {task['classes']} and never "
            "predicts the others; add their images to --data for a head on all the run's classes"]


def check_fit_labels(fit_data: EvalData, *, classifier: str) -> Counter:
    """Images per class of the fit data, each class with enough of them for the head (`min_per_class`).

    Raises:
        ValueError: Unlabelled images, fewer than two classes, or too few images of a class.
    """
    counts = Counter(fit_data.labels)
    if counts.get("", 0):
        raise ValueError(f"data {fit_data.source}: {counts['']} fit image(s) have no label; a head is fitted on "
                         "labelled images (a folder of class folders or a CSV manifest with a label column)")
    if len(counts) < 2:
        raise ValueError(f"data {fit_data.source}: a head tells classes apart, but the fit images have only the "
                         f"class(es) {sorted(counts)}; add labelled images of at least one other class")
    needed = HEADS[classifier].min_per_class
    few = {name: count for name, count in sorted(counts.items()) if count < needed}
    if few:
        one_shot = " or ".join(kind for kind, head in HEADS.items() if head.min_per_class == 1)
        raise ValueError(f"data {fit_data.source}: a {classifier} head needs at least {needed} images per class "
                         f"(k >= {needed}), but {few} have fewer; add images of those classes, or use the "
                         f"{one_shot} head, which work with 1 image per class")
    return counts


def data_splits(data: Any) -> Samples | None:
    """The split rows of a data source (a split tree, or a manifest with a split column), or None without them.

    A head on new classes cannot default to the run's val / test splits (other classes): the folder gets
    the data's own splits instead, when it has any.
    """
    if data is None or (str(data) in SPLIT_NAMES and not Path(data).exists()):
        return None  # a split of the run: no splits of its own
    samples = read_source(data)
    return samples if any(samples.splits) else None
