"""Rendering for ``faceprior-compare``: Markdown, LaTeX and a static HTML page from plain grids.

Everything arrives as strings and numbers (``faceprior.compare`` gathers the data and copies the
images), so this module imports nothing from the package. A grid is a list of rows whose first
cell is the row label, with a parallel ``bold`` list marking the best value cells. The HTML page
has no external assets: styles are inline, the scatter plots are inline SVG drawn here (no
plotting dependency) and the images are referenced by paths relative to the page.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

#: point colours of the scatter plots (the LQ input is always grey)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table.results { border-collapse: collapse; margin-bottom: 1em; }
table.results th, table.results td { border: 1px solid #bbb; padding: 3px 8px; text-align: center; }
table.results td:first-child { text-align: left; }
table.results tr.lq td { color: #666; font-style: italic; }
table.crops td { text-align: center; vertical-align: top; font-size: 12px; padding: 2px; }
table.crops img { width: 192px; height: auto; image-rendering: pixelated; }
.missing { display: inline-block; width: 192px; color: #999; }
.note { color: #a50; }
"""


@dataclass
class Point:
    """One method in a scatter plot."""

    label: str
    x: float
    y: float
    lq: bool = False


@dataclass
class Scatter:
    """A quality-vs-fidelity plot: ``x_label`` / ``y_label`` carry the metric and its arrow."""

    x_label: str
    y_label: str
    points: list[Point]


@dataclass
class CropRow:
    """One face: ``(column label, image path relative to the page or None)`` per column."""

    name: str
    images: list[tuple[str, str | None]]


