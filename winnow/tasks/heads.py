"""Head kinds: how labels become targets, logits become probabilities, and what is measured.

- ``multiclass``: softmax over K classes; targets are class indices.
- ``binary``: one logit with a threshold; targets are 0/1 for (negative, positive). Probabilities
  are reported as two columns [negative, positive] so tables keep one column per class.
- ``multilabel``: one sigmoid per label; a manifest `label` holds labels separated by ``|``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import f1_score

from winnow.metrics.headline import classification_metrics
from winnow.metrics.pu import pu_auc, pu_recall

LABEL_SEPARATOR = "|"


def natural_sorted(labels: set[str]) -> list[str]:
    """Sort labels numerically when they are all integers ("2" before "10"), else as text."""
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


@dataclass
class Head:
    """One output head: its kind, classes and decision threshold (binary / multilabel)."""

    kind: str
    classes: list[str]
    threshold: float = 0.5
    default_loss: str = field(init=False, default="ce")

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def encode(self, labels: list[str]) -> list:
        """Targets per sample (-100 for a label the head does not know)."""
        index = {name: i for i, name in enumerate(self.classes)}
        return [index.get(label, -100) for label in labels]

    def class_counts(self, targets: list) -> list[int]:
        known = [t for t in targets if t >= 0]
        return np.bincount(known, minlength=len(self.classes)).tolist()

    def sampling_targets(self, targets: list) -> list[int]:
        """One class index per sample, for samplers."""
        return [max(int(t), 0) for t in targets]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """`[B, K]` logits -> `[B, K]` probabilities."""
        return logits.float().softmax(dim=1)

    def predict(self, probabilities: np.ndarray) -> list[str]:
        return [self.classes[i] for i in probabilities.argmax(axis=1)]

    def metrics(self, probabilities: np.ndarray, targets: np.ndarray, *, prefix: str) -> dict[str, float]:
        keep = targets >= 0
        return classification_metrics(probabilities[keep], targets[keep], prefix=prefix)


class MulticlassHead(Head):
    def __init__(self, classes: list[str], *, threshold: float = 0.5) -> None:
        super().__init__("multiclass", classes, threshold)


class BinaryHead(Head):
    """Single logit for `classes[1]` (the positive class) against `classes[0]`."""

    def __init__(self, classes: list[str], *, threshold: float = 0.5) -> None:
        if len(classes) != 2:
            raise ValueError(f"head=binary needs exactly 2 classes, got {len(classes)}: {classes}; "
                             "use head=multiclass or relabel the data")
        super().__init__("binary", classes, threshold)
        self.default_loss = "bce"
        self.prior: float | None = None  # set in PU runs: classes[0] is then the unlabelled images

    @property
    def pu(self) -> bool:
        return self.prior is not None

    @property
    def num_outputs(self) -> int:
        return 1

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        positive = logits.float().reshape(-1).sigmoid()
        return torch.stack([1 - positive, positive], dim=1)

    def predict(self, probabilities: np.ndarray) -> list[str]:
        return [self.classes[int(p >= self.threshold)] for p in probabilities[:, 1]]

    def metrics(self, probabilities: np.ndarray, targets: np.ndarray, *, prefix: str) -> dict[str, float]:
        keep = targets >= 0
        decided = probabilities[keep, 1] >= self.threshold
        one_hot = np.stack([~decided, decided], axis=1).astype(float)  # argmax = thresholded decision
        metrics = classification_metrics(one_hot, targets[keep], prefix=prefix)
        if self.pu and prefix != "test_":  # no true negatives (a labelled test split has them): the measures of winnow.metrics.pu
            scores, labelled = probabilities[keep, 1], targets[keep] == 1
            metrics[f"{prefix}pu_auc"] = pu_auc(scores, labelled, self.prior)
            metrics[f"{prefix}pu_recall"] = pu_recall(scores, labelled, self.prior)
        return metrics


class MultilabelHead(Head):
    """Independent sigmoid per label; targets are multi-hot `[K]` lists."""

    def __init__(self, classes: list[str], *, threshold: float = 0.5) -> None:
        super().__init__("multilabel", classes, threshold)
        self.default_loss = "bce"

    def encode(self, labels: list[str]) -> list:
        index = {name: i for i, name in enumerate(self.classes)}
        targets = []
        for label in labels:
            row = [0.0] * len(self.classes)
            for part in split_labels(label):
                if part in index:
                    row[index[part]] = 1.0
            targets.append(row)
        return targets

    def class_counts(self, targets: list) -> list[int]:
        return np.asarray(targets).sum(axis=0).astype(int).tolist()

    def sampling_targets(self, targets: list) -> list[int]:
        """The rarest label each sample carries drives sampling."""
        counts = np.maximum(np.asarray(self.class_counts(targets)), 1)
        return [int(min(np.flatnonzero(row), key=lambda k: counts[k])) if any(row) else 0 for row in targets]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().sigmoid()

    def predict(self, probabilities: np.ndarray) -> list[str]:
        return [LABEL_SEPARATOR.join(c for c, p in zip(self.classes, row) if p >= self.threshold)
                for row in probabilities]

    def metrics(self, probabilities: np.ndarray, targets: np.ndarray, *, prefix: str) -> dict[str, float]:
        decided = probabilities >= self.threshold
        truth = targets >= 0.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            per_label = f1_score(truth, decided, average=None, zero_division=0)
            result = {f"{prefix}accuracy": float((decided == truth).all(axis=1).mean()),
                      f"{prefix}micro_f1": float(f1_score(truth, decided, average="micro", zero_division=0)),
                      f"{prefix}macro_f1": float(per_label.mean()),
                      f"{prefix}balanced_accuracy": float(_mean_label_balanced_accuracy(decided, truth))}
        result.update({f"{prefix}f1_{name}": float(v) for name, v in zip(self.classes, per_label)})
        return result


def _mean_label_balanced_accuracy(decided: np.ndarray, truth: np.ndarray) -> float:
    """Mean over labels of (TPR + TNR) / 2 (labels without positives or negatives count their one side)."""
    tpr = (decided & truth).sum(0) / np.maximum(truth.sum(0), 1)
    tnr = (~decided & ~truth).sum(0) / np.maximum((~truth).sum(0), 1)
    return float(((tpr + tnr) / 2).mean())


def split_labels(label: str) -> list[str]:
    return [part.strip() for part in label.split(LABEL_SEPARATOR) if part.strip()]


def label_parts(kind: str, label: str) -> list[str]:
    """The class names one label value stands for: several for a multi-label head, else itself."""
    return split_labels(label) if kind == "multilabel" else [label]


HEADS: dict[str, type[Head]] = {
    "multiclass": MulticlassHead,
    "binary": BinaryHead,
    "multilabel": MultilabelHead,
}


def head_classes(kind: str, labels: list[str], *, positive: str | None = None) -> list[str]:
    """Class list of a head from the training labels (binary: the positive class last)."""
    names = set()
    for label in labels:
        names.update(label_parts(kind, label))
    classes = natural_sorted(names)
    if kind == "binary" and positive is not None:
        if positive not in classes:
            raise ValueError(f"positive_class {positive!r} is not among the training labels {classes}")
        classes = [c for c in classes if c != positive] + [positive]
    return classes


def make_head(kind: str, classes: list[str], *, threshold: float = 0.5) -> Head:
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; valid heads: {', '.join(HEADS)} (or multitask with `tasks`)")
    return HEADS[kind](classes, threshold=threshold)
