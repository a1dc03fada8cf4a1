"""Throughput of the batched degradation vs the per-image OpenCV pipeline, measured in one run.

(a) ours: the ``degradation=gfpgan_v1`` preset (composed from the real config) on a batch on the
    current device; (b) baseline: :func:`faceprior.degradation.opencv_reference.gfpgan_v1_degrade`
    per image inside a DataLoader with N CPU workers, as the official training code does.

Examples::

    python scripts/bench_degradation.py                         # 512 px, batch 8, auto device
    python scripts/bench_degradation.py --size 512 --batch 8 --iters 3 --workers 0 2
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
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


def _preset(name: str, jpeg: str) -> Degradation:
    setup_config_system()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=[f"degradation={name}", f"degradation.ops.jpeg.impl={jpeg}"]
        )
    deg = instantiate(cfg.degradation)
    assert isinstance(deg, Degradation)
    return deg


def bench_ours(deg: Degradation, size: int, batch: int, iters: int, device: torch.device) -> float:
    """Images per second of the batched pipeline (after one warm-up batch)."""
    gt = torch.rand(batch, 3, size, size, device=device)
    deg(gt, list(range(batch)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(iters):
        deg(gt, list(range((i + 1) * batch, (i + 2) * batch)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - start)


def bench_opencv(size: int, images: int, workers: int) -> float:
    """Images per second of the per-image OpenCV pipeline in a DataLoader with ``workers``."""
    loader: DataLoader[Any] = DataLoader(
        _OpenCVDegradeDataset(size, images), batch_size=8, num_workers=workers
    )
    start = time.perf_counter()
    for _ in loader:
        pass
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--preset", default="gfpgan_v1")
    parser.add_argument("--jpeg", default="auto", choices=["auto", "differentiable", "codec"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    cpu = platform.processor() or platform.machine()
    print(
        f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else cpu}), "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    deg = _preset(args.preset, args.jpeg)
    ours = bench_ours(deg, args.size, args.batch, args.iters, device)
    print(
        f"ours  {args.preset} batch {args.batch} @ {args.size}px on {device}: {ours:8.1f} images/s "
        f"({1000 / ours:.1f} ms/image, jpeg={args.jpeg})"
    )
    images = args.batch * args.iters
    for workers in args.workers:
        ref = bench_opencv(args.size, images, workers)
        print(
            f"opencv per-image, {workers} worker(s): {ref:8.1f} images/s ({1000 / ref:.1f} ms/image)"
            f"  -> ours / opencv = {ours / ref:.2f}x throughput"
        )


if __name__ == "__main__":
    main()
