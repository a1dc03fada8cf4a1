"""Launcher configs (optional extra) and the sweep presets compose; a joblib multirun runs two jobs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from faceprior.utils.config import CONFIG_DIR
from tests.conftest import TINY


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (optional extra: pip install -e '.[launchers]')")


@pytest.mark.parametrize(
    "preset,experiment,keys",
    [
        ("gfpgan_loss_weights", "gfpgan_tiny", ["model.generator_losses.pixel.weight"]),
        (
            "gpen_alpha_beta",
            "gpen_paper_ffhq512",
            ["model.generator_losses.feature_matching.weight"],
        ),
    ],
)
def test_sweep_presets_target_existing_keys(preset: str, experiment: str, keys: list[str]) -> None:
    from omegaconf import OmegaConf

    cfg = _compose([f"experiment={experiment}", f"hparams_search={preset}"])
    params = cfg.hydra.sweeper.params
    assert set(keys) <= set(params)
    for key in params:  # every swept key exists in the composed config (no typo sweeps)
        assert OmegaConf.select(cfg, key) is not None, key
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.optimized_metric == "val/psnr"


def test_slurm_launcher_config() -> None:
    _needs("hydra_plugins.hydra_submitit_launcher")
    cfg = _compose(["hydra/launcher=slurm"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    # one task per GPU: what Lightning's SLURM environment needs for DDP
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4


@pytest.mark.slow
def test_local_parallel_launcher_runs_two_jobs(tmp_path: Path, data_root: Path) -> None:
    _needs("hydra_plugins.hydra_joblib_launcher")
    cfg = _compose(["hydra/launcher=local_parallel"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    args = [
        "-m", "hydra/launcher=local_parallel", "experiment=quickstart", "seed=1,2", *TINY,
        "test=false", "logger=csv", f"paths.data_dir={data_root}",
    ]  # fmt: skip
    env = dict(os.environ, WANDB_MODE="offline", FACEPRIOR_ROOT=str(tmp_path), OMP_NUM_THREADS="1")
    cmd = [str(Path(sys.executable).parent / "faceprior-train"), *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    done = sorted(p.name for p in sweep.iterdir() if (p / "checkpoints" / "last.ckpt").is_file())
    assert len(done) == 2, sorted(p.name for p in sweep.iterdir())
