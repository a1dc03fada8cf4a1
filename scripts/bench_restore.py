"""Faces per second restoring a many-face photo at 512 px: batched pipeline vs one face at a time.

Usage::

    python scripts/bench_restore.py                          # CPU: 8 faces, GFP-GAN v1.4 layout
    python scripts/bench_restore.py --device cuda --faces 32 --batch-size 16
    python scripts/bench_restore.py --arch gpen --dtypes float32

The photo is composed from synthetic faces (``faceprior.data.synthetic``) on a smooth background,
their 5-point landmarks known, so a fixed detector stands in for RetinaFace and detection costs
nothing in either mode (it runs once per photo in both). The network is the released configuration
(``GFPGANv1Clean`` of GFPGANv1.4, or ``GPENGenerator`` of GPEN-BFR-512) with random weights:
speed does not depend on the weight values. Three ways to restore the same photo are timed, for
each precision (``--dtypes``; the network runs under autocast):

* **one at a time** (the official tools' way, written here for the benchmark): per face, a
  LMedS similarity fit, ``cv2.warpAffine`` into a 512 px crop, the network on a batch of one,
  conversion to ``uint8``, ``cv2.warpAffine`` of the face *and* of its mask over the whole upscaled
  photo, erosion and Gaussian feathering of that full-size mask, and a full-size blend
  (facexlib ``FaceRestoreHelper`` without face parsing);
* **pipeline, batch 1**: :class:`faceprior.inference.FaceRestorer` with ``batch_size=1`` (device
  warps into face-sized regions, but no batching);
* **pipeline, batched**: the same with ``--batch-size`` faces per network call.

Prints the machine, seconds (best of ``--repeats`` runs, the modes interleaved so that a drifting
load on a shared machine affects all of them alike), faces/s and each mode's speed-up over
one-at-a-time, and the largest pixel difference between the batched and the batch-1 result
(batching must not change pixels).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from faceprior.checkpoints.registry import get_spec
from faceprior.data.synthetic import render_face
from faceprior.inference import FaceModel, FaceRestorer, KnownFaces, Photo, get_template
from faceprior.inference.devices import precision, resolve_device, resolve_dtype, synchronize
from faceprior.inference.templates import fit_similarity

ARCHS = {"gfpgan": "GFPGANv1.4", "gpen": "GPEN-BFR-512"}


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (else what ``platform`` knows)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"{cpu_name()}, {os.cpu_count()} CPUs ({torch.get_num_threads()} torch threads){gpu}; "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )


def many_face_photo(
    faces: int, face_px: int, canvas: tuple[int, int] | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A grid of synthetic faces on a smooth background: RGB float32 and ``(N, 5, 2)`` landmarks.

    ``canvas`` ``(width, height)`` spreads the grid over a larger photo (a group photo with
    background around the people); None packs the faces tightly.
    """
    cols = math.ceil(math.sqrt(faces * 4 / 3))
    rows = math.ceil(faces / cols)
    pitch = int(face_px * 1.35)
    if canvas is not None:
        pitch = max(pitch, min(canvas[0] // cols, canvas[1] // rows))
    w, h = canvas or (cols * pitch + pitch // 4, rows * pitch + pitch // 4)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx / w, yy / h, 0.4 + 0.2 * np.sin(xx / 97.0)], -1).astype(np.float32)
    landmarks = []
    for k in range(faces):
        r, c = divmod(k, cols)
        y0 = min(h - face_px, (pitch - face_px) // 2 + r * pitch)
        x0 = min(w - face_px, (pitch - face_px) // 2 + c * pitch)
        face = render_face(seed, k, face_px)
        image[y0 : y0 + face_px, x0 : x0 + face_px] = face.image / 255.0
        landmarks.append(face.landmarks + np.array([x0, y0]))
    return image, np.asarray(landmarks)


def one_at_a_time(
    model: FaceModel,
    rgb: np.ndarray,
    landmarks: np.ndarray,
    upscale: int,
    device: torch.device,
    dtype: torch.dtype,
) -> np.ndarray:
    """The per-face loop of the official tools (see the module doc); returns RGB uint8."""
    bgr = np.rint(rgb[:, :, ::-1] * 255).astype(np.uint8)
    h, w = bgr.shape[:2]
    size = model.face_size
    template = get_template(model.template).scaled(size)
    out = cv2.resize(bgr, (w * upscale, h * upscale), interpolation=cv2.INTER_LANCZOS4).astype(
        np.float64
    )
    for lm in landmarks:
        m = fit_similarity(lm, template, "lmeds")
        crop = cv2.warpAffine(bgr, m, (size, size), borderValue=(135, 133, 132))
        x = torch.from_numpy(crop[:, :, ::-1].astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.inference_mode(), precision(device, dtype):
            y = model((x.to(device) - 0.5) / 0.5)
        face = ((y[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
        face_u8 = np.rint(face[:, :, ::-1] * 255).astype(np.uint8)
        inv = np.asarray(cv2.invertAffineTransform(m), dtype=np.float64) * upscale
        if upscale > 1:
            inv[:, 2] += 0.5 * upscale
        full = cv2.warpAffine(face_u8, inv, (w * upscale, h * upscale))
        mask = cv2.warpAffine(np.ones((size, size), np.float32), inv, (w * upscale, h * upscale))
        mask = cv2.erode(mask, np.ones((2 * upscale, 2 * upscale), np.uint8))
        edge = int(math.sqrt(float(mask.sum()))) // 20
        core = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
        soft = cv2.GaussianBlur(core, (2 * edge + 1, 2 * edge + 1), 0)[:, :, None]
        out = soft * (mask[:, :, None] * full) + (1 - soft) * out
    return np.clip(out, 0, 255).astype(np.uint8)[:, :, ::-1]


@dataclass
class Row:
    dtype: str
    mode: str
    seconds: float
    faces: int

    @property
    def rate(self) -> float:
        return self.faces / self.seconds


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best wall-clock seconds of ``repeats`` calls (after the caller's warm-up)."""
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def build_model(arch: str, device: torch.device) -> FaceModel:
    spec = get_spec(ARCHS[arch])
    torch.manual_seed(0)
    net: nn.Module = spec.build(dict(spec.kwargs))
    size = int(spec.kwargs.get("out_size", spec.kwargs.get("size", 512)))
    return FaceModel(net, face_size=size, name=f"{spec.name} layout, random init").to(device)


def bench_dtype(
    name: str,
    model: FaceModel,
    rgb: np.ndarray,
    landmarks: np.ndarray,
    args: argparse.Namespace,
    batch: int,
    device: torch.device,
) -> tuple[list[Row], float]:
    """Time the three modes in one precision; returns the rows and max |batched - batch 1|."""
    dtype = resolve_dtype(name)
    photo = Photo("<bench>", rgb)
    faces = len(landmarks)

    def restorer(bs: int) -> FaceRestorer:
        return FaceRestorer(
            model, KnownFaces(landmarks), upscale=args.upscale, batch_size=bs,
            device=device, dtype=dtype,
        )  # fmt: skip

    batched, single = restorer(batch), restorer(1)
    warm = args.face_px * 2
    single.restore(Photo("<warm-up>", np.ascontiguousarray(rgb[:warm, :warm])))
    outputs: dict[str, np.ndarray] = {}

    def official() -> None:
        one_at_a_time(model, rgb, landmarks, args.upscale, device, dtype)

    def run_single() -> None:
        outputs["single"] = single.restore(photo).image

    def run_batched() -> None:
        outputs["batched"] = batched.restore(photo).image

    modes: list[tuple[str, Callable[[], None]]] = [
        ("one at a time (official loop)", official),
        ("pipeline, batch 1", run_single),
        (f"pipeline, batch {batch}", run_batched),
    ]
    best = {label: math.inf for label, _ in modes}
    for rep in range(args.repeats):  # modes interleaved, so drifting machine load hits all alike
        for label, fn in modes:
            seconds = timed(fn, device, 1)
            best[label] = min(best[label], seconds)
            print(f"  {name:9s} {label:32s} run {rep + 1}: {seconds:8.2f} s")
    rows = [Row(name, label, best[label], faces) for label, _ in modes]
    return rows, float(np.abs(outputs["single"] - outputs["batched"]).max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHS), default="gfpgan")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated")
    p.add_argument("--faces", type=int, default=None, help="faces in the photo (CPU 8, GPU 32)")
    p.add_argument("--face-px", type=int, default=160, help="face size in the photo")
    p.add_argument("--batch-size", type=int, default=None, help="batched mode (CPU 8, GPU 16)")
    p.add_argument("--canvas", default="2400x1600", help="photo WxH, or 'tight' (faces only)")
    p.add_argument("--upscale", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    faces = args.faces or (32 if gpu else 8)
    batch = args.batch_size or (16 if gpu else 8)
    model = build_model(args.arch, device)
    size = None if args.canvas == "tight" else args.canvas.split("x")
    canvas = None if size is None else (int(size[0]), int(size[1]))
    rgb, landmarks = many_face_photo(faces, args.face_px, canvas)
    print(f"machine: {machine(device)}")
    print(
        f"photo {rgb.shape[1]}x{rgb.shape[0]} with {faces} faces of {args.face_px} px, "
        f"{model.name} at {model.face_size} px, upscale {args.upscale}, device {device}"
    )
    rows: list[Row] = []
    agreement: dict[str, float] = {}
    for name in args.dtypes.split(","):
        found, diff = bench_dtype(name.strip(), model, rgb, landmarks, args, batch, device)
        rows += found
        agreement[name.strip()] = diff
    print()
    print(f"{'dtype':9s} {'mode':32s} {'seconds':>8s} {'faces/s':>8s} {'vs one-at-a-time':>17s}")
    for name in dict.fromkeys(r.dtype for r in rows):
        group = [r for r in rows if r.dtype == name]
        base = group[0].rate
        for r in group:
            print(
                f"{r.dtype:9s} {r.mode:32s} {r.seconds:8.2f} {r.rate:8.3f} {r.rate / base:16.2f}x"
            )
    fp32 = {r.mode: r.rate for r in rows if r.dtype == "float32"}
    for name in agreement:
        if name != "float32" and fp32:
            other = {r.mode: r.rate for r in rows if r.dtype == name}
            ratios = ", ".join(f"{m}: {other[m] / fp32[m]:.2f}x" for m in other if m in fp32)
            print(f"{name} vs float32 faces/s: {ratios}")
    for name, diff in agreement.items():
        print(f"max |batched - batch 1| ({name}): {diff:.2e} (of 1.0)")


if __name__ == "__main__":
    main()
