"""Throughput of the batched degradation vs the per-image OpenCV pipeline, and vs a training step.

Measured in one run, on the current device:

(a) ours: a degradation preset (composed from the real config, default ``gfpgan_v1``) on a batch,
    for each JPEG implementation (``--jpeg``) and packing mode (``--packing``);
(b) baseline: :func:`faceprior.degradation.opencv_reference.gfpgan_v1_degrade` per image inside a
    DataLoader with N CPU workers (``--workers``), as the official training code does; the ratios
    ours / OpenCV are printed (throughput, and cost per image);
(c) the fraction of a GFP-GAN-512 training step the degradation costs: forward + backward of
    ``GFPGANv1`` (official v1 arguments) through a ``StyleGAN2Discriminator(512, 1)`` plus the
    discriminator's own real/fake forward + backward, at ``--step-batch`` (a lower bound of a real
    step, which also runs VGG, ArcFace and three component discriminators).

Examples::

    python scripts/bench_degradation.py                                  # CPU defaults, < 2 min
    python scripts/bench_degradation.py --batch 32 --iters 20 --workers 0 2 8 --step-batch 12
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from faceprior.degradation import Degradation
from faceprior.degradation.opencv_reference import gfpgan_v1_degrade
from faceprior.utils.config import CONFIG_DIR, setup_config_system


class _OpenCVDegradeDataset(Dataset[np.ndarray]):
    """Returns the degraded version of a fixed random image, degraded per item on the CPU."""

    def __init__(self, size: int, length: int) -> None:
        self.image = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> np.ndarray:
        return gfpgan_v1_degrade(self.image, np.random.default_rng(index))


def _preset(name: str, jpeg: str, packing: str) -> Degradation:
    setup_config_system()
    GlobalHydra.instance().clear()
    overrides = [f"degradation={name}", f"degradation.packing={packing}"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    if "jpeg" in cfg.degradation.ops:
        cfg.degradation.ops.jpeg.impl = jpeg
    deg = instantiate(cfg.degradation)
    assert isinstance(deg, Degradation)
    return deg


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[int], Any], iters: int, device: torch.device, warmup: int = 1) -> float:
    """Median seconds per call of ``fn(i)`` after ``warmup`` calls."""
    for i in range(warmup):
        fn(-1 - i)
    _sync(device)
    times = []
    for i in range(iters):
        start = time.perf_counter()
        fn(i)
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_ours(deg: Degradation, size: int, batch: int, iters: int, device: torch.device) -> float:
    """Images per second of the batched pipeline (median batch time, after one warm-up batch)."""
    gt = torch.rand(batch, 3, size, size, device=device)

    def run(i: int) -> None:
        deg(gt, list(range((i + 2) * batch, (i + 3) * batch)))

    return batch / _timed(run, iters, device)


def bench_opencv(size: int, images: int, workers: int) -> float:
    """Images per second of the per-image OpenCV pipeline in a DataLoader with ``workers``."""
    loader: DataLoader[Any] = DataLoader(
        _OpenCVDegradeDataset(size, images),
        batch_size=8,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    for _ in loader:  # warm-up epoch: worker start-up and imports are not throughput
        break
    start = time.perf_counter()
    for _ in loader:
        pass
    return images / (time.perf_counter() - start)


def bench_step(batch: int, iters: int, device: torch.device) -> float:
    """Seconds per (GFPGANv1 fwd+bwd through D) + (D real/fake fwd+bwd) at ``batch``, 512 px."""
    from faceprior.nets import GFPGANv1, StyleGAN2Discriminator

    net_g = GFPGANv1(
        out_size=512,
        num_style_feat=512,
        channel_multiplier=1,
        decoder_load_path=None,
        fix_decoder=True,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=1,
        sft_half=True,
    ).to(device)
    net_d = StyleGAN2Discriminator(512, channel_multiplier=1).to(device)
    lq = torch.rand(batch, 3, 512, 512, device=device) * 2 - 1
    gt = torch.rand(batch, 3, 512, 512, device=device) * 2 - 1

    def step(_: int) -> None:
        out, rgbs = net_g(lq, return_rgb=True)
        loss_g = torch.nn.functional.softplus(-net_d(out)).mean() + (out - gt).abs().mean()
        loss_g = loss_g + sum((r.float().mean() for r in rgbs), torch.zeros((), device=device))
        loss_g.backward()
        loss_d = (
            torch.nn.functional.softplus(-net_d(gt)).mean()
            + torch.nn.functional.softplus(net_d(out.detach())).mean()
        )
        loss_d.backward()
        net_g.zero_grad(set_to_none=True)
        net_d.zero_grad(set_to_none=True)

    return _timed(step, iters, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=3, help="timed batches per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--opencv-images", type=int, default=0, help="default: 4 x batch")
    parser.add_argument("--preset", default="gfpgan_v1")
    parser.add_argument(
        "--jpeg",
        nargs="+",
        default=["codec", "differentiable"],
        choices=["codec", "differentiable"],
    )
    parser.add_argument(
        "--packing", nargs="+", default=["groups", "canvas"], choices=["groups", "canvas"]
    )
    parser.add_argument(
        "--step-batch", type=int, default=1, help="GFP-GAN step batch (0: skip the step timing)"
    )
    parser.add_argument("--step-iters", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device: {device} ({name or platform.machine()}), {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(f"load average: {os.getloadavg()}" if hasattr(os, "getloadavg") else "")

    # (a) ours
    ours: dict[tuple[str, str], float] = {}
    for jpeg in args.jpeg:
        for packing in args.packing:
            deg = _preset(args.preset, jpeg, packing)
            ips = bench_ours(deg, args.size, args.batch, args.iters, device)
            ours[(jpeg, packing)] = ips
            print(
                f"ours   {args.preset:<10} batch {args.batch:>3} @ {args.size}px  jpeg={jpeg:<14} "
                f"packing={packing:<6}: {ips:9.1f} images/s  ({1000 / ips:6.2f} ms/image)"
            )
    # the presets' defaults: the real codec on every device, packing auto (canvas on CUDA)
    auto_jpeg = "codec"
    auto_packing = "canvas" if device.type == "cuda" else "groups"
    auto = ours.get((auto_jpeg, auto_packing), max(ours.values()))

    # (b) OpenCV per image in DataLoader workers
    images = args.opencv_images or 4 * args.batch
    best_ref = 0.0
    for workers in args.workers:
        ref = bench_opencv(args.size, images, workers)
        best_ref = max(best_ref, ref)
        print(
            f"opencv per image, {workers} worker(s): {ref:9.1f} images/s  ({1000 / ref:6.2f} "
            f"ms/image)  ours(default) / opencv = {auto / ref:5.2f}x throughput"
        )
    print(
        f"ours(default: jpeg={auto_jpeg}, packing={auto_packing}) cost per image / best OpenCV = "
        f"{best_ref / auto:.2f}x (CPU acceptance <= 1.5; GPU target: >= 20x throughput vs 8 workers)"
    )

    # (c) fraction of a GFP-GAN-512 step
    if args.step_batch > 0:
        step = bench_step(args.step_batch, args.step_iters, device)
        print(
            f"GFP-GAN-512 step lower bound (G fwd+bwd, D fwd+bwd), batch {args.step_batch}: "
            f"{step:.3f} s"
        )
        for (jpeg, packing), ips in ours.items():
            frac = args.step_batch / ips / step
            print(
                f"  degradation of {args.step_batch} image(s), jpeg={jpeg:<14} packing={packing:<6}: "
                f"{1000 * args.step_batch / ips:8.2f} ms = {100 * frac:6.2f}% of the step"
            )


if __name__ == "__main__":
    main()
