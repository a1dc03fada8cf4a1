"""nvJPEG (GPU) vs libjpeg (CPU): output gap and speed of the JPEG op's codec back ends.

Needs a CUDA device; without one it exits with a message (status 1). On the 10 real 512x512 faces of
``../shared/reference/metrics/pairs/gt`` (or ``--faces``), at each side in ``--sides`` (bilinear
downscale, as the LQ images the op sees after the random downscale) and each quality in
``--qualities``:

- **gap**: PSNR between the nvJPEG and the libjpeg decodes of the same 8-bit input (min and mean
  over the faces), their mean absolute difference in 8-bit levels and the largest one; for context,
  the PSNR of Kornia's differentiable model (``impl="differentiable"``) against libjpeg.
  torchvision's nvJPEG encoder writes 4:4:4, libjpeg (and ``cv2.imencode``) 4:2:0, which is most of
  the gap;
- **speed** (``--batch`` images, the faces repeated, qualities drawn as the ``gfpgan_v1`` preset does):
  ms per image of libjpeg on the CPU one image at a time (what ``impl="codec"`` does on CPU), nvJPEG
  batched on the GPU (``cuda_codec="nvjpeg"``), libjpeg through the host for CUDA tensors
  (``cuda_codec="libjpeg"``: one transfer each way) and the differentiable model on the GPU. Medians
  of ``--iters`` timed calls after a warm-up, CUDA synchronised.

Example::

    .venv/bin/python scripts/bench_jpeg_gpu.py                        # defaults: sides 512 128 64
    .venv/bin/python scripts/bench_jpeg_gpu.py --sides 128 --batch 256 --iters 20
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceprior.degradation import JPEG, Context
from faceprior.degradation.ops import (
    host_libjpeg_roundtrip,
    libjpeg_roundtrip,
    nvjpeg_roundtrip,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "reference" / "metrics" / "pairs" / "gt"
NO_CUDA = (
    "bench_jpeg_gpu.py: no CUDA device is available (torch.cuda.is_available() is False), so there "
    "is no nvJPEG to measure. Run it on a machine with an NVIDIA GPU: "
    ".venv/bin/python scripts/bench_jpeg_gpu.py"
)


def load_faces(folder: Path) -> torch.Tensor:
    """The PNG faces of ``folder`` as a float RGB ``(N, 3, H, W)`` batch in [0, 1] (CPU)."""
    import cv2

    files = sorted(folder.glob("*.png"))
    if not files:
        raise SystemExit(f"bench_jpeg_gpu.py: no PNG faces in {folder} (set --faces)")
    rgb = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"bench_jpeg_gpu.py: cannot read {f}")
        rgb.append(bgr[:, :, ::-1].copy())
    shapes = {a.shape for a in rgb}
    if len(shapes) != 1:
        raise SystemExit(f"bench_jpeg_gpu.py: faces of different sizes {sorted(shapes)}")
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in rgb]).float() / 255.0


def at_side(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def quantized(x: torch.Tensor) -> torch.Tensor:
    """8-bit input shared by every back end (so the gap is the codecs', not a rounding flip)."""
    return (x * 255.0).round() / 255.0


def model(x: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    op = JPEG(impl="differentiable")
    n = x.shape[0]
    p = {"applied": torch.ones(n), "quality": torch.tensor(qualities, dtype=torch.float64)}
    ctx = Context(gt=x, size=(x.shape[-2], x.shape[-1]))
    return op.degrade(x, p, ctx, torch.arange(n))


def gap_table(faces: torch.Tensor, sides: list[int], qualities: list[int]) -> None:
    print(
        "\n| side | quality | nvJPEG vs libjpeg PSNR min / mean (dB) | MAD (levels) | max |"
        " model vs libjpeg PSNR min / mean (dB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for side in sides:
        x = quantized(at_side(faces, side))
        n = x.shape[0]
        for q in qualities:
            cpu = torch.stack(libjpeg_roundtrip(list(x), [q] * n))
            gpu = torch.stack(nvjpeg_roundtrip(list(x.cuda()), [q] * n)).cpu()
            kor = model(x.cuda(), [q] * n).cpu()
            gaps = [psnr(g, c) for g, c in zip(gpu, cpu, strict=True)]
            ref = [psnr(k, c) for k, c in zip(kor, cpu, strict=True)]
            levels = (gpu - cpu).abs() * 255
            print(
                f"| {side} | {q} | {min(gaps):.2f} / {np.mean(gaps):.2f} | "
                f"{float(levels.mean()):.3f} | {float(levels.max()):.0f} | "
                f"{min(ref):.2f} / {np.mean(ref):.2f} |"
            )


def timed(fn: Callable[[], object], iters: int) -> float:
    """Median seconds per call after one warm-up call, CUDA synchronised."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speed_table(faces: torch.Tensor, sides: list[int], batch: int, iters: int) -> None:
    sampler = JPEG(quality=(60, 100), quality_rounding="round")  # the gfpgan_v1 preset's draws
    gen = torch.Generator().manual_seed(0)
    qualities = [int(sampler.sample(gen)["quality"]) for _ in range(batch)]
    print(
        f"\nSpeed, batch {batch}, {len(set(qualities))} distinct qualities (gfpgan_v1 draws), "
        "ms per image:\n"
    )
    print(
        "| side | libjpeg CPU, per image | nvJPEG GPU, batched | libjpeg via host (CUDA) "
        "| differentiable GPU | nvJPEG speed-up vs CPU |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for side in sides:
        reps = -(-batch // faces.shape[0])
        x = quantized(at_side(faces, side)).repeat(reps, 1, 1, 1)[:batch]
        xc = x.cuda()
        imgs, imgs_cuda = list(x), list(xc)
        t_cpu = timed(partial(libjpeg_roundtrip, imgs, qualities), iters)
        t_nv = timed(partial(nvjpeg_roundtrip, imgs_cuda, qualities), iters)
        t_host = timed(partial(host_libjpeg_roundtrip, imgs_cuda, qualities), iters)
        t_model = timed(partial(model, xc, qualities), iters)
        ms = [1000 * t / batch for t in (t_cpu, t_nv, t_host, t_model)]
        print(
            f"| {side} | {ms[0]:.3f} | {ms[1]:.3f} | {ms[2]:.3f} | {ms[3]:.3f} | "
            f"{ms[0] / ms[1]:.1f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 128, 64])
    parser.add_argument("--qualities", type=int, nargs="+", default=[30, 60, 80, 95, 100])
    parser.add_argument("--batch", type=int, default=64, help="images per timed call")
    parser.add_argument("--iters", type=int, default=10, help="timed calls per measurement")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit(NO_CUDA)

    import torchvision

    faces = load_faces(args.faces)
    print(
        f"device: {torch.cuda.get_device_name()} | host: {platform.processor() or platform.machine()}"
        f" | torch {torch.__version__}, torchvision {torchvision.__version__}"
        f" | {faces.shape[0]} faces from {args.faces}"
    )
    gap_table(faces, args.sides, args.qualities)
    speed_table(faces, args.sides, args.batch, args.iters)


if __name__ == "__main__":
    main()
