"""GFP-GAN training module: phases, schedules, crops, EMA, frozen decoder, resume, export (CPU, tiny)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from omegaconf import open_dict

from faceprior.checkpoints import export_training_checkpoint, load_state_dict_file
from faceprior.losses import GeneratorContext, ImagePyramid, r1_penalty
from faceprior.models import GFPGANModule
from faceprior.models.components import component_sizes, crop_components
from faceprior.models.gan import fold_lazy_regularization
from faceprior.nets import GFPGANv1, GFPGANv1Clean
from faceprior.train import build_run, train
from faceprior.utils.config import CONFIG_DIR

#: Any GFP-GAN experiment made tiny: 64 px synthetic faces, narrow nets, random feature nets.
GAN_TINY = [
    "data=synthetic",
    "data.size=64",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.synthetic.train=12",
    "data.synthetic.val=4",
    "data.synthetic.test=4",
    "model/generator=gfpgan_tiny",
    "model/discriminator=stylegan2_tiny",
    "model.init_weights=null",
    "model.max_iterations=4",
    "metrics=basic",
    "benchmark=[synthetic_test]",
    "trainer=cpu",
    "trainer.max_steps=-1",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "extras.print_config=false",
    "logger=csv",
]
#: First VGG layer only (cheap) for experiments that keep the perceptual term.
CHEAP_VGG = (
    "++model.generator_losses.perceptual.layer_weights={conv1_1: 1.0, conv1_2: 0, conv2_2: 0, "
    "conv3_4: 0, conv4_4: 0, conv5_4: 0}"
)
#: GFP-GAN training experiments (the prior and the multi-stage comparison are tested in test_gpen.py)
GAN_EXPERIMENTS = sorted(
    p.stem
    for p in (CONFIG_DIR / "experiment").glob("gfpgan*.yaml")
    if p.stem != "gfpgan_prior" and not p.stem.startswith("gfpgan_vs_gpen")
)


def _overrides(experiment: str, *extra: str) -> list[str]:
    out = [f"experiment={experiment}", *GAN_TINY, CHEAP_VGG]
    if experiment != "gfpgan_tiny":
        out += ["metrics@test_metrics=basic", "model.decoder_prior=null"]
        out += ["model.generator_losses.perceptual.weights_path=null"]
        if "simple" not in experiment:
            out += ["model.generator_losses.identity.weights_path=null"]
    return out + list(extra)


def _metrics_rows(cfg: Any) -> list[dict[str, str]]:
    path = next(Path(cfg.paths.output_dir).glob("csv/*/metrics.csv"))
    with path.open() as f:
        return list(csv.DictReader(f))


def _by_iteration(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    return {
        int(float(r["iteration"])): float(r[key]) for r in rows if r.get("iteration") and r.get(key)
    }


# -- pieces ---------------------------------------------------------------------------------------
def test_lazy_regularization_folding() -> None:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-3, betas=(0.0, 0.99))
    fold_lazy_regularization(opt, 16)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.88235e-3, rel=1e-5)
    assert opt.param_groups[0]["betas"][1] == pytest.approx(0.990585, abs=1e-6)


def test_r1_penalty_matches_closed_form() -> None:
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    w = torch.randn(2, 4, 4)
    logits = (x * w).sum(dim=(1, 2, 3))  # dD/dx = w for every sample
    assert float(r1_penalty(logits, x)) == pytest.approx(float(w.pow(2).sum()), rel=1e-6)


def test_image_pyramid_matches_official_construction_and_switches_off() -> None:
    gt = torch.rand(2, 3, 64, 64) * 2 - 1
    rgbs = [torch.rand(2, 3, s, s) for s in (8, 16, 32, 64)]
    term = ImagePyramid(weight=1.0, until_iteration=10)
    parts = term(GeneratorContext(gt, gt, rgbs, iteration=10))
    pyramid = [gt]
    for _ in range(3):  # GFP-GAN's construct_img_pyramid
        pyramid.insert(
            0, F.interpolate(pyramid[0], scale_factor=0.5, mode="bilinear", align_corners=False)
        )
    assert list(parts) == ["8", "16", "32", "64"]
    for (_, value), rgb, target in zip(parts.items(), rgbs, pyramid, strict=True):
        assert float(value) == pytest.approx(float(F.l1_loss(rgb, target)), rel=1e-6)
    assert term.weight_at(10) == 1.0 and term.weight_at(11) == 1e-12
    after = term(GeneratorContext(gt, gt, rgbs, iteration=11))
    assert float(after["8"]) == pytest.approx(1e-12 * float(parts["8"]), rel=1e-6)


def test_component_crops_scale_with_resolution_and_follow_boxes() -> None:
    assert component_sizes(512) == {"left_eye": 80, "right_eye": 80, "mouth": 120}
    assert component_sizes(64) == {"left_eye": 10, "right_eye": 10, "mouth": 15}
    img = torch.zeros(2, 3, 64, 64)
    img[1, :, 10:20, 30:40] = 1.0
    boxes = torch.tensor([[[30.0, 10, 40, 20], [0, 0, 10, 10], [20, 40, 44, 60]]] * 2)
    crops = crop_components(img, boxes, component_sizes(64))
    assert crops["left_eye"].shape == (2, 3, 10, 10) and crops["mouth"].shape == (2, 3, 15, 15)
    assert float(crops["left_eye"][0].abs().max()) == 0.0
    assert float(crops["left_eye"][1].mean()) > 0.8 and float(crops["right_eye"][1].max()) == 0.0


def test_flipped_batch_boxes_feed_mirrored_crops(tmp_path: Path) -> None:
    from faceprior.data.dataset import ComponentBoxes, FaceDataset
    from faceprior.data.synthetic import write_synthetic_split

    root = tmp_path / "faces"
    write_synthetic_split(root, count=2, size=64, seed=3)
    comps = ComponentBoxes(root / "eye_mouth_landmarks.pth")
    plain = FaceDataset(root / "images", 64, components=comps)[0]
    flipped = FaceDataset(root / "images", 64, components=comps, flip_prob=1.0)[0]
    sizes = component_sizes(64)
    a = crop_components(plain["gt"][None].float(), plain["boxes"][None], sizes)
    # FFHQ's flip convention (centre x -> W - x, box [c-h+1, c+h]) lands 2 px right of the
    # pixel-exact mirror of the box; undo that offset and the crops are exact mirror images
    shift = torch.tensor([2.0, 0.0, 2.0, 0.0])
    b = crop_components(flipped["gt"][None].float(), (flipped["boxes"] - shift)[None], sizes)
    for mine, theirs in (("left_eye", "right_eye"), ("right_eye", "left_eye"), ("mouth", "mouth")):
        torch.testing.assert_close(b[mine], a[theirs].flip(-1), atol=1e-3, rtol=0)
    assert not torch.allclose(b["left_eye"], a["left_eye"].flip(-1), atol=1.0)


# -- training -------------------------------------------------------------------------------------
def test_one_run_logs_every_phase_r1_schedule_ema_and_frozen_decoder(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_cfg(
        _overrides(
            "gfpgan_v1_ffhq512",
            "model.discriminator_loss.r1_interval=2",
            "model.generator.fix_decoder=true",
            "model.generator_losses.pyramid.until_iteration=2",
            "test=false",
        ),
        tiny=False,
    )
    r1_calls: list[int] = []
    import faceprior.losses.gan as gfpgan_module

    def spy(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        r1_calls.append(int(run["model"].iteration) + 1)
        return r1_penalty(logits, images)

    monkeypatch.setattr(gfpgan_module, "r1_penalty", spy)
    run = build_run(cfg)
    model: GFPGANModule = run["model"]
    decoder_before = {k: v.clone() for k, v in model.net_g.stylegan_decoder.state_dict().items()}
    unet_before = model.net_g.final_linear.weight.detach().clone()
    ema_before = {k: v.clone() for k, v in model.ema.shadow.state_dict().items()}
    run["trainer"].fit(model, datamodule=run["datamodule"])

    assert int(model.iteration) == 4
    assert r1_calls == [2, 4]  # exactly the multiples of the interval, on our counter
    rows = _metrics_rows(cfg)
    keys = {k for r in rows for k, v in r.items() if v}
    expected = {
        "train/g_pixel",
        "train/g_perceptual/perceptual",
        "train/g_perceptual/style",
        "train/g_adversarial",
        "train/g_component_style",
        "train/g_identity",
        "train/g_total",
        "train/d_loss",
        "train/d_real_score",
        "train/d_fake_score",
        "train/d_r1",
        "train/grad_norm/g",
        "train/grad_norm/d",
        "train/lr/g",
        "train/lr/d",
        "iteration",
    }
    expected |= {f"train/g_pyramid/{s}" for s in (8, 16, 32, 64)}
    expected |= {f"train/g_component_adversarial/{c}" for c in ("left_eye", "right_eye", "mouth")}
    expected |= {f"train/d_{c}" for c in ("left_eye", "right_eye", "mouth")}
    assert expected <= keys, expected - keys
    for row in rows:
        for key in expected & set(row):
            if row[key]:
                assert math.isfinite(float(row[key])), key
    pyramid = _by_iteration(rows, "train/g_pyramid/64")
    assert pyramid[2] > 1e-4 and pyramid[3] < 1e-10  # weight 1e-12 after until_iteration=2
    assert {2, 4} <= set(_by_iteration(rows, "train/d_r1"))
    # official GFP-GAN folds only the D betas: the D lr stays as written (2e-3)
    assert _by_iteration(rows, "train/lr/d")[1] == pytest.approx(2e-3, rel=1e-6)

    # frozen decoder: unchanged and not optimised; the rest of G did train
    for k, v in model.net_g.stylegan_decoder.state_dict().items():
        assert torch.equal(v, decoder_before[k]), k
    assert not torch.equal(model.net_g.final_linear.weight, unet_before)
    opt_g = model.optimizers()[0].optimizer  # type: ignore[index]
    in_opt = {id(p) for g in opt_g.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in model.net_g.stylegan_decoder.parameters())
    # EMA moved towards G but is not G; G's weights are not the EMA's
    shadow = model.ema.shadow.state_dict()
    live = model.net_g.state_dict()
    key = "final_linear.weight"
    assert not torch.equal(shadow[key], ema_before[key])
    assert not torch.equal(shadow[key], live[key])


def test_schedules_use_own_counter_not_global_step(make_cfg) -> None:
    cfg = make_cfg(
        _overrides(
            "gfpgan_tiny", "model.max_iterations=3", "model.scheduler.milestones=[2]", "test=false"
        ),
        tiny=False,
    )
    _, run = train(cfg)
    trainer, model = run["trainer"], run["model"]
    assert int(model.iteration) == 3
    assert trainer.global_step > 3  # Lightning counts every optimizer step
    lrs = _by_iteration(_metrics_rows(cfg), "train/lr/g")
    # BasicSR steps the schedulers from the second iteration on: milestone 2 acts from iteration 3
    base = float(cfg.model.optimizers.generator.lr)
    assert lrs[1] == pytest.approx(base) and lrs[2] == pytest.approx(base)
    assert lrs[3] == pytest.approx(base / 2)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["iteration"] == 3 and int(ckpt["state_dict"]["iteration"]) == 3
    assert len(ckpt["optimizer_states"]) == 5 and len(ckpt["lr_schedulers"]) == 5


def _final_state(model: GFPGANModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_mid_epoch_is_bit_identical(make_cfg, tmp_path: Path) -> None:
    # 12 images, batch 4: 3 iterations per epoch; resume after iteration 2 (mid-epoch) to 5
    common = [
        "model.max_iterations=5",
        "model.discriminator_loss.r1_interval=2",
        "trainer.val_check_interval=1",
    ]
    common += ["callbacks.model_checkpoint.save_top_k=-1", "test=false"]
    cfg_a = make_cfg(_overrides("gfpgan_tiny", *common), tiny=False)
    _, run_a = train(cfg_a)
    mid = Path(cfg_a.paths.output_dir) / "checkpoints" / "iter_00000002.ckpt"
    assert mid.is_file(), sorted(p.name for p in mid.parent.iterdir())
    rows_a = _metrics_rows(cfg_a)

    cfg_b = make_cfg(_overrides("gfpgan_tiny", *common, f"ckpt_path={mid}"), tiny=False)
    with open_dict(cfg_b):
        cfg_b.paths.output_dir = str(tmp_path / "resumed")
    _, run_b = train(cfg_b)
    a, b = _final_state(run_a["model"]), _final_state(run_b["model"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_b = _metrics_rows(cfg_b)
    for key in ("train/g_total", "train/d_loss", "train/d_left_eye"):
        la, lb = _by_iteration(rows_a, key), _by_iteration(rows_b, key)
        assert sorted(lb) == [3, 4, 5]
        assert all(la[i] == lb[i] for i in (3, 4, 5)), key


@pytest.mark.parametrize("experiment", GAN_EXPERIMENTS)
def test_gan_experiments_fast_dev_run(make_cfg, experiment: str) -> None:
    cfg = make_cfg(_overrides(experiment, "debug=fdr"), tiny=False)
    metrics, _ = train(cfg)
    assert math.isfinite(float(metrics["train/g_total"]))
    assert "test/synthetic_test/psnr" in metrics


def test_eval_app_reproduces_gan_test_metrics(make_cfg, tmp_path: Path) -> None:
    from faceprior.eval import evaluate

    cfg = make_cfg(_overrides("gfpgan_tiny", "model.max_iterations=2"), tiny=False)
    metrics, _ = train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    ecfg = make_cfg(_overrides("gfpgan_tiny", f"ckpt_path={ckpt}"), config_name="eval", tiny=False)
    emetrics, _ = evaluate(ecfg)
    assert float(emetrics["test/synthetic_test/psnr"]) == pytest.approx(
        float(metrics["test/synthetic_test/psnr"]), abs=1e-6
    )
    assert "iterations trained: 2" in (Path(ecfg.paths.output_dir) / "results.md").read_text()


@pytest.mark.parametrize("cls", [GFPGANv1, GFPGANv1Clean])
def test_export_loads_into_official_class_strict(cls: type, tmp_path: Path) -> None:
    from faceprior.models import EMA
    from faceprior.nets import StyleGAN2Discriminator

    kwargs: dict[str, Any] = {"out_size": 32, "num_style_feat": 32, "narrow": 0.0625, "num_mlp": 2}
    if cls is GFPGANv1Clean:
        kwargs["channel_multiplier"] = 2
    module = GFPGANModule(
        cls(**kwargs),
        StyleGAN2Discriminator(32, narrow=0.0625),
        {"pixel": torch.nn.L1Loss()},
        optimizers={"generator": torch.optim.Adam, "discriminator": torch.optim.Adam},
        ema=EMA(half_life_images=100),
    )
    with torch.no_grad():
        for p in module.ema.shadow.parameters():
            p.add_(1.0)  # EMA differs from the live weights
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": module.state_dict()}, ckpt)
    out, _ = export_training_checkpoint(ckpt, tmp_path / "export.pth")
    raw = torch.load(out, weights_only=True)
    assert set(raw) == {"params", "params_ema"}
    fresh = cls(**kwargs)
    fresh.load_state_dict(load_state_dict_file(out).state_dict, strict=True)
    for (k, v), ref in zip(
        fresh.state_dict().items(), module.ema.shadow.state_dict().values(), strict=True
    ):
        assert torch.equal(v, ref), k
    live = cls(**kwargs)
    live.load_state_dict(raw["params"], strict=True)
    assert torch.equal(live.final_linear.weight, module.net_g.final_linear.weight)


def test_export_cli_and_bad_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from faceprior.checkpoints.cli import main

    ckpt = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, ckpt)
    assert main(["export", str(ckpt), str(tmp_path / "x.pth")]) == 2
    assert "no generator weights" in capsys.readouterr().err


def test_bf16_mixed_iteration_keeps_r1_in_float32(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faceprior.losses.gan as gfpgan_module

    dtypes: list[tuple[torch.dtype, torch.dtype, bool]] = []

    def spy(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        dtypes.append((logits.dtype, images.dtype, torch.is_autocast_enabled("cpu")))
        return r1_penalty(logits, images)

    monkeypatch.setattr(gfpgan_module, "r1_penalty", spy)
    cfg = make_cfg(
        _overrides(
            "gfpgan_tiny",
            "trainer.precision=bf16-mixed",
            "model.discriminator_loss.r1_interval=1",
            "debug=fdr",
        ),
        tiny=False,
    )
    metrics, _ = train(cfg)
    assert math.isfinite(float(metrics["train/g_total"])) and math.isfinite(
        float(metrics["train/d_r1"])
    )
    assert dtypes == [(torch.float32, torch.float32, False)]
