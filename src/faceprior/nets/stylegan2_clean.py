"""The "clean" StyleGAN2 generator of GFP-GAN v1.2 / v1.3 / v1.4 (bilinear resampling).

Compared with the original family: the equalized-lr scales and the sqrt(2) activation gains are
baked into the weights (plain ``nn.Linear`` mapping and modulation, pre-scaled conv weights, a
``* sqrt(2)`` after each modulated conv), up/down sampling is bilinear interpolation of the input
followed by a padded conv, and the activation is a plain LeakyReLU(0.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.nets.layers import ConstantInput, PixelNorm, log2_size, stylegan_channels
from faceprior.nets.ops import SQRT2, conv2d_per_sample, modulate_weight, resize_bilinear
from faceprior.nets.synthesis import StyleGAN2Synthesis


def _kaiming_init(
    module: nn.Linear, bias_fill: float, a: float, nonlinearity: Literal["linear", "leaky_relu"]
) -> None:
    """BasicSR ``default_init_weights``: kaiming-normal (fan_in) weights, constant bias."""
    nn.init.kaiming_normal_(module.weight, a=a, mode="fan_in", nonlinearity=nonlinearity)
    if module.bias is not None:
        nn.init.constant_(module.bias, bias_fill)


class ModulatedConv2dClean(nn.Module):
    """Modulated conv whose weight already includes ``1/sqrt(fan_in)``; bilinear resampling.

    Parameters: ``weight`` ``(1, C_out, C_in, k, k)``; ``modulation`` ``nn.Linear(style_dim,
    C_in)`` (bias initialised to 1). ``sample_mode='upsample'`` resizes the INPUT by 2 before the
    convolution, ``'downsample'`` by 0.5.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if sample_mode not in (None, "upsample", "downsample"):
            raise ValueError(
                f"sample_mode must be None, 'upsample' or 'downsample': {sample_mode!r}"
            )
        self.demodulate = demodulate
        self.sample_mode = sample_mode
        self.eps = eps
        self.padding = kernel_size // 2
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        _kaiming_init(self.modulation, bias_fill=1.0, a=0.0, nonlinearity="linear")
        fan_in = in_channels * kernel_size**2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(fan_in)
        )

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """Modulate by ``style`` and convolve ``x`` (after the optional bilinear resize)."""
        weight = modulate_weight(self.weight, self.modulation(style), self.demodulate, self.eps)
        if self.sample_mode == "upsample":
            x = resize_bilinear(x, 2)
        elif self.sample_mode == "downsample":
            x = resize_bilinear(x, 0.5)
        return conv2d_per_sample(x, weight, padding=self.padding)


class StyleConvClean(nn.Module):
    """``sqrt(2) * modconv(x) + weight * noise + bias`` -> LeakyReLU(0.2).

    Keys: ``weight`` (noise strength, 1 value), ``bias`` ``(1, C, 1, 1)``, ``modulated_conv.*``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2dClean(
            in_channels, out_channels, kernel_size, num_style_feat, demodulate, sample_mode
        )
        self.weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        """Convolve, inject noise (fresh ``(B,1,H,W)`` normal noise if None), add bias, activate."""
        out = self.modulated_conv(x, style) * SQRT2
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        out = out + self.weight * noise
        out = out + self.bias
        return F.leaky_relu(out, 0.2)


class ToRGBClean(nn.Module):
    """1x1 modulated conv (no demodulation) + bias, plus the bilinearly upsampled skip."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2dClean(
            in_channels, 3, 1, num_style_feat, demodulate=False
        )
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        """Project to RGB and add the (upsampled) skip image."""
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = resize_bilinear(skip, 2)
            out = out + skip
        return out


class StyleGAN2GeneratorClean(StyleGAN2Synthesis):
    """GFP-GAN ``StyleGAN2GeneratorClean`` (no custom ops, bilinear resampling).

    Args:
        out_size: output resolution (power of two).
        num_style_feat: style dimension.
        num_mlp: number of mapping layers (``Linear`` + ``LeakyReLU`` pairs, keys 1, 3, 5, ...).
        channel_multiplier: channel multiplier for resolutions >= 64.
        narrow: global channel ratio.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
    ) -> None:
        super().__init__()
        self.num_style_feat = num_style_feat
        mlp: list[nn.Module] = [PixelNorm()]
        for _ in range(num_mlp):
            linear = nn.Linear(num_style_feat, num_style_feat, bias=True)
            _kaiming_init(linear, bias_fill=0.0, a=0.2, nonlinearity="leaky_relu")
            mlp.extend([linear, nn.LeakyReLU(0.2)])
        self.style_mlp = nn.Sequential(*mlp)

        ch = stylegan_channels(channel_multiplier, narrow)
        self.channels = ch
        self.log_size = log2_size(out_size)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        nsf = num_style_feat
        self.constant_input = ConstantInput(ch[4], size=4)
        self.style_conv1 = StyleConvClean(ch[4], ch[4], 3, nsf)
        self.to_rgb1 = ToRGBClean(ch[4], nsf, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2**i]
            self.style_convs.append(StyleConvClean(in_ch, out_ch, 3, nsf, sample_mode="upsample"))
            self.style_convs.append(StyleConvClean(out_ch, out_ch, 3, nsf))
            self.to_rgbs.append(ToRGBClean(out_ch, nsf, upsample=True))
            in_ch = out_ch
        self._register_noises()

    def forward(
        self,
        styles: Sequence[Tensor],
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        truncation: float = 1,
        truncation_latent: Tensor | None = None,
        inject_index: int | None = None,
        return_latents: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Generate ``(image, latent or None)`` from a list of one or two style codes."""
        return self.synthesize(
            styles,
            None,
            input_is_latent,
            noise,
            randomize_noise,
            truncation,
            truncation_latent,
            inject_index,
            return_latents,
        )


class StyleGAN2GeneratorCSFT(StyleGAN2GeneratorClean):
    """The GFPGANv1Clean decoder: clean StyleGAN2 + channel-split spatial feature transform."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__(out_size, num_style_feat, num_mlp, channel_multiplier, narrow)
        self.sft_half = sft_half

    def forward(  # type: ignore[override]
        self,
        styles: Sequence[Tensor],
        conditions: Sequence[Tensor],
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        truncation: float = 1,
        truncation_latent: Tensor | None = None,
        inject_index: int | None = None,
        return_latents: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Generate ``(image, latent or None)`` with SFT ``conditions`` (scale, shift per level)."""
        return self.synthesize(
            styles,
            conditions,
            input_is_latent,
            noise,
            randomize_noise,
            truncation,
            truncation_latent,
            inject_index,
            return_latents,
        )
