"""The training core shared by every faceprior LightningModule: phases on our own iteration counter.

A recipe is a list of :class:`Phase` objects, each bound to one named optimiser and run every
``interval`` iterations in list order (GFP-GAN: G, D, component Ds; GPEN: D, D-reg, G, G-reg). The
core owns everything the recipes share:

* manual optimisation and the one implementation of *toggle → loss → zero_grad → backward →
  (grad norm) → step → untoggle*;
* the iteration counter (:attr:`GANModule.iteration`, the number of completed iterations) as the
  single source of "iteration": schedules, the ``iteration`` checkpoint key, checkpoint names,
  callbacks and logs. Lightning's ``global_step`` counts every optimiser's steps and is not used.
  Recipes index their intervals from ``first_iteration`` (1 in BasicSR/GFP-GAN, 0 in GPEN);
* LR schedulers stepped once per iteration with BasicSR's timing (not before the run's first
  iteration, so a milestone ``m`` takes effect from iteration ``m + 1``);
* lazy-regularisation folding per optimiser (``lr·k/(k+1)`` and/or ``β**(k/(k+1))``);
* the EMA of the generator, :attr:`eval_net`, and StyleGAN noise seeded per (seed, iteration, rank);
* ``max_iterations`` (with an error when ``trainer.max_steps`` would stop the run first) and what
  DDP needs (:attr:`ddp_find_unused_parameters`).

A plain restorer is the degenerate recipe with one generator phase.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from faceprior.losses.gan import ContextTerm, DiscriminatorLoss, GeneratorContext
from faceprior.losses.weighted import sum_parts
from faceprior.models.ema import EMA

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]
#: what a phase's loss function returns: the loss to backpropagate and values to log
PhaseResult = tuple[Tensor, Mapping[str, Tensor | float]]

FOLD_CHOICES = ("lr_betas", "betas", "none")


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of an iteration.

    Args:
        name: log name of the phase (``grad_norm/<name>``).
        optimizer: name of the optimiser it steps (a key of :meth:`GANModule.optimizer_specs`).
        loss: ``state -> (loss, logs)``; called after the optimiser is toggled (only its
            parameters require grad), may write into the per-iteration ``state`` dict for later
            phases (e.g. the restored batch).
        interval: run when ``iteration % interval == 0`` (recipe index); 1 = every iteration.
        grad_norm: log the global gradient norm of the optimiser's parameters.
    """

    name: str
    optimizer: str
    loss: Callable[[dict[str, Any]], PhaseResult]
    interval: int = 1
    grad_norm: bool = True

    def due(self, iteration: int) -> bool:
        return self.interval > 0 and iteration % self.interval == 0


@dataclass(frozen=True)
class OptimizerSpec:
    """A named optimiser: its factory, the module it trains, and its lazy-reg interval (0: none)."""

    name: str
    factory: OptimizerFactory
    module: nn.Module
    reg_interval: int = 0


def require_optimizers(
    optimizers: Mapping[str, OptimizerFactory | None], needed: Sequence[str]
) -> dict[str, OptimizerFactory]:
    """The configured optimiser factories, or an error naming the missing ``model.optimizers`` keys."""
    if missing := [k for k in needed if optimizers.get(k) is None]:
        raise ValueError(f"model.optimizers needs {list(needed)}; missing {missing}")
    return {k: v for k, v in optimizers.items() if v is not None}


def gan_pair_specs(
    factories: Mapping[str, OptimizerFactory],
    net_g: nn.Module,
    net_d: nn.Module,
    g_interval: int,
    d_interval: int,
) -> list[OptimizerSpec]:
    """``g`` and ``d`` optimisers of a one-discriminator recipe, each folded by its lazy-reg
    interval (path-length for G, R1 for D; 0: none)."""
    return [
        OptimizerSpec("g", factories["generator"], net_g, g_interval),
        OptimizerSpec("d", factories["discriminator"], net_d, d_interval),
    ]


