"""Blur kernels (batched, per-sample parameters) and large-kernel filtering by FFT."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Kernel families, in the order of their integer codes in sampled parameters.
KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


def kernel_grid(kernel_size: int, device: torch.device | None = None) -> Tensor:
    """``(k, k, 2)`` grid of ``(x, y)`` offsets from the kernel centre (x varies along columns)."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    ax = torch.arange(-(kernel_size // 2), kernel_size // 2 + 1, dtype=torch.float64, device=device)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def inverse_covariance(sigma_x: Tensor, sigma_y: Tensor, theta: Tensor) -> Tensor:
    """Inverse of ``R(theta) diag(sigma_x², sigma_y²) R(theta)ᵀ`` for a batch, shape ``(B, 2, 2)``."""
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    inv_diag = torch.diag_embed(torch.stack([sigma_x.pow(-2), sigma_y.pow(-2)], -1))
    return rot @ inv_diag @ rot.transpose(-1, -2)


def bivariate_kernels(
    kernel_size: int,
    sigma_x: Tensor,
    sigma_y: Tensor,
    theta: Tensor,
    kind: Tensor,
    beta: Tensor | None = None,
) -> Tensor:
    """Normalised ``(B, k, k)`` kernels, one per sample.

    ``kind`` holds indices into :data:`KERNEL_TYPES`. Gaussian kernels are ``exp(-q/2)``, generalized
    Gaussian ``exp(-q^β/2)`` and plateau ``1 / (1 + q^β)``, with ``q = xᵀ Σ⁻¹ x``. Computed in float64.
    Hand-written for BasicSR parity: Kornia's Gaussian kernels are axis-aligned (no rotation θ).
    """
    sigma_x, sigma_y, theta = (t.to(torch.float64) for t in (sigma_x, sigma_y, theta))
    grid = kernel_grid(kernel_size, sigma_x.device)
    q_mat = inverse_covariance(sigma_x, sigma_y, theta)
    quad = torch.einsum("hwi,bij,hwj->bhw", grid, q_mat, grid)
    b = (
        torch.ones_like(sigma_x)
        if beta is None
        else beta.to(device=sigma_x.device, dtype=torch.float64)
    )
    b = b.view(-1, 1, 1)
    family = (kind.to(sigma_x.device) // 2).view(-1, 1, 1)
    gauss = torch.exp(-0.5 * quad)
    generalized = torch.exp(-0.5 * quad.clamp_min(0).pow(b))
    plateau = 1.0 / (quad.clamp_min(0).pow(b) + 1.0)
    kernels = torch.where(family == 0, gauss, torch.where(family == 1, generalized, plateau))
    return kernels / kernels.sum(dim=(-1, -2), keepdim=True)


def filter2d_fft(x: Tensor, kernels: Tensor) -> Tensor:
    """Correlate each image of ``x`` (B, C, H, W) with its own kernel (B, k, k), reflect-101 borders.

    Same result as ``cv2.filter2D`` with its default border, computed by FFT so the cost does not grow
    with the kernel area. Kept instead of ``kornia.filters.fft_conv`` (same numbers to 6e-7): Kornia
    transforms the kernel once per channel, 1.6-1.8x slower here on 3-channel batches.
    """
    _, _, h, w = x.shape
    kh, kw = kernels.shape[-2:]
    ph, pw = kh // 2, kw // 2
    if ph >= h or pw >= w:
        raise ValueError(
            f"blur kernel {kh}x{kw} is too large for a {h}x{w} image (reflect padding needs "
            "kernel_size // 2 < image side); lower the blur kernel_size"
        )
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    xp = F.pad(x.to(work), (pw, pw, ph, ph), mode="reflect")
    hp, wp = xp.shape[-2:]
    flipped = torch.flip(kernels.to(work), dims=(-2, -1))
    spec = torch.fft.rfft2(xp, s=(hp, wp)) * torch.fft.rfft2(flipped, s=(hp, wp)).unsqueeze(1)
    full = torch.fft.irfft2(spec, s=(hp, wp))
    return full[..., kh - 1 : kh - 1 + h, kw - 1 : kw - 1 + w].to(x.dtype)


def motion_kernels(kernel_size: int, angle: Tensor, direction: Tensor) -> Tensor:
    """Line-shaped motion-blur kernels ``(B, k, k)``.

    ``angle`` in degrees; ``direction`` in [-1, 1] moves the weight towards one end of the line (0 is a
    symmetric line). The line is rasterised by sampling it densely with bilinear splatting.
    Kept instead of ``kornia.filters.get_motion_kernel2d``, which rasterises differently (up to 0.09
    apart per tap for a 15-tap kernel), so that existing results stay as they are.
    """
    device = angle.device
    n = kernel_size * 8
    t = torch.linspace(-1.0, 1.0, n, device=device, dtype=torch.float64)
    rad = torch.deg2rad(angle.to(torch.float64)).view(-1, 1)
    half = (kernel_size - 1) / 2
    xs = half + torch.cos(rad) * t * half
    ys = half - torch.sin(rad) * t * half
    weight = (1.0 + direction.to(torch.float64).view(-1, 1) * t).clamp_min(0.0)
    kernels = torch.zeros(
        angle.shape[0], kernel_size * kernel_size, dtype=torch.float64, device=device
    )
    x0, y0 = xs.floor(), ys.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = weight * (1 - (xs - xi).abs()) * (1 - (ys - yi).abs())
            valid = (xi >= 0) & (xi < kernel_size) & (yi >= 0) & (yi < kernel_size)
            idx = (yi.clamp(0, kernel_size - 1) * kernel_size + xi.clamp(0, kernel_size - 1)).long()
            kernels.scatter_add_(1, idx, torch.where(valid, wgt, torch.zeros_like(wgt)))
    kernels = kernels.view(-1, kernel_size, kernel_size)
    return kernels / kernels.sum(dim=(-1, -2), keepdim=True)
