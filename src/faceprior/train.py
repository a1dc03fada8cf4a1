"""``faceprior-train``: compose the config, train, then test the configured checkpoint.

Examples::

    faceprior-train experiment=quickstart
    faceprior-train -m experiment=quickstart model.optimizers.generator.lr=1e-3,2e-3
    faceprior-train experiment=quickstart ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    faceprior-train experiment=gpen_two_stage_tiny   # stage 1 (prior), then stage 2 (GPEN)

Before anything is built, the preflight (:mod:`faceprior.preflight`) checks every file, folder
and value the config needs and reports all problems at once (exit status 1);
``faceprior-train ... preflight=only`` prints that report and exits (0: ready). ``ckpt_path`` is then
verified: a file that is not a checkpoint of this experiment's module ends the run with one line
naming the file and what it is (exit status 1). With no benchmark configured (``data=folder``
without ``data.val_root``), the test stage is skipped with a warning.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from faceprior.preflight import run_preflight
from faceprior.runs import build_datamodule, build_run, exit_after_preflight, test_checkpoint
from faceprior.stages import run_stages
from faceprior.utils.config import CONFIG_DIR, setup_config_system
from faceprior.utils.runtime import (
    cli_errors,
    metric_value,
    resolve_checkpoint,
    resume_wandb_run,
    task_wrapper,
)

log = logging.getLogger("faceprior")

setup_config_system()

__all__ = ["build_datamodule", "build_run", "main", "train"]


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit and test according to ``cfg``; returns ``(metrics, objects)``.

    A config with ``stages`` (a multi-stage experiment) trains each stage in turn instead
    (:mod:`faceprior.stages`).
    """
    if cfg.get("stages"):
        return run_stages(cfg, train)
    only = run_preflight(cfg, app="faceprior-train")
    if only is not None:
        return {}, {"preflight": only}
    ckpt_path = resolve_checkpoint(cfg, app="faceprior-train")
    resume_wandb_run(cfg, ckpt_path)
    run = build_run(cfg)
    model, trainer, datamodule = run["model"], run["trainer"], run["datamodule"]

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics: dict[str, Any] = dict(trainer.callback_metrics)

    if cfg.get("test", True) and not getattr(datamodule, "benchmarks", True):
        log.warning(
            "no benchmark to test on (benchmarks is empty): the test stage is skipped; choose "
            "benchmarks with benchmark=[...] or set data.val_root for data=folder"
        )
    elif cfg.get("test", True):
        tested = test_checkpoint(cfg, trainer, model) if cfg.get("train", True) else ckpt_path
        trainer.test(model=model, datamodule=datamodule, ckpt_path=tested)
        metrics.update(trainer.callback_metrics)
    return metrics, run


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@cli_errors
def main(cfg: DictConfig) -> float | None:
    metrics, run = train(cfg)
    if "preflight" in run:
        exit_after_preflight(run["preflight"])
        return None
    # without training (or without validation data) there is no validation metric: not an error
    validated = bool(cfg.get("train", True)) and bool(OmegaConf.select(cfg, "data.val_root"))
    return metric_value(metrics, cfg.get("optimized_metric"), required=validated)


if __name__ == "__main__":
    main()
