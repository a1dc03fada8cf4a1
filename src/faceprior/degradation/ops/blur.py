"""Blur ops: mixed Gaussian-family kernels and linear motion blur, one kernel per sample."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from faceprior.degradation.kernels import (
    KERNEL_TYPES,
    bivariate_kernels,
    filter2d_fft,
    motion_kernels,
)
from faceprior.degradation.ops.base import Context, DegradationOp, _prob, _range, uniform


class RandomBlur(DegradationOp):
    """Mixed Gaussian-family blur with per-sample kernel type, widths and rotation.

    ``kernel_list``/``kernel_prob`` choose among :data:`KERNEL_TYPES`; isotropic kernels use
    ``sigma_y = sigma_x`` and no rotation. Generalized/plateau kernels draw their shape ``β`` half of
    the time below 1 and half above, within ``beta_gaussian``/``beta_plateau``.

    ``reference_size``: when set, ``kernel_size`` and the sigmas are given for images of that side and
    are scaled to the actual image side (e.g. the 512-px GFP-GAN ranges applied to 64-px faces blur
    as much *relative to the face* as they do at 512). Sampled parameters are recorded at the
    reference scale. ``None`` (default) uses the values as given, in pixels.
    """

    def __init__(
        self,
        kernel_size: int = 41,
        kernel_list: Sequence[str] = ("iso", "aniso"),
        kernel_prob: Sequence[float] = (0.5, 0.5),
        sigma_x: Sequence[float] = (0.1, 10.0),
        sigma_y: Sequence[float] = (0.1, 10.0),
        rotation: Sequence[float] = (-math.pi, math.pi),
        beta_gaussian: Sequence[float] = (0.5, 4.0),
        beta_plateau: Sequence[float] = (1.0, 2.0),
        prob: float = 1.0,
        reference_size: int | None = None,
    ) -> None:
        super().__init__()
        if int(kernel_size) % 2 != 1 or int(kernel_size) < 3:
            raise ValueError(f"kernel_size must be an odd integer >= 3, got {kernel_size}")
        if reference_size is not None and int(reference_size) < 1:
            raise ValueError(f"reference_size must be a positive image side, got {reference_size}")
        self.reference_size = None if reference_size is None else int(reference_size)
        unknown = [k for k in kernel_list if k not in KERNEL_TYPES]
        if unknown:
            raise ValueError(
                f"kernel_list has unknown kernel types {unknown}; valid: {KERNEL_TYPES}"
            )
        if len(kernel_prob) != len(kernel_list) or abs(sum(kernel_prob) - 1.0) > 1e-6:
            raise ValueError(
                f"kernel_prob must have one probability per kernel_list entry summing to 1, "
                f"got {list(kernel_prob)} for {list(kernel_list)}"
            )
        self.kernel_size = int(kernel_size)
        self.kernel_list = [str(k) for k in kernel_list]
        self.kernel_prob = torch.tensor([float(p) for p in kernel_prob], dtype=torch.float64)
        self.sigma_x = _range("sigma_x", sigma_x, low=1e-3)
        self.sigma_y = _range("sigma_y", sigma_y, low=1e-3)
        self.rotation = _range("rotation", rotation)
        self.beta_gaussian = _range("beta_gaussian", beta_gaussian, low=1e-3)
        self.beta_plateau = _range("beta_plateau", beta_plateau, low=1e-3)
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        applied = uniform(gen, 0, 1) < self.prob
        choice = int(torch.multinomial(self.kernel_prob, 1, generator=gen))
        name = self.kernel_list[choice]
        sx = uniform(gen, *self.sigma_x)
        iso = name.endswith("iso") and not name.endswith("aniso")
        sy = sx if iso else uniform(gen, *self.sigma_y)
        theta = 0.0 if iso else uniform(gen, *self.rotation)
        beta = 1.0
        if name.startswith("generalized"):
            lo, hi = self.beta_gaussian
            beta = uniform(gen, lo, 1.0) if uniform(gen, 0, 1) < 0.5 else uniform(gen, 1.0, hi)
        elif name.startswith("plateau"):
            lo, hi = self.beta_plateau
            beta = uniform(gen, lo, 1.0) if uniform(gen, 0, 1) < 0.5 else uniform(gen, 1.0, hi)
        return {
            "applied": float(applied),
            "kind": float(KERNEL_TYPES.index(name)),
            "sigma_x": sx,
            "sigma_y": sy,
            "theta": theta,
            "beta": beta,
        }

    def scale_for(self, side: int) -> float:
        """Factor from the reference scale to an image of ``side`` pixels (1 without a reference)."""
        return 1.0 if self.reference_size is None else side / self.reference_size

    def kernels(self, p: dict[str, Tensor], scale: float = 1.0) -> Tensor:
        """The ``(B, k, k)`` kernels for sampled parameters ``p``, spatially scaled by ``scale``."""
        half = (
            max(1, math.ceil((self.kernel_size // 2) * scale))
            if scale != 1.0
            else self.kernel_size // 2
        )
        return bivariate_kernels(
            2 * half + 1,
            p["sigma_x"] * scale,
            p["sigma_y"] * scale,
            p["theta"],
            p["kind"].long(),
            p["beta"],
        )

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        scale = self.scale_for(min(x.shape[-2:]))
        blurred = filter2d_fft(x, self.kernels(p, scale).to(x.device))
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, blurred, x)


class MotionBlur(DegradationOp):
    """Linear motion blur: per-sample angle (degrees) and direction, applied with ``prob``."""

    def __init__(
        self,
        kernel_size: int = 15,
        angle: Sequence[float] = (-180.0, 180.0),
        direction: Sequence[float] = (-1.0, 1.0),
        prob: float = 1.0,
    ) -> None:
        super().__init__()
        if int(kernel_size) % 2 != 1 or int(kernel_size) < 3:
            raise ValueError(f"kernel_size must be an odd integer >= 3, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.angle = _range("angle", angle)
        self.direction = _range("direction", direction)
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {
            "applied": float(uniform(gen, 0, 1) < self.prob),
            "angle": uniform(gen, *self.angle),
            "direction": uniform(gen, *self.direction),
        }

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        k = motion_kernels(self.kernel_size, p["angle"], p["direction"]).to(x.device)
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, filter2d_fft(x, k), x)