@dataclass
class Section:
    """Everything shown for one benchmark below the table."""

    benchmark: str
    scatter: Scatter | None = None
    crops: list[CropRow] = field(default_factory=list)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def stem_index(root: object) -> dict[str, Path]:
    """``{file stem: image}`` of a folder (empty when it is not one); first suffix wins."""
    if not root or not Path(str(root)).is_dir():
        return {}
    files = sorted(p for p in Path(str(root)).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return {p.stem: p for p in reversed(files)}


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _bold_cells(row: list[str], marks: list[bool], wrap: str) -> list[str]:
    return [row[0], *(wrap.format(v) if b else v for v, b in zip(row[1:], marks, strict=True))]


def markdown_table(header: list[str], rows: list[list[str]], bold: list[list[bool]]) -> str:
    """A Markdown table, best cells as ``**bold**``."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row, marks in zip(rows, bold, strict=True):
        lines.append("| " + " | ".join(_bold_cells(row, marks, "**{}**")) + " |")
    return "\n".join(lines) + "\n"


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters (``_`` ``&`` ``%`` ``#`` ``$`` braces, ``\\ ~ ^``)."""
    specials = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    specials |= {ch: "\\" + ch for ch in "_&%#${}"}
    return "".join(specials.get(ch, ch) for ch in text)


def latex_table(
    groups: list[tuple[str, int]],
    heads: list[tuple[str, bool | None]],
    rows: list[list[str]],
    bold: list[list[bool]],
    rule_after_first: bool = False,
) -> str:
    """A booktabs ``tabular``: a header row of ``(group, span)`` over ``(metric, higher)`` heads."""
    arrows = {True: "$\\uparrow$", False: "$\\downarrow$", None: ""}
    lines = [
        "% written by faceprior-compare; needs \\usepackage{booktabs}",
        "\\begin{tabular}{l" + "c" * len(heads) + "}",
        "\\toprule",
        " & ".join(
            ["Method", *(f"\\multicolumn{{{n}}}{{c}}{{{tex_escape(g)}}}" for g, n in groups)]
        )
        + " \\\\",
    ]
    starts = [2 + sum(n for _, n in groups[:i]) for i in range(len(groups))]
    lines.append(
        " ".join(f"\\cmidrule(lr){{{s}-{s + n - 1}}}" for s, (_, n) in zip(starts, groups))
    )
    lines += [" & ".join(["", *(tex_escape(h) + arrows[d] for h, d in heads)]) + " \\\\"]
    lines.append("\\midrule")
    for i, (row, marks) in enumerate(zip(rows, bold, strict=True)):
        cells = [tex_escape(c).replace("—", "--") for c in row]
        lines.append(" & ".join(_bold_cells(cells, marks, "\\textbf{{{}}}")) + " \\\\")
        if i == 0 and rule_after_first:
            lines.append("\\midrule")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def html_table(header: list[str], rows: list[list[str]], bold: list[list[bool]]) -> str:
    """A ``<table>``; ``rows[i][0]`` is the row label, ``bold[i][j]`` marks cell ``rows[i][j+1]``."""
    out = [
        '<table class="results">',
        "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>",
    ]
    for row, marks in zip(rows, bold, strict=True):
        cls = ' class="lq"' if row[0] == "LQ input" else ""
        cells = [f"<td>{escape(row[0])}</td>"]
        for value, best in zip(row[1:], marks, strict=True):
            text = escape(value)
            cells.append(f"<td><b>{text}</b></td>" if best else f"<td>{text}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.12 if hi > lo else max(abs(lo) * 0.05, 0.5)
    return lo - pad, hi + pad


def _num(v: float) -> str:
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}"


def svg_scatter(plot: Scatter, width: int = 420, height: int = 300) -> str:
    """An inline ``<svg>`` scatter plot with axes, ticks and one labelled dot per point."""
    points = [p for p in plot.points if math.isfinite(p.x) and math.isfinite(p.y)]
    left, right, top, bottom = 62, 16, 14, 44
    w, h = width - left - right, height - top - bottom
    x_lo, x_hi = _range([p.x for p in points] or [0.0])
    y_lo, y_hi = _range([p.y for p in points] or [0.0])

    def sx(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * w

    def sy(v: float) -> float:
        return top + h - (v - y_lo) / (y_hi - y_lo) * h

    parts = [
        f'<svg class="scatter" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#444"/>',
    ]
    for t in _ticks(x_lo, x_hi):
        x = sx(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + h}" x2="{x:.1f}" y2="{top + h + 4}" stroke="#444"/>'
        )
        parts.append(f'<text x="{x:.1f}" y="{top + h + 16}" text-anchor="middle">{_num(t)}</text>')
    for t in _ticks(y_lo, y_hi):
        y = sy(t)
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#444"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    parts.append(
        f'<text x="{left + w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        f"{escape(plot.x_label)}</text>"
    )
    parts.append(
        f'<text transform="translate(14 {top + h / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{escape(plot.y_label)}</text>"
    )
    colour = 0
    for p in points:
        fill = "#888" if p.lq else PALETTE[colour % len(PALETTE)]
        colour += 0 if p.lq else 1
        x, y = sx(p.x), sy(p.y)
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}">'
            f"<title>{escape(p.label)}: ({_num(p.x)}, {_num(p.y)})</title></circle>"
        )
        # labels of points near the right edge go to their left
        side = 'text-anchor="end" ' if x > left + 0.7 * w else ""
        dx = -7 if side else 7
        parts.append(f'<text {side}x="{x + dx:.1f}" y="{y - 6:.1f}">{escape(p.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _crop_table(rows: list[CropRow]) -> str:
    header = [label for label, _ in rows[0].images]
    out = [
        '<table class="crops">',
        "<tr><th></th>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>",
    ]
    for row in rows:
        cells = [f"<td>{escape(row.name)}</td>"]
        for label, src in row.images:
            if src is None:
                cells.append('<td><span class="missing">not available</span></td>')
            else:
                alt = escape(f"{row.name} {label}")
                cells.append(f'<td><img src="{escape(src)}" alt="{alt}" loading="lazy"></td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_page(title: str, table: str, notes: list[str], sections: list[Section]) -> str:
    """The whole page: title, the results table (already HTML), notes, then one part per benchmark."""
    body = [f"<h1>{escape(title)}</h1>", table]
    body += [f'<p class="note">{escape(n)}</p>' for n in notes]
    for section in sections:
        body.append(f"<h2>{escape(section.benchmark)}</h2>")
        if section.scatter is not None:
            body.append(
                f"<h3>{escape(section.scatter.y_label)} vs {escape(section.scatter.x_label)}</h3>"
            )
            body.append(svg_scatter(section.scatter))
        if section.crops:
            body.append("<h3>Faces</h3>")
            body.append(_crop_table(section.crops))
        elif section.scatter is None:
            body.append("<p>No restored images or plottable metric pair for this benchmark.</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
