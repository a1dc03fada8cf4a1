"""GFP-GAN training: generator, main and facial-component discriminators, manual optimisation.

One iteration (our own 1-based counter ``it``, saved in checkpoints) runs, in the official order:

1. **G**: restore with the GAN prior, crop eyes/mouth, sum the configured generator terms, step;
   update the EMA copy of G.
2. **D**: logistic loss on GT vs restored; every ``r1_interval`` iterations add the lazy R1 penalty
   ``r1_weight / 2 · R1 · r1_interval`` (in float32, outside autocast); step.
3. **Component Ds**: real crops with BCE, restored crops with ``component_fake_criterion``
   (``wgan_softplus`` in the official code); step each.
Every LR scheduler steps once at the start of an iteration (as BasicSR); training stops at
``max_iterations``.

The lazy-regularisation interval is folded into the D optimiser as in StyleGAN2/GFP-GAN:
``lr · k/(k+1)`` and ``β ** (k/(k+1))`` with ``k = r1_interval``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import Metric

from faceprior.losses.gan import (
    ContextTerm,
    GeneratorContext,
    check_criterion,
    gan_loss,
    r1_penalty,
)
from faceprior.losses.weighted import sum_parts
from faceprior.models.base import RestorerBase, to_model_range
from faceprior.models.components import COMPONENT_ORDER, component_sizes, crop_components
from faceprior.models.ema import EMA
from faceprior.models.gan_utils import fold_lazy_regularization, grad_norm, load_generator_weights

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


class GFPGANModule(RestorerBase):
    """GFP-GAN with its published recipe; every part comes from the config.

    Args:
        generator: ``GFPGANv1`` / ``GFPGANv1Clean`` (``forward(x, return_rgb=, randomize_noise=)``).
        discriminator: main discriminator (``StyleGAN2Discriminator``).
        generator_losses: ``name -> term``. :class:`~faceprior.losses.ContextTerm` terms get the iteration's
            :class:`~faceprior.losses.GeneratorContext`; other terms are called ``term(output, gt)``
            (e.g. ``PixelLoss``, ``PerceptualLoss``). Each term applies its own weight.
        g_optimizer, d_optimizer: partially applied optimisers; D's is folded for lazy R1.
        component_discriminators: ``left_eye``/``right_eye``/``mouth`` discriminators (None: no
            component losses).
        component_optimizer: partially applied optimiser, one instance per component D.
        scheduler: partially applied LR scheduler applied to every optimiser, stepped per iteration.
        ema: EMA of the generator, used for validation, test and export.
        metrics: validation metrics (and test metrics unless ``test_metrics`` is given).
        test_metrics: metrics of the test benchmarks.
        init_weights: start the generator (and its EMA) from this file (official ``params_ema``
            layout, e.g. GFPGANv1.4.pth for fine-tuning); loaded with ``strict=True``.
        r1_weight, r1_interval: lazy R1 (weight 10 every 16 iterations; interval 0 disables it).
        component_fake_criterion: loss of component Ds on restored crops.
        component_sizes: crop sides at ``component_reference_size`` (scaled to the image size).
        max_iterations: stop training after this many iterations (our counter).
        noise_seed: the generator's StyleGAN noise in iteration ``it`` is drawn from a seed derived
            from ``(noise_seed, it, rank)``, so resumed runs reproduce it.
        eval_randomize_noise: evaluation with fresh noise (official default) instead of the stored
            constant noise (deterministic, our default).
        log_grad_norms: log the gradient norms of G and D every iteration.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        generator_losses: Mapping[str, nn.Module],
        g_optimizer: OptimizerFactory,
        d_optimizer: OptimizerFactory,
        component_discriminators: Mapping[str, nn.Module] | None = None,
        component_optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        ema: EMA | None = None,
        metrics: Mapping[str, Metric] | None = None,
        test_metrics: Mapping[str, Metric] | None = None,
        init_weights: str | None = None,
        r1_weight: float = 10.0,
        r1_interval: int = 16,
        component_fake_criterion: str = "wgan_softplus",
        component_sizes: Mapping[str, int] | None = None,
        component_reference_size: int = 512,
        max_iterations: int | None = None,
        noise_seed: int = 0,
        eval_randomize_noise: bool = False,
        log_grad_norms: bool = True,
    ) -> None:
        super().__init__(metrics, test_metrics)
        self.save_hyperparameters(
            logger=False,
            ignore=[
                *("generator", "discriminator", "generator_losses", "component_discriminators"),
                *("ema", "metrics", "test_metrics", "component_sizes"),
                *("g_optimizer", "d_optimizer", "component_optimizer", "scheduler"),
            ],
        )
        self.automatic_optimization = False
        self.net_g = generator
        self.net_d = discriminator
        self.component_ds = nn.ModuleDict(
            {k: v for k, v in (component_discriminators or {}).items() if v is not None}
        )
        unknown = set(self.component_ds) - set(COMPONENT_ORDER)
        if unknown:
            raise ValueError(
                f"model.component_discriminators: unknown components {sorted(unknown)}; valid: {COMPONENT_ORDER}"
            )
        if self.component_ds and component_optimizer is None:
            raise ValueError("model.component_optimizer is required with component discriminators")
        self.g_losses = nn.ModuleDict({k: v for k, v in generator_losses.items() if v is not None})
        if not self.g_losses:
            raise ValueError("model.generator_losses must name at least one loss term")
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.component_optimizer = component_optimizer
        self.scheduler_factory = scheduler
        if init_weights:
            load_generator_weights(self.net_g, init_weights)
        self.ema = ema.attach(self.net_g) if ema is not None else None
        if r1_interval < 0:
            raise ValueError(f"model.r1_interval must be >= 0, got {r1_interval}")
        self.r1_weight, self.r1_interval = float(r1_weight), int(r1_interval)
        self.component_fake_criterion = check_criterion(
            "model.component_fake_criterion", component_fake_criterion
        )
        self.base_component_sizes = dict(
            component_sizes or {"left_eye": 80, "right_eye": 80, "mouth": 120}
        )
        self.component_reference_size = component_reference_size
        self.max_iterations = max_iterations
        self.noise_seed = int(noise_seed)
        self.eval_randomize_noise = eval_randomize_noise
        self.log_grad_norms = log_grad_norms
        self.iteration: Tensor
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))

    # -- evaluation ------------------------------------------------------------------------------
    @property
    def eval_net(self) -> nn.Module:
        """The EMA generator when there is one (validation, test, export)."""
        if self.ema is not None and self.ema.shadow is not None:
            return self.ema.shadow
        return self.net_g

    def restore(self, lq: Tensor) -> Tensor:
        out: Tensor = self.eval_net(
            lq, return_rgb=False, randomize_noise=self.eval_randomize_noise
        )[0]
        return out

    # -- training --------------------------------------------------------------------------------
    def _generate(self, lq: Tensor, it: int, return_rgb: bool) -> tuple[Tensor, Sequence[Tensor]]:
        """G forward with StyleGAN noise drawn from a seed fixed by (noise_seed, it, rank)."""
        devices = [lq.device.index or 0] if lq.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((self.noise_seed * 1_000_003 + it) * 4096 + self.global_rank)
            output, out_rgbs = self.net_g(lq, return_rgb=return_rgb)
        return output, out_rgbs

    def _generator_loss(self, ctx: GeneratorContext) -> tuple[Tensor, dict[str, Tensor]]:
        values = {
            name: term(ctx) if isinstance(term, ContextTerm) else term(ctx.output, ctx.gt)
            for name, term in self.g_losses.items()
            if not isinstance(term, ContextTerm) or term.active(ctx.iteration)
        }
        return sum_parts(values)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        it = int(self.iteration) + 1
        optimizers = self.optimizers()
        assert isinstance(optimizers, list), "GFPGANModule needs the G and D optimizers"
        opt_g, opt_d, *opt_c = optimizers
        # BasicSR steps the schedulers at the start of an iteration (lr halves AT the milestone)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            for sched in self._schedulers():
                sched.step()
        lq, gt = to_model_range(batch["lq"]), to_model_range(batch["gt"])
        bs = lq.shape[0]
        logs: dict[str, Tensor | float] = {}

        # -- generator
        self.toggle_optimizer(opt_g)
        need_rgb = any(
            isinstance(t, ContextTerm) and t.needs_rgb and t.active(it)
            for t in self.g_losses.values()
        )
        output, out_rgbs = self._generate(lq, it, need_rgb)
        crops: dict[str, tuple[Tensor, Tensor]] = {}
        if len(self.component_ds):
            if "boxes" not in batch:
                raise KeyError(
                    "component discriminators need per-image eye/mouth boxes: set "
                    "data.train_components to an FFHQ-format landmark file"
                )
            sizes = component_sizes(
                gt.shape[-1],
                {k: self.base_component_sizes[k] for k in self.component_ds},
                self.component_reference_size,
            )
            fake = crop_components(output, batch["boxes"], sizes)
            real = crop_components(gt, batch["boxes"], sizes)
            crops = {k: (fake[k], real[k]) for k in sizes}
        ctx = GeneratorContext(
            output, gt, out_rgbs, it, self.net_d, dict(self.component_ds.items()), crops
        )
        g_total, g_parts = self._generator_loss(ctx)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_total)
        if self.log_grad_norms and (norm := grad_norm(self.net_g.parameters())) is not None:
            logs["grad_norm/g"] = norm
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        if self.ema is not None:
            self.ema.update(self.net_g, images=bs * self.trainer.world_size)
        logs.update({f"g_{k}": v.detach() for k, v in g_parts.items()})
        logs["g_total"] = g_total.detach()

        # -- main discriminator (+ lazy R1)
        self.toggle_optimizer(opt_d)
        fake_pred = self.net_d(output.detach())
        real_pred = self.net_d(gt)
        d_loss = gan_loss(real_pred, True, "wgan_softplus", True) + gan_loss(
            fake_pred, False, "wgan_softplus", True
        )
        logs.update(d_loss=d_loss.detach(), d_real_score=real_pred.detach().mean())
        logs["d_fake_score"] = fake_pred.detach().mean()
        if self.r1_interval and it % self.r1_interval == 0:
            with torch.autocast(device_type=gt.device.type, enabled=False):
                gt_r1 = gt.detach().float().requires_grad_(True)
                real_r1 = self.net_d(gt_r1)
                r1 = r1_penalty(real_r1, gt_r1)
                d_loss = d_loss + self.r1_weight / 2 * r1 * self.r1_interval + 0 * real_r1[0].sum()
            logs["d_r1"] = r1.detach()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        if self.log_grad_norms and (norm := grad_norm(self.net_d.parameters())) is not None:
            logs["grad_norm/d"] = norm
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # -- facial component discriminators
        for (name, disc), opt in zip(self.component_ds.items(), opt_c, strict=True):
            self.toggle_optimizer(opt)
            fake_crop, real_crop = crops[name]
            fake_logits, _ = disc(fake_crop.detach())
            real_logits, _ = disc(real_crop)
            loss = gan_loss(real_logits, True, "vanilla", True) + gan_loss(
                fake_logits, False, self.component_fake_criterion, True
            )
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt.step()
            self.untoggle_optimizer(opt)
            logs[f"d_{name}"] = loss.detach()

        logs["lr/g"] = opt_g.param_groups[0]["lr"]
        logs["lr/d"] = opt_d.param_groups[0]["lr"]
        self.iteration += 1
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=bs)
        self.log("iteration", float(it), batch_size=bs)
        if self.max_iterations is not None and it >= self.max_iterations:
            self.trainer.should_stop = True

    def _schedulers(self) -> list[LRScheduler]:
        scheds = self.lr_schedulers()
        if scheds is None:
            return []
        return list(scheds) if isinstance(scheds, list) else [scheds]

    # -- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        def trainable(module: nn.Module) -> list[nn.Parameter]:
            return [p for p in module.parameters() if p.requires_grad]

        optimizers = [
            self.g_optimizer(trainable(self.net_g)),
            self.d_optimizer(trainable(self.net_d)),
        ]
        if self.r1_interval:
            fold_lazy_regularization(optimizers[1], self.r1_interval)
        for disc in self.component_ds.values():
            assert self.component_optimizer is not None
            optimizers.append(self.component_optimizer(trainable(disc)))
        if self.scheduler_factory is None:
            return optimizers
        return optimizers, [self.scheduler_factory(opt) for opt in optimizers]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["iteration"] = int(self.iteration)
