"""MATLAB ``imresize`` (bicubic, antialiased when shrinking) with BasicSR's float32 numerics.

MATLAB resizes each axis with Keys' cubic kernel (a = -0.5), stretched by ``1/scale`` when
shrinking, normalises each output pixel's weights to one and extends the image by half-sample
symmetric mirroring. NIQE's second scale is ``imresize(Y / 255, 0.5) * 255``.

BasicSR's port (``basicsr/utils/matlab_functions.py``), which produced the papers' NIQE numbers,
computes in float32 and forms every output pixel as a float32 ``Tensor.mv`` of a window of the
mirrored image with that pixel's weights, height first. NIQE's float32 contrast normalisation
amplifies one-ulp differences in this resize into changes of ~1e-3 in the final score on smooth
(restored) faces, so :func:`imresize` reproduces that exact sequence of float32 operations, on
the CPU. The result is moved back to the input's device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1).to(x.dtype)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)).to(x.dtype)
    return inner + outer


def resize_weights(
    in_length: int, scale: float, antialiasing: bool = True
) -> tuple[Tensor, Tensor]:
    """Per-output-pixel float32 weights and 1-based input indices of MATLAB's bicubic resize.

    Returns ``(weights, indices)``, both ``(ceil(in_length * scale), taps)``. Indices may fall
    outside ``[1, in_length]``; those samples come from the mirrored extension. Columns whose
    weights are zero for every output pixel are dropped (as MATLAB does).
    """
    if in_length < 1 or scale <= 0:
        raise ValueError(f"invalid resize: length {in_length}, scale {scale}")
    out_length = math.ceil(in_length * scale)
    shrink = scale < 1 and antialiasing
    kernel_width = 4.0 / scale if shrink else 4.0
    taps = math.ceil(kernel_width) + 2
    x = torch.arange(1, out_length + 1, dtype=torch.float32)
    # Centres aligned: output 0.5 maps to input 0.5, output 0.5 + scale to input 1.5.
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    indices = left[:, None] + torch.arange(taps, dtype=torch.float32)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if shrink else _cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    keep = (weights != 0).any(dim=0)
    return weights[:, keep].contiguous(), indices[:, keep].to(torch.int64)


def _mirror_pad(image: Tensor, dim: int, before: int, after: int) -> Tensor:
    """Half-sample symmetric extension of ``image`` along ``dim`` (edge sample repeated)."""
    parts = [image]
    if before > 0:
        parts.insert(0, image.narrow(dim, 0, before).flip(dim))
    if after > 0:
        parts.append(image.narrow(dim, image.shape[dim] - after, after).flip(dim))
    return torch.cat(parts, dim=dim)


def _resize_axis(image: Tensor, scale: float, dim: int, antialiasing: bool) -> Tensor:
    """Resize a 2-D float32 CPU image along ``dim`` (0: height, 1: width)."""
    length = image.shape[dim]
    weights, indices = resize_weights(length, scale, antialiasing)
    before = max(0, 1 - int(indices.min()))
    after = max(0, int(indices.max()) - length)
    if before > length or after > length:
        raise ValueError(f"image too small ({length}) for a resize by {scale}")
    padded = _mirror_pad(image, dim, before, after)
    starts = (indices[:, 0] - 1 + before).tolist()
    taps = weights.shape[1]
    if dim == 0:
        rows = [padded[s : s + taps, :].transpose(0, 1).mv(w) for s, w in zip(starts, weights)]
        return torch.stack(rows, dim=0)
    cols = [padded[:, s : s + taps].mv(w) for s, w in zip(starts, weights)]
    return torch.stack(cols, dim=1)


def imresize(image: Tensor, scale: float, antialiasing: bool = True) -> Tensor:
    """Resize one ``(H, W)`` image by ``scale`` like MATLAB ``imresize`` (bicubic).

    Computed in float32 on the CPU exactly as BasicSR does (no rounding or clipping); the result
    is float32 on ``image``'s device.
    """
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {tuple(image.shape)}")
    work = image.detach().to("cpu", torch.float32)
    out = _resize_axis(_resize_axis(work, scale, 0, antialiasing), scale, 1, antialiasing)
    return out.to(image.device)
