"""``faceprior-compare --sweep MULTIRUN_DIR``: one table of the jobs of a Hydra multirun.

A multirun folder (``logs/train/multiruns/<stamp>_<uid>/``) has a numbered folder per job with
``.hydra/{overrides,config,hydra}.yaml``, the results (``results/<bench>.json`` or ``results.json``)
and, for a crashed job, ``FAILED``. A row per job: number, status, the overrides that vary (the
others are listed above), the objective (``optimized_metric``: the Optuna trial's value, else from
``results.json`` or a CSV logger), then every benchmark × metric; the best trial by the sweeper's
``direction`` (else the metric's), and with optuna installed, the study read back from
``hydra.sweeper.storage``: trial states, best trial, parameter importances.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from html import escape
from itertools import groupby
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from faceprior import compare
from faceprior import compare_html as page
from faceprior.compare import HIGHER_IS_BETTER, MISSING, arrow, fmt, metric_label
from faceprior.compare_results import BenchmarkEntry, CompareError, load_results

OBJECTIVE = "objective"
#: a table column: ``(OBJECTIVE, optimized_metric)`` or ``(benchmark, metric)``
Column = tuple[str, str]


@dataclass
class Trial:
    """One job of the sweep; ``values`` holds the objective and the benchmark means."""

    number: int
    path: Path
    status: str
    overrides: dict[str, str]
    values: dict[Column, float] = field(default_factory=dict)
    objective_source: str | None = None


@dataclass
class Study:
    """What is known of the Optuna study behind a sweep."""

    name: str | None
    direction: str | None
    storage: str | None = None
    states: dict[str, int] | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_trial: int | None = None
    importances: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    #: trial number -> (params, value) of every trial in the storage
    trials: dict[int, tuple[dict[str, Any], float]] = field(default_factory=dict)


@dataclass
class Sweep:
    """The trials of one multirun folder, laid out as a table."""

    path: Path
    trials: list[Trial]
    fixed: dict[str, str]
    swept: list[str]
    objective: str | None
    direction: str
    columns: list[Column]
    higher: dict[Column, bool | None]
    study: Study | None = None
    notes: list[str] = field(default_factory=list)

    def cell(self, trial: Trial, column: Column) -> str:
        value = _finite(trial.values.get(column))
        return MISSING if value is None else fmt(value, column[1].split("/")[-1])

    def header(self, column: Column) -> str:
        label = column[1] if column[0] == OBJECTIVE else f"{column[0]} {metric_label(column[1])}"
        return label + arrow(self.higher.get(column))

    def bold(self, column: Column) -> set[int]:
        """Jobs holding the best rounded value of a column (none for unknown directions)."""
        higher = self.higher.get(column)
        cells = {t.number: self.cell(t, column) for t in self.trials}
        numbers = {n: float(v) for n, v in cells.items() if v != MISSING}
        if higher is None or not numbers:
            return set()
        target = max(numbers.values()) if higher else min(numbers.values())
        return {n for n, v in numbers.items() if v == target}

    @property
    def best(self) -> Trial | None:
        """The trial with the best (rounded) objective; the lowest job number on ties."""
        jobs = self.bold((OBJECTIVE, self.objective or ""))
        return next((t for t in self.trials if t.number in jobs), None)


def _read(path: Path, parse: Any = yaml.safe_load) -> Any:
    """A YAML (or, with ``parse=json.loads``, JSON) file's content; None when absent or broken."""
    try:
        return parse(path.read_text()) if path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _jobs(path: Path) -> list[Path]:
    """The numbered job folders of a multirun folder, in job order."""
    if not path.is_dir():
        raise CompareError(f"{path}: no such folder (expected a Hydra multirun folder)")
    numbered = [p for p in path.iterdir() if p.is_dir() and p.name.isdigit()]
    jobs = sorted(numbered, key=lambda p: int(p.name))
    if jobs:
        return jobs
    sweeps = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob("[0-9]*/.hydra")))
    hint = f"; sweeps inside it: {', '.join(sweeps[:5])}" if sweeps else ""
    raise CompareError(
        f"{path}: not a sweep: expected a Hydra multirun folder with numbered job folders "
        "(0/, 1/, …, each with .hydra/overrides.yaml), as `faceprior-train -m` writes under "
        f"logs/train/multiruns/<stamp>/{hint}"
    )


