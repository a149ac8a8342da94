"""One self-contained HTML file: plotly.js inlined once, then each figure with a caption.

plotly's own `write_html` inlines the library per figure (3-4 MB each); a report of a dozen
figures would be 40 MB. So the page is assembled here: the library once in <head>, each figure as
a div from `to_html(include_plotlyjs=False)`. Works offline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
section { margin: 2.5em 0; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
p.caption { color: #444; max-width: 900px; } .missing { color: #999; font-style: italic; }
table.rows { border-collapse: collapse; font-size: 13px; } table.rows td, table.rows th { padding: 2px 8px; }
table.rows tr:nth-child(even) { background: #f4f4f4; }
table.rows th { text-align: left; border-bottom: 1px solid #999; }
"""


@dataclass
class Section:
    title: str
    caption: str
    figure: go.Figure | None = None
    missing: str = ""
    items: list[str] = field(default_factory=list)
    """Text lines shown as a list instead of a figure (the findings section)."""
    table: list[list[str]] = field(default_factory=list)
    """Rows of a plain HTML table shown after the figure, the first row its header (escaped here)."""


def _table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table class='rows'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(path: str | Path, title: str, intro: str, sections: list[Section]) -> Path:
    """Write the report; sections without a figure say what to run to get one."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    for i, section in enumerate(sections):
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts.append(f"<p class='caption'>{html.escape(section.caption)}</p>")
        if section.items:
            parts.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in section.items) + "</ul>")
        if section.figure is not None:
            parts.append(section.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig{i}"))
        elif not section.items and not section.table:
            parts.append(f"<p class='missing'>{html.escape(section.missing)}</p>")
        if section.table:
            parts.append(_table(section.table))
        parts.append("</section>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path
