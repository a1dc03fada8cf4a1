"""Baseline restorer: a plain network trained with reconstruction losses (no GAN prior)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import Metric

from faceprior.losses import WeightedLoss
from faceprior.models.base import RestorerBase, to_model_range
from faceprior.models.ema import EMA

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


class RestorationModule(RestorerBase):
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
        super().__init__(metrics)
        self.save_hyperparameters(
            logger=False, ignore=["net", "loss", "metrics", "optimizer", "scheduler", "ema"]
        )
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.compile_net = compile_net
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        self.ema = ema.attach(self.net) if ema is not None else None
        self._images_per_step = 0

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.compile_net and stage == "fit":
            self.net = torch.compile(self.net)  # type: ignore[assignment]

    @property
    def eval_net(self) -> nn.Module:
        """The network used for evaluation and export: the EMA copy when there is one."""
        if self.ema is not None and self.ema.shadow is not None:
            return self.ema.shadow
        return self.net

    def restore(self, lq: Tensor) -> Tensor:
        """Restore ``lq`` in [-1, 1] with :attr:`eval_net`."""
        out: Tensor = self.eval_net(lq)
        return out

    # -- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        pred = self.net(to_model_range(batch["lq"]))
        total, parts = self.loss(pred, to_model_range(batch["gt"]))
        bs = batch["lq"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=bs)
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        # iterations so far (one optimizer step per batch); names checkpoints like the GAN modules
        self.log("iteration", float(self.global_step + 1), batch_size=bs)
        return total

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Step, then update the EMA, before any callback (e.g. a checkpoint) sees the weights."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.net, images=self._images_per_step)

    def on_train_batch_start(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._images_per_step = batch["lq"].shape[0] * self.trainer.world_size

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
