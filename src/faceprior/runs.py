"""Wiring shared by ``faceprior-train`` and ``faceprior-eval``: build a run from a composed config.

Both apps seed, build the datamodule (degradation and benchmarks first), the model, callbacks,
loggers and trainer here, so a checkpoint is evaluated with exactly the wiring it was trained with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import hydra
import pytorch_lightning as pl
from lightning_fabric.plugins import CheckpointIO
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from faceprior.checkpoints.atomic import AtomicCheckpointIO, remove_orphans
from faceprior.data.benchmarks import unset_optional
from faceprior.preflight import PreflightReport
from faceprior.utils.callbacks import CheckpointMetadata
from faceprior.utils.runtime import (
    experiment_name,
    in_multirun,
    instantiate_callbacks,
    instantiate_loggers,
    print_config,
    read_checkpoint_field,
)

log = logging.getLogger("faceprior")

TEST_CHECKPOINTS = ("best", "last")
#: strategies that launch DistributedDataParallel, by their Lightning names
DDP_NAMES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def benchmark_configs(cfg: DictConfig) -> dict[str, DictConfig]:
    """``cfg.benchmarks`` without the optional ones that have no folder (each left out with a
    warning: e.g. ``val_folder``, the default of ``data=folder``, with ``data.val_root=null``)."""
    kept = {}
    for key, node in (cfg.get("benchmarks") or {}).items():
        if node is None:
            continue
        if unset_optional(node):
            log.warning(
                "benchmarks.%s left out: %s",
                key,
                node.get("prepare") or "its folders are not configured",
            )
            continue
        kept[str(key)] = node
    return kept


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """Degradation and benchmarks first, then the DataModule that uses them."""
    degradation = hydra.utils.instantiate(cfg.degradation)
    benchmarks = {k: hydra.utils.instantiate(v) for k, v in benchmark_configs(cfg).items()}
    return hydra.utils.instantiate(cfg.data, degradation=degradation, benchmarks=benchmarks)


def ddp_strategy(model: pl.LightningModule, strategy: Any) -> Any:
    """The strategy the model needs: DDP with ``find_unused_parameters`` as the model declares.

    GAN modules backpropagate into one network per phase (and keep frozen or switched-off parts), so
    DDP must tolerate parameters without gradients; the plain restorer does not need that. The graph
    is not static (which parameters get gradients changes with the phase, the R1 iterations and the
    pyramid switch-off), so ``static_graph`` stays off. Only a DDP strategy named by string is
    replaced; a strategy object is used as given.
    """
    if not isinstance(strategy, str) or strategy not in DDP_NAMES:
        return strategy
    find_unused = bool(getattr(model, "ddp_find_unused_parameters", False))
    if not find_unused:
        return strategy
    from pytorch_lightning.strategies import DDPStrategy

    methods: dict[str, Literal["popen", "spawn", "fork"]] = {
        "ddp": "popen",
        "ddp_spawn": "spawn",
        "ddp_fork": "fork",
        "ddp_notebook": "fork",
    }
    return DDPStrategy(find_unused_parameters=True, start_method=methods[strategy])


def checkpoint_plugins(configured: Any) -> list[Any]:
    """``trainer.plugins`` instantiated, plus :class:`AtomicCheckpointIO` unless one is configured.

    Given to the Trainer as ``plugins``, the checkpoint IO reaches the strategy whether that is
    named by string or is an object (:func:`ddp_strategy`), so DDP runs save atomically too.
    """
    if configured is None:
        plugins: list[Any] = []
    else:
        made = hydra.utils.instantiate(configured, _convert_="all")
        plugins = list(made) if isinstance(made, list | tuple) else [made]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


def metadata_callbacks(cfg: DictConfig, callbacks: list[Any]) -> list[Any]:
    """``callbacks`` plus :class:`CheckpointMetadata` (every checkpoint records where it is from)."""
    if any(isinstance(c, CheckpointMetadata) for c in callbacks):
        return callbacks
    task = cfg.get("task_name")
    return [*callbacks, CheckpointMetadata(experiment_name(cfg), str(task) if task else None)]


def _remove_orphans(callbacks: list[Any]) -> None:
    """Partial files of interrupted saves in this run's own checkpoint folders."""
    for callback in callbacks:
        dirpath = getattr(callback, "dirpath", None)
        if isinstance(callback, ModelCheckpoint) and dirpath:
            remove_orphans(dirpath)


def build_run(cfg: DictConfig) -> dict[str, Any]:
    """Seed, print the config, and build datamodule, model, callbacks, loggers and trainer.

    Checkpoints are written atomically (:class:`AtomicCheckpointIO`) and carry their origin
    (:class:`CheckpointMetadata`), whatever the ``callbacks`` and ``trainer`` groups say.
    """
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.extras.get("print_config"):
        print_config(cfg, Path(cfg.paths.output_dir) / "config_tree.yaml")
    datamodule = build_datamodule(cfg)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = metadata_callbacks(cfg, instantiate_callbacks(cfg.get("callbacks")))
    _remove_orphans(callbacks)
    loggers = instantiate_loggers(cfg.get("logger"))
    strategy = ddp_strategy(model, cfg.trainer.get("strategy", "auto"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        strategy=strategy,
        plugins=checkpoint_plugins(cfg.trainer.get("plugins")),
    )
    hparams = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:
        lg.log_hyperparams(hparams)  # type: ignore[arg-type]
    return {"cfg": cfg, "model": model, "trainer": trainer, "datamodule": datamodule}


def test_checkpoint(cfg: DictConfig, trainer: pl.Trainer, model: pl.LightningModule) -> str | None:
    """The checkpoint ``trainer.test`` scores after fitting, as ``cfg.test_ckpt`` asks.

    ``last``: the final weights. ``last.ckpt`` is written after each validation, so when training
    ended between validations it is saved once more. ``best``: the checkpoint callback's best
    model by its monitored metric.
    """
    which = cfg.get("test_ckpt", "best")
    if which not in TEST_CHECKPOINTS:
        raise ValueError(f"test_ckpt must be one of {TEST_CHECKPOINTS}, got {which!r}")
    callback = trainer.checkpoint_callback
    if callback is None:
        log.warning("no checkpoint callback: testing the weights in memory")
        return None
    if which == "best":
        best = getattr(callback, "best_model_path", "") or None
        if best is None:
            log.warning("no best checkpoint: testing the weights in memory")
        return best
    dirpath = getattr(callback, "dirpath", None)
    if not dirpath:
        return None
    last = Path(dirpath) / "last.ckpt"
    done = int(getattr(model, "iteration", trainer.global_step))
    stored = read_checkpoint_field(last, "iteration") if last.is_file() else None
    if stored is None or int(stored) != done:
        trainer.save_checkpoint(last)
    return str(last)


def exit_after_preflight(report: PreflightReport) -> None:
    """End a ``preflight=only`` run: exit status 0 when the config is ready, 1 otherwise (in a
    multirun every job prints its report and the sweep goes on)."""
    if not in_multirun():
        raise SystemExit(0 if report.ok else 1)
