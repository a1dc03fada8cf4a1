"""Degradation ops, one module per family; every public name is re-exported here.

- :mod:`~faceprior.degradation.ops.base`: :class:`DegradationOp`, :class:`ResizeOp`,
  :class:`Context` and the parameter helpers;
- :mod:`~faceprior.degradation.ops.blur`: :class:`RandomBlur`, :class:`MotionBlur`;
- :mod:`~faceprior.degradation.ops.resize`: :class:`RandomResize`, :class:`ResizeBack`,
  :func:`resize`;
- :mod:`~faceprior.degradation.ops.noise`: :class:`GaussianNoise`, :class:`PoissonNoise`,
  :func:`noise_field`;
- :mod:`~faceprior.degradation.ops.jpeg`: :class:`JPEG` (real codec / differentiable model);
- :mod:`~faceprior.degradation.ops.color`: :class:`ColorShift`, :class:`ColorJitter`,
  :class:`Grayscale`, :class:`Quantize`.
"""

from faceprior.degradation.ops.base import (
    Context,
    DegradationOp,
    Range,
    ResizeOp,
    draw_seed,
    uniform,
)
from faceprior.degradation.ops.blur import MotionBlur, RandomBlur
from faceprior.degradation.ops.color import (
    ColorJitter,
    ColorShift,
    Grayscale,
    Quantize,
    adjust_color,
    to_gray,
)
from faceprior.degradation.ops.jpeg import (
    CUDA_CODECS,
    JPEG,
    JPEG_IMPLS,
    QUALITY_ROUNDINGS,
    CudaCodec,
    JpegImpl,
    QualityRounding,
    host_libjpeg_roundtrip,
    jpeg_extent,
    libjpeg_roundtrip,
    nvjpeg_roundtrip,
)
from faceprior.degradation.ops.noise import GaussianNoise, PoissonNoise, noise_field
from faceprior.degradation.ops.resize import RandomResize, ResizeBack, resize

__all__ = [
    "CUDA_CODECS",
    "JPEG",
    "JPEG_IMPLS",
    "QUALITY_ROUNDINGS",
    "ColorJitter",
    "ColorShift",
    "Context",
    "CudaCodec",
    "DegradationOp",
    "GaussianNoise",
    "Grayscale",
    "JpegImpl",
    "MotionBlur",
    "PoissonNoise",
    "QualityRounding",
    "Quantize",
    "RandomBlur",
    "RandomResize",
    "Range",
    "ResizeBack",
    "ResizeOp",
    "adjust_color",
    "draw_seed",
    "host_libjpeg_roundtrip",
    "jpeg_extent",
    "libjpeg_roundtrip",
    "noise_field",
    "nvjpeg_roundtrip",
    "resize",
    "to_gray",
    "uniform",
]