def _overrides(job: Path) -> dict[str, str]:
    pairs = (str(item).partition("=") for item in _read(job / ".hydra/overrides.yaml") or [])
    return {key: value for key, _, value in pairs}


def _logged(job: Path, name: str) -> tuple[float, str] | None:
    """A metric a job logged, from its results.json or the last value in a CSV logger's file."""
    metrics = (_read(job / "results.json", json.loads) or {}).get("metrics") or {}
    if isinstance(metrics.get(name), int | float):
        return float(metrics[name]), "results.json"
    for path in sorted(job.glob("*/version_*/metrics.csv"), reverse=True):
        with path.open(newline="") as f:
            found = [float(v) for row in csv.DictReader(f) if (v := row.get(name))]
        if found:
            return found[-1], path.relative_to(job).as_posix()
    return None


def _objective_direction(objective: str, direction: Any) -> tuple[bool | None, str]:
    if direction in ("maximize", "minimize"):
        return direction == "maximize", f"{direction} (the sweeper's direction)"
    higher = HIGHER_IS_BETTER.get(objective.split("/")[-1])
    if higher is None:
        return None, "direction unknown (no sweeper direction, not a known metric): no best"
    return higher, f"{'higher' if higher else 'lower'} is better (the metric's known direction)"


def load_sweep(path: str | Path) -> Sweep:
    """Read a multirun folder (see the module docstring), and its Optuna study when it has one."""
    path = Path(path)
    jobs = _jobs(path)
    first = next((j for j in jobs if (j / ".hydra/config.yaml").is_file()), jobs[0])
    config = _read(first / ".hydra/config.yaml") or {}
    hydra = (_read(first / ".hydra/hydra.yaml") or {}).get("hydra") or {}
    objective = config.get("optimized_metric") or None
    trials = [Trial(int(j.name), j, "", _overrides(j)) for j in jobs]
    study = load_study(path, hydra, config)
    notes: list[str] = []
    recorded = _recorded(study, trials)
    if study is not None and study.trials and not recorded:
        notes.append("the jobs' overrides do not match the study's trials: values from the files")
    by_bench: dict[str, list[BenchmarkEntry]] = {}
    for trial in trials:
        found = objective and (recorded.get(trial.number) or _logged(trial.path, objective))
        if objective and found:
            trial.values[(OBJECTIVE, objective)], trial.objective_source = found
        try:
            entries = load_results(trial.path)
        except CompareError:  # no results: the status says so
            entries = []
        for entry in entries:
            by_bench.setdefault(entry.benchmark, []).append(entry)
            for metric, value in entry.means.items():
                trial.values[(entry.benchmark, metric)] = value
        finished = entries or any(map(math.isfinite, trial.values.values()))
        failed = (trial.path / "FAILED").is_file()
        trial.status = "FAILED" if failed else ("ok" if finished else "missing results")

    keys = list(dict.fromkeys(k for t in trials for k in t.overrides))
    swept = [k for k in keys if len({t.overrides.get(k) for t in trials}) > 1]
    fixed = {k: trials[0].overrides[k] for k in keys if k not in swept}
    columns: list[Column] = []
    higher: dict[Column, bool | None] = {}
    direction = "no objective (optimized_metric is not set)"
    if objective:
        columns.append((OBJECTIVE, objective))
        given = study.direction if study else (hydra.get("sweeper") or {}).get("direction")
        higher[columns[0]], direction = _objective_direction(objective, given)
        if all(columns[0] not in t.values for t in trials):
            notes.append(f"no job recorded the objective {objective!r}")
    for bench, present in by_bench.items():
        names = {k for e in present for k in e.means if not k.startswith("lq_")}
        for metric in compare._metric_order(names):
            columns.append((bench, metric))
            higher[(bench, metric)] = compare._direction(metric, present)
    return Sweep(path, trials, fixed, swept, objective, direction, columns, higher, study, notes)


