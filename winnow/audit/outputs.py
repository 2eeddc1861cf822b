"""The audit's files: issues.csv, summary.json, and with --fix clean_manifest.csv and review.csv."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from winnow.audit.base import ISSUE_COLUMNS, AuditContext, Check
from winnow.data.splits import SPLITS_COLUMNS
from winnow.runs.atomic import atomic_write_text

ISSUES_FILE, SUMMARY_FILE, REPORT_FILE = "issues.csv", "summary.json", "audit.html"
CLEAN_FILE, REVIEW_FILE = "clean_manifest.csv", "review.csv"
REVIEW_ISSUES = ("label", "outlier")  # what a person should look at, in this order
REVIEW_COLUMNS = ("rank", "path", "issue", "label", "suggested_label", "suggested_probability", "score", "detail")


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return buffer.getvalue()


def write_issues(checks: Sequence[Check], path: Path) -> None:
    rows = [[issue.row()[name] for name in ISSUE_COLUMNS] for check in checks for issue in check.issues_]
    atomic_write_text(path, csv_text(ISSUE_COLUMNS, rows))


def write_summary(summary: dict[str, Any], path: Path) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2, default=str) + "\n")


def drop_rows(checks: Sequence[Check]) -> set[int]:
    """Rows --fix removes: each check's `drop_` (unreadable files, duplicates and leaks on the smaller side)."""
    return {row for check in checks for row in getattr(check, "drop_", set())}


def write_clean_manifest(context: AuditContext, drop: set[int], path: Path) -> int:
    """Every row but `drop`, as a manifest with absolute paths and explicit splits; returns the rows kept."""
    samples = context.samples
    extras = samples.extra_columns()
    kept = [row for row in range(len(samples)) if row not in drop]
    rows = [[samples.paths[i], samples.labels[i], samples.splits[i] or "", samples.groups[i] or "",
             *[samples.extras[i].get(name, "") for name in extras]] for i in kept]
    atomic_write_text(path, csv_text([*SPLITS_COLUMNS, *extras], rows))
    return len(kept)


def write_review(checks: Sequence[Check], path: Path) -> int:
    """Label-issue candidates then outliers, each ranked as its check ranked them; returns the rows."""
    issues = [issue for kind in REVIEW_ISSUES for check in checks for issue in check.issues_ if issue.issue == kind]
    rows = [[rank, issue.path, issue.issue, issue.label, issue.suggested_label, issue.suggested_probability,
             issue.score, issue.detail] for rank, issue in enumerate(issues, start=1)]
    atomic_write_text(path, csv_text(REVIEW_COLUMNS, rows))
    return len(rows)
