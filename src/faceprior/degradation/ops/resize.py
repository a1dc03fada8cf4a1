"""Resize ops (run by the pipeline, which owns the per-sample sizes) and the resampler they use."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from faceprior.degradation.ops.base import Context, ResizeOp, _range, uniform


class RandomResize(ResizeOp):
    """Downscale by a per-sample factor ``r`` to ``(int(h // r), int(w // r))``.

    With the defaults this is OpenCV's ``INTER_LINEAR`` resize (bilinear, half-pixel centres, no
    antialiasing), the resampler of the GFP-GAN training pipeline.
    """

    def __init__(
        self, scale: Sequence[float] = (0.8, 8.0), mode: str = "bilinear", antialias: bool = False
    ) -> None:
        super().__init__()
        self.scale = _range("scale", scale, low=1e-3)
        if mode not in ("bilinear", "bicubic", "area", "nearest"):
            raise ValueError(f"mode must be bilinear, bicubic, area or nearest, got {mode!r}")
        self.mode = mode
        self.antialias = bool(antialias)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {"scale": uniform(gen, *self.scale)}

    def target_size(
        self, p: dict[str, float], in_size: tuple[int, int], ctx: Context
    ) -> tuple[int, int]:
        r = p["scale"]
        return max(1, int(in_size[0] // r)), max(1, int(in_size[1] // r))


class ResizeBack(ResizeOp):
    """Resize every sample back to the original ground-truth size."""

    def __init__(self, mode: str = "bilinear", antialias: bool = False) -> None:
        super().__init__()
        if mode not in ("bilinear", "bicubic", "area", "nearest"):
            raise ValueError(f"mode must be bilinear, bicubic, area or nearest, got {mode!r}")
        self.mode = mode
        self.antialias = bool(antialias)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {}

    def target_size(
        self, p: dict[str, float], in_size: tuple[int, int], ctx: Context
    ) -> tuple[int, int]:
        return ctx.size


def resize(x: Tensor, size: tuple[int, int], mode: str, antialias: bool) -> Tensor:
    """``F.interpolate`` with half-pixel centres (``align_corners=False``) for the modes that take it."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode in ("nearest", "area"):
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=antialias)
