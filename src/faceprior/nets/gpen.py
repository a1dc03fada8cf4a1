"""GPEN (GAN-prior embedded network): the official ``FullGenerator`` as ``GPENGenerator``.

An equalized-lr encoder maps the input to ``z`` (through ``final_linear``), which goes through
the StyleGAN2 mapping network of the embedded generator; the encoder feature maps replace the
per-layer noise and are CONCATENATED (scaled by a learned scalar) to the modulated-conv outputs.
The forward draws no random numbers. FIR kernels are registered buffers (``...kernel`` keys), as
in the official rosinality-based code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from faceprior.nets.layers import (
    DEFAULT_FIR,
    ConstantInput,
    ConvLayer,
    EqualLinear,
    FusedLeakyReLU,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    Upsample,
    log2_size,
    stylegan_channels,
)
from faceprior.nets.synthesis import latent_from_styles, truncate_styles


class StyledConv(nn.Module):
    """Modulated conv -> noise injection (concat or add) -> FusedLeakyReLU.

    Keys: ``conv.*``, ``noise.weight``, ``activate.bias`` (2x channels when concatenating).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
        demodulate: bool = True,
        isconcat: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels,
            out_channels,
            kernel_size,
            style_dim,
            demodulate=demodulate,
            upsample=upsample,
            blur_kernel=blur_kernel,
        )
        self.noise = NoiseInjection(isconcat)
        self.activate = FusedLeakyReLU(out_channels * (2 if isconcat else 1))

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        """Convolve, inject ``noise`` (encoder features in GPEN), activate."""
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGBGPEN(nn.Module):
    """1x1 modulated conv + bias, plus the FIR-upsampled skip (keys ``bias``, ``upsample.kernel``,
    ``conv.*``)."""

    def __init__(
        self,
        in_channels: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
    ) -> None:
        super().__init__()
        self.upsample = Upsample(blur_kernel) if upsample else None
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        """Project to RGB and add the (upsampled) skip image."""
        out = self.conv(x, style) + self.bias
        if skip is not None:
            if self.upsample is not None:
                skip = self.upsample(skip)
            out = out + skip
        return out


