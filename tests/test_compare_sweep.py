"""faceprior-compare --sweep on fake Hydra multirun folders (golden table, CSV, HTML, JSON,
Optuna study in sqlite, errors) and, slow, on a real two-job ``faceprior-train -m``."""

from __future__ import annotations

import csv
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from faceprior.compare_cli import main
from faceprior.compare_results import CompareError
from faceprior.compare_sweep import load_sweep, to_latex, to_markdown

STAMP = "2026-01-01_00-00-00_abc123"
BENCH = "celeba_test"
LR = "model.optimizers.generator.lr"
FIXED = ["experiment=quickstart", "trainer.max_steps=2"]
STORAGE = "sqlite:///${faceprior.ensure_dir:${paths.log_dir}}/optuna_${hydra.sweeper.study_name}.db"
SWEEP_DIR = "${paths.log_dir}/${task_name}/multiruns/${now:%Y-%m-%d_%H-%M-%S}_${faceprior.uid:}"
BASIC = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}


def _yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def _job(sweep: Path, number: int, lr: str, sweeper: dict[str, Any]) -> Path:
    job = sweep / str(number)
    _yaml(job / ".hydra" / "overrides.yaml", [f"{LR}={lr}", *FIXED])
    config = {"optimized_metric": "val/psnr", "paths": {"log_dir": "${paths.root_dir}/logs"}}
    _yaml(job / ".hydra" / "config.yaml", config)
    hydra = {"sweeper": sweeper, "sweep": {"dir": SWEEP_DIR}, "runtime": {"cwd": str(sweep)}}
    _yaml(job / ".hydra" / "hydra.yaml", {"hydra": hydra})
    return job


def make_sweep(root: Path, sweeper: dict[str, Any] | None = None) -> Path:
    """Four jobs: 0 eval-style results + objective in results.json, 1 training results.json +
    objective in a CSV log, 2 FAILED, 3 without any results."""
    sweeper = sweeper or BASIC
    sweep = root / "logs" / "train" / "multiruns" / STAMP
    job0 = _job(sweep, 0, "0.001", sweeper)
    means = {"psnr": 25.1, "ssim": 0.71, "lq_psnr": 20.0}
    results = {"benchmark": BENCH, "means": means, "protocol": {}, "per_image": []}
    (job0 / "results").mkdir()
    (job0 / "results" / f"{BENCH}.json").write_text(json.dumps(results))
    (job0 / "results.json").write_text(json.dumps({"metrics": {"val/psnr": 24.0}}))
    job1 = _job(sweep, 1, "0.002", sweeper)
    metrics = {f"test/{BENCH}/psnr": 26.0, f"test/{BENCH}/ssim": 0.70, "other/x": 1.0}
    (job1 / "results.json").write_text(json.dumps({"metrics": metrics}))
    log = job1 / "csv" / "version_0" / "metrics.csv"
    log.parent.mkdir(parents=True)
    log.write_text("step,train/loss,val/psnr\n0,0.5,\n1,,25.0\n2,0.4,\n3,,25.5\n")
    _job(sweep, 2, "0.003", sweeper)
    (sweep / "2" / "FAILED").write_text("Traceback ...")
    _job(sweep, 3, "0.004", sweeper)
    return sweep


TABLE = """\
| Job | Status | model.optimizers.generator.lr | val/psnr↑ | celeba_test PSNR↑ | celeba_test SSIM↑ |
|---|---|---|---|---|---|
| 0 | ok | 0.001 | 24.00 | 25.10 | **0.7100** |
| 1 | ok | 0.002 | **25.50** | **26.00** | 0.7000 |
| 2 | FAILED | 0.003 | — | — | — |
| 3 | missing results | 0.004 | — | — | — |
"""


