"""Run-level helpers shared by the train and eval apps."""

from __future__ import annotations

import functools
import logging
import math
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning import Callback
from pytorch_lightning.loggers import Logger

from faceprior.checkpoints.atomic import orphans
from faceprior.checkpoints.errors import CheckpointError, CheckpointNotFoundError
from faceprior.checkpoints.latest import find_latest_checkpoint
from faceprior.checkpoints.verify import qualified_name, verify_checkpoint

log = logging.getLogger("faceprior")

R = TypeVar("R")

WANDB_ID_KEY = "wandb_run_id"


class ReportError(Exception):
    """An error whose message is a complete report for the user (e.g. the preflight's): shown as
    it is, without a traceback (which goes to the run's log file)."""


#: errors whose message says everything (a file named and what it is): no traceback on the console
ONE_LINE_ERRORS: tuple[type[Exception], ...] = (
    CheckpointError,
    CheckpointNotFoundError,
    ReportError,
)


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return bool(HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN)
    except Exception:  # outside a Hydra app
        return False


def in_multirun() -> bool:
    """Whether this is a job of a Hydra multirun."""
    return _is_multirun()


def _finish_wandb(failed: bool) -> None:
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        log.info("closing W&B run %s", wandb.run.id)
        wandb.finish(exit_code=1 if failed else 0)


def _file_handlers() -> list[logging.Handler]:
    """The file handlers that records of ``log`` reach (Hydra's ``<task>.log``)."""
    handlers: list[logging.Handler] = []
    logger: logging.Logger | None = log
    while logger is not None:
        handlers += [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        logger = logger.parent if logger.propagate else None
    return handlers


def _log_failure(err: Exception, console: bool) -> None:
    """Log a failed task: one line for :data:`ONE_LINE_ERRORS` (traceback to the log file only)."""
    if not isinstance(err, ONE_LINE_ERRORS):
        log.exception("task failed: %s", err)
        return
    if console:
        log.error("task failed: %s", err)
    exc_info = (type(err), err, err.__traceback__)
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, "task failed: %s", (err,), exc_info
    )
    for handler in _file_handlers():
        if record.levelno >= handler.level:
            handler.handle(record)


def task_wrapper(
    fn: Callable[[DictConfig], tuple[dict[str, Any], dict[str, Any]]],
) -> Callable[[DictConfig], tuple[dict[str, Any], dict[str, Any]]]:
    """Run a task so that a sweep survives it.

    Always closes the W&B run (one run per multirun job). An exception is logged with its traceback
    and written to ``<output_dir>/FAILED``; in a multirun the job then returns a NaN metric so the
    sweep continues with the next job (Optuna records the trial as failed); in a single run it is
    raised again. For :data:`ONE_LINE_ERRORS` the traceback goes to the log file only.
    """

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        failed = False
        try:
            return fn(cfg)
        except Exception as err:
            failed = True
            multirun = _is_multirun()
            _log_failure(err, console=multirun)
            out_dir = Path(str(OmegaConf.select(cfg, "paths.output_dir", default=".")))
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / "FAILED").write_text(traceback.format_exc())
            except OSError:
                pass
            if multirun:
                log.error("multirun: continuing with the next job")
                return {"failed": True, "error": repr(err)}, {}
            raise
        finally:
            _finish_wandb(failed)
            log.info("output dir: %s", OmegaConf.select(cfg, "paths.output_dir", default="?"))

    return wrapped


def cli_errors(fn: Callable[[DictConfig], R]) -> Callable[[DictConfig], R]:
    """For a console script: exit with status 1 and the one-line message of :data:`ONE_LINE_ERRORS`.

    The message is the last line on stderr; ``HYDRA_FULL_ERROR=1`` raises the exception instead
    (the traceback is in the run's log file either way).
    """

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig) -> R:
        try:
            return fn(cfg)
        except ONE_LINE_ERRORS as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            raise SystemExit(f"error: {err}") from err

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


def experiment_name(cfg: DictConfig) -> str | None:
    """The ``experiment=`` choice the config was composed with (``None``: no experiment).

    ``experiment_name`` in the config wins (a stage of a multi-stage experiment sets it), then
    ``hydra.runtime.choices`` stored in the config, then the running Hydra app's choices.
    """
    if "experiment_name" in cfg:
        value = cfg.get("experiment_name")
        return str(value) if value else None
    stored = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    if stored is not None:
        value = stored.get("experiment")
        return str(value) if value else None
    try:
        from hydra.core.hydra_config import HydraConfig

        value = HydraConfig.get().runtime.choices.get("experiment")
    except ValueError:  # outside a Hydra app
        return None
    return str(value) if value else None


def module_class_name(cfg: DictConfig) -> str | None:
    """The qualified class name of ``cfg.model`` (what its checkpoints record), if any."""
    target = OmegaConf.select(cfg, "model._target_", default=None)
    if not target:
        return None
    try:
        return qualified_name(hydra.utils.get_class(str(target)))
    except Exception:  # an unimportable target fails later, with Hydra's own message
        return None


def resolve_checkpoint(
    cfg: DictConfig, app: str = "faceprior-train", task_name: str | None = None
) -> str | None:
    """Resolve and verify ``ckpt_path`` (a file, ``latest``, or null); return it as a string.

    The file must be a Lightning checkpoint of this config's module class and experiment
    (:func:`~faceprior.checkpoints.verify.verify_checkpoint`; ``ckpt_verify=false`` makes another
    experiment a warning). ``latest`` searches the runs of ``task_name`` (default: this task).
    """
    value = cfg.get("ckpt_path")
    if value in (None, ""):
        return None
    experiment, module = experiment_name(cfg), module_class_name(cfg)
    if str(value) == "latest":
        task = task_name or str(cfg.task_name)
        path = find_latest_checkpoint(cfg.paths.log_dir, task, experiment, module)
    else:
        path = Path(str(value)).expanduser()
    strict = bool(cfg.get("ckpt_verify", True))
    verify_checkpoint(path, module, experiment, app=app, strict=strict)
    partial = orphans(path.parent)
    if partial:
        names = ", ".join(p.name for p in partial)
        log.warning("%s also holds partial files of interrupted saves: %s", path.parent, names)
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


def metric_value(metrics: dict[str, Any], name: str | None, required: bool = True) -> float | None:
    """The optimised metric for sweeps; NaN when it was never logged (an error when
    ``required``; otherwise, e.g. with ``train=false`` or no validation data, an info line and
    None)."""
    if not name:
        return None
    if name not in metrics:
        if not required:
            log.info("optimized_metric '%s' was not logged (nothing was validated)", name)
            return None
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