def fold_lazy_regularization(
    optimizer: Optimizer, interval: int, fold: str = "lr_betas"
) -> Optimizer:
    """Fold a lazy-regularisation interval ``k`` into the optimiser (StyleGAN2's ``mb_ratio``).

    ``lr_betas`` scales ``lr`` by ``k/(k+1)`` and raises Adam's betas to that power (StyleGAN2,
    GPEN); ``betas`` folds only the betas (GFP-GAN: its D parameter group keeps the written lr);
    ``none`` leaves the optimiser as written.
    """
    if fold not in FOLD_CHOICES:
        raise ValueError(f"model.lazy_fold must be one of {FOLD_CHOICES}, got {fold!r}")
    if interval <= 0 or fold == "none":
        return optimizer
    ratio = interval / (interval + 1)
    for group in optimizer.param_groups:
        if fold == "lr_betas":
            group["lr"] = group["lr"] * ratio
        if "betas" in group:
            group["betas"] = tuple(b**ratio for b in group["betas"])
    return optimizer


def grad_norm(params: Iterable[nn.Parameter]) -> Tensor | None:
    """Global L2 norm of the gradients (None when no parameter has one)."""
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else None


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """Parameters that require grad (a frozen decoder stays out of the optimiser)."""
    return [p for p in module.parameters() if p.requires_grad]


def term_dict(terms: Mapping[str, nn.Module | None], key: str) -> nn.ModuleDict:
    """The configured loss terms without the ones removed (``null``); at least one."""
    kept = nn.ModuleDict({k: v for k, v in terms.items() if v is not None})
    if not kept:
        raise ValueError(f"{key} must name at least one loss term")
    return kept


def generator_objective(terms: nn.ModuleDict, ctx: GeneratorContext) -> PhaseResult:
    """Sum the generator terms: context terms read ``ctx``, others are ``term(output, gt)``.

    Returns the total and the logs ``g_<term>[/<part>]`` plus ``g_total``.
    """
    values = {
        name: term(ctx) if isinstance(term, ContextTerm) else term(ctx.output, ctx.gt)
        for name, term in terms.items()
        if not isinstance(term, ContextTerm) or term.active(ctx.iteration)
    }
    total, parts = sum_parts(values)
    logs: dict[str, Tensor | float] = {f"g_{k}": v.detach() for k, v in parts.items()}
    logs["g_total"] = total.detach()
    return total, logs


def needs_rgb(terms: nn.ModuleDict, iteration: int) -> bool:
    """Whether an active term reads the generator's intermediate RGB outputs."""
    return any(
        isinstance(t, ContextTerm) and t.needs_rgb and t.active(iteration) for t in terms.values()
    )


def discriminator_phases(
    net_d: Callable[[Tensor], Tensor],
    objective: DiscriminatorLoss,
    optimizer: str = "d",
    real: str = "gt",
    fake: str = "output",
) -> list[Phase]:
    """The phases of one discriminator under ``objective``: ``d`` and, if separate, ``d_reg``.

    ``d`` scores ``state[real]`` against the detached ``state[fake]``; the lazy R1 term joins its
    backward when due, or runs as ``d_reg`` (its own step) with ``r1_separate_step``.
    """

    def main(s: dict[str, Any]) -> PhaseResult:
        loss, parts = objective(net_d, s[real], s[fake])
        logs: dict[str, Tensor | float] = {f"d_{k}": v for k, v in parts.items()}
        if not objective.r1_separate_step and objective.r1_due(s["it"]):
            term, logs["d_r1"] = objective.r1(net_d, s[real])
            loss = loss + term
        return loss, logs

    def r1(s: dict[str, Any]) -> PhaseResult:
        term, penalty = objective.r1(net_d, s[real])
        return term, {"d_r1": penalty}

    phases = [Phase("d", optimizer, main)]
    if objective.r1_separate_step and objective.r1_interval:
        phases.append(Phase("d_reg", optimizer, r1, objective.r1_interval))
    return phases


