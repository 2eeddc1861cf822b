"""Labelled data to evaluate, tune or calibrate a run on: a split of the run, or any data source.

`DATA` may be omitted (the run's own split from splits.csv: test for `eval`, val for `tune`,
`calibrate` and `select`), be `train`, `val` or `test` (that split of the run, unless a path of that
name exists), or a folder of class folders, a split tree or a CSV manifest. A split tree, or a
manifest with a `split` column, contributes its rows of the wanted split when it has any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from winnow.data.sources import SPLIT_NAMES, Samples, read_source
from winnow.data.splits import load_splits
from winnow.runs.layout import RunPaths
from winnow.tasks.heads import Head, label_parts


@dataclass(frozen=True)
class EvalData:
    """Images with their true labels.

    Attributes:
        name: Short name, used as the folder name under RUN/eval/.
        source: Where the data came from (for reports).
        paths: Image files `[N]`.
        labels: True labels `[N]` ("a|b" for multi-label).
        extras: Further manifest columns per image (the label columns of a multitask run's other tasks).
    """

    name: str
    source: str
    paths: list[str]
    labels: list[str]
    extras: list[dict[str, str]] = field(default_factory=list)

    def column(self, name: str) -> list[str]:
        """Values of a label column (`label` or a manifest column); '' where missing.

        Raises:
            ValueError: No image has that column.
        """
        if name == "label":
            return list(self.labels)
        if not any(name in row for row in self.extras):
            raise ValueError(f"data {self.name!r} ({self.source}) has no column {name!r}; evaluate a multitask run "
                             "on a CSV manifest with a column per task (as it was trained on)")
        return [row.get(name, "") for row in self.extras]


def resolve_eval_data(run_dir: str | Path, data: str | Path | None, *, split: str) -> EvalData:
    """The labelled data named by `data` (see the module docstring); `split` is the default split.

    Raises:
        ValueError: The run has no such split, or the data source cannot be read.
    """
    if data is None or (str(data) in SPLIT_NAMES and not Path(data).exists()):
        return _run_split(Path(run_dir), str(data or split))
    samples = read_source(data)
    subset = samples.where_split(split)
    name = Path(data).stem if Path(data).is_file() else Path(data).resolve().name
    if len(subset):
        return EvalData(f"{name}-{split}", f"{data} ({split} split)", subset.paths, subset.labels, subset.extras)
    return EvalData(name, str(data), samples.paths, samples.labels, samples.extras)


def _run_split(run_dir: Path, split: str) -> EvalData:
    path = RunPaths(run_dir).splits
    if not path.is_file():
        raise ValueError(f"{run_dir} has no splits.csv; pass DATA (a folder, split tree or CSV manifest with labels)")
    samples: Samples = load_splits(path).where_split(split)
    if not len(samples):
        raise ValueError(f"the run {run_dir} has no {split!r} images in splits.csv (was it trained with "
                         f"{split}_fraction=0?); pass DATA: a folder, split tree or CSV manifest with labels")
    return EvalData(split, f"{split} split of {run_dir.name}", samples.paths, samples.labels, samples.extras)


def encode_labels(head: Head, labels: list[str], *, data_name: str) -> np.ndarray:
    """True labels -> class indices `[N]` (multi-label: multi-hot `[N, K]`).

    Raises:
        ValueError: Labels that are not classes of the run, listed with the run's classes.
    """
    names = [part for label in labels for part in label_parts(head.kind, label)]
    unknown = sorted(set(names) - set(head.classes))
    if unknown:
        raise ValueError(f"data {data_name!r} has label(s) {unknown[:20]} that are not classes of the run "
                         f"({head.classes}); evaluate on data labelled with the run's classes, relabel it, "
                         "or train a run on these classes")
    return np.asarray(head.encode(labels), dtype=np.int64)  # multi-label: 0/1 floats -> ints
