"""Unlabelled images (pretraining, audits, PU runs): every image of a folder tree or a manifest's `path` column.

Labels and splits, where a source has them, are ignored: a folder of class folders, a split tree,
a flat folder of images and a manifest all give one list of images.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from winnow.data.sources import IMAGE_SUFFIXES, Samples

UNLABELLED = ""  # the label of every unlabelled sample
PU_UNLABELLED = "unlabeled"  # what a PU run's extra unlabelled images are called when DATA has none


def pu_unlabelled_label(labels: list[str], positive_class: str | None) -> str:
    """The label a PU run's unlabelled images carry: DATA's one label besides `positive_class`, else "unlabeled".

    Raises:
        ValueError: No `positive_class`, or DATA with more than one other label.
    """
    if positive_class is None:
        raise ValueError("unlabeled: the extra unlabelled images join a PU run, which needs positive_class, the "
                         "label of the labelled positives; set --positive-class")
    others = sorted(set(labels) - {positive_class})
    if len(others) > 1:
        raise ValueError(f"pu: every non-positive image is unlabelled, so DATA may hold one other label, got "
                         f"{others}; relabel them all e.g. {PU_UNLABELLED!r}")
    return others[0] if others else PU_UNLABELLED


def read_unlabelled(sources: str | Path | list[str]) -> Samples:
    """The images of `sources` (folders, searched recursively, or CSV manifests), labels set to "".

    Raises:
        ValueError: A source is missing, a manifest has no `path` column, or no image is found.
    """
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not sources:
        raise ValueError("no images: pass IMAGES (a folder of images or a CSV manifest with a path column)")
    samples = Samples()
    for source in map(Path, sources):
        if source.is_file() and source.suffix.lower() == ".csv":
            _read_manifest_paths(source, samples)
        elif source.is_dir():
            _read_folder(source, samples)
        else:
            raise ValueError(f"images source {source} does not exist or is neither a folder nor a .csv manifest")
    return samples


def _read_folder(root: Path, samples: Samples) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise ValueError(f"{root} holds no image files ({', '.join(IMAGE_SUFFIXES)}), in it or in its subfolders; "
                         "pass a folder of images or a CSV manifest with a path column")
    for file in files:
        samples.append(str(file.resolve()), UNLABELLED)


def _read_manifest_paths(path: Path, samples: Samples) -> None:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if "path" not in (reader.fieldnames or []):
            raise ValueError(f"manifest {path}: no `path` column; got columns {reader.fieldnames}. "
                             "An unlabelled manifest needs a header row with at least `path`")
        start = len(samples)
        for line_number, row in enumerate(reader, start=2):
            file = (row.get("path") or "").strip()
            if not file:
                raise ValueError(f"manifest {path}, line {line_number}: empty path")
            resolved = Path(file) if Path(file).is_absolute() else path.parent / file
            group = (row.get("group") or "").strip() or None
            samples.append(str(resolved.resolve()), UNLABELLED, None, group, origin=f"{path}, line {line_number}")
    if len(samples) == start:
        raise ValueError(f"manifest {path} has a header but no rows")


def hold_out_val(samples: Samples, fraction: float, *, seed: int) -> Samples:
    """A copy of `samples` with about `fraction` of them (whole groups) in "val", the rest in "train".

    Fewer than 4 images, or fraction 0: everything is train.
    """
    keys = [group if group is not None else f"__row{i}" for i, group in enumerate(samples.groups)]
    unique = sorted(set(keys))
    n_val = min(int(round(fraction * len(unique))), len(unique) - 1) if len(samples) >= 4 else 0
    chosen = set(np.random.default_rng(seed).permutation(len(unique))[:n_val].tolist())
    val = {unique[i] for i in chosen}
    result = samples.with_split("train")
    result.splits = ["val" if key in val else "train" for key in keys]
    return result
