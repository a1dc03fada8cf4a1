"""``faceprior-compare``: one paper-style table (and a visual page) from several evaluated runs.

Example::

    faceprior-compare logs/eval/runs/gfpgan logs/eval/runs/gpen --names GFPGAN,GPEN --out cmp

Each input is a run folder — its ``results/<benchmark>.json`` files (``faceprior-eval``) or, when
there are none, its ``results.json`` (training runs, ``test/<bench>/<metric>`` keys) — or one of
those JSON files. Writes into ``--out`` (default ``./compare``):

* ``compare.md`` — Markdown table: rows "LQ input" (the ``lq_*`` means of the first input that
  has them) then one row per method; a column per benchmark × metric with ↑/↓; the best method
  value of each column in bold (ties all bold, the LQ row never); missing values "—";
* ``compare.tex`` — the same as a LaTeX ``tabular`` (booktabs rules, ``\\textbf`` for the best);
* ``compare.csv`` — long format, one row per shown value, columns
  ``method,benchmark,metric,value,higher_is_better,best`` (method "LQ input" for the LQ row);
* ``compare.html`` — the table, a quality-vs-fidelity scatter plot per benchmark (inline SVG) and,
  for the first ``--crops`` face names (sorted) restored by every method, LQ | methods | GT
  side by side; the images are copied into ``crops/``. LQ and GT come from the protocol's
  ``lq_root`` / ``gt_root`` (matched by file stem), restorations from ``<run>/restored/<bench>/``.

``faceprior-compare --sweep MULTIRUN_DIR`` instead tabulates the jobs of a Hydra multirun
(:mod:`faceprior.compare_sweep`).

Values are rounded for display (per metric: PSNR/FID/NIQE/IDD/LMD 2 decimals, SSIM/LPIPS 4; others 2 from 10 up, else 4) and the best is chosen among the
rounded values, so the bold always matches what is printed.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceprior import compare_html as page
from faceprior.compare_results import BenchmarkEntry, CompareError, load_results

LQ_ROW = "LQ input"
MISSING = "—"
#: direction of the known metrics (the ``higher_is_better`` of ``faceprior.metrics``); a
#: protocol's own ``higher_is_better`` wins
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "lpips": False,
    "fid": False,
    "niqe": False,
    "idd": False,
    "lmd": False,
}
LABELS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "fid": "FID", "niqe": "NIQE"}
LABELS |= {"idd": "IDD", "lmd": "LMD"}
#: scatter axes, in order of preference: fidelity on x, perceptual quality on y
FIDELITY = ("psnr", "idd", "ssim", "lmd")
QUALITY = ("fid", "lpips", "niqe")


@dataclass
class Table:
    """The comparison: ``values[row][(benchmark, metric)]`` for rows ``LQ input`` and methods."""

    methods: list[str]
    columns: list[tuple[str, str]]
    values: dict[str, dict[tuple[str, str], float]]
    higher_is_better: dict[str, bool | None]
    entries: dict[str, dict[str, BenchmarkEntry]]
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[str]:
        has_lq = any(self.values.get(LQ_ROW, {}).values())
        return [LQ_ROW, *self.methods] if has_lq else list(self.methods)

    @property
    def benchmarks(self) -> list[str]:
        return list(dict.fromkeys(b for b, _ in self.columns))

    def cell(self, row: str, column: tuple[str, str]) -> str:
        value = self.values.get(row, {}).get(column)
        return MISSING if value is None or math.isnan(value) else fmt(value, column[1])

    def best(self, column: tuple[str, str]) -> set[str]:
        """Methods holding the best rounded value of a column (none for unknown directions)."""
        higher = self.higher_is_better.get(column[1])
        cells = {m: self.cell(m, column) for m in self.methods}
        numbers = {m: float(v) for m, v in cells.items() if v != MISSING}
        if higher is None or not numbers:
            return set()
        target = max(numbers.values()) if higher else min(numbers.values())
        return {m for m, v in numbers.items() if v == target}

    def header(self, column: tuple[str, str]) -> str:
        bench, metric = column
        return f"{bench} {metric_label(metric)}{arrow(self.higher_is_better.get(metric))}"


#: display decimals of the known metrics, as the papers' tables print them (one per column)
DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4, "fid": 2, "niqe": 2, "idd": 2, "lmd": 2}


def fmt(value: float, metric: str | None = None) -> str:
    """Display rounding: the metric's decimals (:data:`DECIMALS`); otherwise 2 decimals from 10
    up and 4 below."""
    if metric is not None and metric.removeprefix("lq_") in DECIMALS:
        return f"{value:.{DECIMALS[metric.removeprefix('lq_')]}f}"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def metric_label(metric: str) -> str:
    return LABELS.get(metric, metric)


def arrow(higher: bool | None) -> str:
    return "" if higher is None else ("↑" if higher else "↓")


# -- loading ---------------------------------------------------------------------------------------
# -- the table -------------------------------------------------------------------------------------
def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in out:
            candidate, k = f"{name}-{k}", k + 1
        out.append(candidate)
    return out


def _default_name(path: Path, entries: list[BenchmarkEntry]) -> str:
    for entry in entries:
        if entry.weights_name:
            return entry.weights_name
    return entries[0].run_dir.resolve().name if entries else path.name


def _data_key(entry: BenchmarkEntry) -> tuple[Any, ...] | None:
    bench = entry.protocol.get("benchmark")
    if not isinstance(bench, dict):
        return None
    manifest = (bench.get("manifest") or {}).get("sha256")
    # inputs degraded on the device are saved inside each run: their folder names no data
    lq_root = None if bench.get("lq_saved_by_run") else bench.get("lq_root")
    return (lq_root, bench.get("gt_root"), bench.get("seed"), manifest)


def _lq_mismatch(bench: str, entries: dict[str, BenchmarkEntry]) -> list[str]:
    """A note when the methods' LQ-input scores differ: their inputs were not the same images
    (also catches runs without a protocol, e.g. another degradation of the same folder)."""
    lq: dict[str, dict[str, float]] = {}
    for method, entry in entries.items():
        for key, value in entry.means.items():
            if key.startswith("lq_") and value is not None and not math.isnan(value):
                lq.setdefault(key, {})[method] = float(value)
    for key, per_method in sorted(lq.items()):
        low, high = min(per_method.values()), max(per_method.values())
        if high - low > 1e-6 * max(1.0, abs(high)):
            shown = ", ".join(f"{m} {v:.4f}" for m, v in per_method.items())
            return [f"{bench}: the LQ inputs differ between methods ({key}: {shown})"]
    return []


def compare(
    inputs: Sequence[str | Path],
    names: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
) -> Table:
    """Load every input and lay the methods out in one table (see the module docstring)."""
    if not inputs:
        raise CompareError("nothing to compare: give at least one run folder or results file")
    loaded = [load_results(p) for p in inputs]
    if names is not None and len(names) != len(inputs):
        raise CompareError(
            f"{len(names)} names for {len(inputs)} inputs (--names needs one per input)"
        )
    methods = _unique(
        list(names) if names else [_default_name(Path(p), e) for p, e in zip(inputs, loaded)]
    )
    entries = {m: {e.benchmark: e for e in es} for m, es in zip(methods, loaded)}
    notes: list[str] = []
    found = list(dict.fromkeys(e.benchmark for es in loaded for e in es))
    order = list(benchmarks) if benchmarks else found
    for bench in order:
        if bench not in found:
            notes.append(f"benchmark {bench!r} is in no input")
            continue
        lacking = [m for m in methods if bench not in entries[m]]
        if lacking:
            notes.append(
                f"{', '.join(lacking)}: not evaluated on {bench} (shown as {MISSING}); "
                "the methods were evaluated on different benchmarks"
            )
        keys = {_data_key(entries[m][bench]) for m in methods if bench in entries[m]}
        if len(keys - {None}) > 1:
            notes.append(f"{bench}: the methods were scored on different data (protocol differs)")
        notes += _lq_mismatch(bench, {m: entries[m][bench] for m in methods if bench in entries[m]})

    higher: dict[str, bool | None] = {}
    columns: list[tuple[str, str]] = []
    values: dict[str, dict[tuple[str, str], float]] = {LQ_ROW: {}, **{m: {} for m in methods}}
    for bench in order:
        present = [entries[m][bench] for m in methods if bench in entries[m]]
        names_here = {k.removeprefix("lq_") for e in present for k in e.means}
        wanted = list(metrics) if metrics else _metric_order(names_here)
        for metric in wanted:
            if metric not in names_here:
                continue
            columns.append((bench, metric))
            for method in methods:
                entry = entries[method].get(bench)
                if entry is not None and metric in entry.means:
                    values[method][(bench, metric)] = entry.means[metric]
            lq = next((e.means[f"lq_{metric}"] for e in present if f"lq_{metric}" in e.means), None)
            if lq is not None:
                values[LQ_ROW][(bench, metric)] = lq
            higher.setdefault(metric, _direction(metric, present))
    for metric in metrics or []:
        if not any(c[1] == metric for c in columns):
            notes.append(f"metric {metric!r} is in no input")
    notes += _caveats(columns, entries)
    return Table(methods, columns, values, higher, entries, notes)


def _caveats(
    columns: list[tuple[str, str]], entries: dict[str, dict[str, BenchmarkEntry]]
) -> list[str]:
    """One note per shown metric whose protocol carries a caveat (e.g. random feature networks)."""
    found: dict[str, list[str]] = {}
    for bench, metric in columns:
        for by_bench in entries.values():
            entry = by_bench.get(bench)
            proto = ((entry.protocol.get("metrics") or {}) if entry else {}).get(metric)
            caveat = proto.get("caveat") if isinstance(proto, dict) else None
            if caveat and caveat not in found.setdefault(metric, []):
                found[metric].append(str(caveat))
    return [f"{metric_label(m)}: {'; '.join(texts)}" for m, texts in found.items() if texts]


def _metric_order(names: set[str]) -> list[str]:
    known = [m for m in HIGHER_IS_BETTER if m in names]
    return known + sorted(names - set(known))


def _direction(metric: str, entries: list[BenchmarkEntry]) -> bool | None:
    for entry in entries:
        spec = (entry.protocol.get("metrics") or {}).get(metric)
        if isinstance(spec, dict) and isinstance(spec.get("higher_is_better"), bool):
            return bool(spec["higher_is_better"])
    return HIGHER_IS_BETTER.get(metric)


# -- text formats ----------------------------------------------------------------------------------
def _grid(table: Table) -> tuple[list[list[str]], list[list[bool]]]:
    """Rows of cells (label first) and, per value cell, whether it is the column's best."""
    best = {c: table.best(c) for c in table.columns}
    rows = [[r, *(table.cell(r, c) for c in table.columns)] for r in table.rows]
    return rows, [[r in best[c] for c in table.columns] for r in table.rows]


