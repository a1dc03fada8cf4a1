"""The training core: regression against the pre-core GFP-GAN, official optimiser/schedule timing,
phases and intervals, iteration counter, checkpoint selection, recipe swaps and 2-process DDP."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from torch.utils.data import DataLoader, Dataset

from faceprior.losses import (
    Adversarial,
    ComponentAdversarial,
    ComponentStyle,
    DiscriminatorLoss,
    Identity,
    ImagePyramid,
    PerceptualLoss,
    PixelLoss,
)
from faceprior.models import EMA, GANModule, GFPGANModule
from faceprior.nets import FacialComponentDiscriminator, GFPGANv1, StyleGAN2Discriminator
from faceprior.runs import build_run
from faceprior.train import train
from tests.conftest import REPO_ROOT
from tests.test_gfpgan import _overrides

FIXTURE = Path(__file__).parent / "data" / "gfpgan_regression.json"
SIZE, BATCH, ITERS = 64, 2, 5


# -- regression fixture ---------------------------------------------------------------------------
def _seeded(seed: int, fn: Any) -> Any:
    torch.manual_seed(seed)
    return fn()


def _regression_module(d_lr: float, milestone: int) -> GFPGANModule:
    """The full GFP-GAN recipe on tiny nets, every network seeded on its own."""
    g = _seeded(
        1,
        lambda: GFPGANv1(
            out_size=SIZE, num_style_feat=64, channel_multiplier=1, resample_kernel=[1, 3, 3, 1],
            fix_decoder=True, num_mlp=2, lr_mlp=0.01, input_is_latent=True, different_w=True,
            narrow=0.0625, sft_half=True,
        ),
    )  # fmt: skip
    d = _seeded(2, lambda: StyleGAN2Discriminator(SIZE, stddev_group=2, narrow=0.0625))
    comps = {
        k: _seeded(3 + i, FacialComponentDiscriminator)
        for i, k in enumerate(["left_eye", "right_eye", "mouth"])
    }
    layers = {"conv1_1": 1.0, "conv2_2": 0.5}
    losses = {
        "pixel": PixelLoss(weight=0.1, criterion="l1"),
        "pyramid": ImagePyramid(weight=1.0, until_iteration=2, residual_weight=1e-12),
        "perceptual": _seeded(6, lambda: PerceptualLoss(layers, None, 1.0, 50.0)),
        "adversarial": Adversarial(weight=0.1, criterion="wgan_softplus"),
        "component_adversarial": ComponentAdversarial(weight=1.0, criterion="vanilla"),
        "component_style": ComponentStyle(weight=200.0, layer_weights=[0.5, 1.0]),
        "identity": _seeded(7, lambda: Identity(weight=10.0, weights_path=None, size=128)),
    }

    def adam(lr: float, betas: tuple[float, float]) -> Any:
        return functools.partial(torch.optim.Adam, lr=lr, betas=betas)

    return GFPGANModule(
        generator=g,
        discriminator=d,
        generator_losses=losses,
        optimizers={
            "generator": adam(2e-3, (0.0, 0.99)),
            "discriminator": adam(d_lr, (0.0, 0.99)),
            "components": adam(2e-3, (0.9, 0.99)),
        },
        discriminator_loss=DiscriminatorLoss("wgan_softplus", r1_weight=10.0, r1_interval=2),
        component_discriminators=comps,
        scheduler=functools.partial(
            torch.optim.lr_scheduler.MultiStepLR, milestones=[milestone], gamma=0.5
        ),
        ema=EMA(half_life_images=20),
        max_iterations=ITERS,
        noise_seed=5,
        lazy_fold="betas",
    )


class _FixedBatches(Dataset):
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(11)
        self.gt = torch.rand(ITERS * BATCH, 3, SIZE, SIZE, generator=gen)
        self.lq = (self.gt + 0.1 * torch.randn(self.gt.shape, generator=gen)).clamp(0, 1)
        base = torch.tensor([[14.0, 20, 28, 32], [36, 20, 50, 32], [22, 40, 44, 54]])
        shift = torch.randint(-2, 3, (ITERS * BATCH, 1, 1), generator=gen).float()
        self.boxes = base[None] + shift

    def __len__(self) -> int:
        return ITERS * BATCH

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"lq": self.lq[i], "gt": self.gt[i], "boxes": self.boxes[i]}


class _Recorder(pl.Callback):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        metrics = sorted(trainer.callback_metrics.items())
        self.rows.append({k: float(v) for k, v in metrics if k.startswith("train/")})


def _fit_fixed(module: GFPGANModule) -> list[dict[str, float]]:
    rec = _Recorder()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=-1, max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[rec], log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(_FixedBatches(), batch_size=BATCH))
    return rec.rows


def _param_stats(net: torch.nn.Module) -> dict[str, Any]:
    digest = hashlib.sha256()
    for p in net.parameters():
        digest.update(p.detach().float().contiguous().numpy().tobytes())
    ps = [p.detach().double() for p in net.parameters()]
    return {
        "sum": float(sum(p.sum() for p in ps)),
        "sq": float(sum(p.pow(2).sum() for p in ps)),
        "sha256": digest.hexdigest(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def test_core_reproduces_the_pre_core_gfpgan_fixture() -> None:
    """The recorded run of the previous GFPGANModule, reproduced on the core.

    Two values changed on purpose (issue #10, item 3), so the old behaviour is requested
    explicitly here: the old module trained D at lr 2e-3·k/(k+1) (now GFP-GAN folds only the betas,
    so that lr is written into the optimiser) and halved the lr AT a milestone (now from the
    iteration after it, as BasicSR: milestone 3 then is milestone 2 now).
    """
    ref = json.loads(FIXTURE.read_text())
    torch.set_num_threads(2)
    module = _regression_module(d_lr=2e-3 * 2 / 3, milestone=2)
    rows = _fit_fixed(module)
    assert int(module.iteration) == ref["iterations"] == ITERS
    nets = {"net_g": module.net_g, "net_d": module.net_d, "ema": module.ema.shadow}
    nets |= {f"component_ds.{k}": v for k, v in module.component_ds.items()}
    stats = {k: _param_stats(v) for k, v in nets.items()}
    same_machine = (
        _cpu_model() == ref["recorded_on"]["cpu"]
        and torch.__version__ == ref["recorded_on"]["torch"]
    )
    assert len(rows) == len(ref["logs"])
    for i, (mine, theirs) in enumerate(zip(rows, ref["logs"], strict=True)):
        for key, value in theirs.items():
            if same_machine:  # same kernels, same order of operations: bit-identical
                assert mine[key] == value, (i, key)
            else:
                # another CPU model picks other SIMD kernels (oneDNN/ATen); float32 last-bit
                # differences grow through 5 GAN iterations: ~3e-5 relative with
                # ATEN_CPU_CAPABILITY=avx2, up to 3.1e-3 (the gradient norms; the losses stay
                # below 2e-3) on an Intel Xeon against this AMD EPYC recording; a wrong lr or
                # order changes them by > 10% (test_fixture_detects_the_official_d_learning_rate)
                assert mine[key] == pytest.approx(value, rel=1e-2, abs=1e-7), (i, key)
    for name, theirs in ref["params"].items():
        if same_machine:
            assert stats[name]["sha256"] == theirs["sha256"], name
        else:  # see above; the parameter sum cancels, so it is compared against the norm
            # (measured on an Intel Xeon against the AMD EPYC recording: sq 2e-7 relative, the
            # D sum 2.3e-4 of the norm)
            assert stats[name]["sq"] == pytest.approx(theirs["sq"], rel=1e-5), name
            assert abs(stats[name]["sum"] - theirs["sum"]) < 1e-3 * math.sqrt(theirs["sq"]), name


def test_fixture_detects_the_official_d_learning_rate() -> None:
    """The official D lr (2e-3, unfolded) leaves the pre-core trajectory from iteration 2 on."""
    ref = json.loads(FIXTURE.read_text())
    rows = _fit_fixed(_regression_module(d_lr=2e-3, milestone=2))
    assert rows[0]["train/lr/d"] == pytest.approx(2e-3) != ref["logs"][0]["train/lr/d"]
    key = "train/d_real_score"
    assert rows[2][key] != pytest.approx(ref["logs"][2][key], rel=0.1)


# -- official optimiser set-up and schedule timing ------------------------------------------------
def test_gfpgan_optimizers_are_official(make_cfg) -> None:
    cfg = make_cfg(_overrides("gfpgan_v1_ffhq512"), tiny=False)
    model = build_run(cfg)["model"]
    optimizers, schedulers = model.configure_optimizers()
    groups = [opt.param_groups[0] for opt in optimizers]
    assert [g["lr"] for g in groups] == [2e-3] * 5  # G, D (R1 folds only its betas), 3 comps
    assert groups[0]["betas"] == (0.0, 0.99)
    assert groups[1]["betas"][0] == 0.0
    assert groups[1]["betas"][1] == pytest.approx(0.99 ** (16 / 17), rel=1e-12)
    assert groups[1]["betas"][1] == pytest.approx(0.990585, abs=1e-6)
    assert all(g["betas"] == (0.9, 0.99) for g in groups[2:])
    assert [list(s.milestones) for s in schedulers] == [[600000, 700000]] * 5


class _FastForward(pl.Callback):
    """Start as if ``done`` iterations had run (what a resumed checkpoint restores)."""

    def __init__(self, done: int) -> None:
        self.done = done
        self.lrs: dict[int, dict[str, float]] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.iteration.fill_(self.done)
        for config in trainer.lr_scheduler_configs:
            # BasicSR steps the schedulers at iterations 2..done: done - 1 steps; a resume also
            # restores the optimisers' current lr
            sched = config.scheduler
            sched.last_epoch = self.done - 1
            for group, lr in zip(sched.optimizer.param_groups, sched._get_closed_form_lr()):
                group["lr"] = lr

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        lrs = {k: float(v) for k, v in trainer.callback_metrics.items() if "/lr/" in k}
        self.lrs[int(pl_module.iteration)] = lrs


@pytest.mark.parametrize(("milestone", "before"), [(600_000, 2e-3), (700_000, 1e-3)])
def test_lr_halves_exactly_after_each_milestone(make_cfg, milestone: int, before: float) -> None:
    cfg = make_cfg(
        _overrides("gfpgan_v1_ffhq512", f"model.max_iterations={milestone + 2}", "test=false"),
        tiny=False,
    )
    run = build_run(cfg)
    probe = _FastForward(milestone - 2)
    run["trainer"].callbacks.append(probe)
    run["trainer"].fit(run["model"], datamodule=run["datamodule"])
    assert sorted(probe.lrs) == [milestone - 1, milestone, milestone + 1, milestone + 2]
    names = {
        "train/lr/g",
        "train/lr/d",
        *(f"train/lr/{c}" for c in ("left_eye", "right_eye", "mouth")),
    }
    for it, lrs in probe.lrs.items():
        assert set(lrs) == names
        expected = before if it <= milestone else before / 2
        # logged as float32
        assert all(v == pytest.approx(expected, rel=1e-6) for v in lrs.values()), (it, lrs)


# -- phases, intervals, counter ---------------------------------------------------------------------
def _spy_phases(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    calls: list[tuple[int, str]] = []
    original = GANModule.run_phase

    def spy(self: GANModule, phase: Any, optimizer: Any, state: dict[str, Any]) -> Any:
        calls.append((self.current_iteration, phase.name))
        return original(self, phase, optimizer, state)

    monkeypatch.setattr(GANModule, "run_phase", spy)
    return calls


def test_gfpgan_phase_order_and_separate_r1_step(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_phases(monkeypatch)
    cfg = make_cfg(
        _overrides(
            "gfpgan_tiny", "model.max_iterations=4", "model.discriminator_loss.r1_interval=2",
            "model.discriminator_loss.r1_separate_step=true", "test=false",
        ),
        tiny=False,
    )  # fmt: skip
    _, run = train(cfg)
    per_iteration = ["g", "d", "d_reg", "d_left_eye", "d_right_eye", "d_mouth"]
    expected = [
        (it, name) for it in range(1, 5) for name in per_iteration if name != "d_reg" or it % 2 == 0
    ]
    assert calls == expected
    # Lightning's global_step counts every optimiser step, our counter iterations
    assert run["trainer"].global_step == len(expected) and int(run["model"].iteration) == 4


def test_max_steps_that_would_stop_first_is_an_error(make_cfg) -> None:
    cfg = make_cfg(
        _overrides("gfpgan_tiny", "model.max_iterations=4", "trainer.max_steps=8"), tiny=False
    )
    with pytest.raises(ValueError, match=r"trainer\.max_steps=8 would stop the run before"):
        train(cfg)


def test_generator_discriminator_criterion_mismatch(make_cfg) -> None:
    key = "model.generator_losses.adversarial.criterion"
    cfg = make_cfg(_overrides("gfpgan_tiny", f"{key}=hinge"), tiny=False)
    # hydra wraps the module's ValueError; the message names the key
    with pytest.raises(
        InstantiationException, match=rf"{key}='hinge' differs from the discriminator"
    ):
        build_run(cfg)
    both = make_cfg(
        _overrides(
            "gfpgan_tiny", f"{key}=hinge", "model.discriminator_loss.criterion=hinge", "debug=fdr"
        ),
        tiny=False,
    )
    metrics, _ = train(both)
    assert math.isfinite(float(metrics["train/d_loss"]))


def test_baseline_runs_on_the_core_counter(make_cfg) -> None:
    cfg = make_cfg(["experiment=quickstart", "test=false"])
    _, run = train(cfg)
    model, trainer = run["model"], run["trainer"]
    assert isinstance(model, GANModule) and not model.automatic_optimization
    assert int(model.iteration) == trainer.global_step == cfg.trainer.max_steps
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["iteration"] == cfg.trainer.max_steps


# -- which weights are tested ------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["last", "best"])
def test_results_name_the_scored_checkpoint(make_cfg, which: str) -> None:
    # 3 iterations, validation every 2 batches
    cfg = make_cfg(
        _overrides("gfpgan_tiny", "model.max_iterations=3", f"test_ckpt={which}"), tiny=False
    )
    _, run = train(cfg)
    out = Path(cfg.paths.output_dir)
    text = (out / "results.md").read_text()
    summary = json.loads((out / "results.json").read_text())
    if which == "last":
        assert "last.ckpt` (last: final weights)" in text and "iterations trained: 3" in text
        assert summary["iteration"] == 3
    else:
        best = Path(run["trainer"].checkpoint_callback.best_model_path)
        assert best.name.startswith("iter_") and f"{best.name}` (best by val/psnr)" in text
        stored = torch.load(best, weights_only=False)["iteration"]
        assert f"iterations trained: {stored}" in text and summary["iteration"] == stored
    assert summary["checkpoint_kind"] in text


def test_gan_presets_score_the_final_checkpoint(make_cfg) -> None:
    for experiment in ("gfpgan_tiny", "gfpgan_v1_ffhq512", "gfpgan_v1_simple_ffhq512"):
        assert make_cfg(_overrides(experiment), tiny=False).test_ckpt == "last", experiment
    assert make_cfg(["experiment=quickstart"]).test_ckpt == "best"


# -- one config shape: parts of one recipe compose into another ------------------------------------
def test_recipe_parts_swap(make_cfg) -> None:
    cfg = make_cfg(
        _overrides("gfpgan_tiny", "+model/optimizer@model.optimizers.generator=adamw", "debug=fdr"),
        tiny=False,
    )
    metrics, run = train(cfg)
    assert isinstance(run["model"].optimizers()[0].optimizer, torch.optim.AdamW)
    assert math.isfinite(float(metrics["train/g_total"]))
    base = make_cfg(["experiment=quickstart", "model/scheduler=multistep", "model/ema=default"])
    model = build_run(base)["model"]
    assert model.scheduler_factory is not None and model.ema is not None
    for key in (
        "generator",
        "generator_losses",
        "optimizers",
        "scheduler",
        "ema",
        "max_iterations",
    ):
        assert key in base.model and key in cfg.model, key


# -- 2-process DDP ------------------------------------------------------------------------------------
class RankProbe(pl.Callback):
    """Writes, per rank and iteration, a digest of every weight and the local batch (DDP test)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        row = {
            "iteration": int(pl_module.iteration),
            "digest": digest.hexdigest(),
            "batch": int(batch["lq"].shape[0]),
            "lq_sum": float(batch["lq"].double().sum()),
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / f"rank{trainer.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


@pytest.mark.slow
def test_ddp_sim_gan_ranks_stay_identical(tmp_path: Path, data_root: Path) -> None:
    probe = tmp_path / "probe"
    args = [
        *_overrides(
            "gfpgan_tiny", "model.max_iterations=3", "trainer=ddp_sim", "data.batch_size=4"
        ),
        f"paths.data_dir={data_root}",
        "+callbacks.rank_probe._target_=tests.test_gan_core.RankProbe",
        f"+callbacks.rank_probe.out_dir={probe}",
    ]
    env = dict(os.environ, WANDB_MODE="offline", FACEPRIOR_ROOT=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    cmd = [str(Path(sys.executable).parent / "faceprior-train"), *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [
        [json.loads(line) for line in (probe / f"rank{r}.jsonl").read_text().splitlines()]
        for r in (0, 1)
    ]
    assert [r["iteration"] for r in ranks[0]] == [r["iteration"] for r in ranks[1]] == [1, 2, 3]
    for a, b in zip(*ranks, strict=True):
        assert a["digest"] == b["digest"], a["iteration"]  # G, D, component Ds, EMA all in sync
        assert a["batch"] == b["batch"] == 2  # global batch 4 split over 2 processes
        assert a["lq_sum"] != b["lq_sum"]  # each rank trains on its own shard
    run = next((tmp_path / "logs" / "train" / "runs").iterdir())
    assert "last: final weights" in (run / "results.md").read_text()


def test_run_builder_picks_what_ddp_needs() -> None:
    from pytorch_lightning.strategies import DDPStrategy

    from faceprior.runs import ddp_strategy

    class Plain(pl.LightningModule):
        ddp_find_unused_parameters = False

    gan = GANModule()
    for name in ("ddp", "ddp_spawn"):
        chosen = ddp_strategy(gan, name)
        assert isinstance(chosen, DDPStrategy)
        assert chosen._ddp_kwargs["find_unused_parameters"] is True
    assert ddp_strategy(Plain(), "ddp") == "ddp"  # one backward per step: the fast default
    assert ddp_strategy(gan, "auto") == "auto"


class _ToyGAN(GANModule):
    """GPEN-style order on the core: D, D-reg, G, G-reg, 0-based iterations, lr and betas folded."""

    def __init__(self) -> None:
        super().__init__(max_iterations=5, first_iteration=0, lazy_fold="lr_betas")
        torch.manual_seed(0)
        self.net_g, self.net_d = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
        self.d_loss = DiscriminatorLoss(r1_interval=2, r1_separate_step=True)
        self.calls: list[tuple[int, str]] = []

    @property
    def generator(self) -> torch.nn.Module:
        return self.net_g

    def optimizer_specs(self) -> list[Any]:
        from faceprior.models import OptimizerSpec

        adam = functools.partial(torch.optim.Adam, lr=2e-3, betas=(0.0, 0.99))
        return [OptimizerSpec("d", adam, self.net_d, 2), OptimizerSpec("g", adam, self.net_g, 4)]

    def _record(self, name: str, loss: Any) -> Any:
        def run(s: dict[str, Any]) -> Any:
            self.calls.append((s["it"], name))
            return loss(s), {}

        return run

    def phases(self) -> list[Any]:
        from faceprior.models import Phase
        from faceprior.models.gan import discriminator_phases

        d, d_reg = discriminator_phases(self.net_d, self.d_loss)
        fake = lambda s: self.net_g(s["lq"])  # noqa: E731
        return [
            Phase("d", "d", self._record("d", lambda s: d.loss(s | {"output": fake(s)})[0])),
            Phase("d_reg", "d", self._record("d_reg", lambda s: d_reg.loss(s)[0]), 2),
            Phase("g", "g", self._record("g", lambda s: -self.net_d(fake(s)).mean())),
            Phase("g_reg", "g", self._record("g_reg", lambda s: fake(s).pow(2).mean()), 4),
        ]

    def prepare_batch(self, batch: dict[str, Any], iteration: int) -> dict[str, Any]:
        return {"lq": batch["lq"], "gt": batch["gt"], "it": iteration, "batch_size": 2}


def test_core_runs_a_zero_based_d_first_recipe() -> None:
    module = _ToyGAN()
    data = [{"lq": torch.randn(2, 4), "gt": torch.randn(2, 4)} for _ in range(5)]
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=None))
    expected = []
    for it in range(5):  # GPEN's loop: regularisers at iteration 0 already
        expected += [(it, "d")] + [(it, "d_reg")] * (it % 2 == 0)
        expected += [(it, "g")] + [(it, "g_reg")] * (it % 4 == 0)
    assert module.calls == expected and int(module.iteration) == 5
    d_group, g_group = (opt.param_groups[0] for opt in trainer.optimizers)
    assert d_group["lr"] == pytest.approx(2e-3 * 2 / 3) and g_group["lr"] == pytest.approx(1.6e-3)
    assert d_group["betas"][1] == pytest.approx(0.99 ** (2 / 3))
    assert g_group["betas"][1] == pytest.approx(0.99**0.8)