class GANModule(pl.LightningModule):
    """Manual-optimisation core; subclasses define :meth:`optimizer_specs` and :meth:`phases`.

    Args:
        scheduler: partially applied LR scheduler, one instance per optimiser, stepped once per
            iteration (BasicSR timing).
        ema: EMA of the generator (attach it with :meth:`attach_ema`); evaluation uses it.
        max_iterations: stop after this many iterations (None: the trainer's limits decide).
        first_iteration: the recipe's index of its first iteration (1: BasicSR, 0: GPEN/rosinality);
            intervals are tested on ``iteration + first_iteration``.
        lazy_fold: what lazy regularisation folds into each regularised optimiser
            (``lr_betas`` | ``betas`` | ``none``).
        noise_seed: StyleGAN noise of iteration ``i`` is drawn from a seed fixed by
            ``(noise_seed, i, rank)``, so a resumed run draws the same noise.
        log_grad_norms: log ``grad_norm/<phase>`` for phases that ask for it.
    """

    #: DDP must tolerate parameters without gradients: each backward reaches one network only,
    #: and frozen/switched-off parts (decoder, pyramid) produce none. Read by the run builder.
    ddp_find_unused_parameters = True

    def __init__(
        self,
        scheduler: SchedulerFactory | None = None,
        ema: EMA | None = None,
        max_iterations: int | None = None,
        first_iteration: int = 1,
        lazy_fold: str = "lr_betas",
        noise_seed: int = 0,
        log_grad_norms: bool = True,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if lazy_fold not in FOLD_CHOICES:
            raise ValueError(f"model.lazy_fold must be one of {FOLD_CHOICES}, got {lazy_fold!r}")
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"model.max_iterations must be >= 1 or null, got {max_iterations}")
        if first_iteration not in (0, 1):
            raise ValueError(f"model.first_iteration must be 0 or 1, got {first_iteration}")
        self.scheduler_factory = scheduler
        self.ema = ema
        self.max_iterations = max_iterations
        self.first_iteration = int(first_iteration)
        self.lazy_fold = lazy_fold
        self.noise_seed = int(noise_seed)
        self.log_grad_norms = log_grad_norms
        self.iteration: Tensor
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self._optimizer_names: list[str] = []

    # -- what a recipe defines ---------------------------------------------------------------------
    def optimizer_specs(self) -> Sequence[OptimizerSpec]:
        """The named optimisers, in the order Lightning stores them."""
        raise NotImplementedError

    def phases(self) -> Sequence[Phase]:
        """The phases of one iteration, in execution order."""
        raise NotImplementedError

    def prepare_batch(self, batch: dict[str, Any], iteration: int) -> dict[str, Any]:
        """The per-iteration state the phases share (must hold ``batch_size``)."""
        raise NotImplementedError

    @property
    def generator(self) -> nn.Module:
        """The trained generator (EMA source)."""
        raise NotImplementedError

    # -- iteration counter ---------------------------------------------------------------------
    @property
    def current_iteration(self) -> int:
        """The recipe's index of the iteration being run (``iteration + first_iteration``)."""
        return int(self.iteration) + self.first_iteration

    def on_fit_start(self) -> None:
        max_steps = self.trainer.max_steps
        if getattr(self.trainer, "fast_dev_run", False):  # a deliberate debug limit
            return
        if self.max_iterations is not None and max_steps is not None and max_steps >= 0:
            per_iteration = sum(1 for p in self.phases() if p.interval == 1)
            if max_steps < self.max_iterations * per_iteration:
                raise ValueError(
                    f"trainer.max_steps={max_steps} would stop the run before "
                    f"model.max_iterations={self.max_iterations}: Lightning's global_step counts "
                    f"every optimiser step ({per_iteration}+ per iteration here); set "
                    "trainer.max_steps=-1 and let model.max_iterations end the run"
                )

    # -- EMA / evaluation ----------------------------------------------------------------------
    def attach_ema(self, net: nn.Module) -> None:
        if self.ema is not None:
            self.ema.attach(net)

    @property
    def eval_net(self) -> nn.Module:
        """The EMA generator when there is one (validation, test, export)."""
        if self.ema is not None and self.ema.shadow is not None:
            return self.ema.shadow
        return self.generator

    @contextlib.contextmanager
    def seeded_noise(self, iteration: int, device: torch.device, stream: int = 0) -> Iterator[None]:
        """Draw the RNG inside from a seed fixed by (noise_seed, iteration, rank, stream).

        Phases of one iteration that draw independently (e.g. the latents of the D step, the G
        step and the path-length step) use different ``stream`` numbers.
        """
        devices = [device.index or 0] if device.type == "cuda" else []
        seed = (self.noise_seed * 1_000_003 + iteration) * 4096 + self.global_rank
        # torch generators keep only the low 32 bits of a seed: the stream is mixed into them with
        # an odd constant (stream 0 is the plain seed). Seeds are iteration·4096 + rank + stream·K
        # (mod 2**32) with K mod 4096 = 2481, so streams 0-3 of any iterations never share a seed
        # for fewer than 749 ranks
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((seed + stream * 0x9E3779B1) % 2**32)
            yield

    # -- the iteration -------------------------------------------------------------------------
    def _named_optimizers(self) -> dict[str, Any]:
        optimizers = self.optimizers()
        opts = optimizers if isinstance(optimizers, list) else [optimizers]
        return dict(zip(self._optimizer_names, opts, strict=True))

    def _schedulers(self) -> list[LRScheduler]:
        scheds = self.lr_schedulers()
        if scheds is None:
            return []
        return list(scheds) if isinstance(scheds, list) else [scheds]

    def step_schedulers(self) -> None:
        """BasicSR timing: step every scheduler at the start of each iteration except the first."""
        if int(self.iteration) == 0:
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            for sched in self._schedulers():
                sched.step()

    def run_phase(self, phase: Phase, optimizer: Any, state: dict[str, Any]) -> dict[str, Any]:
        """toggle → loss → zero_grad → backward → (grad norm) → step → untoggle; returns logs."""
        self.toggle_optimizer(optimizer)
        try:
            loss, logs = phase.loss(state)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            out: dict[str, Any] = dict(logs)
            if self.log_grad_norms and phase.grad_norm:
                params = [p for g in optimizer.param_groups for p in g["params"]]
                if (norm := grad_norm(params)) is not None:
                    out[f"grad_norm/{phase.name}"] = norm
            optimizer.step()
        finally:
            self.untoggle_optimizer(optimizer)
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        it = self.current_iteration
        self.step_schedulers()
        state = self.prepare_batch(batch, it)
        optimizers = self._named_optimizers()
        logs: dict[str, Any] = {}
        for phase in self.phases():
            if phase.due(it):
                logs.update(self.run_phase(phase, optimizers[phase.optimizer], state))
        bs = int(state["batch_size"])
        if self.ema is not None:
            # D and component steps do not touch G, so the EMA may follow the whole iteration
            self.ema.update(self.generator, images=bs * self.trainer.world_size)
        for name, opt in optimizers.items():
            logs[f"lr/{name}"] = opt.param_groups[0]["lr"]
        self.iteration += 1
        done = int(self.iteration)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=bs)
        self.log("iteration", float(done), batch_size=bs)
        if self.max_iterations is not None and done >= self.max_iterations:
            self.trainer.should_stop = True

    # -- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        specs = list(self.optimizer_specs())
        self._optimizer_names = [s.name for s in specs]
        optimizers = []
        for spec in specs:
            opt = spec.factory(trainable(spec.module))
            optimizers.append(fold_lazy_regularization(opt, spec.reg_interval, self.lazy_fold))
        if self.scheduler_factory is None:
            return optimizers
        return optimizers, [self.scheduler_factory(opt) for opt in optimizers]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["iteration"] = int(self.iteration)
