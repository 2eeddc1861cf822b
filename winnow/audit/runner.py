"""The orchestrator: build the context, run each check, write the report and the files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winnow.audit.base import AuditContext, Check
from winnow.audit.inputs import build_context
from winnow.audit.outputs import (CLEAN_FILE, ISSUES_FILE, REPORT_FILE, REVIEW_FILE, SUMMARY_FILE, drop_rows,
                                  write_clean_manifest, write_issues, write_review, write_summary)
from winnow.audit.registry import make_checks
from winnow.audit.report import render
from winnow.runs.atomic import atomic_write_text


@dataclass
class AuditResult:
    """What `audit` found and wrote.

    Attributes:
        checks: The checks, run, in report order.
        context: The dataset they read.
        out: The folder written.
        written: Files written, by name.
    """

    checks: list[Check]
    context: AuditContext
    out: Path
    written: dict[str, Path] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [check.line() for check in self.checks]

    @property
    def errors(self) -> int:
        return sum(check.summary_["errors"] for check in self.checks)


def audit(data: list[str], *, out: str | Path, run: str | None = None, checks: list[str] | None = None,
          fix: bool = False, folds: int = 5, min_support: int = 20, seed: int = 0, checkpoint: str = "best",
          device: str = "auto", batch_size: int = 64, workers: int = 1) -> AuditResult:
    """Audit DATA and write audit.html, issues.csv and summary.json (with `fix`, clean_manifest.csv and
    review.csv) into `out`; the user's files are only read.

    Args:
        data: Sources as for `train` (folder, split tree or manifests; groups honoured).
        out: Output folder (created).
        run: Run folder whose model embeds the images (duplicates, label issues, outliers, shift on embeddings).
        checks: Names of the checks to run (default: all).
        fix: Also write the cleaned manifest and the review list.
        folds: Cross-validation folds of the out-of-sample probabilities and the shift classifiers.
        min_support: Fewest train images a class should have.
        seed: Split assignment (as `train --seed`) and the checks' randomness.

    Raises:
        ValueError: Bad DATA or run (see `build_context`), an unknown check.
    """
    selected = make_checks(checks)
    context = build_context(data, run=run, checkpoint=checkpoint, device=device, batch_size=batch_size,
                            workers=workers, folds=folds, min_support=min_support, seed=seed,
                            facts=frozenset().union(*(check.facts for check in selected)))
    for check in selected:
        check.find_issues(context)
    result = AuditResult(selected, context, Path(out))
    result.out.mkdir(parents=True, exist_ok=True)
    _write(result, fix=fix)
    return result


def _write(result: AuditResult, *, fix: bool) -> None:
    out, checks, written = result.out, result.checks, result.written
    if fix:
        written[CLEAN_FILE], written[REVIEW_FILE] = out / CLEAN_FILE, out / REVIEW_FILE
        write_clean_manifest(result.context, drop_rows(checks), written[CLEAN_FILE])
        write_review(checks, written[REVIEW_FILE])
    written[ISSUES_FILE], written[SUMMARY_FILE], written[REPORT_FILE] = (out / ISSUES_FILE, out / SUMMARY_FILE,
                                                                         out / REPORT_FILE)
    write_issues(checks, written[ISSUES_FILE])
    write_summary(summary(result), written[SUMMARY_FILE])
    atomic_write_text(written[REPORT_FILE], render(checks, result.context))


def summary(result: AuditResult) -> dict[str, Any]:
    """summary.json: the data, where embeddings came from, and each check's summary."""
    context = result.context
    return {"data": context.source, "images": len(context.samples), "readable": int(context.readable.sum()),
            "embeddings": context.embedding_source or None, "errors": result.errors,
            "checks": {check.name: check.summary_ for check in result.checks}}
