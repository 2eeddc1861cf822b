"""Did the strategy beat the random arm? The previous round's picks, now labelled, compared per arm.

A `to_label.csv` of `winnow query` holds each pick's arm and the model's prediction. Once the picks
are labelled and a new run is trained on them, the new run's splits.csv has their labels: per arm,
the share the previous model got wrong is its error rate. A strategy that finds the model's mistakes
(uncertainty sampling) has a higher error rate than random picks; the random arm's accuracy is an
unbiased estimate of the previous model's accuracy on the pool. This measures where the mistakes
are, not what labelling them gains (that would need a training per arm).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import binomtest

from winnow.active.arms import RANDOM_ARM, STRATEGY_ARM
from winnow.active.listed_paths import listed_path
from winnow.runs.atomic import atomic_write_text

REQUIRED = ("path", "arm", "predicted")
ROUNDS_FILE = "query_rounds.csv"  # beside the new to_label.csv
MIN_RANDOM = 5  # fewer labelled random picks than this tell nothing
ROUNDS_COLUMNS = ("round", "previous", "run", "strategy_labelled", "strategy_errors", "strategy_error_rate",
                  "random_labelled", "random_errors", "random_error_rate", "verdict", "random_accuracy",
                  "random_accuracy_low", "random_accuracy_high")


@dataclass
class ArmCount:
    """One arm's picks that are now labelled, and how many of them the previous model had mispredicted."""

    labelled: int
    errors: int

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.labelled if self.labelled else None


@dataclass
class ArmReport:
    """The arms of a previous `to_label.csv` compared on the picks the new run has labels for.

    Attributes:
        previous: The previous to_label.csv.
        run: The new run (or ensemble) whose splits.csv gave the labels.
        strategy: The strategy arm's counts.
        random: The random arm's counts.
        accuracy: The previous model's accuracy on the labelled random picks (None without any).
        interval: 95% Wilson interval of `accuracy` (None without any).
    """

    previous: str
    run: str
    strategy: ArmCount
    random: ArmCount
    accuracy: float | None
    interval: tuple[float, float] | None

    @property
    def verdict(self) -> str:
        """`beats random`, `does not beat random`, or why it cannot tell."""
        if self.random.labelled < MIN_RANDOM:
            return "too few random picks to tell"
        if not self.strategy.labelled:
            return "no strategy pick labelled, cannot tell"
        return "beats random" if self.strategy.error_rate > self.random.error_rate else "does not beat random"

    def lines(self) -> list[str]:
        """The report as `winnow query --previous` prints it."""
        arms = f"strategy arm {_count(self.strategy)}; random arm {_count(self.random)}"
        lines = [f"previous round ({self.previous}): {arms}",
                 f"strategy {self.verdict} (a higher error rate finds more of the model's mistakes per label; "
                 f"{MIN_RANDOM}+ labelled random picks needed)"]
        if self.interval is not None:
            low, high = self.interval
            lines.append(f"previous model's accuracy on the pool (random arm): {self.accuracy:.3f} "
                         f"(95% Wilson interval {low:.3f}-{high:.3f}, n={self.random.labelled})")
        return lines


def _count(arm: ArmCount) -> str:
    rate = "" if arm.error_rate is None else f" (error rate {arm.error_rate:.3f})"
    return f"{arm.errors} of {arm.labelled} labelled picks mispredicted{rate}"


def read_previous(path: str | Path) -> list[dict[str, str]]:
    """The rows of a previous `to_label.csv`, checked for the `path`, `arm` and `predicted` columns.

    A relative `path` is resolved as `winnow label` does: against the CSV's folder where the image is
    there, else against the working folder.

    Raises:
        ValueError: The file is missing, lacks a column, or has an arm other than strategy/random.
    """
    if not Path(path).is_file():
        raise ValueError(f"--previous {path}: expected the to_label.csv of the previous `winnow query`, "
                         "got no such file; check the path")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"--previous {path}: expected columns {', '.join(REQUIRED)}, got "
                             f"{', '.join(reader.fieldnames or []) or 'none'} (missing {', '.join(missing)}); pass a "
                             "to_label.csv written by `winnow query` with --random-arm above 0")
        rows = list(reader)
    for line, row in enumerate(rows, 2):
        if row["arm"] not in (STRATEGY_ARM, RANDOM_ARM):
            raise ValueError(f"--previous {path} line {line}: expected arm {STRATEGY_ARM!r} or {RANDOM_ARM!r}, "
                             f"got {row['arm']!r}; fix the arm column")
    return [{**row, "path": str(listed_path(row["path"], Path(path).parent))} for row in rows]


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's `binomtest(...).proportion_ci`)."""
    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def compare_arms(rows: list[dict[str, str]], labels: dict[str, str], *, previous: str | Path,
                 run: str | Path = "") -> ArmReport:
    """Per arm, the `rows` (of `read_previous`) labelled in `labels` (real path -> label) and their mispredictions.

    Raises:
        ValueError: None of the rows' images has a label.
    """
    counts = {arm: ArmCount(0, 0) for arm in (STRATEGY_ARM, RANDOM_ARM)}
    for row in rows:
        label = labels.get(os.path.realpath(row["path"]))
        if label is not None:
            counts[row["arm"]].labelled += 1
            counts[row["arm"]].errors += row["predicted"] != label
    if not any(arm.labelled for arm in counts.values()):
        raise ValueError(f"--previous {previous}: expected some of its {len(rows)} images in the splits.csv of "
                         f"{run or 'the run'}, got none labelled; label them and retrain on them first")
    random = counts[RANDOM_ARM]
    correct = random.labelled - random.errors
    return ArmReport(str(previous), str(run), counts[STRATEGY_ARM], random,
                     correct / random.labelled if random.labelled else None,
                     wilson_interval(correct, random.labelled) if random.labelled else None)


def write_round(report: ArmReport, path: str | Path) -> Path:
    """Add the report's row to the rounds CSV at `path` (a row of the same previous file and run is replaced)."""
    rows = _read_rounds(Path(path))
    rows = [r for r in rows if (r["previous"], r["run"]) != (report.previous, report.run)]
    rows.append(_round_row(report))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ROUNDS_COLUMNS)
    writer.writeheader()
    for number, row in enumerate(rows, 1):
        writer.writerow({**row, "round": number})
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)


def _read_rounds(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{c: row.get(c, "") for c in ROUNDS_COLUMNS} for row in csv.DictReader(handle)]


def _round_row(report: ArmReport) -> dict[str, str]:
    low, high = report.interval or (None, None)
    values = {"previous": report.previous, "run": report.run, "verdict": report.verdict,
              "random_accuracy": report.accuracy, "random_accuracy_low": low, "random_accuracy_high": high}
    for name, arm in ((STRATEGY_ARM, report.strategy), (RANDOM_ARM, report.random)):
        values.update({f"{name}_labelled": arm.labelled, f"{name}_errors": arm.errors,
                       f"{name}_error_rate": arm.error_rate})
    return {k: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in values.items()}
