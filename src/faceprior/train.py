"""``faceprior-train``: compose the config, train, then test the best checkpoint.

Examples::

    faceprior-train experiment=quickstart
    faceprior-train -m experiment=quickstart model.optimizer.lr=1e-3,2e-3
    faceprior-train experiment=quickstart ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from faceprior.utils.config import CONFIG_DIR, setup_config_system
from faceprior.utils.runtime import (
    instantiate_callbacks,
    instantiate_loggers,
    metric_value,
    print_config,
    resolve_checkpoint,
    resume_wandb_run,
    task_wrapper,
)

log = logging.getLogger("faceprior")

setup_config_system()


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """Degradation and benchmarks first, then the DataModule that uses them."""
    degradation = hydra.utils.instantiate(cfg.degradation)
    benchmarks = {k: hydra.utils.instantiate(v) for k, v in (cfg.get("benchmarks") or {}).items()}
    return hydra.utils.instantiate(cfg.data, degradation=degradation, benchmarks=benchmarks)


def build_run(cfg: DictConfig) -> dict[str, Any]:
    """Seed, print the config, and build datamodule, model, callbacks, loggers and trainer.

    Shared by ``faceprior-train`` and ``faceprior-eval`` so both apps wire a run identically.
    """
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.extras.get("print_config"):
        print_config(cfg, Path(cfg.paths.output_dir) / "config_tree.yaml")
    datamodule = build_datamodule(cfg)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )
    hparams = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:
        lg.log_hyperparams(hparams)  # type: ignore[arg-type]
    return {"cfg": cfg, "model": model, "trainer": trainer, "datamodule": datamodule}


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit and test according to ``cfg``; returns ``(metrics, objects)``."""
    ckpt_path = resolve_checkpoint(cfg)
    resume_wandb_run(cfg, ckpt_path)
    run = build_run(cfg)
    model, trainer, datamodule = run["model"], run["trainer"], run["datamodule"]

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics: dict[str, Any] = dict(trainer.callback_metrics)

    if cfg.get("test", True):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        if best is None:
            log.warning("no best checkpoint (checkpointing disabled?): testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best)
        metrics.update(trainer.callback_metrics)
    return metrics, run


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    return metric_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
