"""`pseudo_label(folder, unlabelled)`: a manifest of confident predictions, with a `weight` column, to train on."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.active.pseudo import DEFAULT_LEVELS, PseudoLabeller, PseudoLabels
from winnow.active.query import unlabelled
from winnow.active.scoring import is_pu, labelled_paths, member_runs
from winnow.data.splits import load_splits
from winnow.inference.predictor import ScoringModel
from winnow.loading import load
from winnow.runs.atomic import atomic_write_text
from winnow.runs.layout import RunPaths

COLUMNS = ("path", "label", "weight", "split", "confidence", "precision_level")


def pu_refusal(what: str, *, run: str = "RUN") -> str:
    """Why `what` (a PU run or PU settings) cannot pseudo-label, and what finds the positives instead."""
    return (f"{what} cannot pseudo-label: a positive-unlabelled run's other label means unlabelled, not a class "
            "to pseudo-label, and its val split has no true negatives to tune the pseudo-labels' precision on. To find "
            f"the positives among unlabelled images, rank them: `winnow query {run} POOL --budget N` (strategy "
            f"positive, most likely positive first, the default for a PU run), or `winnow audit DATA --run {run} "
            "--fix` for the run's own pile (review.csv: the unlabelled images most likely positive first); label "
            "what you confirm and train again")


@dataclass
class PseudoResult:
    """Pool paths `[N]`, their probabilities `[N, K]`, the pseudo-labels and the fitted labeller."""

    paths: list[str]
    probabilities: np.ndarray
    labels: PseudoLabels
    labeller: PseudoLabeller


def split_of(model: ScoringModel, split: str) -> tuple[list[str], list[str]]:
    """Paths and labels of `split` in the splits.csv of the (first) run behind `model`.

    Raises:
        ValueError: No splits.csv, or the split is empty.
    """
    path = RunPaths(member_runs(model)[0].run_dir).splits
    if not path.is_file():
        raise ValueError(f"{path} does not exist; pseudo-labelling tunes thresholds on the run's {split} split")
    samples = load_splits(path).where_split(split)
    if not len(samples):
        raise ValueError(f"{path} has no {split} images; train with a {split} split (val_fraction > 0)")
    return samples.paths, samples.labels


def fitted_labeller(model: ScoringModel, labeller: PseudoLabeller, *, batch_size: int, workers: int) -> PseudoLabeller:
    """`labeller` fitted on the val split's probabilities, with the train split's class counts."""
    classes = list(model.classes)
    paths, labels = split_of(model, "val")
    predictions = model.predict(paths, batch_size=batch_size, workers=workers)
    by_path = dict(zip(paths, labels))
    targets = np.asarray([classes.index(by_path[p]) for p in predictions.paths])
    _, train_labels = split_of(model, "train")
    counts = [train_labels.count(c) for c in classes]
    return labeller.fit(predictions.probabilities, targets, classes, train_counts=counts)


def pseudo_label(folder: str | Path, source: str | Path, *, levels=DEFAULT_LEVELS, max_tilt: float = 2.0,
                 min_keep: int = 10, checkpoint: str = "best", device: str = "auto", batch_size: int = 64,
                 workers: int = 0) -> PseudoResult:
    """Pseudo-labels of the unlabelled images of `source` (those in the run's splits.csv left out).

    Args:
        folder: A run, ensemble or head folder with a single-task multiclass or binary head.
        source: Folder or manifest of images.
        levels, max_tilt, min_keep: As `PseudoLabeller`.

    Raises:
        ValueError: A positive-unlabelled, multi-label or multitask folder, no val split, or nothing unlabelled
            in `source`.
    """
    model = load(folder, checkpoint=checkpoint, device=device, thresholds=False)
    if is_pu(model):
        raise ValueError(pu_refusal(f"{folder} (trained with --pu)", run=str(folder)))
    if model.head.kind == "multilabel":
        raise ValueError(f"{folder} has a multilabel head; pseudo-labels need one class per image "
                         "(multiclass or binary head)")
    labeller = fitted_labeller(model, PseudoLabeller(levels, max_tilt=max_tilt, min_keep=min_keep),
                               batch_size=batch_size, workers=workers)
    paths, _ = unlabelled(source, labelled_paths(model))
    predictions = model.predict(paths, batch_size=batch_size, workers=workers)
    return PseudoResult(predictions.paths, predictions.probabilities,
                        labeller.transform(predictions.probabilities), labeller)


def write_pseudo_labels(result: PseudoResult, path: str | Path) -> Path:
    """Write the kept pseudo-labels as a training manifest (split train, `weight` column) atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    labels, classes = result.labels, result.labeller.classes_
    for i in labels.kept:
        writer.writerow([result.paths[i], classes[labels.indices[i]], f"{labels.weights[i]:g}", "train",
                         f"{result.probabilities[i].max():.4f}", f"{labels.precisions[i]:g}"])
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)
