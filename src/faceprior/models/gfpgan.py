"""GFP-GAN's published recipe as phases of the training core (:mod:`faceprior.models.gan`).

One iteration (BasicSR indexing: the first is 1) runs, in the official order:

1. ``g``: restore with the GAN prior, crop eyes/mouth, sum the configured generator terms, step.
2. ``d``: the main discriminator objective; every ``r1_interval`` iterations the lazy R1 term is
   added to the same backward (GFP-GAN) or stepped on its own (``r1_separate_step``).
3. ``d_left_eye``, ``d_right_eye``, ``d_mouth``: the facial-component discriminators.

Then the EMA of G is updated. Official optimiser setup: the D optimiser's betas are folded by the R1
interval but its lr is not (``lazy_fold: betas``); every LR scheduler steps once per iteration
from the second one on, so the MultiStepLR milestones 600k/700k act from iterations 600,001/700,001.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from torch import Tensor, nn
from torchmetrics import Metric

from faceprior.checkpoints.io import load_generator_weights, load_pretrained_decoder
from faceprior.losses.gan import (
    Adversarial,
    ComponentAdversarial,
    DiscriminatorLoss,
    GeneratorContext,
)
from faceprior.models.base import RestorerBase, to_model_range
from faceprior.models.components import COMPONENT_ORDER, paired_crops
from faceprior.models.ema import EMA
from faceprior.models.gan import (
    GANModule,
    OptimizerFactory,
    OptimizerSpec,
    Phase,
    PhaseResult,
    SchedulerFactory,
    discriminator_phases,
    generator_objective,
    needs_rgb,
    require_optimizers,
    term_dict,
)


def component_objective() -> DiscriminatorLoss:
    """GFP-GAN's component-D objective: BCE on real crops, softplus on restored ones, no R1."""
    return DiscriminatorLoss(
        real_criterion="vanilla",
        fake_criterion="wgan_softplus",
        r1_interval=0,
        allow_generator_mismatch=True,
    )


