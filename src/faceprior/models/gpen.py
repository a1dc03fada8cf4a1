"""GPEN training as phases of the core (:mod:`faceprior.models.gan`): the GAN prior, fine-tuned.

One iteration (GPEN's indexing: the first is 0, so R1 and path-length run at iteration 0) runs, in
the order of the released ``train_simple.py``:

1. ``d``: logistic loss on the clean faces and on the current generator's restorations;
2. ``d_reg``: every ``r1_interval`` (16) iterations, lazy R1 in its own backward and step;
3. ``g``: the configured generator terms on a fresh restoration (released trainer:
   ``softplus(-D(G(x)))`` + SmoothL1 + IR-SE50 identity; paper: adversarial + L1 + feature
   matching on discriminator features);
4. ``g_reg``: every ``path_length.interval`` (4) iterations, path-length regularisation on the W+
   latents the generator returns, in its own G step;

then the EMA (decay ``0.5 ** (32 / 10000)`` per iteration). Both optimisers fold their intervals
into lr and betas; there is no LR schedule. The paper's two stages are ``decoder_prior`` (a
concatenating StyleGAN2 prior trained by :class:`~faceprior.models.StyleGAN2PriorModule`, loaded
into the embedded generator and fine-tuned with it) and this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from faceprior.checkpoints.io import load_generator_weights, load_pretrained_decoder
from faceprior.losses.gan import Adversarial, DiscriminatorLoss, FeatureMatching, GeneratorContext
from faceprior.losses.path_length import PathLengthPenalty
from faceprior.models.base import RestorerBase, to_model_range
from faceprior.models.ema import EMA
from faceprior.models.gan import (
    GANModule,
    OptimizerFactory,
    OptimizerSpec,
    Phase,
    PhaseResult,
    SchedulerFactory,
    discriminator_phases,
    gan_pair_specs,
    generator_objective,
    require_optimizers,
    term_dict,
)

#: what a GPEN prior file must be (errors name it)
PRIOR_EXPECTED = (
    "a concatenating StyleGAN2 prior (GPENStyleGenerator keys) exported from a StyleGAN2PriorModule "
    "run, e.g. `faceprior-weights export <prior run>/checkpoints/last.ckpt prior.pth`"
)


class GPENModule(RestorerBase, GANModule):
    """GPEN (``GPENGenerator`` + ``GPENDiscriminator``) on degraded/clean pairs.

    Args:
        generator: ``GPENGenerator`` (``forward(x, return_latents=) -> (image, latents)``).
        discriminator: ``GPENDiscriminator`` (``forward_features`` for feature matching).
        generator_losses: ``name -> term`` summed by :func:`~faceprior.models.gan.generator_objective`.
        optimizers: partial optimisers ``generator`` and ``discriminator``.
        discriminator_loss: D objective (default: logistic, R1 10 every 16 in its own step).
        path_length: path-length regulariser on the generator's W+ latents (None: off).
        decoder_prior: concatenating StyleGAN2 prior loaded into ``generator.generator``.
        discriminator_prior: discriminator file loaded into the discriminator (a prior run's D
            or GPEN-BFR-512-D.pth).
        init_weights: start G (and its EMA) from an official file (GPEN-BFR-512.pth, bare).
        Others: see :class:`~faceprior.models.gan.GANModule` (``first_iteration`` 0 as in GPEN).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        generator_losses: Mapping[str, nn.Module],
        optimizers: Mapping[str, OptimizerFactory],
        discriminator_loss: DiscriminatorLoss | None = None,
        path_length: PathLengthPenalty | None = None,
        scheduler: SchedulerFactory | None = None,
        ema: EMA | None = None,
        metrics: Mapping[str, Metric] | None = None,
        test_metrics: Mapping[str, Metric] | None = None,
        decoder_prior: str | None = None,
        discriminator_prior: str | None = None,
        init_weights: str | None = None,
        max_iterations: int | None = None,
        first_iteration: int = 0,
        lazy_fold: str = "lr_betas",
        noise_seed: int = 0,
        log_grad_norms: bool = True,
    ) -> None:
        super().__init__(
            metrics=metrics,
            test_metrics=test_metrics,
            scheduler=scheduler,
            ema=ema,
            max_iterations=max_iterations,
            first_iteration=first_iteration,
            lazy_fold=lazy_fold,
            noise_seed=noise_seed,
            log_grad_norms=log_grad_norms,
        )
        self.save_hyperparameters(
            logger=False,
            ignore=[
                *("generator", "discriminator", "generator_losses", "optimizers"),
                *("discriminator_loss", "path_length", "scheduler", "ema"),
                *("metrics", "test_metrics"),
            ],
        )
        self.net_g, self.net_d = generator, discriminator
        self.g_losses = term_dict(generator_losses, "model.generator_losses")
        self.d_loss = (
            discriminator_loss
            if discriminator_loss is not None
            else DiscriminatorLoss(r1_separate_step=True)
        )
        for name, term in self.g_losses.items():
            if isinstance(term, Adversarial):
                self.d_loss.check_generator(
                    f"model.generator_losses.{name}.criterion", term.criterion
                )
        self.path_length = path_length
        self.feature_matching = any(isinstance(t, FeatureMatching) for t in self.g_losses.values())
        if self.feature_matching and not hasattr(self.net_d, "forward_features"):
            raise ValueError(
                "model.generator_losses has a feature-matching term but the discriminator "
                f"({type(self.net_d).__name__}) has no forward_features()"
            )
        self.optimizer_factories = require_optimizers(optimizers, ("generator", "discriminator"))
        if decoder_prior:
            decoder = cast(nn.Module, self.net_g.generator)
            load_pretrained_decoder(decoder, decoder_prior, expected=PRIOR_EXPECTED)
        if init_weights:
            load_generator_weights(self.net_g, init_weights)
        if discriminator_prior:
            load_generator_weights(
                self.net_d,
                discriminator_prior,
                key="model.discriminator_prior",
                expected="a GPENDiscriminator file (a prior run's export or GPEN-BFR-512-D.pth)",
            )
        self.attach_ema(self.net_g)

    # -- recipe --------------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        return self.net_g

    def optimizer_specs(self) -> Sequence[OptimizerSpec]:
        g_interval = self.path_length.interval if self.path_length is not None else 0
        return gan_pair_specs(
            self.optimizer_factories, self.net_g, self.net_d, g_interval, self.d_loss.r1_interval
        )

    def phases(self) -> Sequence[Phase]:
        phases = discriminator_phases(self.net_d, self.d_loss, real="gt", fake="fake")
        phases.append(Phase("g", "g", self._generator_phase))
        if self.path_length is not None:
            phases.append(Phase("g_reg", "g", self._path_phase, self.path_length.interval))
        return phases

    def prepare_batch(self, batch: dict[str, Any], iteration: int) -> dict[str, Any]:
        lq, gt = to_model_range(batch["lq"]), to_model_range(batch["gt"])
        # the D step (first) scores the generator as it is before this iteration's G step
        with torch.no_grad():
            fake = self.net_g(lq)[0]
        return {"lq": lq, "gt": gt, "fake": fake, "it": iteration, "batch_size": lq.shape[0]}

    # -- phases --------------------------------------------------------------------------------

    def _generator_phase(self, s: dict[str, Any]) -> PhaseResult:
        output = self.net_g(s["lq"])[0]
        s["output"] = output
        features = cast(Any, self.net_d).forward_features if self.feature_matching else None
        ctx = GeneratorContext(output, s["gt"], [], s["it"], self.net_d, net_d_features=features)
        return generator_objective(self.g_losses, ctx)

    def _path_phase(self, s: dict[str, Any]) -> PhaseResult:
        assert self.path_length is not None
        batch = self.path_length.path_batch(int(s["batch_size"]))
        with self.seeded_noise(s["it"], s["lq"].device):
            image, latents = self.net_g(s["lq"][:batch], return_latents=True)
            term, logs = self.path_length(image, latents)
        return term, {f"g_{k}": v for k, v in logs.items()}

    # -- evaluation ----------------------------------------------------------------------------
    def restore(self, lq: Tensor) -> Tensor:
        out: Tensor = self.eval_net(lq)[0]
        return out
