"""The images to label: rows of `winnow query`'s to_label.csv or `winnow audit --fix`'s review.csv."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from winnow.active.listed_paths import listed_path

MAX_SHOWN_MISSING = 3


@dataclass(frozen=True)
class Item:
    """One image to label: its path as written in the CSV, the file, the model's guess and the label it has."""

    path: str
    file: Path
    guess: str = ""
    confidence: str = ""
    note: str = ""
    given: str = ""  # review.csv: the label the audit doubts


def _guess(row: dict[str, str]) -> tuple[str, str, str]:
    """(guess, confidence, note) of a to_label.csv row (predicted) or a review.csv row (suggested_label)."""
    if "suggested_label" in row:
        note = f"{row.get('issue', '')}: given {row.get('label', '')}".strip(": ")
        return row["suggested_label"], row.get("suggested_probability", ""), note
    return row.get("predicted", ""), row.get("confidence", ""), row.get("reason", "")


def read_queue(csv_path: str | Path) -> list[Item]:
    """The images of a to_label.csv or review.csv, in its order.

    Raises:
        ValueError: The CSV is missing, has no `path` column or no row, or names images that do not exist.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ValueError(f"{csv_path}: no such file; expected to_label.csv from `winnow query` or review.csv "
                         f"from `winnow audit --fix`")
    with csv_path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    if not rows or "path" not in rows[0]:
        raise ValueError(f"{csv_path}: expected a CSV with a `path` column and at least one row "
                         f"(to_label.csv or review.csv), got {'no rows' if not rows else list(rows[0])}")
    items = [Item(row["path"], listed_path(row["path"], csv_path.parent), *_guess(row), row.get("label", ""))
             for row in rows]
    missing = [item.path for item in items if not item.file.is_file()]
    if missing:
        raise ValueError(f"{csv_path}: {len(missing)} image(s) do not exist, e.g. "
                         f"{', '.join(missing[:MAX_SHOWN_MISSING])}; fix the paths or remove those rows")
    return items


def classes_of(items: list[Item], given: str | None, csv_path: str | Path = "") -> list[str]:
    """The classes keyed 1, 2, ...: `given` ("a,b,c") or else the guesses and given labels in the CSV, sorted.

    Raises:
        ValueError: No class given and the CSV has no guesses, or a class is repeated.
    """
    if given:
        classes = [c.strip() for c in given.split(",") if c.strip()]
    else:
        classes = sorted(({item.guess for item in items} | {item.given for item in items}) - {""})
    if not classes:
        raise ValueError(f"{csv_path}: no predicted or suggested label to take the classes from; "
                         f"pass --classes a,b,c")
    if len(set(classes)) != len(classes):
        raise ValueError(f"--classes: expected distinct names, got {','.join(classes)}")
    return classes
