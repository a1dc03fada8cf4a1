"""Batched, per-sample-seeded face degradation that runs on the training device."""

from faceprior.degradation.kernels import (
    KERNEL_TYPES,
    bivariate_kernels,
    filter2d_fft,
    motion_kernels,
)
from faceprior.degradation.ops import (
    JPEG,
    ColorJitter,
    ColorShift,
    Context,
    DegradationOp,
    GaussianNoise,
    Grayscale,
    MotionBlur,
    PoissonNoise,
    Quantize,
    RandomBlur,
    RandomResize,
    ResizeBack,
    ResizeOp,
)
from faceprior.degradation.pipeline import Degradation, sample_generators

__all__ = [
    "JPEG",
    "KERNEL_TYPES",
    "ColorJitter",
    "ColorShift",
    "Context",
    "Degradation",
    "DegradationOp",
    "GaussianNoise",
    "Grayscale",
    "MotionBlur",
    "PoissonNoise",
    "Quantize",
    "RandomBlur",
    "RandomResize",
    "ResizeBack",
    "ResizeOp",
    "bivariate_kernels",
    "filter2d_fft",
    "motion_kernels",
    "sample_generators",
]
