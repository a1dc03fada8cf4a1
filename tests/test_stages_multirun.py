"""Stages of one experiment as the jobs of a multirun, compared once every job has ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from faceprior.stages import selected_stages
from faceprior.stages_multirun import compare_sweep_stages, stage_runs
from tests.conftest import TINY

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_stage_selects_a_subset_in_config_order() -> None:
    cfg = OmegaConf.create({"stages": {"prior": {}, "gpen": {}, "extra": {}}, "stage": None})
    assert selected_stages(cfg) == ["prior", "gpen", "extra"]
    cfg.stage = "gpen"
    assert selected_stages(cfg) == ["gpen"]
    cfg.stage = ["extra", "prior"]
    assert selected_stages(cfg) == ["prior", "extra"]
    cfg.stage = "nope"
    with pytest.raises(ValueError, match=r"no stage \['nope'\]; this experiment's stages"):
        selected_stages(cfg)


def _job(sweep: Path, num: int, stage: str, psnr: float) -> None:
    run = sweep / str(num) / stage
    (run / "results").mkdir(parents=True)
    payload = {
        "benchmark": "synthetic_test",
        "means": {"psnr": psnr, "lq_psnr": 18.0},
        "protocol": {"benchmark": {"name": "synthetic_test"}},
        "per_image": [],
    }
    (run / "results" / "synthetic_test.json").write_text(json.dumps(payload))
    summary = {stage: {"output_dir": str(run), "metrics": {}}}
    (sweep / str(num) / "stages.json").write_text(json.dumps(summary))


def test_multirun_comparison_follows_the_stage_order(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _job(sweep, 0, "gpen", 21.0)  # job order need not follow the stage order
    _job(sweep, 1, "unet", 20.0)
    (sweep / "2").mkdir()  # a job that failed before writing anything
    assert set(stage_runs(sweep)) == {"gpen", "unet"}
    config = OmegaConf.create(
        {
            "stages": {"unet": {}, "gfpgan": {}, "gpen": {}},
            "compare": {"names": ["U-Net", "GFP-GAN", "GPEN"], "crops": 0},
        }
    )
    files = compare_sweep_stages(config, sweep)
    assert files is not None
    rows = (sweep / "compare" / "compare.md").read_text().splitlines()[2:5]
    assert [r.split("|")[1].strip() for r in rows] == ["LQ input", "U-Net", "GPEN"]


@pytest.mark.slow
def test_one_job_per_stage_then_one_comparison(tmp_path: Path, data_root: Path) -> None:
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "two_methods.yaml").write_text(
        """# @package _global_
stages:
  slow: {overrides: [experiment=quickstart, model.optimizers.generator.lr=1e-4]}
  fast: {overrides: [experiment=quickstart, model.optimizers.generator.lr=3e-3]}
stage_overrides: [seed=7]
stage: null
compare: {names: [Slow, Fast], crops: 1}
hydra:
  callbacks:
    compare_stages: {_target_: faceprior.stages_multirun.CompareAfterMultirun}
"""
    )
    env = dict(os.environ, WANDB_MODE="offline", FACEPRIOR_ROOT=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    cmd = [
        str(Path(sys.executable).parent / "faceprior-train"),
        "-m",
        *TINY,
        f"paths.data_dir={data_root}",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "experiment=two_methods",
        "stage=slow,fast",
        "logger=csv",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert (sweep / "0" / "slow" / "results" / "synthetic_test.json").is_file()
    assert (sweep / "1" / "fast" / "results" / "synthetic_test.json").is_file()
    assert not (sweep / "0" / "fast").exists()  # each job ran its own stage only
    md = (sweep / "compare" / "compare.md").read_text()
    rows = md.splitlines()[2:5]
    assert [r.split("|")[1].strip() for r in rows] == ["LQ input", "Slow", "Fast"]
    assert "LQ inputs differ" not in md  # the same data, degradation and seed in both jobs
    assert (sweep / "compare" / "compare.html").is_file()
