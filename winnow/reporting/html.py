"""Small HTML builders for the report: escaping, tables, embedded PNGs, sections and the page.

Every piece of text passes through `esc`; images are embedded as `data:image/png;base64,...`
URIs, so the page needs no other file, no script and no network.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2329; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 3rem; background: #fff; }
h1 { margin: 0 0 .3rem; font-size: 1.7rem; }
h2 { margin-top: 2.2rem; padding-bottom: .3rem; border-bottom: 2px solid #dde1e6; font-size: 1.3rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
nav { font-size: .9rem; margin: .6rem 0 1rem; }
nav a { margin-right: .9rem; color: #2457a6; text-decoration: none; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #d3d8de; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #eef1f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; }
table.kv th { width: 13rem; }
table.kv td.num { text-align: left; }
.na { color: #6b7580; font-style: italic; }
.bad { color: #b3261e; font-weight: 600; }
.good { color: #1e7b34; font-weight: 600; }
.warn { color: #8a5a00; }
figure.plot { margin: .6rem 0 1.2rem; }
figure.plot img { max-width: 100%; border: 1px solid #e3e6ea; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: .5rem 1.2rem; }
figcaption { font-size: .85rem; color: #444c55; }
.gallery { display: flex; flex-wrap: wrap; gap: .6rem; }
.thumb { width: 150px; margin: 0; padding: .4rem; border: 2px solid #d3d8de; border-radius: 4px; font-size: .75rem; }
.thumb.mistake { border-color: #d9534f; }
.thumb.correct { border-color: #5cb85c; }
.thumb img { display: block; margin: 0 auto .3rem; image-rendering: pixelated; }
.thumb .name { font-family: ui-monospace, monospace; word-break: break-all; }
footer { margin-top: 2rem; font-size: .8rem; color: #6b7580; }
"""


class Markup(str):
    """HTML built by this module (already escaped), to pass where text would be escaped."""


def esc(value: Any) -> str:
    """`value` as text, HTML-escaped (quotes included, so it is safe in attributes too)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, *, digits: int = 4) -> str:
    """A cell's text: floats with `digits` decimals, None as an en dash, booleans as yes/no."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(item, digits=digits) for item in value)
    return str(value)


def cell(value: Any, *, tag: str = "td") -> str:
    """One table cell; numbers are right-aligned."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    attribute = ' class="num"' if numeric else ""
    return f"<{tag}{attribute}>{esc(fmt(value))}</{tag}>"


def table(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None,
          css_class: str = "") -> str:
    """Rows of dicts as a table (columns: `columns`, else the union of keys in first-seen order)."""
    names = list(columns) if columns is not None else list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{esc(name)}</th>" for name in names)
    body = "".join("<tr>" + "".join(cell(row.get(name)) for name in names) + "</tr>\n" for row in rows)
    attribute = f' class="{esc(css_class)}"' if css_class else ""
    return (f'<div class="wide"><table{attribute}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n'
            "</table></div>\n")


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of `(name, value)`; values that are `Markup` are inserted unescaped."""
    rows = "".join(f"<tr><th>{esc(name)}</th>{_markup_cell(value)}</tr>\n" for name, value in pairs)
    return f'<table class="kv">\n<tbody>\n{rows}</tbody>\n</table>\n'


def _markup_cell(value: Any) -> str:
    return f"<td>{value}</td>" if isinstance(value, Markup) else cell(value)


def png_uri(data: bytes) -> str:
    """A `data:image/png;base64,...` URI.

    Raises:
        ValueError: `data` is not a PNG file.
    """
    if not data.startswith(PNG_MAGIC):
        raise ValueError("png_uri: expected PNG bytes (starting with the PNG signature); got another format")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image(data: bytes, *, alt: str, width: int | None = None, height: int | None = None) -> str:
    """An `<img>` with the PNG embedded."""
    size = "".join(f' {name}="{value}"' for name, value in (("width", width), ("height", height)) if value)
    return f'<img src="{png_uri(data)}" alt="{esc(alt)}"{size}>'


def figure(path: str | Path, *, caption: str) -> str:
    """A PNG file embedded as a captioned figure."""
    return (f'<figure class="plot">{image(Path(path).read_bytes(), alt=caption)}'
            f"<figcaption>{esc(caption)}</figcaption></figure>\n")


def paragraph(text: str, *, css_class: str = "") -> str:
    attribute = f' class="{esc(css_class)}"' if css_class else ""
    return f"<p{attribute}>{esc(text)}</p>\n"


def unavailable(reason: str) -> str:
    """The note shown instead of a section (or part of one) whose inputs are absent."""
    return paragraph(f"not available: {reason}", css_class="na")


def section(anchor: str, title: str, body: str) -> str:
    """A titled `<section>` (its `id` is the link target of the table of contents)."""
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}</section>\n'


def page(title: str, sections: Sequence[tuple[str, str, str]], *, subtitle: str = "", footer: str = "") -> str:
    """The whole document: inline CSS, a table of contents and the sections `(anchor, title, body)`."""
    links = "".join(f'<a href="#{esc(anchor)}">{esc(name)}</a>' for anchor, name, _ in sections)
    body = "".join(section(*item) for item in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{esc(title)}</h1>\n{paragraph(subtitle) if subtitle else ''}<nav>{links}</nav>\n{body}"
            f"<footer>{esc(footer)}</footer>\n</main>\n</body>\n</html>\n")