def test_golden_markdown_best_and_latex(tmp_path: Path) -> None:
    sweep = load_sweep(make_sweep(tmp_path))
    assert sweep.swept == [LR]
    assert sweep.fixed == {"experiment": "quickstart", "trainer.max_steps": "2"}
    assert sweep.best is not None and sweep.best.number == 1
    assert sweep.study is None and sweep.notes == []
    assert to_markdown(sweep) == (
        f"# Sweep {STAMP}\n\n- folder: `{sweep.path}`\n"
        "- jobs: 4 (ok 2, FAILED 1, missing results 1)\n"
        "- objective: `val/psnr`, higher is better (the metric's known direction)\n"
        f"- best: job 1 (val/psnr 25.50): `{LR}=0.002`\n"
        "- fixed overrides: `experiment=quickstart`, `trainer.max_steps=2`\n\n" + TABLE
    )
    sources = [t.objective_source for t in sweep.trials]
    assert sources == ["results.json", "csv/version_0/metrics.csv", None, None]
    tex = to_latex(sweep)
    assert "Job & \\multicolumn{1}{c}{} & \\multicolumn{1}{c}{overrides}" in tex
    assert "\\multicolumn{1}{c}{objective} & \\multicolumn{2}{c}{celeba\\_test}" in tex
    assert "1 & ok & 0.002 & \\textbf{25.50} & \\textbf{26.00} & 0.7000 \\\\" in tex
    assert "3 & missing results & 0.004 & -- & -- & -- \\\\" in tex


def test_cli_writes_csv_html_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    assert main(["--sweep", str(make_sweep(tmp_path)), "--out", str(out)]) == 0
    assert TABLE in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        f"sweep.{k}" for k in ("csv", "html", "json", "md", "tex")
    ]
    with (out / "sweep.csv").open() as f:
        rows = list(csv.reader(f))
    header = ["job", "status", LR, "val/psnr", f"{BENCH}/psnr", f"{BENCH}/ssim", "best"]
    assert rows[0] == header
    assert rows[1:] == [
        ["0", "ok", "0.001", "24.0", "25.1", "0.71", "False"],
        ["1", "ok", "0.002", "25.5", "26.0", "0.7", "True"],
        ["2", "FAILED", "0.003", "", "", "", "False"],
        ["3", "missing results", "0.004", "", "", "", "False"],
    ]
    html = (out / "sweep.html").read_text()
    assert "<b>25.50</b>" in html and "<td>missing results</td>" in html
    assert "Objective per job" in html and html.count("<circle") == 2  # jobs 0 and 1
    data = json.loads((out / "sweep.json").read_text())
    assert [t["status"] for t in data["trials"]] == ["ok", "ok", "FAILED", "missing results"]
    assert data["best"]["job"] == 1 and data["best"]["overrides"][LR] == "0.002"
    assert data["trials"][0]["metrics"] == {f"{BENCH}/psnr": 25.1, f"{BENCH}/ssim": 0.71} | {
        f"{BENCH}/lq_psnr": 20.0
    }
    assert data["trials"][2]["objective"] is None and data["trials"][2]["metrics"] == {}
    assert data["objective"] == {"name": "val/psnr", "higher_is_better": True}
    assert data["study"] is None and data["swept"] == [LR]


def test_optimization_results_without_storage(tmp_path: Path) -> None:
    sweeper = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"}
    sweeper |= {"direction": "minimize", "study_name": "demo", "storage": None}
    sweep_dir = make_sweep(tmp_path, sweeper)
    results = {"name": "optuna", "best_params": {LR: 0.001}, "best_value": 24.0}
    _yaml(sweep_dir / "optimization_results.yaml", results)
    sweep = load_sweep(sweep_dir)
    assert sweep.best is not None and sweep.best.number == 0  # minimize
    assert sweep.direction == "minimize (the sweeper's direction)"
    study = sweep.study
    assert study is not None and study.states is None and study.best_params == {LR: 0.001}
    text = to_markdown(sweep)
    assert "| 0 | ok | 0.001 | **24.00** |" in text
    assert "## Optuna study\n\n- study: `demo`\n- direction: minimize\n" in text
    assert f"- best: value 24.00: `{LR}=0.001`\n" in text
    assert "- no trial states: hydra.sweeper.storage is not set" in text


