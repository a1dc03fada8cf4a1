"""Functional StyleGAN2 operations in plain PyTorch.

These are the reference implementations used on every device: no custom CUDA kernels, nothing is
compiled, nothing happens at import time. Each function states the convention it follows so the
modules built on top of them reproduce the official GFP-GAN / BasicSR / GPEN outputs.

Precision rule: every normalisation that adds a tiny ``eps`` under a square root (weight
demodulation, pixel norm, minibatch standard deviation, L2 normalisation) is evaluated in float32
and cast back, because ``1e-8`` underflows to zero in float16 and a zero sum then gives ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

SQRT2 = math.sqrt(2.0)


def make_fir_kernel(taps: Sequence[float] | Tensor) -> Tensor:
    """Build a normalised 2-D FIR kernel from 1-D (separable) or 2-D taps.

    ``[1, 3, 3, 1]`` becomes the 4x4 outer product divided by its sum (64). The tensor is created
    on the current default device, so this works inside ``with torch.device('meta')``.
    """
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(
    x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: Sequence[int] = (0, 0)
) -> Tensor:
    """Upsample by zero insertion, pad, filter with a 2-D FIR kernel, then decimate.

    ``pad = (p0, p1)`` pads the start and the end of BOTH spatial axes (negative values crop), the
    convention of the BasicSR / rosinality ``upfirdn2d``. The kernel is applied as a true
    convolution (flipped), per channel. Output size per axis: ``(n*up + p0 + p1 - k) // down + 1``.
    """
    b, c, h, w = x.shape
    p0, p1 = int(pad[0]), int(pad[1])
    if up > 1:
        # zeros are inserted AFTER each sample: positions 0, up, 2*up, ... hold the input
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    if p0 > 0 or p1 > 0:
        x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:
        hh, ww = x.shape[2], x.shape[3]
        x = x[:, :, max(-p0, 0) : hh - max(-p1, 0), max(-p0, 0) : ww - max(-p1, 0)]
    kh, kw = kernel.shape
    weight = torch.flip(kernel, (0, 1)).to(dtype=x.dtype, device=x.device)
    weight = weight.reshape(1, 1, kh, kw).repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, stride=down, groups=c)


def bias_leaky_relu(
    x: Tensor, bias: Tensor | None, negative_slope: float = 0.2, scale: float = SQRT2
) -> Tensor:
    """Fused bias + leaky ReLU with gain: ``scale * leaky_relu(x + bias, slope)``.

    ``bias`` has one value per channel (dimension 1 of ``x``); ``None`` skips it.
    """
    if bias is not None:
        shape = [1, bias.shape[0]] + [1] * (x.ndim - 2)
        x = x + bias.reshape(shape)
    return F.leaky_relu(x, negative_slope) * scale


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Normalise every vector along dim 1 to unit root-mean-square (StyleGAN's PixelNorm)."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(dim=1, keepdim=True) + eps)).to(x.dtype)


def l2_normalize(x: Tensor, dim: int = 1) -> Tensor:
    """Divide by the L2 norm along ``dim`` (no eps, like the official ``l2_norm``), in float32."""
    x32 = x.float()
    return (x32 / torch.linalg.vector_norm(x32, ord=2, dim=dim, keepdim=True)).to(x.dtype)


def modulate_weight(weight: Tensor, styles: Tensor, demodulate: bool, eps: float = 1e-8) -> Tensor:
    """Per-sample modulated (and optionally demodulated) convolution weights.

    Args:
        weight: ``(1, C_out, C_in, k, k)`` base weight, any runtime scale already applied.
        styles: ``(B, C_in)`` per-sample input-channel scales.
        demodulate: rescale every output filter to unit L2 norm (``rsqrt(sum w^2 + eps)``).
        eps: the epsilon under the square root.

    Returns:
        ``(B, C_out, C_in, k, k)`` weights.
    """
    w = weight * styles[:, None, :, None, None]
    if demodulate:
        w32 = w.float()
        demod = torch.rsqrt(w32.pow(2).sum(dim=(2, 3, 4)) + eps)
        w = (w32 * demod[:, :, None, None, None]).to(w.dtype)
    return w


def conv2d_per_sample(x: Tensor, weight: Tensor, padding: int = 0, stride: int = 1) -> Tensor:
    """Convolve sample ``i`` of ``x`` with ``weight[i]`` via one grouped convolution.

    ``x``: ``(B, C_in, H, W)``; ``weight``: ``(B, C_out, C_in, k, k)``.
    """
    b, c, h, w = x.shape
    _, c_out, c_in, kh, kw = weight.shape
    out = F.conv2d(
        x.reshape(1, b * c, h, w),
        weight.reshape(b * c_out, c_in, kh, kw).to(x.dtype),
        padding=padding,
        stride=stride,
        groups=b,
    )
    return out.reshape(b, c_out, out.shape[2], out.shape[3])


def conv_transpose2d_per_sample(x: Tensor, weight: Tensor, stride: int = 2) -> Tensor:
    """Transposed convolution (no padding) of sample ``i`` of ``x`` with ``weight[i]``.

    ``weight`` is laid out like a forward convolution, ``(B, C_out, C_in, k, k)``; it is swapped
    to the ``(C_in, C_out)`` layout that ``conv_transpose2d`` expects.
    """
    b, c, h, w = x.shape
    _, c_out, c_in, kh, kw = weight.shape
    wt = weight.transpose(1, 2).reshape(b * c_in, c_out, kh, kw).to(x.dtype)
    out = F.conv_transpose2d(x.reshape(1, b * c, h, w), wt, stride=stride, groups=b)
    return out.reshape(b, c_out, out.shape[2], out.shape[3])


def minibatch_stddev(
    x: Tensor, group_size: int, num_features: int = 1, eps: float = 1e-8
) -> Tensor:
    """Append the minibatch standard-deviation feature map(s) to ``x``.

    The batch is viewed as ``(group_size, B // group_size, ...)``: sample ``b`` is grouped with
    ``{m, m + B/G, m + 2B/G, ...}`` where ``m = b mod (B/G)`` (strided sets, the official
    semantics). The population std over the group, averaged over channels and pixels of each
    feature slice, is broadcast to ``(B, num_features, H, W)`` and concatenated on dim 1.
    """
    b, c, h, w = x.shape
    if group_size < 1 or b % group_size != 0:
        raise ValueError(f"batch size {b} is not divisible by the stddev group size {group_size}")
    y = x.float().reshape(group_size, -1, num_features, c // num_features, h, w)
    y = torch.sqrt(y.var(dim=0, correction=0) + eps)
    y = y.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)
    y = y.to(x.dtype).repeat(group_size, 1, h, w)
    return torch.cat([x, y], dim=1)


def resize_bilinear(x: Tensor, scale_factor: float) -> Tensor:
    """Bilinear resize with ``align_corners=False`` (the "clean" GFP-GAN resampling)."""
    return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)
