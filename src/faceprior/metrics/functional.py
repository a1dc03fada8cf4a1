"""BasicSR-compatible functions on numpy images (``cv2.imread`` layout: BGR, ``uint8``, HWC).

The signatures follow ``basicsr.metrics`` so scripts written for BasicSR can switch to these;
the math is the float64 torch code used by the metric classes, so both give the same numbers.
Inputs may also be float arrays on the [0, 255] scale; they are used as they are (no rounding),
as in BasicSR.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from faceprior.metrics.niqe import niqe_per_image
from faceprior.metrics.psnr_ssim import psnr_per_image, ssim_per_image


def numpy_to_tensor(img: np.ndarray, input_order: str = "HWC") -> Tensor:
    """Convert one BGR (or gray) numpy image to a ``(1, C, H, W)`` float64 RGB tensor."""
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"input_order must be 'HWC' or 'CHW', got {input_order!r}")
    array = np.asarray(img)
    if array.ndim == 2:
        array = array[:, :, None]
    elif input_order == "CHW":
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"expected a gray or 3-channel image, got shape {np.shape(img)}")
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float64)
    return torch.from_numpy(chw)[None]


def _check_same_shape(img: np.ndarray, img2: np.ndarray) -> None:
    if np.shape(img) != np.shape(img2):
        raise ValueError(f"image shapes differ: {np.shape(img)} vs {np.shape(img2)}")


def calculate_psnr(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    input_order: str = "HWC",
    test_y_channel: bool = False,
) -> float:
    """PSNR (dB) of two BGR images on the [0, 255] scale, as BasicSR's ``calculate_psnr``."""
    _check_same_shape(img, img2)
    x, y = numpy_to_tensor(img, input_order), numpy_to_tensor(img2, input_order)
    return float(psnr_per_image(x, y, crop_border, test_y_channel)[0])


def calculate_ssim(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    input_order: str = "HWC",
    test_y_channel: bool = False,
) -> float:
    """SSIM of two BGR images on the [0, 255] scale, as BasicSR's ``calculate_ssim``."""
    _check_same_shape(img, img2)
    x, y = numpy_to_tensor(img, input_order), numpy_to_tensor(img2, input_order)
    return float(ssim_per_image(x, y, crop_border, test_y_channel)[0])


def calculate_niqe(
    img: np.ndarray, crop_border: int = 0, input_order: str = "HWC", convert_to: str = "y"
) -> float:
    """NIQE of one BGR image on the [0, 255] scale, as BasicSR's ``calculate_niqe``.

    Only ``convert_to='y'`` (rounded MATLAB Y, the papers' setting) is supported.
    """
    if convert_to != "y":
        raise ValueError("only convert_to='y' (the BasicSR/MATLAB protocol) is supported")
    return float(niqe_per_image(numpy_to_tensor(img, input_order), crop_border)[0])
