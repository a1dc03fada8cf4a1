"""Training-step throughput and peak memory of a LightningModule from the real configs.

Composes ``train.yaml`` with the given Hydra overrides (default: the official GFP-GAN v1 recipe,
pretrained-weight paths nulled so that no file is needed), then runs the module's real
``training_step`` through a Lightning ``Trainer`` on random batches (faces with eye/mouth boxes,
already degraded), for every batch size and precision asked for. Prints iterations/s, images/s and
peak memory; the first ``--warmup`` iterations are not timed.

    python scripts/bench_train.py model=gfpgan
    python scripts/bench_train.py model=gfpgan --batch 3 12 --precision 32-true bf16-mixed --iters 10
    python scripts/bench_train.py experiment=gfpgan_clean_ffhq512 --device cuda

``model=gfpgan`` selects the GFP-GAN v1 experiment (``experiment=gfpgan_v1_ffhq512``); any other
overrides are passed through unchanged.
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

NULL_WEIGHTS = [
    "model.decoder_prior=null",
    "model.init_weights=null",
    "model.generator_losses.perceptual.weights_path=null",
    "model.generator_losses.identity.weights_path=null",
    "metrics=basic",
    "metrics@test_metrics=basic",
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


def compose_cfg(overrides: list[str], size: int, batch: int) -> DictConfig:
    mapped = ["experiment=gfpgan_v1_ffhq512" if o == "model=gfpgan" else o for o in overrides]
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=mapped + NULL_WEIGHTS + [f"data.size={size}", f"data.batch_size={batch}"],
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
    parser.add_argument("overrides", nargs="*", default=["model=gfpgan"], help="Hydra overrides")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, nargs="+", default=[3, 12], help="batch per device")
    parser.add_argument("--precision", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--iters", type=int, default=5, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    setup_config_system()
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    print(
        f"device: {args.device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}"
    )
    print(
        f"overrides: {' '.join(args.overrides)} | size {args.size}, {args.iters} timed iterations after {args.warmup}"
    )
    print(
        "| batch/device | precision | s/iteration | iterations/s | images/s | peak memory (GiB) |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for batch in args.batch:
        for precision in args.precision:
            cfg = compose_cfg(list(args.overrides), args.size, batch)
            r = run(cfg, batch, precision, args.device, args.iters, args.warmup)
            print(
                f"| {batch} | {precision} | {r['s_per_it']:.3f} | {r['it_per_s']:.3f} | "
                f"{r['img_per_s']:.2f} | {r['peak_gib']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
