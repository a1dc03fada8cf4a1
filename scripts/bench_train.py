"""Training-step throughput and peak memory of a LightningModule from the real configs.

Composes ``train.yaml`` with the given Hydra overrides (default: the official GFP-GAN v1 recipe),
pretrained-weight paths nulled so that no file is needed, then runs the module's real
``training_step`` through a Lightning ``Trainer`` on random batches (faces with eye/mouth boxes,
already degraded), for every batch size and precision asked for. Prints iterations/s, images/s and
peak memory; the first ``--warmup`` iterations are not timed. With ``--baseline`` (default
``model=gfpgan``) the baseline recipe is measured in the same run at the same size, batch and
precision, and every row shows the ratio of iterations/s to it.

    python scripts/bench_train.py model=gfpgan
    python scripts/bench_train.py model=gpen --size 512 256 --batch 1 4
    python scripts/bench_train.py model=stylegan2 model=stylegan2_concat --batch 4
    python scripts/bench_train.py model=gfpgan --batch 3 12 --precision 32-true bf16-mixed --iters 10
    python scripts/bench_train.py experiment=gfpgan_clean_ffhq512 --device cuda

Shorthands: ``model=gfpgan`` = ``experiment=gfpgan_v1_ffhq512``; ``model=gpen`` =
``experiment=gpen_simple_ffhq512`` (GPEN-BFR-512 nets at 512; at 256 the GPEN-BFR-256 nets,
channel multiplier 1 and narrow 0.5 for G and D as train_simple builds them);
``model=stylegan2`` = ``experiment=gfpgan_prior`` (GFP-GAN's additive prior);
``model=stylegan2_concat`` = ``experiment=gpen_prior_ffhq512`` (GPEN's concatenating prior).
Several shorthands are measured one after the other. Other overrides are passed through.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader, IterableDataset

from faceprior.utils.config import CONFIG_DIR, setup_config_system

#: what every model family needs nulled to run without weights files
NULL_WEIGHTS = {
    "gfpgan": [
        "model.decoder_prior=null",
        "model.init_weights=null",
        "model.generator_losses.perceptual.weights_path=null",
        "model.generator_losses.identity.weights_path=null",
    ],
    "gpen": ["model.init_weights=null", "model.generator_losses.identity.weights_path=null"],
    "stylegan2": ["model.fid=null"],
}
SHORTHANDS = {
    "model=gfpgan": ("gfpgan", ["experiment=gfpgan_v1_ffhq512"]),
    "model=gpen": ("gpen", ["experiment=gpen_simple_ffhq512", "data.train_components=null"]),
    "model=stylegan2": ("stylegan2", ["experiment=gfpgan_prior"]),
    "model=stylegan2_concat": ("stylegan2", ["experiment=gpen_prior_ffhq512"]),
}
#: train_simple.py at 256 builds G and D with GPEN-BFR-256's arguments
GPEN_256 = [
    "model/generator=gpen_256",
    "model.discriminator.channel_multiplier=1",
    "model.discriminator.narrow=0.5",
]


class RandomFaces(IterableDataset[dict[str, torch.Tensor]]):
    """Endless random batches shaped like a degraded training batch (with FFHQ-like boxes)."""

    def __init__(self, batch: int, size: int) -> None:
        self.batch, self.size = batch, size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        gen = torch.Generator().manual_seed(0)
        s = self.size / 512
        boxes = (
            torch.tensor([[150.0, 220, 230, 300], [282, 220, 362, 300], [196, 330, 316, 450]]) * s
        )
        while True:
            gt = torch.rand(self.batch, 3, self.size, self.size, generator=gen)
            lq = (gt + 0.1 * torch.randn(gt.shape, generator=gen)).clamp(0, 1)
            yield {"gt": gt, "lq": lq, "boxes": boxes.expand(self.batch, 3, 4).clone()}


class StepTimer(pl.Callback):
    """Wall time of each training batch (device synchronised) after ``warmup`` batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times: list[float] = []
        self._start = 0.0
        self._seen = 0

    def _sync(self, module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any
    ) -> None:
        self._sync(module)
        if self._seen == self.warmup and module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any
    ) -> None:
        self._sync(module)
        self._seen += 1
        if self._seen > self.warmup:
            self.times.append(time.perf_counter() - self._start)


