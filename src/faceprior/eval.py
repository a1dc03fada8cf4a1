"""``faceprior-eval``: test a checkpoint on the configured benchmarks and write ``results.md``.

Example::

    faceprior-eval experiment=quickstart ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    faceprior-eval model=official weights=GFPGANv1.4 metrics=paper benchmark=[celeba_test] preflight=only

The preflight (:mod:`faceprior.preflight`) checks the benchmark folders, every weights file and
``ckpt_path`` first and reports all problems at once; ``preflight=only`` prints the report and exits.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from faceprior.preflight import run_preflight
from faceprior.runs import benchmark_configs, build_run, exit_after_preflight
from faceprior.utils.config import CONFIG_DIR, setup_config_system
from faceprior.utils.runtime import cli_errors, resolve_checkpoint, task_wrapper

log = logging.getLogger("faceprior")

setup_config_system()


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``trainer.test`` with ``cfg.ckpt_path``; returns ``(metrics, objects)``."""
    if cfg.get("stages"):
        raise ValueError(
            f"this experiment trains stages {list(cfg.stages)} one after the other; evaluate one "
            "stage's checkpoint with that stage's experiment, e.g. faceprior-eval "
            "experiment=gpen_paper_ffhq512 ckpt_path=<run>/gpen/checkpoints/last.ckpt"
        )
    official = str(OmegaConf.select(cfg, "model._target_", default="")).endswith("OfficialRestorer")
    if official and not OmegaConf.is_missing(cfg, "ckpt_path") and cfg.get("ckpt_path"):
        raise ValueError(
            "model=official evaluates the released weights (model.weights); drop ckpt_path"
        )
    if not official and OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ValueError(
            "faceprior-eval needs ckpt_path=<file.ckpt> (or ckpt_path=latest), or "
            "model=official model.weights=<registry name> for released weights"
        )
    only = run_preflight(cfg, app="faceprior-eval")
    if only is not None:
        return {}, {"preflight": only}
    if not benchmark_configs(cfg):
        raise ValueError("no benchmark to evaluate on: choose benchmarks with benchmark=[...]")
    if official:
        # released weights by name: nothing to restore from a training checkpoint
        ckpt_path = None
    else:
        # ckpt_path=latest: the newest checkpoint of this experiment's training runs
        task = "train" if cfg.get("task_name") == "eval" else None
        ckpt_path = resolve_checkpoint(cfg, app="faceprior-eval", task_name=task)
        if ckpt_path is None:
            raise ValueError("faceprior-eval needs ckpt_path=<file.ckpt> (or ckpt_path=latest)")
    run = build_run(cfg)
    run["trainer"].test(model=run["model"], datamodule=run["datamodule"], ckpt_path=ckpt_path)
    return dict(run["trainer"].callback_metrics), run


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
@cli_errors
def main(cfg: DictConfig) -> None:
    _, run = evaluate(cfg)
    if "preflight" in run:
        exit_after_preflight(run["preflight"])


if __name__ == "__main__":
    main()