def test_optuna_study_in_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    optuna = pytest.importorskip("optuna", reason="optuna (the optional sweeper extra) is absent")
    sweeper = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"}
    sweeper |= {"direction": "maximize", "study_name": "demo", "storage": STORAGE}
    sweep_dir = make_sweep(tmp_path, sweeper)
    db = tmp_path / "logs" / "optuna_demo.db"
    study = optuna.create_study(study_name="demo", storage=f"sqlite:///{db}", direction="maximize")
    space = {LR: optuna.distributions.UniformDistribution(1e-4, 1e-2)}
    state = optuna.trial.TrialState
    # trial 0 is an earlier sweep of the resumed study (same lr as job 0); jobs 0-3 are trials 1-4
    with warnings.catch_warnings():  # create_trial / add_trial are "experimental" in optuna 2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for lr, value in (
            (0.001, 10.0),
            (0.001, 12.0),
            (0.002, 13.0),
            (0.003, None),
            (0.004, 11.0),
        ):
            done = state.COMPLETE if value is not None else state.FAIL
            trial = optuna.trial.create_trial(
                params={LR: lr}, distributions=space, value=value, state=done
            )
            study.add_trial(trial)

    sweep = load_sweep(sweep_dir)
    values = [t.values.get(("objective", "val/psnr")) for t in sweep.trials]
    assert values[:3] == [12.0, 13.0, pytest.approx(float("nan"), nan_ok=True)]
    assert values[3] == 11.0  # no result files, but the study has the value
    assert [t.objective_source for t in sweep.trials][1] == "optuna trial 2"
    assert [t.status for t in sweep.trials] == ["ok", "ok", "FAILED", "ok"]
    assert sweep.best is not None and sweep.best.number == 1
    found = sweep.study
    assert found is not None and found.storage == f"sqlite:///{db}"
    assert found.states == {"COMPLETE": 4, "FAIL": 1, "PRUNED": 0}
    assert found.best_trial == 2 and found.best_value == 13.0 and found.direction == "maximize"
    # fANOVA importances need scikit-learn: either they are there or the note says why not
    assert found.importances or any("importance not computed" in n for n in found.notes)
    text = to_markdown(sweep)
    assert "- trials: 5 (COMPLETE 4, FAIL 1, PRUNED 0)\n" in text
    assert f"- best: trial 2, value 13.00: `{LR}=0.002`\n" in text

    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the extra were not installed
    missing = load_sweep(sweep_dir)
    assert missing.study is not None and missing.study.states is None
    assert any("optuna is not installed" in n for n in missing.study.notes)
    assert [t.objective_source for t in missing.trials][:2] == [
        "results.json",
        "csv/version_0/metrics.csv",
    ]


def test_not_a_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = make_sweep(tmp_path)
    run = tmp_path / "logs" / "train" / "runs" / "single"
    run.mkdir(parents=True)
    with pytest.raises(CompareError, match=r"single: not a sweep: .*numbered job folders"):
        load_sweep(run)
    with pytest.raises(CompareError, match=f"sweeps inside it: {STAMP}"):
        load_sweep(sweep_dir.parent)
    assert main(["--sweep", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    for argv in ([str(sweep_dir), "--sweep", str(sweep_dir)], ["--sweep", "x", "--names", "a"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


@pytest.mark.slow
def test_real_multirun(tmp_path: Path, data_root: Path) -> None:
    from tests.test_sweeps import _run

    overrides = ["experiment=quickstart", "trainer.max_steps=2", "logger=csv"]
    _run(["-m", *overrides, f"{LR}=1e-3,2e-3"], tmp_path, data_root)
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert main(["--sweep", str(sweep_dir), "--out", str(tmp_path / "cmp")]) == 0
    data = json.loads((tmp_path / "cmp" / "sweep.json").read_text())
    assert data["swept"] == [LR] and data["fixed_overrides"]["experiment"] == "quickstart"
    assert [t["status"] for t in data["trials"]] == ["ok", "ok"]
    assert all(isinstance(t["objective"], float) for t in data["trials"])
    assert {t["objective_source"] for t in data["trials"]} == {"csv/version_0/metrics.csv"}
    assert "synthetic_test/psnr" in data["trials"][0]["metrics"]
    assert data["best"]["job"] in (0, 1)