class GFPGANModule(RestorerBase, GANModule):
    """GFP-GAN with its published recipe; every part comes from the config.

    Args:
        generator: ``GFPGANv1`` / ``GFPGANv1Clean`` (``forward(x, return_rgb=, randomize_noise=)``).
        discriminator: main discriminator (``StyleGAN2Discriminator``).
        generator_losses: ``name -> term``, summed by :func:`~faceprior.models.gan.generator_objective`.
        optimizers: partial optimisers ``generator``, ``discriminator`` and, with component Ds,
            ``components`` (one instance each).
        discriminator_loss, component_discriminator_loss: the D objectives (default: official).
        component_discriminators: ``left_eye``/``right_eye``/``mouth`` (None: no component terms).
        decoder_prior: StyleGAN2 prior loaded into G's decoder (official ``decoder_load_path``).
        init_weights: start G (and its EMA) from an official-layout file (e.g. GFPGANv1.4.pth).
        component_sizes: crop sides at ``component_reference_size`` (scaled to the image size).
        eval_randomize_noise: evaluate with fresh noise (official) instead of the stored noise.
        Others: see :class:`~faceprior.models.gan.GANModule`; ``lazy_fold`` defaults to ``betas``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        generator_losses: Mapping[str, nn.Module],
        optimizers: Mapping[str, OptimizerFactory],
        discriminator_loss: DiscriminatorLoss | None = None,
        component_discriminators: Mapping[str, nn.Module] | None = None,
        component_discriminator_loss: DiscriminatorLoss | None = None,
        scheduler: SchedulerFactory | None = None,
        ema: EMA | None = None,
        metrics: Mapping[str, Metric] | None = None,
        test_metrics: Mapping[str, Metric] | None = None,
        decoder_prior: str | None = None,
        init_weights: str | None = None,
        component_sizes: Mapping[str, int] | None = None,
        component_reference_size: int = 512,
        max_iterations: int | None = None,
        lazy_fold: str = "betas",
        noise_seed: int = 0,
        eval_randomize_noise: bool = False,
        log_grad_norms: bool = True,
    ) -> None:
        super().__init__(
            metrics=metrics,
            test_metrics=test_metrics,
            scheduler=scheduler,
            ema=ema,
            max_iterations=max_iterations,
            first_iteration=1,
            lazy_fold=lazy_fold,
            noise_seed=noise_seed,
            log_grad_norms=log_grad_norms,
        )
        self.save_hyperparameters(
            logger=False,
            ignore=[
                *("generator", "discriminator", "generator_losses", "component_discriminators"),
                *("ema", "metrics", "test_metrics", "component_sizes", "optimizers", "scheduler"),
                *("discriminator_loss", "component_discriminator_loss"),
            ],
        )
        self.net_g, self.net_d = generator, discriminator
        self.component_ds = nn.ModuleDict(
            {k: v for k, v in (component_discriminators or {}).items() if v is not None}
        )
        if unknown := set(self.component_ds) - set(COMPONENT_ORDER):
            raise ValueError(
                f"model.component_discriminators: unknown components {sorted(unknown)}; "
                f"valid: {COMPONENT_ORDER}"
            )
        self.g_losses = term_dict(generator_losses, "model.generator_losses")
        self.d_loss = discriminator_loss if discriminator_loss is not None else DiscriminatorLoss()
        self.c_loss = component_discriminator_loss or component_objective()
        self._check_criteria()
        needed = ["generator", "discriminator"] + (["components"] if self.component_ds else [])
        self.optimizer_factories = require_optimizers(optimizers, needed)
        if decoder_prior:
            load_pretrained_decoder(cast(nn.Module, self.net_g.stylegan_decoder), decoder_prior)
        if init_weights:
            load_generator_weights(self.net_g, init_weights)
        self.attach_ema(self.net_g)
        self.base_sizes = dict(component_sizes or {"left_eye": 80, "right_eye": 80, "mouth": 120})
        self.reference_size = component_reference_size
        self.eval_randomize_noise = eval_randomize_noise

    def _check_criteria(self) -> None:
        for name, term in self.g_losses.items():
            key = f"model.generator_losses.{name}.criterion"
            if isinstance(term, ComponentAdversarial) and self.component_ds:
                self.c_loss.check_generator(key, term.criterion)
            elif isinstance(term, Adversarial):
                self.d_loss.check_generator(key, term.criterion)

    # -- recipe --------------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        return self.net_g

    def optimizer_specs(self) -> Sequence[OptimizerSpec]:
        f = self.optimizer_factories
        specs = [
            OptimizerSpec("g", f["generator"], self.net_g),
            OptimizerSpec("d", f["discriminator"], self.net_d, self.d_loss.r1_interval),
        ]
        return specs + [OptimizerSpec(k, f["components"], d) for k, d in self.component_ds.items()]

    def phases(self) -> Sequence[Phase]:
        phases = [Phase("g", "g", self._generator_phase)]
        phases += discriminator_phases(self.net_d, self.d_loss)
        for name in self.component_ds:
            phases.append(Phase(f"d_{name}", name, self._component_phase(name), grad_norm=False))
        return phases

    def prepare_batch(self, batch: dict[str, Any], iteration: int) -> dict[str, Any]:
        if self.component_ds and "boxes" not in batch:
            raise KeyError(
                "component discriminators need per-image eye/mouth boxes: set "
                "data.train_components to an FFHQ-format landmark file"
            )
        lq, gt = to_model_range(batch["lq"]), to_model_range(batch["gt"])
        state = {"lq": lq, "gt": gt, "boxes": batch.get("boxes"), "it": iteration}
        return state | {"batch_size": lq.shape[0]}

    # -- phases --------------------------------------------------------------------------------
    def _generator_phase(self, s: dict[str, Any]) -> PhaseResult:
        it = s["it"]
        with self.seeded_noise(it, s["lq"].device):
            output, out_rgbs = self.net_g(s["lq"], return_rgb=needs_rgb(self.g_losses, it))
        names, sizes, ref = list(self.component_ds), self.base_sizes, self.reference_size
        crops = paired_crops(output, s["gt"], s["boxes"], names, sizes, ref) if names else {}
        s.update(output=output, crops=crops)
        ctx = GeneratorContext(
            output, s["gt"], out_rgbs, it, self.net_d, dict(self.component_ds.items()), crops
        )
        return generator_objective(self.g_losses, ctx)

    def _component_phase(self, name: str) -> Any:
        def run(s: dict[str, Any]) -> PhaseResult:
            fake, real = s["crops"][name]
            disc = self.component_ds[name]
            loss, _ = self.c_loss(lambda x: disc(x)[0], real, fake)
            return loss, {f"d_{name}": loss.detach()}

        return run

    # -- evaluation ----------------------------------------------------------------------------
    def restore(self, lq: Tensor) -> Tensor:
        out: Tensor = self.eval_net(
            lq, return_rgb=False, randomize_noise=self.eval_randomize_noise
        )[0]
        return out
