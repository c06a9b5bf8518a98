"""Reports a person can look at: one Markdown file and one self-contained HTML file.

A ``Report`` is a title, a few key figures and a list of ``Section``s, each with
paragraphs, an optional table and optional PNG pictures. ``write_report`` writes
``report.md`` (pictures linked by relative path) and ``report.html`` (pictures embedded
as base64, no external resources, so it opens offline and can be mailed around).
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from larq_bnas._io import write_text


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: Table | None = None
    images: list[tuple[str, str | os.PathLike]] = field(default_factory=list)  # (caption, path)


@dataclass
class Report:
    title: str
    key_figures: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers for tables: large ones in scientific notation, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{digits}e}"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def to_markdown(report: Report, base_dir: Path) -> str:
    lines = [f"# {report.title}", ""]
    if report.key_figures:
        lines += ["| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in report.key_figures]
        lines.append("")
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for p in section.paragraphs:
            lines += [p, ""]
        if section.table is not None:
            lines.append("| " + " | ".join(section.table.headers) + " |")
            lines.append("|" + "---|" * len(section.table.headers))
            for row in section.table.rows:
                lines.append("| " + " | ".join(fmt(c) for c in row) + " |")
            lines.append("")
        for caption, path in section.images:
            rel = os.path.relpath(Path(path), base_dir)
            lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#1d2433;line-height:1.45}
h1{border-bottom:3px solid #3a6ea5;padding-bottom:.3em}h2{margin-top:2em;color:#3a6ea5}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #c8d0dc;padding:.35em .7em;text-align:right}
th{background:#eef2f8}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;border:1px solid #dde3ec}
figcaption{color:#566;font-size:.9em}.key td{font-size:1.05em;text-align:left}
"""


def _img_tag(path: Path, caption: str) -> str:
    if not path.exists():
        return f"<p><em>missing picture: {html.escape(str(path))}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def to_html(report: Report) -> str:
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    if report.key_figures:
        out.append("<table class='key'>")
        out += [
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in report.key_figures
        ]
        out.append("</table>")
    for section in report.sections:
        slug = "".join(c if c.isalnum() else "-" for c in section.title.lower())
        out.append(f"<section id='{slug}'><h2>{html.escape(section.title)}</h2>")
        out += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        if section.table is not None:
            out.append("<table><tr>")
            out += [f"<th>{html.escape(h)}</th>" for h in section.table.headers]
            out.append("</tr>")
            for row in section.table.rows:
                out.append(
                    "<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>"
                )
            out.append("</table>")
        out += [_img_tag(Path(p), c) for c, p in section.images]
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(report: Report, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    md = write_text(out / "report.md", to_markdown(report, out))
    page = write_text(out / "report.html", to_html(report))
    return md, page
