"""What a scoring job returns: outputs of the readable images, and the predictions built from them.

`ReadOutputs` holds a model's outputs on the images it could read and lists the others; `Predictions`
adds calibration, the decision rule and TTA merging, and writes the predictions CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.calibration.store import Calibrator
from winnow.inference.postprocess import UNKNOWN, decide, decided_labels, to_probabilities
from winnow.inference.tta import TTA, merge_views
from winnow.metrics.checks import UNCERTAIN
from winnow.operating.store import Decision
from winnow.runs.atomic import atomic_write_text
from winnow.tasks.heads import Head
from winnow.tasks.spec import TaskSpec


@dataclass(frozen=True)
class ReadOutputs:
    """A model's outputs on the images it could read, and the images it could not.

    Attributes:
        values: Outputs of the read images, in input order: `[n, V, F]` (V = TTA views), `{task: [n, K]}`
            for a multi-task model, or `[M, n, V, K]` for the members of an ensemble.
        rows: Position of each read image in the input paths `[n]`.
        bad: `(path, reason)` of the images that could not be read.
        rejected: Read images that a head's reject option calls unknown `[n]` (bool), or None without one.
    """

    values: Any
    rows: list[int]
    bad: list[tuple[str, str]] = field(default_factory=list)
    rejected: np.ndarray | None = None


@dataclass
class Predictions:
    """Probabilities for the readable images; bad files listed apart.

    `probabilities` is `[N, K]` for one task (calibrated, and merged over TTA views, when the run has
    calibration.json / TTA was asked for), `{task: [N, K]}` for several.

    Attributes:
        paths: Readable images `[N]`.
        tasks: The run's tasks.
        probabilities: See above.
        bad: `(path, reason)` of unreadable files.
        view_logits: Single task: uncalibrated softmax-form logits `[N, V, K]` (V = TTA views, 1 without
            TTA; binary heads `[0, z]`); None for multi-task runs.
        decision: The tuned decision rule (thresholds.json) behind `predicted`, or None.
        calibration: The calibrator applied to the logits (calibration.json), or None.
        source_index: Position of each row in the list of input images `[N]`.
        tta: The test-time augmentation used.
        rejected: Images the head's reject option calls unknown `[N]` (bool: far from every class), or None
            when the folder has no reject option. Their probabilities are kept; `predicted` says "unknown".
        reject: The reject option (threshold, TPR, novelty score, fit data), or None.
    """

    paths: list[str]
    tasks: list[TaskSpec]
    probabilities: np.ndarray | dict[str, np.ndarray]
    bad: list[tuple[str, str]] = field(default_factory=list)
    view_logits: np.ndarray | None = None
    decision: Decision | None = None
    calibration: Calibrator | None = None
    source_index: list[int] = field(default_factory=list)
    tta: TTA = field(default_factory=TTA)
    rejected: np.ndarray | None = None
    reject: dict[str, Any] | None = None

    @property
    def classes(self) -> list[str]:
        return self.tasks[0].head.classes

    @property
    def logits(self) -> np.ndarray:
        """Uncalibrated softmax-form logits `[N, K]` (single task, no TTA), e.g. to fit a calibrator."""
        if self.view_logits is None or self.view_logits.shape[1] != 1:
            raise ValueError("logits: available for single-task predictions without TTA; "
                             "predict with tta=None (multi-task runs have no single logit table)")
        return self.view_logits[:, 0]

    @property
    def uncalibrated(self) -> np.ndarray:
        """Probabilities `[N, K]` without calibration (merged over views like `probabilities`)."""
        if self.view_logits is None:
            raise ValueError("uncalibrated: available for single-task predictions only")
        head = self.tasks[0].head
        views = to_probabilities(head, self.view_logits)
        return merge_views(views, self.tta.merge, rows_sum_to_one=head.kind != "multilabel")

    @property
    def predicted(self) -> list[str] | dict[str, list[str]]:
        """Predicted labels: "unknown" where the reject option rejects, else the tuned decision rule when there
        is one, else the head's rule."""
        if len(self.tasks) > 1:
            return {t.name: t.head.predict(self.probabilities[t.name]) for t in self.tasks}
        labels = decided_labels(self.tasks[0].head, self.decision, self.probabilities)
        return [UNKNOWN if rejected else label for label, rejected in zip(labels, ~self.accepted)]

    @property
    def accepted(self) -> np.ndarray:
        """Images the reject option accepts `[N]` (bool; all of them without a reject option)."""
        return np.ones(len(self.paths), bool) if self.rejected is None else ~self.rejected

    def predicted_indices(self) -> np.ndarray:
        """Class indices `[N]` of `predicted` (-1: rejected as unknown, or uncertain); single-task softmax heads."""
        return np.where(self.accepted, decide(self.tasks[0].head, self.decision, self.probabilities), UNCERTAIN)

    def columns(self) -> list[tuple[str, list]]:
        """(header, values) pairs of the CSV after `path`."""
        if len(self.tasks) == 1:
            return self._task_columns("", self.tasks[0].head, self.predicted, self.probabilities)
        columns = []
        for task in self.tasks:
            probs = self.probabilities[task.name]
            columns += self._task_columns(f"{task.name}_", task.head, task.head.predict(probs), probs)
        return columns

    @staticmethod
    def _task_columns(prefix: str, head: Head, predicted: list[str], probs: np.ndarray) -> list[tuple[str, list]]:
        return [(f"{prefix}predicted", predicted)] + [
            (f"{prefix}prob_{name}", [f"{p:.6f}" for p in probs[:, k]]) for k, name in enumerate(head.classes)]

    def to_csv(self, path: str | Path, *, labels: list[str] | None = None) -> None:
        """Write path, [label,] predicted class and one `prob_<class>` column per class (per task), atomically.

        Args:
            path: Output CSV.
            labels: True labels `[N]`, written as a `label` column after `path` (evaluation).
        """
        columns = ([("label", labels)] if labels is not None else []) + self.columns()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", *[header for header, _ in columns]])
        for i, file in enumerate(self.paths):
            writer.writerow([file, *[values[i] for _, values in columns]])
        atomic_write_text(Path(path), buffer.getvalue())
