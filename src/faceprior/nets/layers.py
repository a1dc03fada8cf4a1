"""Equalized-learning-rate StyleGAN2 layers shared by the original GFP-GAN, BasicSR and GPEN nets.

Parameter names and registration order follow the official modules so that ``state_dict()`` keys
match the released checkpoints. The one family difference is the FIR resampling kernel: BasicSR
keeps it as a plain attribute (NOT in the state dict), rosinality/GPEN register it as a buffer
(``...kernel`` keys). ``persistent_kernel`` selects between the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.nets.ops import (
    SQRT2,
    bias_leaky_relu,
    conv2d_per_sample,
    conv_transpose2d_per_sample,
    make_fir_kernel,
    modulate_weight,
    pixel_norm,
    upfirdn2d,
)

DEFAULT_FIR = (1, 3, 3, 1)


def stylegan_channels(channel_multiplier: float = 2, narrow: float = 1) -> dict[int, int]:
    """The StyleGAN2 channel table shared by BasicSR, GFP-GAN and GPEN (``int()`` truncation)."""
    cm = channel_multiplier
    return {
        4: int(512 * narrow),
        8: int(512 * narrow),
        16: int(512 * narrow),
        32: int(512 * narrow),
        64: int(256 * cm * narrow),
        128: int(128 * cm * narrow),
        256: int(64 * cm * narrow),
        512: int(32 * cm * narrow),
        1024: int(16 * cm * narrow),
    }


def log2_size(size: int) -> int:
    """``log2(size)`` for a power-of-two resolution >= 8, with a readable error otherwise."""
    log_size = int(math.log(size, 2))
    if 2**log_size != size or log_size < 3:
        raise ValueError(f"resolution must be a power of two >= 8, got {size}")
    return log_size


class PixelNorm(nn.Module):
    """Unit-RMS normalisation of the style vector (``NormStyleCode`` / ``PixelNorm``)."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise along dim 1 (computed in float32)."""
        return pixel_norm(x)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias followed by ``sqrt(2) * leaky_relu(., 0.2)``; parameter ``bias``."""

    def __init__(self, channels: int, negative_slope: float = 0.2, scale: float = SQRT2) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        """Apply bias, activation and gain."""
        return bias_leaky_relu(x, self.bias, self.negative_slope, self.scale)


class ScaledLeakyReLU(nn.Module):
    """``sqrt(2) * leaky_relu(x, slope)`` without bias."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        """Apply the activation and gain."""
        return F.leaky_relu(x, self.negative_slope) * SQRT2


class EqualConv2d(nn.Module):
    """Conv2d whose unit-variance weight is scaled by ``1/sqrt(fan_in)`` at run time."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        bias_init_val: float = 0.0,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias: nn.Parameter | None = (
            nn.Parameter(torch.full((out_channels,), float(bias_init_val))) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """Convolve with the scaled weight."""
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate and optional fused leaky ReLU.

    The stored weight is ``randn / lr_mul``; at run time it is multiplied by
    ``lr_mul / sqrt(in_features)`` and the bias by ``lr_mul``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init_val: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in (None, "fused_lrelu"):
            raise ValueError(f"activation must be None or 'fused_lrelu', got {activation!r}")
        self.weight = nn.Parameter(torch.randn(out_features, in_features).div_(lr_mul))
        self.bias: nn.Parameter | None = (
            nn.Parameter(torch.full((out_features,), float(bias_init_val))) if bias else None
        )
        self.lr_mul = lr_mul
        self.scale = (1 / math.sqrt(in_features)) * lr_mul
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        """Affine map, then the optional fused activation."""
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation == "fused_lrelu":
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class Blur(nn.Module):
    """FIR filtering with fixed padding (``upfirdn2d`` with up = down = 1); buffer ``kernel``."""

    kernel: Tensor

    def __init__(
        self,
        kernel: Sequence[int] = DEFAULT_FIR,
        pad: tuple[int, int] = (1, 1),
        upsample_factor: int = 1,
        persistent_kernel: bool = True,
    ) -> None:
        super().__init__()
        k = make_fir_kernel(kernel)
        if upsample_factor > 1:
            k = k * upsample_factor**2
        self.register_buffer("kernel", k, persistent=persistent_kernel)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        """Filter ``x``."""
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """FIR upsampling by ``factor`` (zero insertion + filter); buffer ``kernel``."""

    kernel: Tensor

    def __init__(
        self, kernel: Sequence[int] = DEFAULT_FIR, factor: int = 2, persistent_kernel: bool = True
    ) -> None:
        super().__init__()
        self.factor = factor
        k = make_fir_kernel(kernel) * factor**2
        self.register_buffer("kernel", k, persistent=persistent_kernel)
        p = k.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample ``x``."""
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ConstantInput(nn.Module):
    """Learned constant ``(1, C, size, size)`` repeated over the batch.

    The parameter is called ``weight`` in BasicSR/GFP-GAN and ``input`` in rosinality/GPEN.
    """

    def __init__(self, channels: int, size: int = 4, param_name: str = "weight") -> None:
        super().__init__()
        self.param_name = param_name
        self.register_parameter(param_name, nn.Parameter(torch.randn(1, channels, size, size)))

    def forward(self, batch: int) -> Tensor:
        """Return the constant for ``batch`` samples."""
        const: Tensor = getattr(self, self.param_name)
        return const.repeat(batch, 1, 1, 1)


class NoiseInjection(nn.Module):
    """Scaled noise, added (StyleGAN2) or concatenated on the channels (GPEN, ``isconcat``).

    Parameter ``weight`` (one scalar, initialised to 0). With ``noise=None`` fresh standard normal
    noise of the input's shape ``(B, C, H, W)`` is drawn in both modes, as GPEN's class does: when
    concatenating, the output then has ``2C`` channels, which is what the following
    ``FusedLeakyReLU(2C)`` expects. (Rosinality's StyleGAN2 draws ``(B, 1, H, W)``; a given
    ``noise`` of that shape still broadcasts in the additive mode.)
    """

    def __init__(self, isconcat: bool = False) -> None:
        super().__init__()
        self.isconcat = isconcat
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """Inject ``noise`` (or fresh noise) into ``x``."""
        if noise is None:
            noise = x.new_empty(x.shape).normal_()
        if self.isconcat:
            return torch.cat([x, self.weight * noise], dim=1)
        return x + self.weight * noise


class ConvLayer(nn.Sequential):
    """StyleGAN2 discriminator conv: [Blur] -> EqualConv2d -> [FusedLeakyReLU | ScaledLeakyReLU].

    With ``downsample`` the input is blurred and the conv has stride 2 and no padding. The
    Sequential indices give the official keys (e.g. ``0.kernel``, ``1.weight``, ``2.bias``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
        bias: bool = True,
        activate: bool = True,
        persistent_kernel: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, ((p + 1) // 2, p // 2), 1, persistent_kernel))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(
                in_channels, out_channels, kernel_size, stride, padding, bias=bias and not activate
            )
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU(0.2))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Discriminator residual block: two convs (second downsamples) + 1x1 skip, sum / sqrt(2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
        persistent_kernel: bool = True,
    ) -> None:
        super().__init__()
        pk = persistent_kernel
        self.conv1 = ConvLayer(in_channels, in_channels, 3, persistent_kernel=pk)
        self.conv2 = ConvLayer(
            in_channels, out_channels, 3, True, blur_kernel, persistent_kernel=pk
        )
        self.skip = ConvLayer(
            in_channels, out_channels, 1, True, blur_kernel, False, False, persistent_kernel=pk
        )

    def forward(self, x: Tensor) -> Tensor:
        """Residual downsampling."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution with FIR resampling (original / rosinality family).

    Parameters: ``weight`` ``(1, C_out, C_in, k, k)`` (unit variance, runtime scale
    ``1/sqrt(C_in k^2)``), ``modulation`` (EqualLinear, bias initialised to 1). Upsampling is a
    stride-2 transposed convolution followed by a FIR blur (``blur``); downsampling blurs first
    and then convolves with stride 2.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        downsample: bool = False,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
        persistent_kernel: bool = True,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if upsample and downsample:
            raise ValueError("upsample and downsample are mutually exclusive")
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.downsample = downsample
        self.eps = eps
        n = len(blur_kernel)
        if upsample:
            p = (n - 2) - (kernel_size - 1)
            pad = ((p + 1) // 2 + 1, p // 2 + 1)
            self.blur = Blur(blur_kernel, pad, 2, persistent_kernel)
        elif downsample:
            p = (n - 2) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, ((p + 1) // 2, p // 2), 1, persistent_kernel)
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channels, bias_init_val=1.0)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """Modulate by ``style`` ``(B, style_dim)`` and convolve ``x`` ``(B, C_in, H, W)``."""
        styles = self.modulation(style)
        weight = modulate_weight(self.weight * self.scale, styles, self.demodulate, self.eps)
        if self.upsample:
            return self.blur(conv_transpose2d_per_sample(x, weight, stride=2))
        if self.downsample:
            return conv2d_per_sample(self.blur(x), weight, padding=0, stride=2)
        return conv2d_per_sample(x, weight, padding=self.padding)