class GPENStyleGenerator(nn.Module):
    """The StyleGAN2 generator embedded in GPEN (official ``Generator``), concat-noise variant.

    Args:
        size: output resolution.
        style_dim: z / w dimension.
        n_mlp: mapping layers.
        channel_multiplier: channel multiplier for resolutions >= 64.
        blur_kernel: FIR taps.
        lr_mlp: mapping learning-rate multiplier.
        isconcat: concatenate (True) or add (False) the noise inputs.
        narrow: channel ratio.
    """

    def __init__(
        self,
        size: int,
        style_dim: int,
        n_mlp: int,
        channel_multiplier: float = 2,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
        lr_mlp: float = 0.01,
        isconcat: bool = True,
        narrow: float = 1,
    ) -> None:
        super().__init__()
        self.size = size
        self.style_dim = style_dim
        self.feat_multiplier = 2 if isconcat else 1
        mlp: list[nn.Module] = [PixelNorm()]
        for _ in range(n_mlp):
            mlp.append(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu"))
        self.style = nn.Sequential(*mlp)

        ch = stylegan_channels(channel_multiplier, narrow)
        self.channels = ch
        fm = self.feat_multiplier
        bk = blur_kernel
        self.input = ConstantInput(ch[4], param_name="input")
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=bk, isconcat=isconcat)
        self.to_rgb1 = ToRGBGPEN(ch[4] * fm, style_dim, upsample=False)
        self.log_size = log2_size(size)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2**i]
            self.convs.append(
                StyledConv(in_ch * fm, out_ch, 3, style_dim, True, bk, isconcat=isconcat)
            )
            self.convs.append(
                StyledConv(out_ch * fm, out_ch, 3, style_dim, False, bk, isconcat=isconcat)
            )
            # as in the official code, ToRGB keeps the default [1, 3, 3, 1] skip upsampler
            self.to_rgbs.append(ToRGBGPEN(out_ch * fm, style_dim))
            in_ch = out_ch

    def get_latent(self, z: Tensor) -> Tensor:
        """Map ``z`` (B, style_dim) to W with the mapping network."""
        w: Tensor = self.style(z)
        return w

    @torch.no_grad()
    def mean_latent(self, n_latent: int) -> Tensor:
        """Average W of ``n_latent`` random codes (``truncation_latent`` for truncation < 1)."""
        device = next(self.style.parameters()).device
        z = torch.randn(n_latent, self.style_dim, device=device)
        return self.get_latent(z).mean(0, keepdim=True)

    def forward(
        self,
        styles: Sequence[Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1,
        truncation_latent: Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Generate ``(image, latent or None)``; ``noise`` has ``num_layers`` entries or is None
        (then fresh Gaussian noise is drawn in every layer)."""
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = [None] * self.num_layers
        styles = truncate_styles(styles, truncation, truncation_latent)
        latent = latent_from_styles(styles, self.n_latent, inject_index)

        out = self.input(latent.shape[0])
        out = self.conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * j](out, latent[:, i], noise[i])
            out = self.convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip, (latent if return_latents else None)


class GPENGenerator(nn.Module):
    """GPEN ``FullGenerator`` (GPEN-BFR-512: ``GPENGenerator(512, 512, 8, 2)``; GPEN-BFR-256:
    ``GPENGenerator(256, 512, 8, 1, narrow=0.5)``).

    Args:
        size: input/output resolution.
        style_dim: z / w dimension.
        n_mlp: mapping layers.
        channel_multiplier: channel multiplier for resolutions >= 64.
        blur_kernel: FIR taps.
        lr_mlp: mapping learning-rate multiplier.
        isconcat: concatenate the encoder features (True) instead of adding them.
        narrow: channel ratio.
        device: accepted for signature compatibility with the official class (which used it to
            pick CUDA or native ops); ignored here because every op is plain PyTorch. Move the
            module with ``.to()``.
    """

    def __init__(
        self,
        size: int,
        style_dim: int,
        n_mlp: int,
        channel_multiplier: float = 2,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
        lr_mlp: float = 0.01,
        isconcat: bool = True,
        narrow: float = 1,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        ch = stylegan_channels(channel_multiplier, narrow)
        self.log_size = log2_size(size)
        self.generator = GPENStyleGenerator(
            size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp, isconcat, narrow
        )
        self.ecd0 = nn.Sequential(ConvLayer(3, ch[size], 1))
        in_ch = ch[size]
        self.encoder_names = [f"ecd{i}" for i in range(self.log_size - 1)]
        for idx, i in enumerate(range(self.log_size, 2, -1), start=1):
            out_ch = ch[2 ** (i - 1)]
            # as in the official code, the encoder always blurs with the default [1, 3, 3, 1]
            layer = ConvLayer(in_ch, out_ch, 3, downsample=True)
            self.add_module(self.encoder_names[idx], nn.Sequential(layer))
            in_ch = out_ch
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, style_dim, activation="fused_lrelu")
        )

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Return the code ``z`` (B, style_dim) and the encoder features (finest first)."""
        feats: list[Tensor] = []
        for name in self.encoder_names:
            x = getattr(self, name)(x)
            feats.append(x)
        z = self.final_linear(x.reshape(x.shape[0], -1))
        return z, feats

    def forward(
        self,
        inputs: Tensor,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1,
        truncation_latent: Tensor | None = None,
        input_is_latent: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Restore ``inputs`` (B, 3, size, size) in [-1, 1]; returns ``(image, latent or None)``.

        The noise inputs are the encoder features from coarse to fine, each used twice except the
        4x4 one (used once, by ``conv1``): ``[f4, f8, f8, f16, f16, ...]``.
        """
        z, feats = self.encode(inputs)
        noise = [f for f in reversed(feats) for _ in range(2)][1:]
        return self.generator(
            [z], return_latents, inject_index, truncation, truncation_latent, input_is_latent, noise
        )
