"""Base class, shared state and parameter helpers of the degradation ops.

Every op draws its parameters *per sample* from that sample's own ``torch.Generator`` (``sample``) and
applies them to a batch of same-sized images on the device (``degrade``), or to a packed canvas of
samples of different sizes (``degrade_packed``, see :mod:`faceprior.degradation.packing`). Ops that
change the image size subclass :class:`ResizeOp` and are run by the pipeline. Images are float RGB in
[0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from faceprior.degradation.packing import size_groups

Range = tuple[float, float]


def _range(name: str, value: Sequence[float], low: float | None = None) -> Range:
    """Validate a ``[min, max]`` pair from the config and return it as floats."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a [min, max] pair of numbers, got {value!r}") from err
    if lo > hi:
        raise ValueError(f"{name} must satisfy min <= max, got [{lo}, {hi}]")
    if low is not None and lo < low:
        raise ValueError(f"{name} must be >= {low}, got [{lo}, {hi}]")
    return lo, hi


def _prob(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    """One draw from U[lo, hi) using ``gen``."""
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))


def draw_seed(gen: torch.Generator) -> int:
    """A 62-bit seed for a generator that will draw noise on the device."""
    return int(torch.randint(0, 2**62, (), generator=gen))


@dataclass
class Context:
    """State shared by the ops of one pipeline call."""

    gt: Tensor  # the (possibly modified) ground truth, (B, C, H, W)
    size: tuple[int, int]  # original (H, W)
    extras: dict[str, Tensor] = field(default_factory=dict)


class DegradationOp(nn.Module):
    """Base class: ``sample`` per-sample parameters, ``degrade`` a batch with them."""

    #: The op maps every pixel through the same per-sample function (no neighbours, no image
    #: statistics, no random field), so it can run on a packed canvas unchanged.
    pointwise: bool = False

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        """Draw this op's parameters for one sample."""
        raise NotImplementedError

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        """Apply to ``x`` (a group of samples with indices ``idx`` in the batch)."""
        raise NotImplementedError

    def degrade_packed(
        self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor, sizes: Tensor
    ) -> Tensor:
        """Apply to a packed canvas: sample ``j`` is valid in ``x[j, :, :h_j, :w_j]``.

        ``sizes`` is the ``(n, 2)`` CPU tensor of valid ``(h, w)``; only the valid regions of the
        result are used. The default runs :meth:`degrade` on the whole canvas for pointwise ops and
        otherwise on each group of same-sized samples cropped out of it (exactly the ``groups``
        result). Ops that need neither override it with a batched version.
        """
        if self.pointwise:
            return self.degrade(x, p, ctx, idx)
        out = x.clone()
        for (h, w), members in size_groups(sizes).items():
            sel = torch.tensor(members)
            sub = x[sel.to(x.device), :, :h, :w]
            res = self.degrade(sub, {k: v[sel] for k, v in p.items()}, ctx, idx[sel])
            out[sel.to(x.device), :, :h, :w] = res
        return out


class ResizeOp(DegradationOp):
    """An op that changes the image size; ``target_size`` gives the per-sample output size."""

    mode: str = "bilinear"
    antialias: bool = False

    def target_size(
        self, p: dict[str, float], in_size: tuple[int, int], ctx: Context
    ) -> tuple[int, int]:
        raise NotImplementedError

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        raise TypeError("resize ops are run by the pipeline")