def _open_study(study: Study, sweep_dir: Path, hydra: dict[str, Any], config: Any) -> Any:
    """Load the study from the saved ``hydra.sweeper.storage``, ``paths.log_dir`` from the folder."""
    sweeper = hydra.get("sweeper") or {}
    if not sweeper.get("storage"):
        raise LookupError("hydra.sweeper.storage is not set (the study was in memory only)")
    text = re.sub(r"\$\{faceprior\.ensure_dir:(\$\{[^}]*\}|[^}]*)\}", r"\1", sweeper["storage"])
    paths = dict(config.get("paths") or {})
    template = str((hydra.get("sweep") or {}).get("dir", ""))
    if template.startswith("${paths.log_dir}/"):
        depth = len(template.removeprefix("${paths.log_dir}/").split("/"))
        paths["log_dir"] = str(sweep_dir.resolve().parents[depth - 1])
    context = {**config, "paths": paths, "hydra": {"sweeper": sweeper}, "_url": text}
    study.storage = str(OmegaConf.create(context)["_url"])
    if study.storage.startswith("sqlite:///"):
        cwd = Path((hydra.get("runtime") or {}).get("cwd", "."))
        db = cwd / study.storage.removeprefix("sqlite:///")
        study.storage = f"sqlite:///{db}"
        if not db.is_file():
            raise LookupError(f"the study's sqlite file {db} is not there")
    try:
        import optuna
    except ImportError as err:
        raise LookupError("optuna is not installed (pip install optuna)") from err
    return optuna.load_study(study_name=study.name, storage=study.storage)


def load_study(sweep_dir: Path, hydra: dict[str, Any], config: Any) -> Study | None:
    """The sweep's Optuna study from ``optimization_results.yaml`` and, if reachable, its storage."""
    sweeper = hydra.get("sweeper") or {}
    results = _read(sweep_dir / "optimization_results.yaml") or {}
    if "optuna" not in str(sweeper.get("_target_", "")) and results.get("name") != "optuna":
        return None
    study = Study(sweeper.get("study_name"), sweeper.get("direction"))
    study.best_params, best = dict(results.get("best_params") or {}), results.get("best_value")
    study.best_value = float(best) if isinstance(best, int | float) else None
    if not results:
        study.notes.append("no optimization_results.yaml (the sweep did not finish?)")
    try:
        loaded = _open_study(study, sweep_dir, hydra, config)
    except Exception as err:  # a note, not an error: the table stands without the study
        study.notes.append(f"no trial states: {err}")
        return study
    trials = loaded.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    study.states = {s: states.get(s, 0) for s in ("COMPLETE", "FAIL", "PRUNED")} | dict(states)
    study.direction = "/".join(d.name.lower() for d in loaded.directions)
    study.trials = {t.number: (t.params, math.nan if t.value is None else t.value) for t in trials}
    if len(loaded.directions) == 1 and states.get("COMPLETE"):
        best = loaded.best_trial
        study.best_value, study.best_params, study.best_trial = best.value, best.params, best.number
    if states.get("COMPLETE", 0) < 2:
        study.notes.append("parameter importance needs at least 2 complete trials")
        return study
    try:
        from optuna.importance import get_param_importances

        importances = get_param_importances(loaded)
        study.importances = {str(k): float(v) for k, v in importances.items()}
    except Exception as err:
        study.notes.append(f"parameter importance not computed: {type(err).__name__}: {err}")
    return study


def _recorded(study: Study | None, trials: list[Trial]) -> dict[int, tuple[float, str]]:
    """``{job: (value, source)}`` from the Optuna trials whose parameters are the jobs' overrides:
    the newest run of consecutive trials that matches (a resumed study holds earlier sweeps)."""
    if study is None or not study.trials:
        return {}

    def matches(trial: Trial, number: int) -> bool:
        params = study.trials.get(number, ({}, math.nan))[0]
        return bool(params) and all(_same(trial.overrides.get(k), v) for k, v in params.items())

    for offset in range(max(study.trials) - trials[-1].number, -1, -1):
        if all(matches(t, t.number + offset) for t in trials):
            found = {t.number: t.number + offset for t in trials}
            return {n: (study.trials[k][1], f"optuna trial {k}") for n, k in found.items()}
    return {}


