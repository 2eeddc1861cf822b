"""audit.html: one self-contained page (inline CSS, embedded PNGs, no script) with a section per check."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from winnow._version import __version__
from winnow.audit.base import AuditContext, Check
from winnow.reporting.html import page, paragraph, table


def render(checks: Sequence[Check], context: AuditContext) -> str:
    """The page: an overview table, then each check's section in order."""
    overview = [{"check": check.title, "errors": check.summary_["errors"], "warnings": check.summary_["warnings"],
                 "found": check.summary_["line"]} for check in checks]
    source = context.embedding_source or "none (simple image features stand in for embeddings)"
    intro = (paragraph(f"{len(context.samples)} images, {int(context.readable.sum())} readable; splits: "
                       f"{', '.join(context.splits())}; embeddings: {source}.") + table(overview))
    sections = [("overview", "Overview", intro)]
    sections += [(check.name, check.title, check.html(context)) for check in checks]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return page(f"Dataset audit: {context.source}", sections, subtitle="What to fix before training on this data.",
                footer=f"winnow {__version__}, {stamp}")
