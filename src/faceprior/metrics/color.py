"""Colour conversions used by the metrics, reproducing BasicSR/MATLAB conventions bit for bit."""

from __future__ import annotations

import torch
from torch import Tensor

#: MATLAB ``rgb2ycbcr`` (ITU-R BT.601, studio swing) luma weights for R, G, B on [0, 1] inputs.
_Y_WEIGHTS_RGB = (65.481, 128.553, 24.966)


def rgb_to_y(images: Tensor) -> Tensor:
    """BT.601 studio-swing Y (16–235) of RGB images on the [0, 255] scale, **not rounded**.

    Follows the dtype path of BasicSR's ``to_y_channel`` (protocol §2) so results match it to the
    last bit in practice: the image is divided by 255 in float32, the weighted sum is done in
    float64 (blue + green + red, as ``np.dot`` on BGR data), rescaled to [0, 1], stored as float32
    and multiplied back by 255 in float32.

    Args:
        images: ``(B, 3, H, W)`` RGB values in [0, 255], any real dtype.

    Returns:
        ``(B, 1, H, W)`` float64 luma in [16, 235].
    """
    unit = images.to(torch.float32) / 255.0
    red, green, blue = (unit[:, c : c + 1].to(torch.float64) for c in range(3))
    w_r, w_g, w_b = _Y_WEIGHTS_RGB
    luma = blue * w_b + green * w_g + red * w_r + 16.0
    luma32 = (luma / 255.0).to(torch.float32)
    return (luma32 * 255.0).to(torch.float64)


def rgb_to_vqfr_gray(images: Tensor) -> Tensor:
    """Gray level that ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)`` returns for an 8-bit RGB PNG.

    OpenCV lets libpng do the conversion (``png_set_rgb_to_gray`` with 0.299/0.587), which is the
    15-bit fixed-point sum ``(9797 R + 19234 G + 3737 B) >> 15`` (truncated). It differs by up to
    one level from ``cv2.cvtColor(..., COLOR_BGR2GRAY)``; the identity metric needs the former
    because VQFR's script reads its inputs with ``imread(path, 0)`` (verified bit-exact on the
    reference images with OpenCV 5.0).

    Args:
        images: ``(B, 3, H, W)`` RGB values on the 8-bit grid, any dtype.

    Returns:
        ``(B, 1, H, W)`` ``uint8`` gray images.
    """
    rgb = images.to(torch.int64)
    weighted = 9797 * rgb[:, 0:1] + 19234 * rgb[:, 1:2] + 3737 * rgb[:, 2:3]
    return torch.div(weighted, 32768, rounding_mode="floor").to(torch.uint8)
