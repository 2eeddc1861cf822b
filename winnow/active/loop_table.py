"""The rounds of a self-training loop as a table: one `RoundResult` per round, its line, `loop.csv` and `loop.md`."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow.runs.atomic import atomic_write_text

METRICS = ("balanced_accuracy", "accuracy", "macro_f1")
METRIC_TITLES = {"balanced_accuracy": "bal. acc", "accuracy": "acc", "macro_f1": "macro-F1"}


@dataclass
class RoundResult:
    """One round: its run, the labelled and pseudo-labelled training images per class, its val and test metrics.

    Attributes:
        round: 0 for the run on the labelled data alone.
        run: The run folder's name inside the loop folder (r0, r1...).
        labelled: Class -> labelled images in the train split.
        pseudo: Class -> pseudo-labels the run trained on (0 in round 0).
        pseudo_val_precision: Class -> precision on val, as the tuner reports it, of the rule that made the
            class's pseudo-labels (its lowest threshold); None where the class got none, and in round 0.
        val: Metric -> value of the best checkpoint on val (METRICS; None without a val split).
        test: Metric -> value of the best checkpoint on test; None without a test split.
        best_epoch: Epoch of the best checkpoint.
    """

    round: int
    run: str
    labelled: dict[str, int]
    pseudo: dict[str, int]
    pseudo_val_precision: dict[str, float | None]
    val: dict[str, float | None]
    test: dict[str, float | None] | None
    best_epoch: int | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RoundResult":
        return cls(**data)


def _number(value: float | None, digits: int = 4, *, missing: str = "-") -> str:
    return missing if value is None else f"{value:.{digits}f}"


def _per_class(values: dict[str, Any], digits: int | None = None) -> str:
    return ", ".join(f"{name} {value if digits is None else _number(value, digits)}" for name, value in values.items())


def _metrics(values: dict[str, float | None] | None, *, missing: str = "-") -> list[str]:
    return [_number((values or {}).get(name), missing=missing) for name in METRICS]


def round_line(row: RoundResult) -> str:
    """One line per round, as `winnow loop` prints it when the round ends."""
    pseudo = f"pseudo-labelled {_per_class(row.pseudo)}" if row.round else "no pseudo-labels"
    if row.round:
        pseudo += f" (val precision {_per_class(row.pseudo_val_precision, 2)})"
    scores = "; ".join(f"{split} " + " ".join(f"{METRIC_TITLES[m]} {v}" for m, v in zip(METRICS, _metrics(values)))
                       for split, values in (("val", row.val), ("test", row.test)))
    return f"round {row.round} ({row.run}): labelled {_per_class(row.labelled)}; {pseudo}; {scores}"


def markdown_table(rows: list[RoundResult]) -> str:
    """The rounds as a markdown table (counts and precisions per class in one cell)."""
    titles = ["round", "run", "labelled", "pseudo-labelled", "their val precision",
              *(f"{split} {METRIC_TITLES[m]}" for split in ("val", "test") for m in METRICS)]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for row in rows:
        cells = [str(row.round), row.run, _per_class(row.labelled), _per_class(row.pseudo) if row.round else "-",
                 _per_class(row.pseudo_val_precision, 2) if row.round else "-", *_metrics(row.val),
                 *_metrics(row.test)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[RoundResult]) -> str:
    """The rounds as CSV: one column per class for each count and precision, then the metrics."""
    classes = list(rows[0].labelled) if rows else []
    header = ["round", "run", *(f"{what}_{name}" for what in ("labelled", "pseudo", "pseudo_val_precision")
                                for name in classes),
              "best_epoch", *(f"{split}_{m}" for split in ("val", "test") for m in METRICS)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        precision = [_number(row.pseudo_val_precision.get(name), missing="") for name in classes]
        writer.writerow([row.round, row.run, *(row.labelled[name] for name in classes),
                         *(row.pseudo.get(name, 0) for name in classes), *precision, row.best_epoch,
                         *_metrics(row.val, missing=""), *_metrics(row.test, missing="")])
    return buffer.getvalue()


def write_tables(rows: list[RoundResult], csv_path: Path, markdown_path: Path) -> None:
    """Write the rounds' table as CSV and markdown, each atomically."""
    atomic_write_text(csv_path, csv_table(rows))
    atomic_write_text(markdown_path, markdown_table(rows))
