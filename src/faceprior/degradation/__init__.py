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
    jpeg_extent,
    noise_field,
)
from faceprior.degradation.packing import (
    bucket_by_size,
    edge_pad,
    pack,
    resample_bilinear,
)
from faceprior.degradation.pipeline import (
    PACKING_MODES,
    Degradation,
    SampleParams,
    sample_generators,
)

__all__ = [
    "JPEG",
    "KERNEL_TYPES",
    "PACKING_MODES",
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
    "SampleParams",
    "bivariate_kernels",
    "bucket_by_size",
    "edge_pad",
    "filter2d_fft",
    "jpeg_extent",
    "motion_kernels",
    "noise_field",
    "pack",
    "resample_bilinear",
    "sample_generators",
]
