"""Noise ops: additive Gaussian and Poisson (shot) noise, each sample from its own seeded generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from faceprior.degradation.ops.base import (
    Context,
    DegradationOp,
    _prob,
    _range,
    draw_seed,
    uniform,
)
from faceprior.degradation.ops.color import to_gray


def noise_field(
    seed: int, shape: Sequence[int], gray: bool = False, device: torch.device | str | None = None
) -> Tensor:
    """The standard normal noise ``(C, H, W)`` of one sample, float32.

    Drawn from a generator on ``device`` seeded with ``seed`` at the sample's own size, so it does not
    depend on the other samples of the batch; a gray sample draws one channel and repeats it.
    (Kornia's noise augmentations draw from the global generator, so they cannot be seeded per sample.)
    """
    c, h, w = (int(v) for v in shape)
    g = torch.Generator(device=device if device is not None else "cpu").manual_seed(int(seed))
    n = torch.randn((1 if gray else c, h, w), generator=g, device=device)
    return n.expand(c, h, w)


def _sample_noise(
    shape: Sequence[int], seeds: Tensor, device: torch.device, gray: Tensor
) -> Tensor:
    """Standard normal noise, one generator per sample; gray samples share noise over channels."""
    out = [
        noise_field(int(seed), shape, bool(is_gray), device)
        for seed, is_gray in zip(seeds.tolist(), gray.tolist(), strict=True)
    ]
    return torch.stack(out)


class _SeededNoise(DegradationOp):
    """What the noise ops share: apply/gray probabilities, clipping, and one seed per sample."""

    def __init__(self, gray_prob: float, prob: float, clip: bool) -> None:
        super().__init__()
        self.gray_prob = _prob("gray_prob", gray_prob)
        self.prob = _prob("prob", prob)
        self.clip = bool(clip)

    def _draw(
        self, gen: torch.Generator, name: str, strength: tuple[float, float]
    ) -> dict[str, float]:
        """Draw (in this order) whether to apply, the strength ``name``, gray, and the seed."""
        return {
            "applied": float(uniform(gen, 0, 1) < self.prob),
            name: uniform(gen, *strength),
            "gray": float(uniform(gen, 0, 1) < self.gray_prob),
            "seed": float(draw_seed(gen) >> 11),  # exact in float64
        }


class GaussianNoise(_SeededNoise):
    """Additive Gaussian noise, ``sigma`` in 8-bit units (per-sample), colour or gray, then clip."""

    def __init__(
        self,
        sigma: Sequence[float] = (0.0, 20.0),
        gray_prob: float = 0.0,
        prob: float = 1.0,
        clip: bool = True,
    ) -> None:
        super().__init__(gray_prob, prob, clip)
        self.sigma = _range("sigma", sigma, low=0.0)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return self._draw(gen, "sigma", self.sigma)

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        noise = _sample_noise(x.shape[1:], p["seed"].long(), x.device, p["gray"] > 0)
        return self._add(x, noise, p)

    def degrade_packed(
        self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor, sizes: Tensor
    ) -> Tensor:
        # Each sample's noise is drawn at its own size from its own seed (as in ``degrade``), then
        # the whole canvas is updated at once.
        noise = torch.zeros(x.shape, device=x.device)
        c = x.shape[1]
        seeds, gray = p["seed"].long().tolist(), (p["gray"] > 0).tolist()
        for j, (h, w) in enumerate(sizes.tolist()):
            noise[j, :, :h, :w] = noise_field(seeds[j], (c, h, w), gray[j], x.device)
        return self._add(x, noise, p)

    def _add(self, x: Tensor, noise: Tensor, p: dict[str, Tensor]) -> Tensor:
        sigma = (p["sigma"] * p["applied"]).to(x.device, x.dtype).view(-1, 1, 1, 1) / 255.0
        out = x + noise.to(x.dtype) * sigma
        return out.clamp(0, 1) if self.clip else out


class PoissonNoise(_SeededNoise):
    """Poisson (shot) noise: intensities become photon counts with ``255 / scale`` photons per unit.

    ``scale`` is drawn per sample from ``scale``; larger is noisier. Gray samples share the noise over
    the channels (computed on the luma).
    """

    def __init__(
        self,
        scale: Sequence[float] = (0.05, 3.0),
        gray_prob: float = 0.0,
        prob: float = 1.0,
        clip: bool = True,
    ) -> None:
        super().__init__(gray_prob, prob, clip)
        self.scale = _range("scale", scale, low=1e-6)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return self._draw(gen, "scale", self.scale)

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        outs = []
        for i in range(x.shape[0]):
            if p["applied"][i] <= 0:
                outs.append(x[i])
                continue
            g = torch.Generator(device=x.device).manual_seed(int(p["seed"][i]))
            img = x[i]
            if p["gray"][i] > 0:
                img = to_gray(img[None])[0, :1]
            photons = 255.0 / float(p["scale"][i])
            noisy = torch.poisson(img.clamp_min(0) * photons, generator=g) / photons
            noise = (noisy - img).expand_as(x[i])
            outs.append(x[i] + noise)
        out = torch.stack(outs)
        return out.clamp(0, 1) if self.clip else out