def split_models(overrides: list[str]) -> list[tuple[str, list[str]]]:
    """``[(label, overrides)]``: one entry per shorthand (or one for plain overrides)."""
    shared = [o for o in overrides if o not in SHORTHANDS]
    models = [o for o in overrides if o in SHORTHANDS] or ([] if shared else ["model=gfpgan"])
    if not models:
        return [(" ".join(shared), shared)]
    return [(m, [m, *shared]) for m in models]


def compose_cfg(overrides: list[str], size: int, batch: int) -> DictConfig:
    mapped: list[str] = []
    family = "gfpgan"
    for o in overrides:
        if o in SHORTHANDS:
            family, expanded = SHORTHANDS[o]
            mapped += expanded
            if o == "model=gpen" and size == 256:
                mapped += GPEN_256
        else:
            mapped.append(o)
    if family == "gfpgan" and not any(o in SHORTHANDS for o in overrides):
        if any("prior" in o or "stylegan2_tiny" in o for o in mapped):
            family = "stylegan2"
        elif any("gpen" in o for o in mapped):
            family = "gpen"
    extra = [*NULL_WEIGHTS[family], "metrics=basic"]
    if family != "stylegan2":
        extra.append("metrics@test_metrics=basic")
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=mapped + extra + [f"data.size={size}", f"data.batch_size={batch}"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.paths.output_dir = "."
    return cfg


def peak_memory_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    # ru_maxrss is in KiB on Linux: the process peak (includes earlier configurations)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(
    cfg: DictConfig, batch: int, precision: str, device: str, iters: int, warmup: int
) -> dict[str, float]:
    pl.seed_everything(0, workers=True)
    model: pl.LightningModule = instantiate(cfg.model)
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,  # type: ignore[arg-type]
        max_steps=-1,
        limit_train_batches=warmup + iters,
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    loader = DataLoader(RandomFaces(batch, int(cfg.data.size)), batch_size=None)
    trainer.fit(model, train_dataloaders=loader)
    mean = sum(timer.times) / len(timer.times)
    return {
        "s_per_it": mean,
        "it_per_s": 1 / mean,
        "img_per_s": batch / mean,
        "peak_gib": peak_memory_gib(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "overrides", nargs="*", default=["model=gfpgan"], help="Hydra overrides / shorthands"
    )
    parser.add_argument("--size", type=int, nargs="+", default=[512])
    parser.add_argument("--batch", type=int, nargs="+", default=[3, 12], help="batch per device")
    parser.add_argument("--precision", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--iters", type=int, default=5, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--baseline", default="model=gfpgan", help="measured first for the ratio column ('' = none)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    setup_config_system()
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    print(
        f"device: {args.device} ({name}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, cpus {os.cpu_count()}"
    )
    print(f"{args.iters} timed iterations after {args.warmup}; ratio = iterations/s vs baseline")
    print(
        "| model | size | batch/device | precision | s/iteration | iterations/s | images/s | "
        "peak memory (GiB) | vs baseline |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    models = split_models(list(args.overrides))
    if args.baseline:
        others = [(label, o) for label, o in models if label != args.baseline]
        models = [(args.baseline, [args.baseline]), *others]
    for size in args.size:
        for batch in args.batch:
            for precision in args.precision:
                base: float | None = None
                for label, overrides in models:
                    cfg = compose_cfg(overrides, size, batch)
                    r = run(cfg, batch, precision, args.device, args.iters, args.warmup)
                    if label == args.baseline:
                        base = r["it_per_s"]
                    ratio = f"{r['it_per_s'] / base:.2f}x" if base else "-"
                    print(
                        f"| {label} | {size} | {batch} | {precision} | {r['s_per_it']:.3f} | "
                        f"{r['it_per_s']:.3f} | {r['img_per_s']:.2f} | {r['peak_gib']:.2f} | "
                        f"{ratio} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
