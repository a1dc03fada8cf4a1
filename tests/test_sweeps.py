"""Multirun, Optuna and simulated DDP through the real console scripts (slow: several processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY

BIN = Path(sys.executable).parent


def _run(
    args: list[str], cwd: Path, data_root: Path, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", FACEPRIOR_ROOT=str(cwd))
    flags = [a for a in args if a.startswith("-")]  # Hydra flags (-m) before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    cmd = [str(BIN / "faceprior-train"), *flags, *TINY, f"paths.data_dir={data_root}", *overrides]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_multirun_two_jobs_two_wandb_runs(tmp_path: Path, data_root: Path) -> None:
    _run(
        [
            "-m",
            "experiment=quickstart",
            "trainer.max_steps=2",
            "model.optimizers.generator.lr=1e-3,2e-3",
        ],
        tmp_path,
        data_root,
    )
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    run_ids = set()
    for job in jobs:
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"{job} should hold exactly one W&B run"
        run_ids.add(runs[0].name.rsplit("-", 1)[-1])
        assert (job / "results.md").is_file()
    assert len(run_ids) == 2


@pytest.mark.slow
def test_multirun_continues_past_a_failed_job(tmp_path: Path, data_root: Path) -> None:
    # the second job fails at instantiation (even kernel size), the third still runs
    _run(
        [
            "-m",
            "experiment=quickstart",
            "trainer.max_steps=2",
            "logger=csv",
            "degradation.ops.blur.kernel_size=21,20,11",
        ],
        tmp_path,
        data_root,
    )
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert (sweep / "1" / "FAILED").is_file()
    assert (sweep / "2" / "results.md").is_file()


@pytest.mark.slow
def test_optuna_two_trials_with_sqlite(tmp_path: Path, data_root: Path) -> None:
    _run(
        [
            "experiment=quickstart",
            "hparams_search=quickstart_optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.n_startup_trials=2",
            "trainer.max_steps=2",
            "logger=csv",
        ],
        tmp_path,
        data_root,
    )
    assert (tmp_path / "logs" / "optuna_quickstart.db").is_file()
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    text = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in text and "model.optimizers.generator.lr" in text


@pytest.mark.slow
def test_ddp_sim_two_processes(tmp_path: Path, data_root: Path) -> None:
    proc = _run(
        [
            "experiment=quickstart",
            "trainer=ddp_sim",
            "trainer.max_steps=2",
            "logger=csv",
            "data.batch_size=4",
        ],
        tmp_path,
        data_root,
    )
    assert "error" not in proc.stderr.lower()
    run = next((tmp_path / "logs" / "train" / "runs").iterdir())
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "| LQ input |" in (run / "results.md").read_text()
    metrics_csv = next(run.glob("csv/version_*/metrics.csv")).read_text()
    assert (
        "train/loss" in metrics_csv.splitlines()[0]
    )  # training rows survive the spawned test stage
    assert "test/synthetic_test/psnr" in metrics_csv.splitlines()[0]
    hparams = yaml.safe_load(next(run.glob("csv/version_*/hparams.yaml")).read_text())
    assert hparams["data/world_size"] == 2
    assert hparams["data/batch_size_global"] == 4 and hparams["data/batch_size_per_device"] == 2
