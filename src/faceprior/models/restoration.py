"""Baseline restorer: a plain network trained with reconstruction losses (no GAN prior).

It runs on the same training core as the GAN recipes, as the one-phase case: the iteration
counter, scheduler timing, EMA, checkpoint ``iteration`` key and logs mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from faceprior.losses.gan import GeneratorContext
from faceprior.models.base import RestorerBase, to_model_range
from faceprior.models.ema import EMA
from faceprior.models.gan import (
    GANModule,
    OptimizerFactory,
    OptimizerSpec,
    Phase,
    PhaseResult,
    SchedulerFactory,
    generator_objective,
    term_dict,
)


class RestorationModule(RestorerBase, GANModule):
    """Train ``generator`` (LQ -> restored, both in [-1, 1]) with weighted reconstruction terms.

    Args:
        generator: the restoration network.
        generator_losses: ``name -> term``, each ``term(pred, target)`` returning a weighted tensor
            or a dict of weighted parts (logged as ``train/g_<name>[/<part>]``).
        optimizers: ``{"generator": partial optimiser}`` (``_partial_: true`` in the config).
        scheduler: optional partially applied LR scheduler, stepped once per iteration.
        ema: optional :class:`EMA` of the generator; validation and test then use the average.
        metrics: ``name -> Metric`` used for validation (and, without ``test_metrics``, tests).
        test_metrics: ``name -> Metric`` for every test benchmark (e.g. the paper's set).
        compile_net: wrap the generator with ``torch.compile`` in ``setup``.
        channels_last: keep the generator and loss networks in channels-last memory format (about
            2x faster convolutions on CPUs and tensor cores; pair with ``data.channels_last=true``).
        max_iterations: stop after this many iterations (None: ``trainer.max_steps`` decides; one
            optimiser step per iteration here).
    """

    #: one network, one backward per iteration: every trainable parameter gets a gradient
    ddp_find_unused_parameters = False

    def __init__(
        self,
        generator: nn.Module,
        generator_losses: Mapping[str, nn.Module],
        optimizers: Mapping[str, OptimizerFactory],
        scheduler: SchedulerFactory | None = None,
        metrics: Mapping[str, Metric] | None = None,
        test_metrics: Mapping[str, Metric] | None = None,
        compile_net: bool = False,
        channels_last: bool = False,
        ema: EMA | None = None,
        max_iterations: int | None = None,
    ) -> None:
        super().__init__(
            metrics=metrics,
            test_metrics=test_metrics,
            scheduler=scheduler,
            ema=ema,
            max_iterations=max_iterations,
            first_iteration=1,
            log_grad_norms=False,
        )
        self.save_hyperparameters(
            logger=False,
            ignore=[
                "generator",
                "generator_losses",
                "metrics",
                "test_metrics",
                "optimizers",
                "scheduler",
                "ema",
            ],
        )
        self.net_g = generator
        self.g_losses = term_dict(generator_losses, "model.generator_losses")
        if optimizers.get("generator") is None:
            raise ValueError("model.optimizers.generator is required")
        self.optimizer_factory = optimizers["generator"]
        self.compile_net = compile_net
        if channels_last:
            self.net_g.to(memory_format=torch.channels_last)
            self.g_losses.to(memory_format=torch.channels_last)
        self.attach_ema(self.net_g)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.compile_net and stage == "fit":
            self.net_g = torch.compile(self.net_g)  # type: ignore[assignment]

    @property
    def generator(self) -> nn.Module:
        return self.net_g

    def restore(self, lq: Tensor) -> Tensor:
        """Restore ``lq`` in [-1, 1] with :attr:`eval_net`."""
        out: Tensor = self.eval_net(lq)
        return out

    # -- recipe --------------------------------------------------------------------------------
    def optimizer_specs(self) -> Sequence[OptimizerSpec]:
        return [OptimizerSpec("g", self.optimizer_factory, self.net_g)]

    def phases(self) -> Sequence[Phase]:
        return [Phase("g", "g", self._generator_phase)]

    def prepare_batch(self, batch: dict[str, Any], iteration: int) -> dict[str, Any]:
        lq, gt = to_model_range(batch["lq"]), to_model_range(batch["gt"])
        return {"lq": lq, "gt": gt, "it": iteration, "batch_size": lq.shape[0]}

    def _generator_phase(self, s: dict[str, Any]) -> PhaseResult:
        pred = self.net_g(s["lq"])
        total, logs = generator_objective(
            self.g_losses, GeneratorContext(pred, s["gt"], [], s["it"])
        )
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=s["batch_size"])
        return total, logs
