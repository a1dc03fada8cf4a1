"""``faceprior-eval``: test a checkpoint on the configured benchmarks and write ``results.md``.

Example::

    faceprior-eval experiment=quickstart ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from faceprior.train import build_datamodule
from faceprior.utils.config import CONFIG_DIR, setup_config_system
from faceprior.utils.runtime import (
    instantiate_callbacks,
    instantiate_loggers,
    print_config,
    resolve_checkpoint,
    task_wrapper,
)

log = logging.getLogger("faceprior")

setup_config_system()


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``trainer.test`` with ``cfg.ckpt_path``; returns ``(metrics, objects)``."""
    ckpt_path = resolve_checkpoint(cfg)
    if ckpt_path is None:
        raise ValueError("faceprior-eval needs ckpt_path=<file.ckpt> (or ckpt_path=latest)")
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
    trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    return dict(trainer.callback_metrics), {"cfg": cfg, "model": model, "trainer": trainer}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
