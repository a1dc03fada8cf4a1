"""A plain U-Net restorer: the "no GAN prior" baseline of every comparison table."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "group":
        return nn.GroupNorm(max(1, min(8, channels // 4)), channels)
    raise ValueError(f"norm must be 'none' or 'group', got {kind!r}")


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with LeakyReLU, optional GroupNorm and a residual connection."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "none") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm1 = _norm(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(norm, out_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return self.act(h + self.skip(x))


class UNet(nn.Module):
    """Encoder-decoder with skip connections, predicting a residual over the input.

    Input and output are RGB in [-1, 1] (not clamped). Each level halves the resolution with a
    strided convolution and doubles it back with bilinear upsampling + convolution.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        base_channels: channels at full resolution.
        channel_mults: channel multiplier per level; the number of levels is its length.
        blocks_per_level: residual conv blocks per level on each side.
        global_residual: add the input to the output (requires ``in_channels == out_channels``).
        norm: ``none`` or ``group`` (GroupNorm after each convolution of a block; steadier training
            at high learning rates).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4, 8),
        blocks_per_level: int = 1,
        global_residual: bool = True,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if global_residual and in_channels != out_channels:
            raise ValueError("global_residual needs in_channels == out_channels")
        if not channel_mults:
            raise ValueError("channel_mults must list at least one level")
        chans = [base_channels * int(m) for m in channel_mults]
        self.global_residual = global_residual
        self.levels = len(chans)
        self.head = nn.Conv2d(in_channels, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for i, c in enumerate(chans):
            self.down_blocks.append(
                nn.Sequential(*[ConvBlock(c, c, norm) for _ in range(blocks_per_level)])
            )
            if i + 1 < len(chans):
                self.downsamples.append(nn.Conv2d(c, chans[i + 1], 3, stride=2, padding=1))
        self.mid = ConvBlock(chans[-1], chans[-1], norm)
        self.upsamples = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in range(len(chans) - 1, 0, -1):
            self.upsamples.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(chans[i], chans[i - 1], 3, padding=1),
                )
            )
            blocks = [ConvBlock(2 * chans[i - 1], chans[i - 1], norm)]
            blocks += [
                ConvBlock(chans[i - 1], chans[i - 1], norm) for _ in range(blocks_per_level - 1)
            ]
            self.up_blocks.append(nn.Sequential(*blocks))
        self.tail = nn.Conv2d(chans[0], out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        factor = 2 ** (self.levels - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"UNet with {self.levels} levels needs H and W divisible by {factor}, got {tuple(x.shape[-2:])}"
            )
        h = self.head(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h)
            if i < len(self.downsamples):
                skips.append(h)
                h = self.downsamples[i](h)
        h = self.mid(h)
        for up, block in zip(self.upsamples, self.up_blocks, strict=True):
            h = up(h)
            h = block(torch.cat([h, skips.pop()], dim=1))
        out = self.tail(h)
        return out + x if self.global_residual else out
