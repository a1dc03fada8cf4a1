"""Exponential moving average of a network: a half-life in training images, or a fixed decay."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class EMA(nn.Module):
    """A frozen copy of a network whose parameters trail the trained ones.

    After every optimisation step ``update(net, images)`` moves each parameter towards the live one by
    ``1 - decay`` with ``decay = 0.5 ** (images / half_life_images)``: the weight of a step halves every
    ``half_life_images`` training images, whatever the batch size or number of devices (pass the
    global batch). Buffers are copied as they are unless ``average_buffers``. The copy lives in
    ``self.shadow``, is saved with the LightningModule, and is what validation, test and export use.

    Args:
        half_life_images: images after which a step's contribution has halved. GFP-GAN's per-iteration
            decay ``0.5 ** (32 / 10000)`` at a global batch ``B`` is ``half_life_images = B * 10000 / 32``.
        decay: instead of a half-life, the same decay after every update whatever its batch (GPEN's
            and rosinality's ``accumulate(g_ema, g, 0.5 ** (32 / 10000))``). Give exactly one of
            ``half_life_images`` and ``decay``.
        start_images: keep the shadow equal to the live network until this many images were seen.
        average_buffers: average floating-point buffers too (otherwise they are copied).
    """

    def __init__(
        self,
        half_life_images: float | None = None,
        start_images: int = 0,
        average_buffers: bool = False,
        decay: float | None = None,
    ) -> None:
        super().__init__()
        if (half_life_images is None) == (decay is None):
            raise ValueError(
                "model.ema needs exactly one of half_life_images and decay, got "
                f"half_life_images={half_life_images}, decay={decay}"
            )
        if half_life_images is not None and not half_life_images > 0:
            raise ValueError(f"model.ema.half_life_images must be > 0, got {half_life_images}")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ValueError(f"model.ema.decay must be in [0, 1), got {decay}")
        self.half_life_images = float(half_life_images) if half_life_images is not None else None
        self.fixed_decay = float(decay) if decay is not None else None
        self.start_images = int(start_images)
        self.average_buffers = average_buffers
        self.shadow: nn.Module | None = None
        self.images_seen: torch.Tensor
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.int64))

    def attach(self, net: nn.Module) -> EMA:
        """Start tracking ``net`` (its current weights become the shadow)."""
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)
        return self

    def decay(self, images: int) -> float:
        """Per-step decay for a step of ``images`` images."""
        if self.fixed_decay is not None:
            return self.fixed_decay
        assert self.half_life_images is not None
        return math.pow(0.5, images / self.half_life_images)

    @torch.no_grad()
    def update(self, net: nn.Module, images: int) -> None:
        """Move the shadow towards ``net`` after a step that used ``images`` images."""
        if self.shadow is None:
            raise RuntimeError("EMA.update() before attach(net)")
        self.images_seen += images
        beta = 0.0 if int(self.images_seen) <= self.start_images else self.decay(images)
        for shadow_p, p in zip(self.shadow.parameters(), net.parameters(), strict=True):
            shadow_p.lerp_(p.detach().to(shadow_p.dtype), 1.0 - beta)
        for shadow_b, b in zip(self.shadow.buffers(), net.buffers(), strict=True):
            if self.average_buffers and b.is_floating_point():
                shadow_b.lerp_(b.to(shadow_b.dtype), 1.0 - beta)
            else:
                shadow_b.copy_(b)

    def train(self, mode: bool = True) -> EMA:
        """The shadow always stays in eval mode."""
        super().train(mode)
        if self.shadow is not None:
            self.shadow.eval()
        return self
