"""Per-image OpenCV/numpy implementation of the GFP-GAN v1 training degradation.

This is the CPU-worker style pipeline the official code runs inside ``Dataset.__getitem__``, written
from the specification (official-models.md §6): blur (41x41 iso/aniso Gaussian, σ ∈ [0.1, 10], θ ∈
[-π, π]) → ``cv2.resize`` down by r ∈ [0.8, 8] (INTER_LINEAR) → Gaussian noise σ ∈ [0, 20] → JPEG
q ∈ [60, 100] (``cv2.imencode``) → resize back (INTER_LINEAR) → colour shift (p 0.3) → gray (p 0.01)
→ colour jitter (p 0.3, torchvision ops in random order) → 8-bit rounding.

It is the baseline of ``scripts/bench_degradation.py`` and the reference for fidelity checks of the
batched :class:`~faceprior.degradation.Degradation`; it is not used for training.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch


def bivariate_gaussian(
    kernel_size: int, sigma_x: float, sigma_y: float, theta: float
) -> np.ndarray:
    """Normalised rotated anisotropic Gaussian kernel (float64), x along columns."""
    ax = np.arange(-(kernel_size // 2), kernel_size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    inv = np.linalg.inv(rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T)
    grid = np.stack([xx, yy], axis=-1)
    kernel = np.exp(-0.5 * np.einsum("hwi,ij,hwj->hw", grid, inv, grid))
    return kernel / kernel.sum()


def gfpgan_v1_degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Degrade one RGB float32 image in [0, 1] (H, W, 3); returns the LQ image of the same size."""
    h, w = img.shape[:2]
    # blur
    if rng.uniform() < 0.5:
        sx = rng.uniform(0.1, 10)
        kernel = bivariate_gaussian(41, sx, sx, 0.0)
    else:
        kernel = bivariate_gaussian(
            41, rng.uniform(0.1, 10), rng.uniform(0.1, 10), rng.uniform(-math.pi, math.pi)
        )
    out = cv2.filter2D(img, -1, kernel.astype(np.float32))
    # downsample
    scale = rng.uniform(0.8, 8)
    out = cv2.resize(out, (int(w // scale), int(h // scale)), interpolation=cv2.INTER_LINEAR)
    # noise (colour, 8-bit units)
    sigma = rng.uniform(0, 20) / 255.0
    noise = rng.standard_normal(out.shape, dtype=np.float32)
    out = np.clip(out + noise * np.float32(sigma), 0, 1)
    # JPEG (libjpeg through OpenCV, BGR order as the official code)
    # BasicSR hands the float to cv2.imencode; OpenCV <= 4.5.4 rounded it to nearest
    quality = int(np.rint(rng.uniform(60, 100)))
    bgr = np.clip(np.round(out[:, :, ::-1] * 255), 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    decoded = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("cv2.imdecode failed")
    out = decoded[:, :, ::-1].astype(np.float32) / 255.0
    # resize back
    out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    # colour shift
    if rng.uniform() < 0.3:
        out = np.clip(out + rng.uniform(-20 / 255, 20 / 255, 3).astype(np.float32), 0, 1)
    # gray
    if rng.uniform() < 0.01:
        gray = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2GRAY)
        out = np.repeat(gray[:, :, None], 3, axis=2)
    # colour jitter on the tensor, random order (torchvision semantics)
    tensor = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
    if rng.uniform() < 0.3:
        from torchvision.transforms import functional as TF

        for fn_id in rng.permutation(4):
            if fn_id == 0:
                tensor = TF.adjust_brightness(tensor, float(rng.uniform(0.5, 1.5)))
            elif fn_id == 1:
                tensor = TF.adjust_contrast(tensor, float(rng.uniform(0.5, 1.5)))
            elif fn_id == 2:
                tensor = TF.adjust_saturation(tensor, float(rng.uniform(0.0, 1.5)))
            else:
                tensor = TF.adjust_hue(tensor, float(rng.uniform(-0.1, 0.1)))
    return (torch.clamp((tensor * 255.0).round(), 0, 255) / 255.0).numpy().transpose(1, 2, 0)
