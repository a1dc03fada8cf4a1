"""``faceprior-eval``: test a checkpoint on the configured benchmarks and write ``results.md``.

Example::

    faceprior-eval experiment=quickstart ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from faceprior.runs import build_run
from faceprior.utils.config import CONFIG_DIR, setup_config_system
from faceprior.utils.runtime import resolve_checkpoint, task_wrapper

log = logging.getLogger("faceprior")

setup_config_system()


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``trainer.test`` with ``cfg.ckpt_path``; returns ``(metrics, objects)``."""
    ckpt_path = resolve_checkpoint(cfg)
    if ckpt_path is None:
        raise ValueError("faceprior-eval needs ckpt_path=<file.ckpt> (or ckpt_path=latest)")
    run = build_run(cfg)
    run["trainer"].test(model=run["model"], datamodule=run["datamodule"], ckpt_path=ckpt_path)
    return dict(run["trainer"].callback_metrics), run


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
