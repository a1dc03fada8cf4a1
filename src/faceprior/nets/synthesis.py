"""Synthesis loop shared by the BasicSR-layout StyleGAN2 generators (original and clean).

Both families use the same module names (``style_mlp``, ``constant_input``, ``style_conv1``,
``to_rgb1``, ``style_convs``, ``to_rgbs``, ``noises``) and the same forward; they differ only in
their layers. The optional spatial feature transform (SFT) conditions of GFP-GAN are applied here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def noise_resolution(layer_idx: int) -> int:
    """Spatial size of noise layer ``layer_idx`` (4, 8, 8, 16, 16, ...)."""
    return 2 ** ((layer_idx + 5) // 2)


def truncate_styles(
    styles: Sequence[Tensor], truncation: float, truncation_latent: Tensor | None
) -> list[Tensor]:
    """Truncation trick: ``w_avg + psi * (w - w_avg)`` for every style when ``psi < 1``."""
    if truncation >= 1:
        return list(styles)
    if truncation_latent is None:
        raise ValueError("truncation < 1 needs truncation_latent (e.g. from mean_latent())")
    return [truncation_latent + truncation * (s - truncation_latent) for s in styles]


def latent_from_styles(
    styles: Sequence[Tensor], num_latent: int, inject_index: int | None = None
) -> Tensor:
    """Broadcast one or two style codes to the ``(B, num_latent, D)`` W+ latent.

    One code: a 2-D code is repeated over all layers, a 3-D code is used as is. Two codes (style
    mixing): the first ``inject_index`` layers take the first code (random index if None).
    """
    if len(styles) == 1:
        s = styles[0]
        return s if s.ndim == 3 else s.unsqueeze(1).repeat(1, num_latent, 1)
    if len(styles) != 2:
        raise ValueError(f"expected one or two style codes, got {len(styles)}")
    if inject_index is None:
        inject_index = random.randint(1, num_latent - 1)
    first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
    second = styles[1].unsqueeze(1).repeat(1, num_latent - inject_index, 1)
    return torch.cat([first, second], dim=1)


def apply_sft(x: Tensor, scale: Tensor, shift: Tensor, sft_half: bool) -> Tensor:
    """Spatial feature transform ``x * scale + shift``; with ``sft_half`` only on the 2nd half."""
    if not sft_half:
        return x * scale + shift
    same, sft = torch.chunk(x, 2, dim=1)
    return torch.cat([same, sft * scale + shift], dim=1)


class StyleGAN2Synthesis(nn.Module):
    """Base class holding the common StyleGAN2 forward; subclasses build the layers.

    Subclasses must define ``style_mlp``, ``constant_input``, ``style_conv1``, ``to_rgb1``,
    ``style_convs``, ``to_rgbs``, the buffers ``noises.noise{i}``, ``num_style_feat``,
    ``num_layers`` and ``num_latent``.
    """

    style_mlp: nn.Sequential
    constant_input: nn.Module
    style_conv1: nn.Module
    to_rgb1: nn.Module
    style_convs: nn.ModuleList
    to_rgbs: nn.ModuleList
    noises: nn.Module
    num_style_feat: int
    num_layers: int
    num_latent: int
    sft_half: bool = False

    def _register_noises(self) -> None:
        """Create the stored per-layer noise buffers ``noises.noise{i}`` (part of the state)."""
        self.noises = nn.Module()
        for i in range(self.num_layers):
            r = noise_resolution(i)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, r, r))

    def stored_noise(self) -> list[Tensor]:
        """The stored noise buffers, in layer order."""
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def make_noise(self) -> list[Tensor]:
        """Fresh ``(1, 1, r, r)`` standard normal noise for every layer."""
        ref = self.stored_noise()[0]
        return [
            torch.randn(1, 1, noise_resolution(i), noise_resolution(i), device=ref.device)
            for i in range(self.num_layers)
        ]

    @torch.no_grad()
    def mean_latent(self, num_latent: int) -> Tensor:
        """Average mapped style of ``num_latent`` random codes (for the truncation trick)."""
        ref = self.stored_noise()[0]
        z = torch.randn(num_latent, self.num_style_feat, device=ref.device)
        w: Tensor = self.style_mlp(z)
        return w.mean(0, keepdim=True)

    def synthesize(
        self,
        styles: Sequence[Tensor],
        conditions: Sequence[Tensor] | None = None,
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        truncation: float = 1,
        truncation_latent: Tensor | None = None,
        inject_index: int | None = None,
        return_latents: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Run mapping (unless ``input_is_latent``), assemble W+, and synthesise the image.

        ``conditions`` (GFP-GAN) is ``[scale_8, shift_8, scale_16, shift_16, ...]``; the pair for
        level ``j`` modulates the output of the upsampling conv of that level. Noise: an explicit
        list wins; else fresh noise per layer (``randomize_noise``) or the stored buffers.
        """
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.stored_noise()
        styles = truncate_styles(styles, truncation, truncation_latent)
        latent = latent_from_styles(styles, self.num_latent, inject_index)
        conditions = [] if conditions is None else conditions

        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs):
            out = self.style_convs[2 * j](out, latent[:, i], noise[i])
            if i < len(conditions):
                out = apply_sft(out, conditions[i - 1], conditions[i], self.sft_half)
            out = self.style_convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip, (latent if return_latents else None)