def to_markdown(table: Table) -> str:
    rows, bold = _grid(table)
    text = page.markdown_table(["Method", *map(table.header, table.columns)], rows, bold)
    return text + "".join(f"\n> {note}\n" for note in table.notes)


def to_latex(table: Table) -> str:
    groups = [(b, sum(1 for c in table.columns if c[0] == b)) for b in table.benchmarks]
    heads = [(metric_label(m), table.higher_is_better.get(m)) for _, m in table.columns]
    rows, bold = _grid(table)
    return page.latex_table(groups, heads, rows, bold, rule_after_first=LQ_ROW in table.rows)


CSV_COLUMNS = ("method", "benchmark", "metric", "value", "higher_is_better", "best")


def write_csv(table: Table, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in table.rows:
            for column in table.columns:
                value = table.values.get(row, {}).get(column)
                if value is None:
                    continue
                direction = table.higher_is_better.get(column[1])
                best = row in table.best(column)
                writer.writerow([row, *column, repr(value), direction, best])


# -- HTML ------------------------------------------------------------------------------------------
def _scatter(table: Table, bench: str) -> page.Scatter | None:
    have = {m for b, m in table.columns if b == bench}
    for x in FIDELITY:
        for y in QUALITY:
            if x not in have or y not in have:
                continue
            points = [
                page.Point(
                    row, table.values[row][(bench, x)], table.values[row][(bench, y)], row == LQ_ROW
                )
                for row in table.rows
                if (bench, x) in table.values[row] and (bench, y) in table.values[row]
            ]
            if any(not p.lq for p in points):
                label = f"{metric_label(x)}{arrow(table.higher_is_better.get(x))}"
                y_label = f"{metric_label(y)}{arrow(table.higher_is_better.get(y))}"
                return page.Scatter(label, y_label, points)
    return None


def _crops(table: Table, bench: str, out_dir: Path, count: int) -> list[page.CropRow]:
    here = [table.entries[m][bench] for m in table.methods if bench in table.entries[m]]
    with_images = [e for e in here if e.restored_names()]
    if count <= 0 or not with_images:
        return []
    common = set.intersection(*(e.restored_names() for e in with_images))
    chosen = sorted(common)[:count]
    bench_info = next((e.protocol.get("benchmark") or {} for e in here if e.protocol), {})
    lq_index = page.stem_index(bench_info.get("lq_root"))
    gt_index = page.stem_index(bench_info.get("gt_root"))
    folder = out_dir / "crops" / page.slug(bench)
    folder.mkdir(parents=True, exist_ok=True)

    def copy(src: Path | None, tag: str, name: str) -> str | None:
        if src is None:
            return None
        target = folder / f"{page.slug(name)}__{page.slug(tag)}{src.suffix.lower()}"
        shutil.copyfile(src, target)
        return target.relative_to(out_dir).as_posix()

    rows = []
    for name in chosen:
        images = [] if not lq_index else [("LQ", copy(lq_index.get(name), "lq", name))]
        for i, method in enumerate(table.methods):
            entry = table.entries[method].get(bench)
            src = entry.restored(name) if entry is not None else None
            images.append((method, copy(src, f"m{i}_{method}", name)))
        if gt_index:
            images.append(("GT", copy(gt_index.get(name), "gt", name)))
        rows.append(page.CropRow(name, images))
    return rows


def to_html(table: Table, out_dir: Path, crops: int = 4) -> str:
    rows, bold = _grid(table)
    header = ["Method", *map(table.header, table.columns)]
    sections = [
        page.Section(b, _scatter(table, b), _crops(table, b, out_dir, crops))
        for b in table.benchmarks
    ]
    return page.render_page(
        "faceprior-compare", page.html_table(header, rows, bold), table.notes, sections
    )


def write_outputs(table: Table, out_dir: str | Path, crops: int = 4) -> dict[str, Path]:
    """Write ``compare.{md,tex,csv,html}`` (and ``crops/``) into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"compare.{kind}" for kind in ("md", "tex", "csv", "html")}
    paths["md"].write_text(to_markdown(table))
    paths["tex"].write_text(to_latex(table))
    write_csv(table, paths["csv"])
    paths["html"].write_text(to_html(table, out, crops))
    return paths


# -- CLI -------------------------------------------------------------------------------------------
def split_list(text: str | None) -> list[str] | None:
    """``'a, b'`` -> ``['a', 'b']``; None or empty -> None (a comma-separated CLI value)."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None
