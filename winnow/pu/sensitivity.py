"""How much a wrong class prior costs: test metrics with the decision threshold set from each assumed prior.

A PU model's scores rank images; where to cut them is the prior's job: if a share ``pi`` of the
unlabelled images is positive, the threshold is the score above which the top ``pi`` of the
unlabelled lie. `prior_sensitivity` sets that threshold from each assumed prior and measures the
positive class's F1, precision, recall and the predicted-positive rate on a labelled test split, so a
user sees what an under- or over-estimated prior does to the decisions. `sensitivity_report` does it
for a PU run or a head on one (`winnow head RUN --kind pu_bagging`): the unlabelled images of its val
split (not trained on) set the thresholds, its test split (true labels) measures them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from numbers import Real
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from winnow.constraints import Interval, check_value
from winnow.data.splits import load_splits
from winnow.ensembles.predictor import EnsemblePredictor
from winnow.inference.predictor import Predictor, ScoringModel
from winnow.loading import load
from winnow.metrics.pu import threshold_for_prior
from winnow.runs.layout import RunPaths

PRIORS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # the default grid; the run's own prior is added
SENSITIVITY_FILE = "pu_sensitivity.csv"
FEW_UNLABELLED = 100  # fewer unlabelled images than this set the thresholds: a note on their sampling error


@dataclass
class PriorRow:
    """Test metrics of the positive class with the threshold one assumed prior gives."""

    prior: float
    threshold: float
    f1: float
    precision: float
    recall: float
    positive_rate: float


def prior_sensitivity(unlabelled_scores: np.ndarray, test_scores: np.ndarray, test_positive: np.ndarray,
                      priors: Sequence[float]) -> list[PriorRow]:
    """Per assumed prior: the threshold from the unlabelled scores and the test metrics it gives.

    Args:
        unlabelled_scores: `[n_u]` positive scores of unlabelled images (not trained on, ideally).
        test_scores: `[n_t]` positive scores of labelled test images.
        test_positive: `[n_t]` True where the test image is positive.
        priors: Assumed shares of positives among the unlabelled, each in (0, 1).

    Raises:
        ValueError: A prior outside (0, 1), no unlabelled score, or a test set without both classes.
    """
    unlabelled_scores, test_scores = np.asarray(unlabelled_scores, float), np.asarray(test_scores, float)
    test_positive = np.asarray(test_positive).astype(bool)
    _check_inputs(unlabelled_scores, test_scores, test_positive, priors)
    rows = []
    for prior in priors:
        threshold = threshold_for_prior(unlabelled_scores, prior)
        predicted = test_scores >= threshold
        precision, recall, f1, _ = precision_recall_fscore_support(test_positive, predicted, average="binary",
                                                                   zero_division=0)
        rows.append(PriorRow(float(prior), threshold, float(f1), float(precision), float(recall),
                             float(predicted.mean())))
    return rows


def _check_inputs(unlabelled: np.ndarray, test: np.ndarray, positive: np.ndarray, priors: Sequence[float]) -> None:
    for prior in priors:
        check_value("each prior of priors", prior, [Interval(Real, 0, 1, closed="neither")],
                    hint="an assumed share of positives among the unlabelled images, e.g. 0.3")
    if not len(priors):
        raise ValueError("priors: expected at least one assumed prior in (0, 1), got none")
    if unlabelled.ndim != 1 or not len(unlabelled):
        raise ValueError(f"unlabelled_scores: expected a non-empty [n] array, got shape {unlabelled.shape}")
    if test.shape != positive.shape or test.ndim != 1:
        raise ValueError(f"test_scores {test.shape} and test_positive {positive.shape} must be [n] arrays of one "
                         "length")
    if positive.all() or not positive.any():
        raise ValueError(f"the test split needs positives and negatives, got {int(positive.sum())} positive(s) of "
                         f"{len(positive)}; give the run a labelled test split (winnow train --test DATA)")


@dataclass
class SensitivityReport:
    """`prior_sensitivity` of a folder, with what it was measured on.

    Attributes:
        rows: One per assumed prior, in increasing order.
        run_prior: The prior the run was trained with.
        positive_class, unlabelled_class: The binary head's classes.
        split: The split whose unlabelled images set the thresholds, and their number `unlabelled`.
        test, test_positives: Test images scored, and how many of them are positive.
        notes: Caveats about the data (printed with the table).
    """

    rows: list[PriorRow]
    run_prior: float
    positive_class: str
    unlabelled_class: str
    split: str
    unlabelled: int
    test: int
    test_positives: int
    notes: list[str] = field(default_factory=list)

    def best(self) -> PriorRow:
        """The row with the highest test F1 (the smallest prior among ties)."""
        return max(self.rows, key=lambda row: (row.f1, -row.prior))

    def lines(self) -> list[str]:
        """The table for a terminal: one line per prior, the run's marked."""
        head = [f"thresholds from {self.unlabelled} unlabelled {self.split} image(s); test: {self.test} image(s), "
                f"{self.test_positives} {self.positive_class}", "prior  threshold  f1      precision  recall  "
                                                                   "positive_rate"]
        body = [f"{r.prior:<6.3g} {r.threshold:<10.4f} {r.f1:<7.4f} {r.precision:<10.4f} {r.recall:<7.4f} "
                f"{r.positive_rate:.4f}{'  <- run prior' if r.prior == self.run_prior else ''}" for r in self.rows]
        best = self.best()
        tail = [f"best test F1 {best.f1:.4f} at prior {best.prior:g}; the run's prior {self.run_prior:g} gives "
                f"{self._at_run_prior().f1:.4f}"]
        return [*head, *body, *tail, *self.notes]

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([f.name for f in fields(PriorRow)] + ["run_prior"])
        writer.writerows([*asdict(row).values(), int(row.prior == self.run_prior)] for row in self.rows)
        return buffer.getvalue()

    def _at_run_prior(self) -> PriorRow:
        return next(row for row in self.rows if row.prior == self.run_prior)


