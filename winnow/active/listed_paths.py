"""Where an image path listed in a CSV (to_label.csv, review.csv) points: one rule for every reader."""

from __future__ import annotations

from pathlib import Path


def listed_path(path: str, folder: Path) -> Path:
    """The image file of `path` listed in a CSV in `folder`: absolute, else beside the CSV, else the working folder."""
    candidate = Path(path)
    if candidate.is_absolute() or not (folder / candidate).exists():
        return candidate
    return folder / candidate
