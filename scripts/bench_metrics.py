"""Throughput of every metric (images/s) on the current device and the cost of a paper evaluation.

Usage::

    python scripts/bench_metrics.py --num-images 8 --size 512            # CPU (or CUDA if present)
    python scripts/bench_metrics.py --device cuda --num-images 64 --batch-size 16
    python scripts/bench_metrics.py --images ../shared/reference/metrics/pairs/restored

Network metrics use their real architectures; when the weight files are not in the weights
directory, randomly initialised networks are timed instead (same cost). Prints a Markdown table
with images/s per metric, the one-off FID Fréchet step, and the estimated wall time of the seven
paper metrics on ``--estimate-images`` images (3,000 = CelebA-Test) at ``--size``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torchmetrics import Metric

from faceprior.metrics import FID, LPIPS, NIQE, PSNR, SSIM, IdentityDistance, LandmarkDistance
from faceprior.metrics.frechet import frechet_distance
from faceprior.metrics.weights import MissingWeightsError


def _random_fan() -> torch.nn.Module:
    from facexlib.alignment.awing_arch import FAN

    return FAN(num_modules=4, num_landmarks=98, device="cpu")


def _random_arcface() -> torch.nn.Module:
    from faceprior.nets.arcface import ArcFaceResNet18

    return ArcFaceResNet18()


def _random_inception() -> torch.nn.Module:
    from faceprior.metrics.inception import FIDInceptionV3

    return FIDInceptionV3()


def factories() -> dict[str, tuple[Callable[[], Metric], Callable[[], Metric]]]:
    """Metric name -> (with real weights, with random weights)."""
    return {
        "psnr": (PSNR, PSNR),
        "ssim": (SSIM, SSIM),
        "psnr_y": (lambda: PSNR(test_y_channel=True),) * 2,
        "ssim_y": (lambda: SSIM(test_y_channel=True),) * 2,
        "niqe": (NIQE, NIQE),
        "lpips": (LPIPS, lambda: LPIPS(random_backbone=True)),
        "fid": (FID, lambda: FID(feature_extractor=_random_inception())),
        "idd": (IdentityDistance, lambda: IdentityDistance(network=_random_arcface())),
        "lmd": (LandmarkDistance, lambda: LandmarkDistance(network=_random_fan())),
    }


def synthetic_batch(count: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random RGB images in [0, 1] with some texture, ``(count, 3, size, size)``."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, 8, 8, generator=gen)
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic")
    return (images + 0.05 * torch.randn(images.shape, generator=gen)).clamp(0, 1)


def folder_batch(folder: Path, count: int) -> torch.Tensor:
    """Up to ``count`` PNG/JPEG images of ``folder`` (one size) as RGB floats in [0, 1]."""
    from faceprior.metrics.folders import list_images, read_rgb

    paths = list(list_images(folder).values())[:count]
    return torch.stack([read_rgb(p) for p in paths]).float() / 255.0


def build(name: str) -> tuple[Metric, bool]:
    """The metric with real weights if available, else random ones; returns (metric, real)."""
    real, random = factories()[name]
    try:
        return real(), True
    except MissingWeightsError:
        return random(), False


def time_metric(
    metric: Metric, preds: torch.Tensor, target: torch.Tensor, batch_size: int, device: str
) -> float:
    """Images per second of ``update`` over the whole set (after one warm-up batch)."""
    metric = metric.to(device)
    metric.update(preds[:batch_size].to(device), target[:batch_size].to(device))
    metric.reset()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, preds.shape[0], batch_size):
        metric.update(preds[i : i + batch_size].to(device), target[i : i + batch_size].to(device))
    if device == "cuda":
        torch.cuda.synchronize()
    return preds.shape[0] / (time.perf_counter() - start)


def time_frechet(dim: int = 2048) -> float:
    """Seconds of one Fréchet distance between two ``dim``-d Gaussians."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(dim + 500, dim))
    cov = np.cov(feats, rowvar=False)
    start = time.perf_counter()
    frechet_distance(feats.mean(0), cov, feats.mean(0) + 0.1, cov * 1.1)
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--metrics", default=",".join(factories()))
    parser.add_argument("--estimate-images", type=int, default=3000)
    parser.add_argument(
        "--images", type=Path, default=None, help="time on real images from this folder"
    )
    args = parser.parse_args()
    if args.images is not None:
        preds = folder_batch(args.images, args.num_images)
        target = preds.roll(1, dims=0)
        args.num_images, args.size = preds.shape[0], preds.shape[-1]
    else:
        preds = synthetic_batch(args.num_images, args.size, seed=0)
        target = synthetic_batch(args.num_images, args.size, seed=1)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    threads = torch.get_num_threads()
    print(
        f"device: {device_name} ({threads} CPU threads), {args.num_images} images of "
        f"{args.size}x{args.size}, batch {args.batch_size}\n"
    )
    print(f"| metric | images/s | weights | est. for {args.estimate_images} images |")
    print("|---|---:|---|---:|")
    total = 0.0
    paper = {"psnr", "ssim", "niqe", "lpips", "fid", "idd", "lmd"}
    for name in args.metrics.split(","):
        metric, real = build(name)
        rate = time_metric(metric, preds, target, args.batch_size, args.device)
        seconds = args.estimate_images / rate
        if name in paper:
            total += seconds
        weights = "official" if real else "random init"
        print(f"| {name} | {rate:.2f} | {weights} | {seconds / 60:.1f} min |")
    frechet = time_frechet() if "fid" in args.metrics.split(",") else 0.0
    total += frechet
    print(f"| fid Fréchet step (2048-d, once) | – | – | {frechet:.1f} s |")
    print(f"\nseven paper metrics on {args.estimate_images} images: {total / 60:.1f} min")


if __name__ == "__main__":
    main()
