"""Run-level helpers shared by the train and eval apps."""

from __future__ import annotations

import functools
import logging
import math
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning import Callback
from pytorch_lightning.loggers import Logger

log = logging.getLogger("faceprior")

R = TypeVar("R")

WANDB_ID_KEY = "wandb_run_id"


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return bool(HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN)
    except Exception:  # outside a Hydra app
        return False


def _finish_wandb(failed: bool) -> None:
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        log.info("closing W&B run %s", wandb.run.id)
        wandb.finish(exit_code=1 if failed else 0)


def task_wrapper(
    fn: Callable[[DictConfig], tuple[dict[str, Any], dict[str, Any]]],
) -> Callable[[DictConfig], tuple[dict[str, Any], dict[str, Any]]]:
    """Run a task so that a sweep survives it.

    Always closes the W&B run (one run per multirun job). An exception is logged with its traceback
    and written to ``<output_dir>/FAILED``; in a multirun the job then returns a NaN metric so the
    sweep continues with the next job (Optuna records the trial as failed); in a single run it is
    raised again.
    """

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        failed = False
        try:
            return fn(cfg)
        except Exception as err:
            failed = True
            log.exception("task failed: %s", err)
            out_dir = Path(str(OmegaConf.select(cfg, "paths.output_dir", default=".")))
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / "FAILED").write_text(traceback.format_exc())
            except OSError:
                pass
            if _is_multirun():
                log.error("multirun: continuing with the next job")
                return {"failed": True, "error": repr(err)}, {}
            raise
        finally:
            _finish_wandb(failed)
            log.info("output dir: %s", OmegaConf.select(cfg, "paths.output_dir", default="?"))

    return wrapped


def instantiate_list(cfg: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate every ``_target_`` node of a group (callbacks, loggers); skips empty entries."""
    out: list[Any] = []
    if not cfg:
        return out
    for key, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.info("instantiating %s <%s>", kind, node._target_)
            out.append(hydra.utils.instantiate(node))
        elif node is not None:
            raise ValueError(f"{kind} config '{key!s}' has no _target_; got {node!r}")
    return out


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    return instantiate_list(cfg, "callback")


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return instantiate_list(cfg, "logger")


def find_latest_checkpoint(log_dir: str | Path, task_name: str) -> Path:
    """The most recently written ``last.ckpt`` of the task's runs (for ``ckpt_path=latest``)."""
    root = Path(log_dir) / task_name
    candidates = sorted(root.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"ckpt_path=latest: no checkpoints/last.ckpt below '{root}'")
    return candidates[-1]


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """Validate ``ckpt_path`` (a file, ``latest``, or null) and return it as a string."""
    value = cfg.get("ckpt_path")
    if value in (None, ""):
        return None
    if str(value) == "latest":
        path = find_latest_checkpoint(cfg.paths.log_dir, cfg.task_name)
        log.info("ckpt_path=latest -> %s", path)
        return str(path)
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path '{path}' does not exist")
    return str(path)


def read_checkpoint_field(path: str | Path, key: str, *fallbacks: str) -> Any:
    """Read one top-level entry of a Lightning checkpoint without materialising the tensors.

    With ``fallbacks``, the first of ``key, *fallbacks`` present in the file (one read).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    for name in (key, *fallbacks):
        if ckpt.get(name) is not None:
            return ckpt[name]
    return None


def resume_wandb_run(cfg: DictConfig, ckpt_path: str | None) -> None:
    """Point the W&B logger at the run id stored in the checkpoint, so resuming continues that run."""
    if not ckpt_path or "wandb" not in (cfg.get("logger") or {}):
        return
    run_id = read_checkpoint_field(ckpt_path, WANDB_ID_KEY)
    if run_id:
        with open_dict(cfg):
            cfg.logger.wandb.id = str(run_id)
            cfg.logger.wandb.resume = "allow"
        log.info("resuming W&B run %s from %s", run_id, ckpt_path)


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    """The optimised metric for sweeps; NaN when it was never logged."""
    if not name:
        return None
    if name not in metrics:
        log.error("optimized_metric '%s' was not logged; available: %s", name, sorted(metrics))
        return math.nan
    value = metrics[name]
    return float(value.item() if hasattr(value, "item") else value)


def print_config(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print the resolved config tree (and save it next to the run)."""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    try:
        from rich.console import Console
        from rich.syntax import Syntax

        Console().print(Syntax(text, "yaml", word_wrap=True))
    except ImportError:  # pragma: no cover
        print(text)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        save_to.write_text(text)
