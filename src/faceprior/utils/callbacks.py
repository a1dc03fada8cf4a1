"""Lightning callbacks of the platform: checkpoint metadata and W&B id, timing, previews, results."""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning import Callback
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

from faceprior.checkpoints.verify import METADATA_KEY, checkpoint_metadata
from faceprior.utils.runtime import WANDB_ID_KEY, read_checkpoint_field

log = logging.getLogger(__name__)


class CheckpointMetadata(Callback):
    """Record the module class, experiment, task and faceprior version in every checkpoint.

    Stored under ``checkpoint["faceprior"]``; loading (``ckpt_path=...``, ``latest``) checks it.
    Added to every run by :func:`faceprior.runs.build_run`.
    """

    def __init__(self, experiment: str | None = None, task_name: str | None = None) -> None:
        self.experiment = experiment
        self.task_name = task_name

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[METADATA_KEY] = checkpoint_metadata(pl_module, self.experiment, self.task_name)


class WandbRunIdInCheckpoint(Callback):
    """Store the W&B run id in every checkpoint so ``ckpt_path=...`` resumes the same run."""

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint[WANDB_ID_KEY] = logger.version


class DataMonitor(Callback):
    """Log loader wait, device degradation and step times, skipped images and per-device batch size.

    ``time/data`` is the wait for the DataLoader (decoding in workers), ``time/degradation`` the
    device-side degradation of the batch (wall time as seen by the host), ``time/step`` the training
    step itself. If ``time/data`` is not small next to ``time/step``, data loading limits training.
    """

    def __init__(self) -> None:
        self._batch_end: float | None = None
        self._batch_start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = trainer.datamodule  # type: ignore[attr-defined]
        if dm is None:
            return
        info = {
            "data/batch_size_global": getattr(dm, "batch_size", None),
            "data/batch_size_per_device": getattr(dm, "batch_size_per_device", None),
            "data/world_size": trainer.world_size,
        }
        log.info("batch size: %s global, %s per device on %s device(s)", *info.values())
        for logger in trainer.loggers:
            logger.log_hyperparams(info)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        dm = trainer.datamodule  # type: ignore[attr-defined]
        degradation = float(getattr(dm, "last_degradation_seconds", 0.0)) if dm is not None else 0.0
        if self._batch_end is not None:
            wait = max(0.0, now - self._batch_end - degradation)
            pl_module.log("time/data", wait, on_step=True, on_epoch=False)
        pl_module.log("time/degradation", degradation, on_step=True, on_epoch=False)
        self._batch_start = now

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        now = time.perf_counter()
        pl_module.log("time/step", now - self._batch_start, on_step=True, on_epoch=False)
        dm = trainer.datamodule  # type: ignore[attr-defined]
        if dm is not None:
            skipped = getattr(dm, "skipped_at_setup", 0) + getattr(dm, "skipped_in_batches", 0)
            pl_module.log("data/skipped_images", float(skipped), on_step=True, on_epoch=False)
        self._batch_end = now

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batch_end = None  # the first batch of an epoch waits for worker start-up


class ImagePreview(Callback):
    """After each validation, save an LQ | restored | GT grid and send it to image-capable loggers.

    A module that sets ``val_preview = {"samples": images}`` (an unconditional prior) gets a square
    grid of its samples instead, saved as ``samples/iter_<iteration>.png`` and logged as
    ``val/samples``.
    """

    def __init__(self, output_dir: str, max_images: int = 8) -> None:
        self.output_dir = Path(output_dir)
        self.max_images = max_images

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        preview = getattr(pl_module, "val_preview", None)
        if not preview or trainer.sanity_checking or not trainer.is_global_zero:
            return
        from torchvision.utils import make_grid

        step = int(getattr(pl_module, "iteration", trainer.global_step))
        if (
            "samples" in preview
        ):  # an unconditional generator: a square grid of fixed-latent samples
            samples = preview["samples"].float().cpu()
            grid = make_grid(samples, nrow=math.ceil(math.sqrt(samples.shape[0])), padding=2)
            self._write(trainer, grid, "samples", f"iter_{step:08d}.png", "EMA samples", step)
            return
        rows = [
            preview[k][: self.max_images].float().cpu()
            for k in ("lq", "pred", "gt")
            if k in preview
        ]
        n = rows[0].shape[0]
        grid = make_grid(torch.cat(rows), nrow=n, padding=2, pad_value=1.0)
        self._write(trainer, grid, "previews", f"val_{step:08d}.png", "LQ | restored | GT", step)

    def _write(
        self,
        trainer: pl.Trainer,
        grid: torch.Tensor,
        folder: str,
        name: str,
        caption: str,
        step: int,
    ) -> None:
        from torchvision.utils import save_image

        path = self.output_dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        key = "val/samples" if folder == "samples" else "val/preview"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                # no explicit step: W&B attaches it to the current metrics step (global_step counts
                # every optimizer step of a GAN and would run ahead of the logged metrics)
                logger.log_image(key=key, images=[grid], caption=[caption])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, grid, global_step=step)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}"


def results_tables(metrics: dict[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """Group ``test/<bench>/[lq_]<metric>`` values into ``{bench: {row: {metric: value}}}``."""
    tables: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "test":
            continue
        _, bench, name = parts
        row = "LQ input" if name.startswith("lq_") else "restored"
        tables[bench][row][name.removeprefix("lq_")] = float(value)
    return {b: dict(rows) for b, rows in tables.items()}


def checkpoint_kind(trainer: pl.Trainer) -> str:
    """Which weights a test scored: the final ones, the best by the monitored metric, or a file."""
    path = trainer.ckpt_path
    if not path:
        return "weights in memory"
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback is not None else ""
    if best and Path(best).resolve() == Path(path).resolve():
        monitor = getattr(callback, "monitor", None) or "the monitored metric"
        return f"best by {monitor}"
    if Path(path).name == "last.ckpt":
        return "last: final weights"
    return "given checkpoint"


class ResultsTable(Callback):
    """After testing, write ``results.md`` (paper-style tables) and ``results.json`` to ``output_dir``."""

    def __init__(
        self, output_dir: str, title: str = "Results", model_name: str = "restored"
    ) -> None:
        self.output_dir = Path(output_dir)
        self.title = title
        self.model_name = model_name
        self.ckpt_path: str | None = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
        }
        tables = results_tables(metrics)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"# {self.title}", ""]
        ckpt = trainer.ckpt_path or "(weights in memory)"
        iterations = int(getattr(pl_module, "iteration", trainer.global_step))
        if trainer.ckpt_path:
            # every module stores its own iteration counter (older checkpoints: global_step)
            stored = read_checkpoint_field(trainer.ckpt_path, "iteration", "global_step")
            iterations = int(stored) if stored is not None else iterations
        lines += [
            f"- checkpoint: `{ckpt}` ({checkpoint_kind(trainer)})",
            f"- iterations trained: {iterations}",
            "- metrics on 8-bit quantised images, averaged per image",
            "",
        ]
        for bench, rows in tables.items():
            names = sorted({n for row in rows.values() for n in row})
            lines += [
                f"## {bench}",
                "",
                "| | " + " | ".join(names) + " |",
                "|---" * (len(names) + 1) + "|",
            ]
            for row in ("LQ input", "restored"):
                if row in rows:
                    label = self.model_name if row == "restored" else row
                    lines.append(
                        f"| {label} | "
                        + " | ".join(_fmt(rows[row].get(n, math.nan)) for n in names)
                        + " |"
                    )
            if "LQ input" in rows and "restored" in rows:
                gains = [
                    rows["restored"].get(n, math.nan) - rows["LQ input"].get(n, math.nan)
                    for n in names
                ]
                lines.append(
                    "| gain (restored − LQ) | " + " | ".join(_fmt(g) for g in gains) + " |"
                )
            lines.append("")
        (self.output_dir / "results.md").write_text("\n".join(lines))
        (self.output_dir / "results.json").write_text(
            json.dumps(
                {
                    "checkpoint": ckpt,
                    "checkpoint_kind": checkpoint_kind(trainer),
                    "iteration": iterations,
                    "metrics": metrics,
                    "tables": tables,
                },
                indent=2,
            )
        )
        log.info("wrote %s", self.output_dir / "results.md")