def sensitivity_report(folder: str | Path, *, priors: Sequence[float] | None = None, split: str = "val",
                       checkpoint: str = "best", device: str = "auto", batch_size: int = 64,
                       workers: int = 0) -> SensitivityReport:
    """`prior_sensitivity` of a PU run or a head on one, on its splits.csv (see the module doc).

    Args:
        folder: A PU run (`winnow train --pu`) or a head / ensemble folder on one.
        priors: Assumed priors (default `PRIORS`); the run's prior is always added.
        split: The split whose unlabelled images set the thresholds (val: not trained on).

    Raises:
        ValueError: Not a PU folder, no unlabelled image in `split`, or no test split with both classes.
    """
    model = load(folder, checkpoint=checkpoint, device=device, calibration=False, thresholds=False)
    run = _pu_run(model, folder)
    samples = load_splits(RunPaths(folder).splits)
    unlabelled_class, positive_class = model.classes
    unlabelled = [p for p, label, s in zip(samples.paths, samples.labels, samples.splits)
                  if s == split and label == unlabelled_class]
    test = [(p, label == positive_class) for p, label, s in zip(samples.paths, samples.labels, samples.splits)
            if s == "test"]
    if not unlabelled:
        raise ValueError(f"{folder}: the {split} split has no unlabelled ({unlabelled_class}) image to set the "
                         "thresholds from; pass another split (--split train), or retrain with a val split")
    if not test:
        raise ValueError(f"{folder}: no test split; train the PU run with a labelled test split (--test DATA, true "
                         f"{positive_class} and {unlabelled_class} = negative images) to measure the priors")
    settings = {"batch_size": batch_size, "workers": workers, "strict": True}
    u_scores = model.predict(unlabelled, **settings).probabilities[:, 1]
    t_scores = model.predict([p for p, _ in test], **settings).probabilities[:, 1]
    positive = np.array([is_positive for _, is_positive in test])
    wanted = sorted({*(PRIORS if priors is None else priors), float(run.config.prior)})
    rows = prior_sensitivity(u_scores, t_scores, positive, wanted)
    notes = _notes(run, unlabelled_class, split, len(u_scores))
    return SensitivityReport(rows, float(run.config.prior), positive_class, unlabelled_class, split, len(u_scores),
                             len(positive), int(positive.sum()), notes)


def _notes(run: Predictor, unlabelled_class: str, split: str, n_unlabelled: int) -> list[str]:
    """Caveats: a test split held out from PU data, and few unlabelled images setting the thresholds."""
    notes = []
    if not run.config.test:
        notes.append(f"note: {run.run_dir} was not given a test split with --test; if its test images were held out "
                     f"from DATA, their {unlabelled_class} images are unlabelled, not negative, and the hidden "
                     "positives among them count as false positives here")
    if n_unlabelled < FEW_UNLABELLED:
        prior = float(run.config.prior)
        notes.append(f"note: only {n_unlabelled} unlabelled {split} images set the thresholds; their share of "
                     f"positives differs from the prior by chance (standard error "
                     f"{np.sqrt(prior * (1 - prior) / n_unlabelled):.2f} at prior {prior:g}), which moves the best "
                     "row" + (" (--split train uses more images, which the model was trained on)" if split == "val"
                              else ""))
    return notes


def _pu_run(model: ScoringModel, folder: str | Path) -> Predictor:
    """The PU run behind `model` (itself, or the first member of a head or ensemble)."""
    run = model.members[0] if isinstance(model, EnsemblePredictor) else model
    if not run.config.pu or len(model.classes) != 2:
        raise ValueError(f"{folder} is not a positive-unlabelled folder (its run was not trained with --pu); "
                         "the prior sensitivity needs a PU run (winnow train --pu) or a head on one")
    return run
