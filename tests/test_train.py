"""End-to-end runs of the train and eval apps on tiny synthetic data (CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from faceprior.eval import evaluate
from faceprior.train import train
from faceprior.utils.config import CONFIG_DIR

#: Baseline experiments (GFP-GAN experiments are exercised in test_gfpgan.py, GPEN and StyleGAN2-prior
#: ones in test_gpen.py, each with their own tiny overrides).
GAN_PREFIXES = ("gfpgan", "gpen", "stylegan2")
EXPERIMENTS = sorted(
    p.stem
    for p in (CONFIG_DIR / "experiment").glob("*.yaml")
    if not p.stem.startswith(GAN_PREFIXES)
)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_train_and_eval(make_cfg, experiment: str, tmp_path: Path) -> None:
    cfg = make_cfg([f"experiment={experiment}", "debug=fdr"])
    metrics, objects = train(cfg)
    assert "test/synthetic_test/psnr" in metrics
    assert math.isfinite(float(metrics["train/loss"]))
    # eval from a checkpoint written by hand (fast_dev_run writes none)
    ckpt = tmp_path / "fdr.ckpt"
    objects["trainer"].save_checkpoint(ckpt)
    ecfg = make_cfg(
        [f"experiment={experiment}", "debug=fdr", f"ckpt_path={ckpt}"], config_name="eval"
    )
    emetrics, _ = evaluate(ecfg)
    assert emetrics["test/synthetic_test/psnr"] == pytest.approx(
        float(metrics["test/synthetic_test/psnr"]), abs=1e-4
    )
    assert (Path(ecfg.paths.output_dir) / "results.md").is_file()


def test_train_writes_results_wandb_and_checkpoints(make_cfg) -> None:
    cfg = make_cfg(["experiment=quickstart", "logger=[wandb,csv]"])
    metrics, _ = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    results = (out / "results.md").read_text()
    assert "LQ input" in results and "| psnr |" in results.replace(" psnr | ssim |", " psnr |")
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["wandb_run_id"] == runs[0].name.rsplit("-", 1)[-1]
    assert list((out / "previews").glob("val_*.png"))
    assert math.isfinite(float(metrics["val/psnr"]))


def test_resume_restores_model_optimizer_and_iteration(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(["experiment=quickstart", "logger=[wandb,csv]", "test=false"])
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=False)
    assert first["global_step"] == 4

    cfg2 = make_cfg(
        [
            "experiment=quickstart",
            "logger=[wandb,csv]",
            "test=false",
            "trainer.max_steps=6",
            f"ckpt_path={last}",
        ]
    )
    with open_dict(cfg2):
        cfg2.paths.output_dir = str(tmp_path / "run2")
    seen: dict[str, object] = {}

    from pytorch_lightning import Callback

    class Probe(Callback):
        def on_train_start(self, trainer, pl_module):  # type: ignore[no-untyped-def]
            seen["step"] = trainer.global_step
            seen["weights"] = {k: v.clone() for k, v in pl_module.state_dict().items()}
            seen["opt_step"] = max(
                int(s["step"]) for s in trainer.optimizers[0].state_dict()["state"].values()
            )
            seen["gen"] = trainer.datamodule.state_dict()["generator"].clone()

    from faceprior.utils import runtime

    orig = runtime.instantiate_callbacks
    runtime_cbs = lambda c: [*orig(c), Probe()]  # noqa: E731
    import faceprior.runs as train_mod

    train_mod.instantiate_callbacks = runtime_cbs
    try:
        train(cfg2)
    finally:
        train_mod.instantiate_callbacks = orig
    assert seen["step"] == 4 and seen["opt_step"] == 4
    for k, v in first["state_dict"].items():
        assert torch.equal(seen["weights"][k], v), k
    assert torch.equal(
        seen["gen"], first["FaceDataModule"]["generator"]
    )  # degradation RNG restored
    second = torch.load(
        Path(cfg2.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False
    )
    assert second["global_step"] == 6
    assert second["wandb_run_id"] == first["wandb_run_id"]


def test_ema_weights_are_trained_saved_and_used_for_eval(make_cfg) -> None:
    cfg = make_cfg(
        ["experiment=quickstart", "logger=csv", "model/ema=default", "model.ema.half_life_images=8"]
    )
    _, objects = train(cfg)
    model = objects["model"]
    assert model.ema is not None and model.eval_net is model.ema.shadow
    assert int(model.ema.images_seen) > 0  # (the test stage reloaded the best checkpoint)
    live = dict(model.net_g.named_parameters())
    diffs = [(p - live[n]).abs().max().item() for n, p in model.ema.shadow.named_parameters()]
    assert max(diffs) > 0  # the average trails the live weights
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert any(k.startswith("ema.shadow.") for k in ckpt["state_dict"])
    assert int(ckpt["state_dict"]["ema.images_seen"]) == 16
