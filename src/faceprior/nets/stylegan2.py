"""StyleGAN2 generator in the BasicSR parameterisation ("original" GFP-GAN family, FIR resampling).

``StyleGAN2Generator`` is the unconditional prior (e.g. StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k,
loaded from ``params_ema``); ``StyleGAN2GeneratorSFT`` is the decoder embedded in ``GFPGANv1``.
Equalized learning rate everywhere: weights are unit-variance and scaled at run time. Resampling
kernels are not part of the state dict (as in BasicSR).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from faceprior.nets.layers import (
    DEFAULT_FIR,
    ConstantInput,
    EqualLinear,
    FusedLeakyReLU,
    ModulatedConv2d,
    PixelNorm,
    Upsample,
    log2_size,
    stylegan_channels,
)
from faceprior.nets.synthesis import StyleGAN2Synthesis


class StyleConv(nn.Module):
    """Modulated conv -> ``+ weight * noise`` -> FusedLeakyReLU (keys ``weight``,
    ``modulated_conv.*``, ``activate.bias``).

    ``sample_mode``: ``None``, ``'upsample'`` or ``'downsample'`` (FIR, see ModulatedConv2d).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        resample_kernel: Sequence[int] = DEFAULT_FIR,
    ) -> None:
        super().__init__()
        if sample_mode not in (None, "upsample", "downsample"):
            raise ValueError(
                f"sample_mode must be None, 'upsample' or 'downsample': {sample_mode!r}"
            )
        self.modulated_conv = ModulatedConv2d(
            in_channels,
            out_channels,
            kernel_size,
            num_style_feat,
            demodulate=demodulate,
            upsample=sample_mode == "upsample",
            downsample=sample_mode == "downsample",
            blur_kernel=resample_kernel,
            persistent_kernel=False,
        )
        self.weight = nn.Parameter(torch.zeros(1))
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        """Convolve, inject noise (fresh ``(B,1,H,W)`` normal noise if None), activate."""
        out = self.modulated_conv(x, style)
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        return self.activate(out + self.weight * noise)


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) + bias, plus the FIR-upsampled previous skip."""

    def __init__(
        self,
        in_channels: int,
        num_style_feat: int,
        upsample: bool = True,
        resample_kernel: Sequence[int] = DEFAULT_FIR,
    ) -> None:
        super().__init__()
        self.upsample = (
            Upsample(resample_kernel, factor=2, persistent_kernel=False) if upsample else None
        )
        self.modulated_conv = ModulatedConv2d(
            in_channels, 3, 1, num_style_feat, demodulate=False, persistent_kernel=False
        )
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        """Project to RGB and add the (upsampled) skip image."""
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample is not None:
                skip = self.upsample(skip)
            out = out + skip
        return out


class StyleGAN2Generator(StyleGAN2Synthesis):
    """BasicSR ``StyleGAN2Generator`` (unconditional StyleGAN2, equalized lr, FIR resampling).

    Args:
        out_size: output resolution (power of two).
        num_style_feat: style (z and w) dimension.
        num_mlp: number of mapping layers.
        channel_multiplier: channel multiplier for resolutions >= 64.
        resample_kernel: 1-D FIR taps for up/down sampling.
        lr_mlp: learning-rate multiplier of the mapping network.
        narrow: global channel ratio.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        resample_kernel: Sequence[int] = DEFAULT_FIR,
        lr_mlp: float = 0.01,
        narrow: float = 1,
    ) -> None:
        super().__init__()
        self.num_style_feat = num_style_feat
        mlp: list[nn.Module] = [PixelNorm()]
        for _ in range(num_mlp):
            mlp.append(
                EqualLinear(num_style_feat, num_style_feat, lr_mul=lr_mlp, activation="fused_lrelu")
            )
        self.style_mlp = nn.Sequential(*mlp)

        ch = stylegan_channels(channel_multiplier, narrow)
        self.channels = ch
        self.log_size = log2_size(out_size)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        rk = resample_kernel
        self.constant_input = ConstantInput(ch[4], size=4)
        self.style_conv1 = StyleConv(ch[4], ch[4], 3, num_style_feat, resample_kernel=rk)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat, upsample=False, resample_kernel=rk)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2**i]
            self.style_convs.append(
                StyleConv(
                    in_ch, out_ch, 3, num_style_feat, sample_mode="upsample", resample_kernel=rk
                )
            )
            self.style_convs.append(
                StyleConv(out_ch, out_ch, 3, num_style_feat, resample_kernel=rk)
            )
            self.to_rgbs.append(ToRGB(out_ch, num_style_feat, upsample=True, resample_kernel=rk))
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


class StyleGAN2GeneratorSFT(StyleGAN2Generator):
    """The GFPGANv1 decoder: ``StyleGAN2Generator`` + spatial feature transform conditions.

    ``sft_half`` applies the (scale, shift) of each level to the second half of the channels only.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        resample_kernel: Sequence[int] = DEFAULT_FIR,
        lr_mlp: float = 0.01,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__(
            out_size, num_style_feat, num_mlp, channel_multiplier, resample_kernel, lr_mlp, narrow
        )
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
