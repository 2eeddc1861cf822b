"""Class balance: images per class and split, classes under a minimum support, classes absent from a split."""

from __future__ import annotations

from collections import Counter
from typing import Any

from winnow.audit.base import ERROR, WARNING, AuditContext, Check, Issue
from winnow.audit.html import issue_table
from winnow.reporting.html import paragraph, table


class BalanceCheck(Check):
    """Counts of readable images per class and split; too few in train, or none in a split, is flagged."""

    name = "balance"
    title = "Class balance"

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        samples, splits = context.samples, context.splits()
        counts = Counter((samples.labels[i], samples.splits[i]) for i in context.good)
        classes = sorted(set(samples.labels))
        self.counts_ = {label: {split: counts[label, split] for split in splits} for label in classes}
        issues = [issue for label in classes for issue in self._class_issues(label, context)]
        smallest = min(classes, key=lambda label: self.counts_[label].get("train", 0))
        line = (f"{len(classes)} classes over {', '.join(splits)}; smallest in train: {smallest} "
                f"({self.counts_[smallest].get('train', 0)}); {len(issues)} finding(s)")
        return issues, {"counts": self.counts_, "min_support": context.min_support, "line": line}

    def _class_issues(self, label: str, context: AuditContext) -> list[Issue]:
        per_split, issues = self.counts_[label], []
        for split, count in per_split.items():
            if count == 0:
                severity = ERROR if split == "train" else WARNING
                issues.append(Issue("", "class_absent", severity, 0.0, f"class {label!r} has no image in {split}",
                                    label=label, split=split))
        train = per_split.get("train", 0)
        if 0 < train < context.min_support:
            issues.append(Issue("", "low_support", WARNING, float(train),
                                f"class {label!r} has {train} train image(s), under the minimum support "
                                f"{context.min_support}", label=label, split="train"))
        return issues

    def _html(self, context: AuditContext) -> str:
        rows = [{"class": label, **per_split, "total": sum(per_split.values())}
                for label, per_split in self.counts_.items()]
        note = paragraph(f"Readable images per class and split (minimum support in train: {context.min_support}).")
        return note + table(rows) + (issue_table(self.issues_) if self.issues_ else "")
