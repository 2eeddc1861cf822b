"""Image quality from cleanvision (dark, light, blurry, low information, odd size or aspect, grayscale),
counted per class and split, so that a problem concentrated in one class or split (a shortcut a model
would learn, e.g. "all bad images are grey") shows up. cleanvision's per-image properties are taken in the
audit's single decoding pass (`winnow.audit.imagelab`); this check scores them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.audit.base import INFO, WARNING, AuditContext, Check, Issue
from winnow.audit.facts import CLEANVISION
from winnow.audit.html import issue_table
from winnow.audit.imagelab import IMAGE_ISSUES, MIX_ISSUES, score_issues
from winnow.reporting.html import paragraph, table

CONCENTRATION = 0.5  # share gap between two classes (or splits) that makes a property a shortcut


class QualityCheck(Check):
    """cleanvision's image-quality issues, per image and as shares per class and split."""

    name = "quality"
    title = "Image quality"
    facts = frozenset({CLEANVISION})

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        samples, good = context.samples, context.good
        if context.facts.properties is None:
            raise ValueError("the quality check needs cleanvision's properties from the decoding pass; build the "
                             "context with the facts the checks ask for (`build_context(..., facts=...)`)")
        flags, scores = score_issues(context.facts.properties.loc[good])
        issues = [Issue(samples.paths[row], kind, WARNING, float(scores[kind][j]),
                        f"cleanvision: {kind.replace('_', ' ')} (score {scores[kind][j]:.3f}, lower is worse)",
                        label=samples.labels[row], split=samples.splits[row] or "")
                  for kind in IMAGE_ISSUES for j, row in enumerate(good) if flags[kind][j]]
        self.shares_ = {by: self._shares(context, flags, by) for by in ("label", "split")}
        issues += self._concentrated(self.shares_)
        counts = {kind: int(flags[kind].sum()) for kind in (*IMAGE_ISSUES, *MIX_ISSUES)}
        found = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n and kind in IMAGE_ISSUES) or "none"
        shortcuts = sum(issue.issue == "concentrated" for issue in issues)
        line = f"{found}; {counts['grayscale']} grayscale; {shortcuts} property(ies) concentrated in a class or split"
        return issues, {"counts": counts, "shares": self.shares_, "line": line}

    @staticmethod
    def _shares(context: AuditContext, flags: dict[str, np.ndarray], by: str) -> dict[str, dict[str, float]]:
        """`{class or split: {issue: share of its images}}`, with `n` its image count."""
        keys = np.array([(context.samples.labels if by == "label" else context.samples.splits)[i] or ""
                         for i in context.good])
        return {key: {"n": int((keys == key).sum()),
                      **{kind: float(values[keys == key].mean()) for kind, values in flags.items()}}
                for key in sorted(set(keys))}

    @staticmethod
    def _concentrated(shares: dict[str, dict[str, dict[str, float]]]) -> list[Issue]:
        issues = []
        for by, groups in shares.items():
            for kind in (*IMAGE_ISSUES, *MIX_ISSUES):
                high = max(groups, key=lambda key: groups[key][kind])
                low = min(groups, key=lambda key: groups[key][kind])
                gap = groups[high][kind] - groups[low][kind]
                if gap >= CONCENTRATION:
                    what = "class" if by == "label" else "split"
                    detail = (f"{kind.replace('_', ' ')}: {groups[high][kind]:.0%} of {what} {high} vs "
                              f"{groups[low][kind]:.0%} of {what} {low}; a model can learn this instead of the "
                              "content")
                    issues.append(Issue("", "concentrated", WARNING if kind in IMAGE_ISSUES or by == "label"
                                        else INFO, gap, detail, label=high if by == "label" else "",
                                        split=high if by == "split" else ""))
        return issues

    def _html(self, context: AuditContext) -> str:
        body = paragraph("Share of images cleanvision flags, per class and per split (grayscale is a property, "
                         "reported where classes or splits differ in it).")
        for by, title in (("label", "class"), ("split", "split")):
            rows = [{title: key, **{kind: (value if kind == "n" else f"{value:.0%}") for kind, value in shares.items()}}
                    for key, shares in self.shares_[by].items()]
            body += table(rows)
        return body + (issue_table(self.issues_) if self.issues_ else paragraph("No quality issues."))