def _same(override: str | None, param: Any) -> bool:
    try:
        return override == str(param) or math.isclose(float(override or "nan"), float(param))
    except (TypeError, ValueError):
        return False


def _grid(sweep: Sweep) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, rows (job number first) and, per cell after the first, whether it is bold."""
    header = ["Job", "Status", *sweep.swept, *map(sweep.header, sweep.columns)]
    bold = {c: sweep.bold(c) for c in sweep.columns}
    rows, marks = [], []
    for t in sweep.trials:
        keys = [t.overrides.get(k, MISSING) for k in sweep.swept]
        rows.append([str(t.number), t.status, *keys, *(sweep.cell(t, c) for c in sweep.columns)])
        marks.append([False] * (1 + len(keys)) + [t.number in bold[c] for c in sweep.columns])
    return header, rows, marks


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in values.items()) or "(none)"


def summary_lines(sweep: Sweep) -> list[str]:
    """The Markdown list above the table: jobs, objective, best trial, fixed overrides."""
    counts = Counter(t.status for t in sweep.trials)
    shown = ", ".join(f"{s} {counts[s]}" for s in ("ok", "FAILED", "missing results") if counts[s])
    lines = [f"- folder: `{sweep.path}`", f"- jobs: {len(sweep.trials)} ({shown})"]
    lines.append(f"- objective: `{sweep.objective}`, {sweep.direction}" if sweep.objective else "")
    best = sweep.best
    if best is not None:
        value = sweep.cell(best, (OBJECTIVE, sweep.objective or ""))
        swept = {k: best.overrides[k] for k in sweep.swept if k in best.overrides}
        lines.append(f"- best: job {best.number} ({sweep.objective} {value}): {_pairs(swept)}")
    elif sweep.objective:
        lines.append("- best: none (no job has a value of the objective with a known direction)")
    lines.append(f"- fixed overrides: {_pairs(sweep.fixed)}")
    return [line for line in lines if line]


def study_lines(sweep: Sweep) -> list[str]:
    """The Markdown list of the Optuna study (empty without a study)."""
    if (study := sweep.study) is None:
        return []
    lines = [f"- study: `{study.name}`" + (f", storage `{study.storage}`" if study.storage else "")]
    lines.append(f"- direction: {study.direction or 'unknown'}")
    if study.states is not None:
        states = ", ".join(f"{k} {v}" for k, v in study.states.items())
        lines.append(f"- trials: {sum(study.states.values())} ({states})")
    if study.best_value is not None:
        trial = "" if study.best_trial is None else f"trial {study.best_trial}, "
        value = fmt(study.best_value, (sweep.objective or "").split("/")[-1])
        lines.append(f"- best: {trial}value {value}: {_pairs(study.best_params)}")
    if study.importances:
        shown = ", ".join(f"`{k}` {v:.3f}" for k, v in study.importances.items())
        lines.append(f"- parameter importance: {shown}")
    return lines + [f"- {note}" for note in study.notes]


def to_markdown(sweep: Sweep) -> str:
    """``sweep.md``: the summary, the table, the study, the notes."""
    header, rows, bold = _grid(sweep)
    text = f"# Sweep {sweep.path.name}\n\n" + "\n".join(summary_lines(sweep)) + "\n\n"
    text += page.markdown_table(header, rows, bold)
    if sweep.study is not None:
        text += "\n## Optuna study\n\n" + "\n".join(study_lines(sweep)) + "\n"
    return text + "".join(f"\n> {note}\n" for note in sweep.notes)


def to_latex(sweep: Sweep) -> str:
    """``sweep.tex``: the table as a booktabs ``tabular``, grouped: overrides, objective, benchmarks."""
    _, rows, bold = _grid(sweep)
    names = ["", *(["overrides"] * len(sweep.swept)), *(b for b, _ in sweep.columns)]
    groups = [(name, len(list(run))) for name, run in groupby(names)]
    heads: list[tuple[str, bool | None]] = [("status", None), *((k, None) for k in sweep.swept)]
    heads += [(metric_label(c[1]), sweep.higher.get(c)) for c in sweep.columns]
    text = page.latex_table(groups, heads, rows, bold)
    return text.replace("\\toprule\nMethod &", "\\toprule\nJob &", 1)


def write_csv(sweep: Sweep, path: Path) -> None:
    """``sweep.csv``: a row per job: number, status, swept overrides, unrounded values, best."""
    names = [c[1] if c[0] == OBJECTIVE else f"{c[0]}/{c[1]}" for c in sweep.columns]
    best = sweep.best
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "status", *sweep.swept, *names, "best"])
        for t in sweep.trials:
            values = [_finite(t.values.get(c)) for c in sweep.columns]
            shown = ["" if v is None else repr(v) for v in values]
            keys = [t.overrides.get(k, "") for k in sweep.swept]
            writer.writerow([t.number, t.status, *keys, *shown, t is best])


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_json(sweep: Sweep) -> dict[str, Any]:
    """``sweep.json``: the trials (overrides, status, unrounded values; NaN as null), best, study."""
    column = (OBJECTIVE, sweep.objective or "")
    trials: list[dict[str, Any]] = []
    for t in sweep.trials:
        metrics = {f"{b}/{m}": _finite(v) for (b, m), v in t.values.items() if b != OBJECTIVE}
        trial = {"job": t.number, "path": t.path.name, "status": t.status}
        trial |= {"overrides": t.overrides, "objective": _finite(t.values.get(column))}
        trials.append(trial | {"objective_source": t.objective_source, "metrics": metrics})
    best, study = sweep.best, None if sweep.study is None else asdict(sweep.study)
    if study is not None:
        del study["trials"]
        study["best_value"] = _finite(study["best_value"])
    head = {"name": sweep.objective, "higher_is_better": sweep.higher.get(column)}
    out: dict[str, Any] = {"sweep": str(sweep.path), "objective": head, "swept": sweep.swept}
    out |= {"fixed_overrides": sweep.fixed, "trials": trials, "study": study, "notes": sweep.notes}
    return out | {"best": None if best is None else trials[sweep.trials.index(best)]}


def to_html(sweep: Sweep) -> str:
    """``sweep.html``: the summary, the table, the study, the objective per job (inline SVG)."""

    def items(lines: list[str]) -> str:
        text = "".join(f"<li>{escape(x[2:])}</li>" for x in lines)
        return f"<ul>{text.replace('`', '')}</ul>"

    body = items(summary_lines(sweep)) + page.html_table(*_grid(sweep))
    if sweep.study is not None:
        body += "\n<h2>Optuna study</h2>\n" + items(study_lines(sweep))
    column = (OBJECTIVE, sweep.objective or "")
    scored = [t for t in sweep.trials if _finite(t.values.get(column)) is not None]
    points = [page.Point(str(t.number), t.number, t.values[column]) for t in scored]
    plot = page.Scatter("job", sweep.header(column), points)
    sections = [page.Section("Objective per job", plot)] if points else []
    return page.render_page(f"Sweep {sweep.path.name}", body, sweep.notes, sections)


def write_outputs(sweep: Sweep, out_dir: str | Path) -> dict[str, Path]:
    """Write ``sweep.{md,tex,csv,html,json}`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"sweep.{kind}" for kind in ("md", "tex", "csv", "html", "json")}
    for kind, render in (("md", to_markdown), ("tex", to_latex), ("html", to_html)):
        paths[kind].write_text(render(sweep))
    write_csv(sweep, paths["csv"])
    paths["json"].write_text(json.dumps(to_json(sweep), indent=2, default=str) + "\n")
    return paths


def main(sweep_dir: str | Path, out_dir: str | Path = "compare") -> int:
    """``faceprior-compare --sweep``: write the files and print the Markdown; 2 on a bad folder."""
    try:
        sweep = load_sweep(sweep_dir)
        paths = write_outputs(sweep, out_dir)
    except CompareError as err:
        print(f"faceprior-compare: error: {err}", file=sys.stderr)
        return 2
    print(to_markdown(sweep), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
