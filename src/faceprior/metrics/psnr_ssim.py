"""PSNR and SSIM exactly as BasicSR's ``calculate_psnr``/``calculate_ssim`` (MATLAB conventions).

Both work on float64 values on the 8-bit grid, per image, with an optional border crop and the
unrounded BT.601 Y channel (protocol §0, §2, §3). SSIM is Wang et al.'s: an 11x11 Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, computed on the "valid" region only (5 pixels dropped
on each side), per channel and then averaged over channels.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from faceprior.metrics.base import PerImageMeanMetric, check_pair, to_uint8_range
from faceprior.metrics.color import rgb_to_y

_SSIM_RADIUS = 5
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
#: planes filtered together; bounds the float64 working memory (~50 MB at 512x512)
_SSIM_CHUNK = 6


def _prepare(
    preds: Tensor, target: Tensor, crop_border: int, test_y_channel: bool
) -> tuple[Tensor, Tensor]:
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        preds = preds[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel and preds.shape[1] == 3:
        preds, target = rgb_to_y(preds), rgb_to_y(target)
    return preds.to(torch.float64), target.to(torch.float64)


def psnr_per_image(
    preds: Tensor, target: Tensor, crop_border: int = 0, test_y_channel: bool = False
) -> Tensor:
    """PSNR in dB of each image pair; identical images give ``inf`` (as BasicSR).

    Args:
        preds: ``(B, 3, H, W)`` RGB values on the [0, 255] scale (not re-quantised here).
        target: same shape as ``preds``.
        crop_border: pixels removed on each side before scoring.
        test_y_channel: score the BT.601 Y channel instead of the three RGB channels (ignored for
            single-channel input, as in BasicSR).

    Returns:
        ``(B,)`` float64.
    """
    x, y = _prepare(preds, target, crop_border, test_y_channel)
    mse = (x - y).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_kernel_1d(device: torch.device) -> Tensor:
    """The normalised 11-tap Gaussian of ``cv2.getGaussianKernel(11, 1.5)`` in float64."""
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-(offsets**2) / (2.0 * _SSIM_SIGMA**2))
    return kernel / kernel.sum()


def _valid_gaussian_filter(planes: Tensor) -> Tensor:
    """Filter ``(N, 1, H, W)`` float64 planes with the SSIM window, keeping the valid region.

    On the CPU this is OpenCV's ``filter2D`` with the 2-D window (BasicSR's own call, and far
    faster than a float64 ``conv2d``); elsewhere two 1-D passes written as weighted sums of
    shifted views. Both are float64 and agree to ~1e-12 on 8-bit images.
    """
    if planes.device.type == "cpu":
        return _filter_opencv(planes)
    return _filter_shifted_sums(planes)


def _filter_opencv(planes: Tensor) -> Tensor:
    kernel = _gaussian_kernel_1d(planes.device).numpy()
    window = np.outer(kernel, kernel)
    r = _SSIM_RADIUS
    filtered = [
        cv2.filter2D(plane.numpy(), -1, window)[r:-r, r:-r] for plane in planes[:, 0].contiguous()
    ]
    return torch.from_numpy(np.stack(filtered))[:, None]


def _filter_shifted_sums(planes: Tensor) -> Tensor:
    kernel = _gaussian_kernel_1d(planes.device).tolist()
    height, width = planes.shape[-2:]
    taps = len(kernel)
    rows = torch.zeros_like(planes[..., : height - taps + 1, :])
    for k, weight in enumerate(kernel):
        rows.add_(planes[..., k : k + height - taps + 1, :], alpha=weight)
    cols = torch.zeros_like(rows[..., : width - taps + 1])
    for k, weight in enumerate(kernel):
        cols.add_(rows[..., k : k + width - taps + 1], alpha=weight)
    return cols


def ssim_per_image(
    preds: Tensor, target: Tensor, crop_border: int = 0, test_y_channel: bool = False
) -> Tensor:
    """SSIM of each image pair (mean of the per-channel SSIMs).

    Arguments as in :func:`psnr_per_image`. Images must be larger than 10x10 after cropping.

    Returns:
        ``(B,)`` float64.
    """
    x, y = _prepare(preds, target, crop_border, test_y_channel)
    batch, channels, height, width = x.shape
    if min(height, width) <= 2 * _SSIM_RADIUS:
        raise ValueError(f"SSIM needs images larger than 10x10, got {height}x{width}")
    x = x.reshape(batch * channels, 1, height, width)
    y = y.reshape(batch * channels, 1, height, width)
    per_plane = torch.cat(
        [
            _ssim_planes(x[i : i + _SSIM_CHUNK], y[i : i + _SSIM_CHUNK])
            for i in range(0, batch * channels, _SSIM_CHUNK)
        ]
    )
    return per_plane.view(batch, channels).mean(dim=1)


def _ssim_planes(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM map of each ``(N, 1, H, W)`` plane pair."""
    mu_x, mu_y, e_xx, e_yy, e_xy = (
        _valid_gaussian_filter(plane) for plane in (x, y, x * x, y * y, x * y)
    )
    var_x = e_xx - mu_x.square()
    var_y = e_yy - mu_y.square()
    cov_xy = e_xy - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + _SSIM_C1) * (2.0 * cov_xy + _SSIM_C2)
    denominator = (mu_x.square() + mu_y.square() + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return (numerator / denominator).mean(dim=(1, 2, 3))


class _PairedQualityMetric(PerImageMeanMetric):
    """Full-reference metric on 8-bit quantised RGB pairs with BasicSR's crop/Y options."""

    higher_is_better = True

    def __init__(self, crop_border: int = 0, test_y_channel: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {crop_border}")
        self.crop_border = int(crop_border)
        self.test_y_channel = bool(test_y_channel)

    @property
    def metric_name(self) -> str:
        """The CLI/log name: ``psnr``/``ssim``, with ``_y`` appended for the Y variant."""
        return f"{self.default_name}_y" if self.test_y_channel else self.default_name

    def protocol(self) -> dict[str, Any]:
        """Convention plus ``crop_border`` and ``test_y_channel``."""
        record = super().protocol()
        record.update(crop_border=self.crop_border, test_y_channel=self.test_y_channel)
        return record

    def _inputs(self, preds: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        if target is None:
            raise ValueError(
                f"{type(self).__name__} is a full-reference metric: pass a target batch"
            )
        check_pair(preds, target)
        return to_uint8_range(preds), to_uint8_range(target.to(preds.device))


class PSNR(_PairedQualityMetric):
    """PSNR (dB) of 8-bit quantised images, mean of per-image values (BasicSR ``calculate_psnr``).

    ``update(preds, target)`` takes RGB batches ``(B, 3, H, W)``: floats in [0, 1] (clipped and
    rounded to 8 bits like a saved PNG) or ``uint8``. Math in float64.

    Args:
        crop_border: pixels dropped on each side (0 for face restoration).
        test_y_channel: score the unrounded BT.601 studio-swing Y channel instead of RGB.
    """

    convention = "BasicSR calculate_psnr: uint8 images, float64, per-image PSNR averaged"

    default_name = "psnr"

    def per_image(self, preds: Tensor, target: Tensor | None = None) -> Tensor:
        """Per-image PSNR in dB, ``(B,)`` float64."""
        x, y = self._inputs(preds, target)
        return psnr_per_image(x, y, self.crop_border, self.test_y_channel)


class SSIM(_PairedQualityMetric):
    """SSIM of 8-bit quantised images, mean of per-image values (BasicSR ``calculate_ssim``).

    Same inputs and arguments as :class:`PSNR`. Matches MATLAB's ``ssim_index`` (valid region,
    11x11 Gaussian window); not the same as torchmetrics' SSIM, which pads the borders.
    """

    convention = "BasicSR calculate_ssim: uint8 images, float64, 11x11 Gaussian, valid region"

    default_name = "ssim"

    def per_image(self, preds: Tensor, target: Tensor | None = None) -> Tensor:
        """Per-image SSIM, ``(B,)`` float64."""
        x, y = self._inputs(preds, target)
        return ssim_per_image(x, y, self.crop_border, self.test_y_channel)


__all__ = ["PSNR", "SSIM", "psnr_per_image", "ssim_per_image"]
