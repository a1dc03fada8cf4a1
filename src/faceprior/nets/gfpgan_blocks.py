"""U-Net building blocks of the GFP-GAN generators (degradation-removal module)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.nets.layers import ConvLayer, EqualConv2d, FusedLeakyReLU, ScaledLeakyReLU
from faceprior.nets.ops import SQRT2, resize_bilinear


class ConvUpLayer(nn.Module):
    """Bilinear x2 upsampling followed by an equalized-lr conv (GFPGANv1 U-Net decoder).

    Keys: ``weight``; ``bias`` only without activation; ``activation.bias`` with a biased
    activation (FusedLeakyReLU).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        bias_init_val: float = 0.0,
        activate: bool = True,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias: nn.Parameter | None = (
            nn.Parameter(torch.full((out_channels,), float(bias_init_val)))
            if bias and not activate
            else None
        )
        self.activation: nn.Module | None = None
        if activate:
            self.activation = FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample by 2, convolve, activate."""
        out = resize_bilinear(x, 2)
        out = F.conv2d(out, self.weight * self.scale, self.bias, self.stride, self.padding)
        return out if self.activation is None else self.activation(out)


class ResUpBlock(nn.Module):
    """GFPGANv1 residual upsampling block: conv -> up-conv, 1x1 up-conv skip, sum / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, persistent_kernel=False)
        self.conv2 = ConvUpLayer(in_channels, out_channels, 3, stride=1, padding=1)
        self.skip = ConvUpLayer(in_channels, out_channels, 1, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        """Residual x2 upsampling."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class ResBlockBilinear(nn.Module):
    """GFPGANv1Clean residual block with bilinear resampling (``mode='down'`` or ``'up'``).

    ``out = lrelu(conv2(resize(lrelu(conv1(x))))) + skip(resize(x))`` with plain ``nn.Conv2d``
    layers and LeakyReLU(0.2) without gain; no 1/sqrt(2) on the sum.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down") -> None:
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"mode must be 'down' or 'up', got {mode!r}")
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale_factor = 0.5 if mode == "down" else 2.0

    def forward(self, x: Tensor) -> Tensor:
        """Residual resampling by ``scale_factor``."""
        out = F.leaky_relu(self.conv1(x), 0.2)
        out = resize_bilinear(out, self.scale_factor)
        out = F.leaky_relu(self.conv2(out), 0.2)
        return out + self.skip(resize_bilinear(x, self.scale_factor))


def sft_branch_original(channels: int, out_channels: int, last_bias: float) -> nn.Sequential:
    """GFPGANv1 condition network: EqualConv -> ScaledLeakyReLU -> EqualConv (keys 0 and 2)."""
    return nn.Sequential(
        EqualConv2d(channels, channels, 3, 1, 1, bias_init_val=0.0),
        ScaledLeakyReLU(0.2),
        EqualConv2d(channels, out_channels, 3, 1, 1, bias_init_val=last_bias),
    )


def sft_branch_clean(channels: int, out_channels: int) -> nn.Sequential:
    """GFPGANv1Clean condition network: Conv3x3 -> LeakyReLU(0.2) -> Conv3x3 (keys 0 and 2)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )
