"""Baseline restorer: a plain network trained with reconstruction losses (no GAN prior)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import Metric

from faceprior.losses import WeightedLoss
from faceprior.models.ema import EMA
from faceprior.models.evaluation import StageMetrics

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


def to_model_range(x: Tensor) -> Tensor:
    """[0, 1] images (data) -> [-1, 1] (networks)."""
    return x * 2.0 - 1.0


def to_image_range(x: Tensor) -> Tensor:
    """[-1, 1] network output -> [0, 1], clamped."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


class RestorationModule(pl.LightningModule):
    """Train ``net`` (LQ -> restored, both in [-1, 1]) with a :class:`WeightedLoss`.

    Args:
        net: the restoration network.
        loss: weighted reconstruction terms ``(pred, target) -> (total, parts)``.
        optimizer: partially applied optimizer (``_partial_: true`` in the config).
        scheduler: optional partially applied LR scheduler, stepped every optimizer step.
        metrics: ``name -> Metric`` used for validation and every test benchmark.
        compile_net: wrap ``net`` with ``torch.compile`` in ``setup``.
        channels_last: keep the network and loss networks in channels-last memory format (about 2x
            faster convolutions on CPUs and tensor cores; pair with ``data.channels_last=true``).
        ema: optional :class:`EMA` of ``net``; when given, validation and test use the averaged
            weights.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: WeightedLoss,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        metrics: Mapping[str, Metric] | None = None,
        compile_net: bool = False,
        channels_last: bool = False,
        ema: EMA | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            logger=False, ignore=["net", "loss", "metrics", "optimizer", "scheduler", "ema"]
        )
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metric_specs = dict(metrics or {})
        self.val_metrics = StageMetrics(self.metric_specs, "val", [""])
        self.test_metrics: StageMetrics | None = None
        self.compile_net = compile_net
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        self.ema = ema.attach(self.net) if ema is not None else None
        self.val_preview: dict[str, Tensor] | None = None
        self._images_per_step = 0

    def setup(self, stage: str) -> None:
        if stage == "test" and self.test_metrics is None:
            dm = getattr(self.trainer, "datamodule", None)
            names = list(getattr(dm, "benchmarks", {}) or {}) or ["test"]
            self.test_metrics = StageMetrics(self.metric_specs, "test", names)
        if self.compile_net and stage == "fit":
            self.net = torch.compile(self.net)  # type: ignore[assignment]

    @property
    def eval_net(self) -> nn.Module:
        """The network used for evaluation and export: the EMA copy when there is one."""
        if self.ema is not None and self.ema.shadow is not None:
            return self.ema.shadow
        return self.net

    def forward(self, lq: Tensor) -> Tensor:
        """Restore ``lq`` in [0, 1] with :attr:`eval_net`; returns [0, 1] (clamped)."""
        return to_image_range(self.eval_net(to_model_range(lq)))

    # -- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        pred = self.net(to_model_range(batch["lq"]))
        total, parts = self.loss(pred, to_model_range(batch["gt"]))
        bs = batch["lq"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=bs)
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        return total

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Step, then update the EMA, before any callback (e.g. a checkpoint) sees the weights."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.net, images=self._images_per_step)

    def on_train_batch_start(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._images_per_step = batch["lq"].shape[0] * self.trainer.world_size

    # -- evaluation ------------------------------------------------------------------------------
    def _evaluate(self, metrics: StageMetrics, batch: dict[str, Any], bench: str) -> Tensor:
        pred = self(batch["lq"])
        metrics.update(bench, pred, batch["lq"], batch.get("gt"))
        return pred

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred = self._evaluate(self.val_metrics, batch, "")
        if batch_idx == 0:
            self.val_preview = {"lq": batch["lq"][:8], "pred": pred[:8]}
            if "gt" in batch:
                self.val_preview["gt"] = batch["gt"][:8]

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), sync_dist=False)
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        assert self.test_metrics is not None
        self._evaluate(self.test_metrics, batch, str(batch.get("benchmark", "test")))

    def on_test_epoch_end(self) -> None:
        assert self.test_metrics is not None
        self.log_dict(self.test_metrics.compute(), sync_dist=False, add_dataloader_idx=False)
        self.test_metrics.reset()

    # -- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(p for p in self.net.parameters() if p.requires_grad)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
