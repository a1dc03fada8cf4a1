"""GPEN and StyleGAN2-prior training: schedules, folding, priors, resume, export, stages (CPU, tiny)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import open_dict

from faceprior.checkpoints import export_training_checkpoint, load_state_dict_file
from faceprior.checkpoints.io import load_pretrained_decoder
from faceprior.losses import DiscriminatorLoss, PathLengthPenalty
from faceprior.models import EMA, GANModule, GPENModule, StyleGAN2PriorModule
from faceprior.nets import (
    GFPGANv1,
    GFPGANv1Clean,
    GPENDiscriminator,
    GPENGenerator,
    GPENStyleGenerator,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    StyleGAN2GeneratorClean,
)
from faceprior.train import train
from tests.conftest import REPO_ROOT

#: What makes any GPEN / prior experiment tiny: 32 px synthetic faces, narrow nets.
COMMON = [
    "data=synthetic",
    "data.size=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.synthetic.train=12",
    "data.synthetic.val=4",
    "data.synthetic.test=4",
    "data.train_components=null",
    "trainer=cpu",
    "trainer.max_steps=-1",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "extras.print_config=false",
    "logger=csv",
    "benchmark=[synthetic_test]",
]
GPEN_NETS = ["model/generator=gpen_tiny", "model/discriminator=gpen_tiny", "metrics=basic"]
#: a random-init FID-Inception on a few samples (no weights)
PRIOR_FID = [
    "model.fid.weights_dir=null",
    "++model.fid.feature_extractor._target_=faceprior.metrics.inception.random_fid_inception",
    "model.fid_samples=4",
    "model.sample_batch=4",
    "model.sample_grid=4",
]
PRIOR_NETS = [
    "model/generator=stylegan2_concat_tiny",
    "model/discriminator=gpen_tiny",
    *PRIOR_FID,
]
TINY_V1_PRIOR = [
    "model.generator.num_style_feat=32",
    "model.generator.num_mlp=2",
    "model.generator.narrow=0.0625",
    "model/discriminator=stylegan2_tiny",
    *PRIOR_FID,
]
PRIOR_EXPERIMENTS = ("stylegan2_tiny", "gpen_prior_ffhq512", "gfpgan_prior")
GPEN_EXPERIMENTS = ("gpen_tiny", "gpen_simple_ffhq512", "gpen_paper_ffhq512", "gpen_finetune")


def tiny(experiment: str, *extra: str) -> list[str]:
    """``experiment`` made tiny (and free of weights files)."""
    out = [f"experiment={experiment}", *COMMON, "model.max_iterations=4"]
    if experiment == "gfpgan_prior":
        out += TINY_V1_PRIOR
    elif experiment in PRIOR_EXPERIMENTS:
        out += PRIOR_NETS
    elif experiment in GPEN_EXPERIMENTS:
        out += [*GPEN_NETS, "model.init_weights=null", "model.decoder_prior=null"]
        if experiment != "gpen_tiny":
            out += ["metrics@test_metrics=basic"]
        if experiment in ("gpen_simple_ffhq512", "gpen_finetune"):
            out += ["model.generator_losses.identity=null"]
    return out + list(extra)


def _rows(cfg: Any) -> list[dict[str, str]]:
    path = next(Path(cfg.paths.output_dir).glob("csv/*/metrics.csv"))
    with path.open() as f:
        return list(csv.DictReader(f))


def _logged(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    """``{recipe iteration index: value}`` of a training log key (logged after the increment)."""
    return {int(float(r["iteration"])) - 1: float(r[key]) for r in rows if r.get(key)}


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """Records ``(iteration, phase)`` for every phase run, and ``(iteration, "r1")`` /
    ``(iteration, "path")`` whenever the R1 or path-length term is computed (inside a phase)."""
    calls: list[tuple[int, str]] = []
    current = [-1]
    run_phase, r1, path = GANModule.run_phase, DiscriminatorLoss.r1, PathLengthPenalty.forward

    def spy_phase(self: GANModule, phase: Any, optimizer: Any, state: dict[str, Any]) -> Any:
        current[0] = self.current_iteration
        calls.append((current[0], phase.name))
        return run_phase(self, phase, optimizer, state)

    def spy_r1(self: DiscriminatorLoss, *args: Any) -> Any:
        calls.append((current[0], "r1"))
        return r1(self, *args)

    def spy_path(self: PathLengthPenalty, *args: Any) -> Any:
        calls.append((current[0], "path"))
        return path(self, *args)

    monkeypatch.setattr(GANModule, "run_phase", spy_phase)
    monkeypatch.setattr(DiscriminatorLoss, "r1", spy_r1)
    monkeypatch.setattr(PathLengthPenalty, "forward", spy_path)
    return calls


def _adam_steps(trainer: Any) -> list[int]:
    out = []
    for opt in trainer.optimizers:
        first = opt.param_groups[0]["params"][0]
        out.append(int(opt.state[first]["step"]))
    return out


# -- schedules and optimisers ---------------------------------------------------------------------
def _separate_schedule(iterations: int) -> list[tuple[int, str]]:
    """rosinality / train_simple.py, 0-based: D; R1 on i % 16 == 0 in its own step; G;
    path-length on i % 4 == 0 in its own step (both at iteration 0)."""
    expected = []
    for it in range(iterations):
        expected += [(it, "d")] + ([(it, "d_reg"), (it, "r1")] if it % 16 == 0 else [])
        expected += [(it, "g")] + ([(it, "g_reg"), (it, "path")] if it % 4 == 0 else [])
    return expected


def test_gpen_phases_follow_the_official_schedule(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy(monkeypatch)
    cfg = make_cfg(tiny("gpen_tiny", "model.max_iterations=17", "test=false"), tiny=False)
    _, run = train(cfg)
    # 0-based as train_simple.py: R1 on i % 16 == 0, path-length on i % 4 == 0, both at 0
    assert calls == _separate_schedule(17)
    g_steps, d_steps = _adam_steps(run["trainer"])
    assert (g_steps, d_steps) == (17 + 5, 17 + 2)
    assert len(_logged(_rows(cfg), "train/g_total")) == 17


def test_gpen_optimizers_are_folded_as_train_simple(make_cfg) -> None:
    cfg = make_cfg(tiny("gpen_simple_ffhq512", "model.max_iterations=1", "test=false"), tiny=False)
    _, run = train(cfg)
    g, d = run["trainer"].optimizers
    assert g.param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5, rel=1e-12)
    assert g.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)), rel=1e-12)
    assert d.param_groups[0]["lr"] == pytest.approx(0.002 * 16 / 17, rel=1e-12)
    assert d.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)), rel=1e-12)
    assert not run["model"].lr_schedulers()
    # EMA: the same decay after every iteration, whatever the batch
    assert run["model"].ema.decay(4) == run["model"].ema.decay(400) == 0.5 ** (32 / 10000)


def test_prior_schedules_rosinality_and_basicsr(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy(monkeypatch)
    cfg = make_cfg(tiny("stylegan2_tiny", "model.max_iterations=5", "test=false"), tiny=False)
    _, run = train(cfg)
    assert calls == _separate_schedule(5)
    assert _adam_steps(run["trainer"]) == [5 + 2, 5 + 1]
    g, d = run["trainer"].optimizers
    assert g.param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5)
    assert d.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    samples = sorted((Path(cfg.paths.output_dir) / "samples").glob("iter_*.png"))
    assert samples and all(p.stat().st_size > 0 for p in samples)  # one grid per validation
    assert "val/fid" in run["trainer"].callback_metrics

    # BasicSR (GFP-GAN's prior): 1-based, R1 and path-length added to the D and G steps
    calls.clear()
    cfg = make_cfg(
        tiny(
            "gfpgan_prior", "model.max_iterations=4", "model.discriminator_loss.r1_interval=2",
            "model.path_length.interval=2", "test=false",
        ),
        tiny=False,
    )  # fmt: skip
    _, run = train(cfg)
    expected = []
    for it in range(1, 5):
        expected += [(it, "d")] + ([(it, "r1")] if it % 2 == 0 else [])
        expected += [(it, "g")] + ([(it, "path")] if it % 2 == 0 else [])
    assert calls == expected
    assert _adam_steps(run["trainer"]) == [4, 4]


def test_style_mixing_draws_are_seeded_and_mix(make_cfg) -> None:
    gen = GPENStyleGenerator(32, 32, 2, channel_multiplier=1, narrow=0.0625)
    module = StyleGAN2PriorModule(
        gen,
        GPENDiscriminator(32, channel_multiplier=1, narrow=0.0625),
        {"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
        style_mixing=1.0,
    )
    torch.manual_seed(0)
    styles, index = module.mixing_latents(3, torch.device("cpu"))
    assert len(styles) == 2 and index is not None and 1 <= index < gen.n_latent
    torch.manual_seed(0)
    again, index2 = module.mixing_latents(3, torch.device("cpu"))
    assert index2 == index and all(torch.equal(a, b) for a, b in zip(styles, again, strict=True))
    module.style_mixing = 0.0
    single, none = module.mixing_latents(3, torch.device("cpu"))
    assert len(single) == 1 and none is None


# -- priors drop into the restoration decoders ------------------------------------------------------
def _prior_module(gen: torch.nn.Module, disc: torch.nn.Module) -> StyleGAN2PriorModule:
    module = StyleGAN2PriorModule(
        gen,
        disc,
        {"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
        path_length=PathLengthPenalty(),
        ema=EMA(decay=0.9),
    )
    with torch.no_grad():
        for p in module.ema.shadow.parameters():
            p.add_(0.5)  # the EMA differs from the live weights
    return module


PRIOR_CASES = {
    "concat->GPEN": (
        lambda: GPENStyleGenerator(32, 32, 2, channel_multiplier=1, narrow=0.0625),
        lambda: GPENGenerator(32, 32, 2, channel_multiplier=1, narrow=0.0625).generator,
    ),
    "additive->GFPGANv1": (
        lambda: StyleGAN2Generator(32, num_style_feat=32, num_mlp=2, channel_multiplier=1,
                                   narrow=0.0625),
        lambda: GFPGANv1(out_size=32, num_style_feat=32, channel_multiplier=1, num_mlp=2,
                         narrow=0.0625).stylegan_decoder,
    ),
    "clean->GFPGANv1Clean": (
        lambda: StyleGAN2GeneratorClean(32, num_style_feat=32, num_mlp=2, channel_multiplier=2,
                                        narrow=0.0625),
        lambda: GFPGANv1Clean(out_size=32, num_style_feat=32, channel_multiplier=2, num_mlp=2,
                              narrow=0.0625).stylegan_decoder,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PRIOR_CASES))
def test_exported_prior_loads_into_the_decoder_strict(case: str, tmp_path: Path) -> None:
    make_prior, make_decoder = PRIOR_CASES[case]
    disc = StyleGAN2Discriminator(32, narrow=0.0625)
    module = _prior_module(make_prior(), disc)
    ckpt = tmp_path / "prior.ckpt"
    torch.save({"state_dict": module.state_dict()}, ckpt)
    out, counts = export_training_checkpoint(ckpt, tmp_path / "prior.pth")
    assert counts["params"] == counts["params_ema"] == len(module.net_g.state_dict())
    decoder = make_decoder()
    load_pretrained_decoder(decoder, out)  # strict keys and shapes
    for (k, v), ref in zip(
        decoder.state_dict().items(), module.ema.shadow.state_dict().values(), strict=True
    ):
        assert torch.equal(v, ref), k


def test_gpen_module_starts_from_the_prior_and_official_files(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"channel_multiplier": 1, "narrow": 0.0625}
    prior = _prior_module(GPENStyleGenerator(32, 32, 2, **kw), GPENDiscriminator(32, **kw))
    ckpt = tmp_path / "prior.ckpt"
    torch.save({"state_dict": prior.state_dict()}, ckpt)
    g_file, _ = export_training_checkpoint(ckpt, tmp_path / "g.pth")
    d_file, _ = export_training_checkpoint(ckpt, tmp_path / "d.pth", part="discriminator")
    module = GPENModule(
        GPENGenerator(32, 32, 2, **kw),
        GPENDiscriminator(32, **kw),
        {"pixel": torch.nn.L1Loss()},
        {"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
        decoder_prior=str(g_file),
        discriminator_prior=str(d_file),
        ema=EMA(decay=0.99),
    )
    for (k, v), ref in zip(
        module.net_g.generator.state_dict().items(),
        prior.ema.shadow.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(v, ref), k
    assert all(
        torch.equal(a, b)
        for a, b in zip(module.net_d.state_dict().values(), prior.net_d.state_dict().values())
    )
    # the EMA starts from the loaded weights too
    assert torch.equal(
        module.ema.shadow.generator.style[1].weight, prior.ema.shadow.style[1].weight
    )
    # an official bare GPEN-BFR-style file for fine-tuning
    official = GPENGenerator(32, 32, 2, **kw)
    torch.save(official.state_dict(), tmp_path / "GPEN-BFR-32.pth")
    tuned = GPENModule(
        GPENGenerator(32, 32, 2, **kw),
        GPENDiscriminator(32, **kw),
        {"pixel": torch.nn.L1Loss()},
        {"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
        init_weights=str(tmp_path / "GPEN-BFR-32.pth"),
    )
    assert torch.equal(tuned.net_g.final_linear[0].weight, official.final_linear[0].weight)
    with pytest.raises(FileNotFoundError, match=r"model\.decoder_prior"):
        GPENModule(
            GPENGenerator(32, 32, 2, **kw),
            GPENDiscriminator(32, **kw),
            {"pixel": torch.nn.L1Loss()},
            {"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
            decoder_prior=str(tmp_path / "missing.pth"),
        )


# -- resume, export ------------------------------------------------------------------------------
def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("experiment", ["gpen_tiny", "stylegan2_tiny"])
def test_resume_mid_epoch_is_bit_identical(make_cfg, tmp_path: Path, experiment: str) -> None:
    # 12 images, batch 4: 3 iterations per epoch; resume after iteration 2 (mid-epoch) to 6, with
    # R1 every 2 and path-length every 2 so that both (and the running mean) cross the resume
    common = [
        "model.max_iterations=6",
        "model.discriminator_loss.r1_interval=2",
        "model.path_length.interval=2",
        "trainer.val_check_interval=1",
        "callbacks.model_checkpoint.save_top_k=-1",
        "test=false",
    ]
    cfg_a = make_cfg(tiny(experiment, *common), tiny=False)
    _, run_a = train(cfg_a)
    mid = Path(cfg_a.paths.output_dir) / "checkpoints" / "iter_00000002.ckpt"
    assert mid.is_file(), sorted(p.name for p in mid.parent.iterdir())
    cfg_b = make_cfg(tiny(experiment, *common, f"ckpt_path={mid}"), tiny=False)
    with open_dict(cfg_b):
        cfg_b.paths.output_dir = str(tmp_path / "resumed")
    _, run_b = train(cfg_b)
    a, b = _state(run_a["model"]), _state(run_b["model"])
    assert a.keys() == b.keys() and "path_length.mean_path_length" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert float(a["path_length.mean_path_length"]) > 0
    rows_a, rows_b = _rows(cfg_a), _rows(cfg_b)
    for key in ("train/d_loss", "train/g_total"):
        la, lb = _logged(rows_a, key), _logged(rows_b, key)
        assert sorted(lb) == [2, 3, 4, 5]
        assert all(la[i] == lb[i] for i in lb), key


def test_gpen_exports_load_into_official_layout_classes(make_cfg, tmp_path: Path) -> None:
    from faceprior.checkpoints.cli import main

    cfg = make_cfg(tiny("gpen_tiny", "model.max_iterations=2", "test=false"), tiny=False)
    _, run = train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    model = run["model"]
    gkw = {k: cfg.model.generator[k] for k in ("size", "style_dim", "n_mlp", "channel_multiplier")}
    gkw["narrow"] = cfg.model.generator.narrow

    bare = tmp_path / "GPEN-BFR.pth"
    assert main(["export", str(ckpt), str(bare), "--layout", "bare"]) == 0
    net = GPENGenerator(**gkw)
    net.load_state_dict(torch.load(bare, weights_only=True), strict=True)
    for (k, v), ref in zip(
        net.state_dict().items(), model.ema.shadow.state_dict().values(), strict=True
    ):
        assert torch.equal(v, ref), k

    pretrain = tmp_path / "train_simple.pth"
    assert main(["export", str(ckpt), str(pretrain), "--layout", "gpen_train"]) == 0
    raw = torch.load(pretrain, weights_only=True)
    assert set(raw) == {"g", "d", "g_ema", "g_optim", "d_optim"}
    # what train_simple --pretrain does: every entry loads strictly into the official layout
    g, d = GPENGenerator(**gkw), GPENDiscriminator(32, channel_multiplier=1, narrow=0.125)
    g.load_state_dict(raw["g"], strict=True)
    d.load_state_dict(raw["d"], strict=True)
    torch.optim.Adam(g.parameters()).load_state_dict(raw["g_optim"])
    torch.optim.Adam(d.parameters()).load_state_dict(raw["d_optim"])
    assert raw["g_optim"]["param_groups"][0]["lr"] == pytest.approx(0.0016)

    disc = tmp_path / "D.pth"
    assert main(["export", str(ckpt), str(disc), "--part", "discriminator"]) == 0
    d2 = GPENDiscriminator(32, channel_multiplier=1, narrow=0.125)
    d2.load_state_dict(load_state_dict_file(disc).state_dict, strict=True)


# -- experiments -----------------------------------------------------------------------------------
@pytest.mark.parametrize("experiment", [*GPEN_EXPERIMENTS, *PRIOR_EXPERIMENTS])
def test_new_experiments_fast_dev_run(make_cfg, experiment: str) -> None:
    cfg = make_cfg(tiny(experiment, "debug=fdr"), tiny=False)
    metrics, run = train(cfg)
    assert math.isfinite(float(metrics["train/g_total"]))
    if experiment in GPEN_EXPERIMENTS:
        assert isinstance(run["model"], GPENModule)
        assert "test/synthetic_test/psnr" in metrics
    else:
        assert isinstance(run["model"], StyleGAN2PriorModule)
        assert math.isfinite(float(metrics["train/g_adversarial"]))


def test_gpen_paper_preset_is_the_paper_objective(make_cfg) -> None:
    from faceprior.losses import FeatureMatching

    cfg = make_cfg(tiny("gpen_paper_ffhq512", "model.max_iterations=1", "test=false"), tiny=False)
    metrics, run = train(cfg)
    terms = run["model"].g_losses
    assert set(terms) == {"adversarial", "pixel", "feature_matching"}
    assert isinstance(terms["feature_matching"], FeatureMatching)
    assert terms["feature_matching"].weight == 0.02 and terms["pixel"].criterion == "l1"
    assert float(metrics["train/g_feature_matching"]) > 0
    assert cfg.model.generator_losses.pixel.weight == 1.0


def _two_stage(make_cfg, experiment: str, *extra: str) -> Any:
    cfg = make_cfg([f"experiment={experiment}", *COMMON, *extra], tiny=False)
    with open_dict(cfg):
        cfg.stages.prior.overrides = [
            "experiment=stylegan2_tiny", "model.max_iterations=2", *PRIOR_NETS,
        ]  # fmt: skip
        cfg.stages.gpen.overrides = [
            "experiment=gpen_tiny", "model.max_iterations=2", *GPEN_NETS, "model.init_weights=null",
        ]  # fmt: skip
    return cfg


def test_two_stage_hands_the_prior_to_gpen(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, dict[str, torch.Tensor]] = {}
    original = GPENModule.on_fit_start

    def record(self: GPENModule) -> None:
        seen["decoder"] = _state(self.net_g.generator)
        seen["discriminator"] = _state(self.net_d)
        original(self)

    monkeypatch.setattr(GPENModule, "on_fit_start", record)
    cfg = _two_stage(make_cfg, "gpen_two_stage_tiny")
    metrics, runs = train(cfg)
    root = Path(cfg.paths.output_dir)
    summary = json.loads((root / "stages.json").read_text())
    assert list(summary) == ["prior", "gpen"]
    prior = torch.load(summary["prior"]["exports"]["generator_ema"], weights_only=True)
    for k, v in seen["decoder"].items():
        assert torch.equal(v, prior["params_ema"][k]), k  # stage 2 starts from the exported prior
    d = torch.load(summary["prior"]["exports"]["discriminator"], weights_only=True)
    assert all(torch.equal(v, d[k]) for k, v in seen["discriminator"].items())
    assert (root / "prior" / "samples").is_dir() and (root / "gpen" / "results.md").is_file()
    assert "test/synthetic_test/psnr" in metrics
    assert isinstance(runs["stages"]["prior"]["model"], StyleGAN2PriorModule)
    overrides = summary["gpen"]["overrides"]
    assert f"model.decoder_prior={summary['prior']['exports']['generator_ema']}" in overrides


def test_full_two_stage_preset_composes_and_runs(make_cfg) -> None:
    cfg = _two_stage(make_cfg, "gpen_two_stage", "debug=fdr")
    with open_dict(cfg):
        cfg.stages.prior.overrides[0] = "experiment=gpen_prior_ffhq512"
        cfg.stages.gpen.overrides[0] = "experiment=gpen_paper_ffhq512"
        cfg.stages.prior.overrides += [
            "data=synthetic",
            "data.size=32",
            "data.train_components=null",
        ]
        cfg.stages.gpen.overrides += [
            "data=synthetic",
            "data.size=32",
            "data.train_components=null",
        ]
        cfg.stages.gpen.overrides += ["metrics@test_metrics=basic"]
    metrics, runs = train(cfg)
    assert "train/g_feature_matching" in metrics
    assert isinstance(runs["model"], GPENModule)


def test_stage_errors_name_the_key(make_cfg) -> None:
    cfg = _two_stage(make_cfg, "gpen_two_stage_tiny")
    with open_dict(cfg):
        cfg.stages.gpen.inputs = {"model.decoder_prior": "prior/nothing"}
        cfg.stages.prior.overrides += ["debug=fdr"]
    with pytest.raises(ValueError, match=r"stages.gpen.inputs.model.decoder_prior.*not 'nothing'"):
        train(cfg)


def test_path_length_needs_a_discriminator_objective_match() -> None:
    with pytest.raises(ValueError, match=r"model\.generator_criterion"):
        StyleGAN2PriorModule(
            GPENStyleGenerator(32, 32, 2, channel_multiplier=1, narrow=0.0625),
            GPENDiscriminator(32, channel_multiplier=1, narrow=0.0625),
            {"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
            discriminator_loss=DiscriminatorLoss(criterion="hinge"),
        )


# -- 2-process DDP ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["gpen_tiny", "stylegan2_tiny"])
def test_ddp_sim_ranks_stay_identical(tmp_path: Path, data_root: Path, experiment: str) -> None:
    probe = tmp_path / "probe"
    args = [
        *tiny(experiment, "model.max_iterations=3", "trainer=ddp_sim", "test=false"),
        "model.path_length.interval=1",
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
        # G, D, EMA and the path-length running mean (a buffer of the module) all in sync
        assert a["digest"] == b["digest"], a["iteration"]
        assert a["batch"] == b["batch"] == 2
        assert a["lq_sum"] != b["lq_sum"]  # each rank trains on its own shard


def test_eval_app_reproduces_gpen_test_metrics(make_cfg) -> None:
    from faceprior.eval import evaluate

    cfg = make_cfg(tiny("gpen_tiny", "model.max_iterations=2"), tiny=False)
    metrics, _ = train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    ecfg = make_cfg(tiny("gpen_tiny", f"ckpt_path={ckpt}"), config_name="eval", tiny=False)
    emetrics, _ = evaluate(ecfg)
    assert float(emetrics["test/synthetic_test/psnr"]) == pytest.approx(
        float(metrics["test/synthetic_test/psnr"]), abs=1e-6
    )
    results = (Path(ecfg.paths.output_dir) / "results.md").read_text()
    assert "iterations trained: 2" in results
    rows = (Path(cfg.paths.output_dir) / "test_per_image.csv").read_text().splitlines()
    assert rows[0].startswith("benchmark,index") and len(rows) == 1 + 4


def test_eval_app_refuses_a_multi_stage_experiment(make_cfg) -> None:
    from faceprior.eval import evaluate

    cfg = make_cfg(["experiment=gpen_two_stage_tiny", "ckpt_path=x.ckpt"], config_name="eval")
    with pytest.raises(ValueError, match="trains stages"):
        evaluate(cfg)


def test_noise_streams_of_one_iteration_are_independent() -> None:
    # torch keeps only the low 32 bits of a seed: the stream must change those bits
    module = StyleGAN2PriorModule(
        GPENStyleGenerator(32, 32, 2, channel_multiplier=1, narrow=0.0625),
        GPENDiscriminator(32, channel_multiplier=1, narrow=0.0625),
        {"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
    )
    draws = []
    for stream in (0, 1, 2, 3):
        with module.seeded_noise(7, torch.device("cpu"), stream):
            draws.append(torch.randn(4))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(draws[i], draws[j]), (i, j)
    with module.seeded_noise(7, torch.device("cpu"), 2):
        assert torch.equal(torch.randn(4), draws[2])  # and each stream is reproducible


def test_gfpgan_vs_gpen_compares_three_methods_on_identical_data(make_cfg) -> None:
    from tests.test_gfpgan import CHEAP_VGG

    common = [o for o in COMMON if o != "data.train_components=null"]  # GFP-GAN needs the boxes
    cfg = make_cfg(["experiment=gfpgan_vs_gpen_tiny", *common, "debug=fdr"], tiny=False)
    with open_dict(cfg):
        cfg.stages.unet.overrides += ["model/generator=unet_tiny", CHEAP_VGG]
        cfg.stages.gfpgan.overrides += [
            "model/generator=gfpgan_tiny", "model/discriminator=stylegan2_tiny", CHEAP_VGG,
        ]  # fmt: skip
        cfg.stages.gpen.overrides += GPEN_NETS[:2]
    train(cfg)
    root = Path(cfg.paths.output_dir)
    md = (root / "compare" / "compare.md").read_text()
    header, _, *rows = md.splitlines()
    for column in ("PSNR↑", "SSIM↑", "LPIPS↓", "FID↓", "NIQE↓", "IDD↓"):
        assert f"synthetic_test {column}" in header
    # the caveats of the random feature networks and of the enlarged NIQE inputs, under the table
    for label in ("LPIPS", "FID", "IDD"):
        assert f"> {label}: randomly initialised" in md
    assert "> NIQE: images smaller than 192 px were enlarged" in md
    assert [r.split("|")[1].strip() for r in rows[:4]] == ["LQ input", "U-Net", "GFP-GAN", "GPEN"]
    assert "LQ inputs differ" not in md  # identical data and degradation for every method
    assert "scored on different data" not in md
    html = (root / "compare" / "compare.html").read_text()
    assert html.count("<img") >= 4 * 5  # 4 faces x (LQ, three methods, GT)
    protocol = json.loads((root / "gpen" / "results" / "synthetic_test.json").read_text())
    assert protocol["protocol"]["seed"] == 42
