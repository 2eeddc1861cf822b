"""What the report reads from the run folder besides the evaluation, each piece optional.

Ensemble folders and unfinished runs lack some files (metrics.jsonl, splits.csv, config.yaml...):
every reader returns None (or an empty value) for an absent file, so that the report shows a
"not available" note instead of failing.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from winnow.data.sources import SPLIT_NAMES
from winnow.data.splits import load_splits
from winnow.ensembles.store import read_ensemble
from winnow.runs.files import read_json, read_metrics
from winnow.runs.layout import RunPaths, is_ensemble
from winnow.tasks.heads import label_parts

PROVENANCE_KEY = "_provenance"


def provenance(run_dir: str | Path) -> dict[str, Any]:
    """Winnow version, git commit...: config.yaml's `_provenance` (an ensemble's `versions`); {} if none."""
    path = RunPaths(run_dir).config
    if not path.is_file():
        versions = (ensemble_record(run_dir) or {}).get("versions")
        return versions if isinstance(versions, dict) else {}
    document = yaml.safe_load(path.read_text()) or {}
    block = document.get(PROVENANCE_KEY) if isinstance(document, dict) else None
    return block if isinstance(block, dict) else {}


def model_name(run_dir: str | Path) -> str | None:
    """The `model` of config.yaml, or None."""
    path = RunPaths(run_dir).config
    document = yaml.safe_load(path.read_text()) if path.is_file() else None
    return document.get("model") if isinstance(document, dict) else None


def json_file(path: Path, *, what: str) -> dict[str, Any] | None:
    """A JSON object file, or None when absent.

    Raises:
        ValueError: The file exists but is not a JSON object.
    """
    return read_json(path, what=what) if path.is_file() else None


def ensemble_record(run_dir: str | Path) -> dict[str, Any] | None:
    """ensemble.json of an ensemble folder (`winnow ensemble`): method, members; None for a run."""
    return json_file(RunPaths(run_dir).ensemble, what="ensemble")


def training_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """summary.json (status, epochs, best epoch...), or None."""
    return json_file(RunPaths(run_dir).summary, what="run summary")


def preprocessing(run_dir: str | Path) -> dict[str, Any] | None:
    """preprocessing.json (image size, channels, normalisation...), or None; an ensemble's first member's."""
    if is_ensemble(run_dir):
        run_dir = read_ensemble(run_dir).members[0].locate(Path(run_dir))
    return json_file(RunPaths(run_dir).preprocessing, what="preprocessing")


def tuning_record(run_dir: str | Path) -> dict[str, Any] | None:
    """thresholds.json (the tuned rule and the data it was tuned on), or None."""
    return json_file(RunPaths(run_dir).thresholds, what="thresholds")


def training_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl (one per epoch); [] when absent."""
    return read_metrics(RunPaths(run_dir).metrics)


def split_counts(run_dir: str | Path, *, head: str) -> list[dict[str, Any]] | None:
    """Images per class and split from splits.csv: a row per class, then one of all images; None when absent.

    Args:
        run_dir: Run folder.
        head: Head kind; multi-label images count once for each of their classes.
    """
    path = RunPaths(run_dir).splits
    if not path.is_file():
        return None
    samples = load_splits(path)
    counts = Counter((name, split or "unassigned") for label, split in zip(samples.labels, samples.splits)
                     for name in label_parts(head, label))
    splits = [s for s in (*SPLIT_NAMES, "unassigned") if any(key[1] == s for key in counts)]
    rows = [{"class": name, **{s: counts[(name, s)] for s in splits}} for name in sorted({k[0] for k in counts})]
    images = Counter(split or "unassigned" for split in samples.splits)
    return [{**row, "total": sum(row[s] for s in splits)} for row in rows] + [
        {"class": "all images", **{s: images[s] for s in splits}, "total": len(samples)}]


def bad_files(run_dir: str | Path) -> list[dict[str, str]] | None:
    """Rows (path, reason) of bad_files.csv, or None when the run has none."""
    path = RunPaths(run_dir).bad_files
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
