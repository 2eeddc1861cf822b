"""Seeded, stratified, group-aware train/val/test splits, saved in the run folder."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from winnow.data.sources import Samples, read_sources
from winnow.data.unlabelled import pu_unlabelled_label, read_unlabelled
from winnow.runs.atomic import atomic_write_text

SPLITS_COLUMNS = ("path", "label", "split", "group")


def assign_splits(
    data: list[str],
    *,
    val: list[str] | None = None,
    test: list[str] | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    unlabelled: list[str] | None = None,
    positive_class: str | None = None,
) -> Samples:
    """Read the data sources and give every sample a split.

    Splits named in a manifest or split tree are kept; `val`/`test` sources are used
    as given; the rest is split with seeded stratified group k-fold so that no
    `group` value lands on two sides.

    Args:
        unlabelled: PU runs: extra sources of unlabelled images (`read_unlabelled`: labels ignored, groups
            kept), labelled as DATA's unlabelled images are (`pu_unlabelled_label`) and split with the rest,
            but never into test (a test split needs true labels): train, or val when DATA's val is not given.
        positive_class: The labelled positives' label (needed with `unlabelled`).
    """
    samples = read_sources(data)
    added_rows = range(0)
    if unlabelled:
        label = pu_unlabelled_label(samples.labels, positive_class)
        added = read_unlabelled(unlabelled)
        added_rows = range(len(samples), len(samples) + len(added))
        samples.extend(Samples(added.paths, [label] * len(added), added.splits, added.groups, origins=added.origins))
    has_val = bool(val) or "val" in samples.splits
    has_test = bool(test) or "test" in samples.splits
    unassigned = [i for i, s in enumerate(samples.splits) if s is None]
    if unassigned:
        fractions = {"test": 0.0 if has_test else test_fraction, "val": 0.0 if has_val else val_fraction}
        _split_unassigned(samples, unassigned, fractions, seed, no_test=set(added_rows))
    for extra, split in ((val, "val"), (test, "test")):
        if extra:
            samples.extend(read_sources(extra).with_split(split))
    return samples


def _split_unassigned(samples: Samples, indices: list[int], fractions: dict[str, float], seed: int, *,
                      no_test: set[int] = frozenset()) -> None:
    remaining, taken = list(indices), 0.0
    for split in ("test", "val"):
        candidates = [i for i in remaining if not (split == "test" and i in no_test)]
        if fractions[split] > 0 and len(candidates) > 1:
            # fractions are of the whole set, so rescale by what is left after earlier hold-outs
            held_out = _hold_out(samples, candidates, fractions[split] / (1 - taken), seed)
            for i in held_out:
                samples.splits[i] = split
            remaining = [i for i in remaining if samples.splits[i] is None]
            # the share of `indices` taken: the test fraction is of the rows that may be test
            taken += fractions[split] * (len(candidates) / len(indices))
    for i in remaining:
        samples.splits[i] = "train"


def _hold_out(samples: Samples, indices: list[int], fraction: float, seed: int) -> list[int]:
    """One fold of a stratified group k-fold with about `fraction` of the samples."""
    n_splits = max(2, round(1 / fraction))
    labels = [samples.labels[i] for i in indices]
    groups = [samples.groups[i] if samples.groups[i] is not None else f"__row{i}" for i in indices]
    n_groups = len(set(groups))
    if n_groups < n_splits:
        raise ValueError(
            f"cannot hold out {fraction:.0%} by group: only {n_groups} distinct groups; "
            "give --val/--test explicitly or use fewer groups"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rare classes with < n_splits members
        _, held = next(folds.split(np.zeros(len(indices)), labels, groups))
    return [indices[j] for j in held]


def save_splits(samples: Samples, path: Path) -> None:
    """Write `splits.csv` (path,label,split,group and any extra manifest columns) atomically."""
    extras = samples.extra_columns()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*SPLITS_COLUMNS, *extras])
    for path_, label, split, group, extra in samples.rows():
        writer.writerow([path_, label, split, group or "", *[extra.get(k, "") for k in extras]])
    atomic_write_text(path, buffer.getvalue())


def load_splits(path: Path) -> Samples:
    """Read a run's `splits.csv` back."""
    samples = Samples()
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            extra = {k: v for k, v in row.items() if k not in SPLITS_COLUMNS}
            samples.append(row["path"], row["label"], row["split"] or None, row["group"] or None, extra)
    return samples


def check_groups_disjoint(samples: Samples) -> None:
    """Raise when a group value appears in two splits (leaks correlated images)."""
    seen: dict[str, str] = {}
    for _, _, split, group, _ in samples.rows():
        if group is None:
            continue
        if seen.setdefault(group, split) != split:
            raise ValueError(
                f"group {group!r} appears in both {seen[group]!r} and {split!r}; "
                "a group must stay on one side of a split (fix the split column of the manifest)"
            )
