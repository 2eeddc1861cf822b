"""HTML pieces of audit.html that the checks share: the issue table and image cards (thumbnails embedded)."""

from __future__ import annotations

from collections.abc import Sequence

from winnow.audit.base import Issue
from winnow.reporting.gallery import thumbnail
from winnow.reporting.html import esc, image, paragraph, table

MAX_ROWS = 50


def issue_table(issues: Sequence[Issue], *, limit: int = MAX_ROWS) -> str:
    """The first `limit` issues as a table (the rest are in issues.csv)."""
    rows = [{"path": issue.path or "(dataset)", "issue": issue.issue, "severity": issue.severity,
             "score": issue.score, "detail": issue.detail, "label": issue.label, "split": issue.split,
             "suggested": issue.suggested_label or None} for issue in issues[:limit]]
    more = paragraph(f"... and {len(issues) - limit} more in issues.csv") if len(issues) > limit else ""
    return table(rows) + more


def card(path: str, caption: str, *, css_class: str = "") -> str:
    """One thumbnail with a caption (the file name is shown, the full path is its title)."""
    png = thumbnail(path)
    picture = image(png, alt=caption) if png is not None else paragraph("(image unreadable now)", css_class="na")
    name = "/".join(path.replace("\\", "/").split("/")[-2:])
    return (f'<figure class="thumb {esc(css_class)}" title="{esc(path)}" data-path="{esc(path)}">{picture}'
            f'<figcaption><div class="name">{esc(name)}</div>{esc(caption)}</figcaption></figure>\n')


def gallery(cards: Sequence[str]) -> str:
    return f'<div class="gallery">\n{"".join(cards)}</div>\n' if cards else paragraph("none")


def pair(left: str, right: str, caption: str) -> str:
    """Two images side by side with one caption below."""
    return f'<div class="gallery pair">{left}{right}<p>{esc(caption)}</p></div>\n'
