"""Files that cannot be used, as `train --verify full` finds them, and paths listed twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

from winnow.audit.base import ERROR, WARNING, AuditContext, Check, Issue
from winnow.audit.html import issue_table
from winnow.reporting.html import paragraph

REPEATED = ("duplicate", "conflict")  # the scan's tags for a path listed more than once


class UnreadableCheck(Check):
    """Every row whose file does not decode completely (missing, empty, corrupt, too large...)."""

    name = "unreadable"
    title = "Unreadable files"

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        samples, issues = context.samples, []
        for row, reason in context.bad:
            tag = reason.split(":")[0]
            kind, severity = ("repeated_row", WARNING if tag == "duplicate" else ERROR) if tag in REPEATED else \
                ("unreadable", ERROR)
            issues.append(Issue(samples.paths[row], kind, severity, None, reason, label=samples.labels[row],
                                split=samples.splits[row] or ""))
        self.drop_ = {row for row, _ in context.bad}
        tags = dict(Counter(reason.split(":")[0] for _, reason in context.bad))
        line = f"{len(issues)} of {len(samples)} file(s) unusable" + (f" {tags}" if tags else "")
        return issues, {"n_files": len(samples), "n_bad": len(issues), "reasons": tags, "line": line}

    def _html(self, context: AuditContext) -> str:
        if not self.issues_:
            return paragraph(f"All {len(context.samples)} files decode completely.")
        return paragraph(f"{len(self.issues_)} file(s) cannot be used; --fix drops them.") + issue_table(self.issues_)
