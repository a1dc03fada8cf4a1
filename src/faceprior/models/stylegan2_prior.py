"""Unconditional StyleGAN2 on a folder of faces: the GAN priors GFP-GAN and GPEN embed.

One iteration of the StyleGAN2 recipe as phases of the training core (:mod:`faceprior.models.gan`):

1. ``d``: logistic loss on real faces and on samples of the (frozen) generator;
2. ``d_reg``: lazy R1 (γ 10 every 16 iterations), in its own step (rosinality, GPEN) or added to
   the ``d`` step (BasicSR, ``discriminator_loss.r1_separate_step: false``);
3. ``g``: non-saturating logistic loss on fresh samples;
4. ``g_reg``: path-length regularisation (weight 2 every 4 iterations, decay 0.01, half batch), in
   its own step or added to the ``g`` step (BasicSR, ``path_separate_step: false``);

then the EMA. Both regularised optimisers fold their interval into lr and betas. Latents are
drawn with style mixing (p 0.9) from a seed fixed by the iteration, so a resumed run draws the
same latents and noise.

The generator is any of the three prior families, chosen by config: ``StyleGAN2Generator``
(additive noise, BasicSR "original" layout: the decoder of ``GFPGANv1``),
``StyleGAN2GeneratorClean`` (additive, the decoder of ``GFPGANv1Clean``) or
``GPENStyleGenerator`` (concatenated noise: the decoder of ``GPENGenerator``). Validation draws
fixed-latent sample grids and the FID of EMA samples against reference statistics (or the
validation faces); ``faceprior-weights export`` writes the EMA generator as ``params_ema``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from faceprior.checkpoints.io import load_generator_weights
from faceprior.losses.gan import DiscriminatorLoss, check_criterion, gan_loss
from faceprior.losses.path_length import PathLengthPenalty
from faceprior.metrics.fid import FID
from faceprior.models.base import to_image_range
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
    require_optimizers,
)

log = logging.getLogger(__name__)

#: independent RNG streams of one iteration (see :meth:`GANModule.seeded_noise`)
_D_STREAM, _G_STREAM, _PATH_STREAM = 1, 2, 3


def style_dim(net: nn.Module) -> int:
    """Latent width of a StyleGAN2 generator of either parameterisation."""
    info: Any = net
    return int(getattr(info, "style_dim", None) or info.num_style_feat)


def num_latent(net: nn.Module) -> int:
    """Number of W+ entries of a StyleGAN2 generator of either parameterisation."""
    info: Any = net
    return int(getattr(info, "n_latent", None) or info.num_latent)


class StyleGAN2PriorModule(GANModule):
    """StyleGAN2 GAN-prior training; every part comes from the config.

    Args:
        generator: ``StyleGAN2Generator`` / ``StyleGAN2GeneratorClean`` / ``GPENStyleGenerator``.
        discriminator: ``StyleGAN2Discriminator`` (BasicSR) or ``GPENDiscriminator``.
        optimizers: partial optimisers ``generator`` and ``discriminator``.
        discriminator_loss: D objective (default: logistic, R1 10 every 16 in its own step).
        path_length: path-length regulariser of G (None: off).
        generator_criterion: G's adversarial criterion (must match the D objective).
        style_mixing: probability of drawing two latents and mixing them at a random layer.
        path_separate_step: path-length term in its own G step (rosinality, GPEN) instead of
            the ``g`` step's backward (BasicSR).
        fid: FID metric of EMA samples; without a statistics file its reference is the
            validation (and, in test, the benchmark) faces.
        fid_samples: number of EMA samples scored per evaluation.
        sample_grid: number of fixed-latent samples in the grid saved at every validation.
        sample_seed: seed of the fixed latents and noise of grids and FID samples.
        sample_batch: samples generated per forward during evaluation.
        init_weights: continue from a generator file (any layout; EMA starts from it too).
        first_iteration: 0 (rosinality, GPEN) or 1 (BasicSR).
        Others: see :class:`~faceprior.models.gan.GANModule`.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizers: Mapping[str, OptimizerFactory],
        discriminator_loss: DiscriminatorLoss | None = None,
        path_length: PathLengthPenalty | None = None,
        generator_criterion: str = "wgan_softplus",
        style_mixing: float = 0.9,
        path_separate_step: bool = True,
        fid: FID | None = None,
        fid_samples: int = 1000,
        sample_grid: int = 16,
        sample_seed: int = 0,
        sample_batch: int = 16,
        init_weights: str | None = None,
        scheduler: SchedulerFactory | None = None,
        ema: EMA | None = None,
        max_iterations: int | None = None,
        first_iteration: int = 0,
        lazy_fold: str = "lr_betas",
        noise_seed: int = 0,
        log_grad_norms: bool = True,
    ) -> None:
        super().__init__(
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
                *("generator", "discriminator", "optimizers", "discriminator_loss"),
                *("path_length", "fid", "scheduler", "ema"),
            ],
        )
        if not 0.0 <= style_mixing <= 1.0:
            raise ValueError(f"model.style_mixing must be in [0, 1], got {style_mixing}")
        if fid is not None and fid_samples < 2:
            raise ValueError(
                f"model.fid_samples must be >= 2 with an FID metric, got {fid_samples}"
            )
        if sample_batch < 1 or sample_grid < 1:
            raise ValueError(
                f"model.sample_batch and model.sample_grid must be >= 1, got {sample_batch} "
                f"and {sample_grid}"
            )
        self.net_g, self.net_d = generator, discriminator
        self.d_loss = (
            discriminator_loss
            if discriminator_loss is not None
            else DiscriminatorLoss(r1_separate_step=True)
        )
        self.g_criterion = check_criterion("model.generator_criterion", generator_criterion)
        self.d_loss.check_generator("model.generator_criterion", self.g_criterion)
        self.path_length = path_length
        self.path_separate_step = bool(path_separate_step)
        self.style_mixing = float(style_mixing)
        self.optimizer_factories = require_optimizers(optimizers, ("generator", "discriminator"))
        if init_weights:
            load_generator_weights(self.net_g, init_weights)
        self.attach_ema(self.net_g)
        self.fid = fid
        self.fid_samples = int(fid_samples)
        self.sample_grid = int(sample_grid)
        self.sample_seed = int(sample_seed)
        self.sample_batch = int(sample_batch)
        self.style_dim = style_dim(generator)
        self.num_latent = num_latent(generator)
        #: reference features of the evaluation faces (when FID has no statistics file)
        self._reference: dict[str, list[Tensor]] = {}
        self.val_preview: dict[str, Tensor] | None = None
        if fid is not None and fid.reference is None:
            log.info("FID reference: the validation/benchmark faces (no statistics file)")

    @property
    def generator(self) -> nn.Module:
        return self.net_g

    # -- latents -------------------------------------------------------------------------------
    def mixing_latents(self, batch: int, device: torch.device) -> tuple[list[Tensor], int | None]:
        """One or (with probability ``style_mixing``) two latent batches and the mixing layer.

        Drawn from the torch RNG only (the caller seeds it), so resuming redraws them exactly.
        """
        mix = self.style_mixing > 0 and float(torch.rand(())) < self.style_mixing
        if not mix:
            return [torch.randn(batch, self.style_dim, device=device)], None
        z = torch.randn(2, batch, self.style_dim, device=device).unbind(0)
        index = int(torch.randint(1, self.num_latent, ()))
        return list(z), index

    def generate(
        self,
        net: nn.Module,
        batch: int,
        device: torch.device,
        return_latents: bool = False,
        mixing: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Samples (and optionally the W+ latents) of ``net`` from the current RNG."""
        if mixing:
            styles, index = self.mixing_latents(batch, device)
        else:
            styles, index = [torch.randn(batch, self.style_dim, device=device)], None
        image, latents = net(styles, return_latents=return_latents, inject_index=index)
        return image, latents

    # -- recipe --------------------------------------------------------------------------------
    def optimizer_specs(self) -> Sequence[OptimizerSpec]:
        g_interval = self.path_length.interval if self.path_length is not None else 0
        return gan_pair_specs(
            self.optimizer_factories, self.net_g, self.net_d, g_interval, self.d_loss.r1_interval
        )

    def phases(self) -> Sequence[Phase]:
        phases = discriminator_phases(self.net_d, self.d_loss, real="gt", fake="fake")
        phases.append(Phase("g", "g", self._generator_phase))
        if self.path_length is not None and self.path_separate_step:
            phases.append(Phase("g_reg", "g", self._path_phase, self.path_length.interval))
        return phases

    def prepare_batch(self, batch: dict[str, Any], iteration: int) -> dict[str, Any]:
        gt = batch["gt"] * 2.0 - 1.0
        # the D step scores samples of the generator as it is before this iteration's G step
        with torch.no_grad(), self.seeded_noise(iteration, gt.device, _D_STREAM):
            fake, _ = self.generate(self.net_g, gt.shape[0], gt.device)
        return {"gt": gt, "fake": fake, "it": iteration, "batch_size": gt.shape[0]}

    def _path_term(self, s: dict[str, Any]) -> PhaseResult:
        assert self.path_length is not None
        batch = self.path_length.path_batch(int(s["batch_size"]))
        device = s["gt"].device
        with self.seeded_noise(s["it"], device, _PATH_STREAM):
            image, latents = self.generate(self.net_g, batch, device, return_latents=True)
            assert latents is not None
            term, logs = self.path_length(image, latents)
        return term, {f"g_{k}": v for k, v in logs.items()}

    def _generator_phase(self, s: dict[str, Any]) -> PhaseResult:
        device = s["gt"].device
        with self.seeded_noise(s["it"], device, _G_STREAM):
            fake, _ = self.generate(self.net_g, int(s["batch_size"]), device)
        loss = gan_loss(self.net_d(fake), True, self.g_criterion, False)
        logs: dict[str, Tensor | float] = {"g_adversarial": loss.detach()}
        due = self.path_length is not None and s["it"] % self.path_length.interval == 0
        if due and not self.path_separate_step:
            term, path_logs = self._path_term(s)
            loss = loss + term
            logs.update(path_logs)
        logs["g_total"] = loss.detach()
        return loss, logs

    def _path_phase(self, s: dict[str, Any]) -> PhaseResult:
        return self._path_term(s)

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, count: int, seed: int | None = None) -> Tensor:
        """``count`` EMA samples in [0, 1] from fixed latents and noise (no style mixing)."""
        net = self.eval_net
        device = self.device
        out: list[Tensor] = []
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.sample_seed if seed is None else seed)
            for start in range(0, count, self.sample_batch):
                n = min(self.sample_batch, count - start)
                image, _ = self.generate(net, n, device, mixing=False)
                out.append(to_image_range(image.float()))
        return torch.cat(out)

    def _collect_reference(self, stage: str, batch: dict[str, Any]) -> None:
        if self.fid is None or self.fid.reference is not None:
            return
        self._reference.setdefault(stage, []).append(self.fid.features(batch["gt"]))

    def _fid(self, reference: list[Tensor]) -> Tensor | None:
        if self.fid is None:
            return None
        self.fid.reset()
        if self.fid.reference is None:
            if not reference:
                return None
            self.fid.update(reference_features=torch.cat(reference))
        # chunk k (its own fixed seed) is generated by rank k % world_size; the metric sums the
        # features over ranks, so every sample is counted once whatever the number of devices
        world, rank = self.trainer.world_size, self.global_rank
        for k, start in enumerate(range(0, self.fid_samples, self.sample_batch)):
            if k % world == rank:
                n = min(self.sample_batch, self.fid_samples - start)
                self.fid.update(self.samples(n, seed=self.sample_seed + 1 + start))
        value = self.fid.compute()
        self.fid.reset()
        return value

    def on_validation_epoch_start(self) -> None:
        # the validation faces are the same at every evaluation: their features are kept
        self._val_reference_complete = "val" in self._reference

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if not getattr(self, "_val_reference_complete", False):
            self._collect_reference("val", batch)
        if batch_idx == 0:
            # read by the preview callback at the end of the epoch (callbacks run before us)
            self.val_preview = {"samples": self.samples(self.sample_grid)}

    def on_validation_epoch_end(self) -> None:
        self._val_reference_complete = "val" in self._reference
        if self.trainer.sanity_checking:
            return
        fid = self._fid(self._reference.get("val", []))
        if fid is not None:
            self.log("val/fid", fid, sync_dist=False)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect_reference(f"test/{batch.get('benchmark', 'test')}", batch)

    def on_test_epoch_start(self) -> None:
        self._reference = {k: v for k, v in self._reference.items() if not k.startswith("test/")}

    def on_test_epoch_end(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        names = list(getattr(dm, "benchmarks", {}) or {}) or ["test"]
        for name in names:
            fid = self._fid(self._reference.get(f"test/{name}", []))
            if fid is not None:
                self.log(f"test/{name}/fid", fid, sync_dist=False)
