"""Discriminators of GFP-GAN (BasicSR StyleGAN2 D, facial-component D) and GPEN."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from faceprior.nets.layers import (
    DEFAULT_FIR,
    ConvLayer,
    EqualLinear,
    ResBlock,
    log2_size,
    stylegan_channels,
)
from faceprior.nets.ops import minibatch_stddev


def _residual_body(
    size: int, ch: dict[int, int], blur_kernel: Sequence[int], persistent_kernel: bool
) -> tuple[list[nn.Module], int]:
    """1x1 ConvLayer from RGB followed by ResBlocks down to 4x4; returns (layers, channels)."""
    layers: list[nn.Module] = [ConvLayer(3, ch[size], 1, persistent_kernel=persistent_kernel)]
    in_ch = ch[size]
    for i in range(log2_size(size), 2, -1):
        layers.append(ResBlock(in_ch, ch[2 ** (i - 1)], blur_kernel, persistent_kernel))
        in_ch = ch[2 ** (i - 1)]
    return layers, in_ch


def _head(in_ch: int, ch4: int) -> tuple[ConvLayer, nn.Sequential]:
    """Final 3x3 conv on [features, stddev] and the two-layer linear classifier."""
    final_conv = ConvLayer(in_ch + 1, ch4, 3)
    final_linear = nn.Sequential(
        EqualLinear(ch4 * 4 * 4, ch4, activation="fused_lrelu"), EqualLinear(ch4, 1)
    )
    return final_conv, final_linear


def _discriminate(
    x: Tensor,
    body: nn.Sequential,
    final_conv: nn.Module,
    final_linear: nn.Module,
    group_size: int,
    stddev_feat: int,
    feats: list[Tensor] | None = None,
) -> Tensor:
    """Body -> minibatch stddev -> final conv -> linear head; appends activations to ``feats``.

    ``feats`` (when given) receives the output of every element of ``body`` and of
    ``final_conv``, in order. Running the body element by element is exactly what
    ``nn.Sequential`` does, so the logits do not depend on whether features are collected.
    """
    out = x
    for layer in body:
        out = layer(out)
        if feats is not None:
            feats.append(out)
    out = minibatch_stddev(out, group_size, stddev_feat)
    out = final_conv(out)
    if feats is not None:
        feats.append(out)
    logits: Tensor = final_linear(out.reshape(out.shape[0], -1))
    return logits


class StyleGAN2Discriminator(nn.Module):
    """BasicSR/GFP-GAN ``StyleGAN2Discriminator``; minibatch-stddev group ``min(B, stddev_group)``.

    Keys ``conv_body.*``, ``final_conv.*``, ``final_linear.{0,1}.*``; resampling kernels are not
    in the state dict. The ``channel_multiplier`` default (1) is the GFP-GAN training config
    (options/train_gfpgan_v1.yml); BasicSR's class itself defaults to 2.

    Args:
        out_size: input resolution.
        channel_multiplier: channel multiplier for resolutions >= 64.
        resample_kernel: FIR taps of the downsampling blur.
        stddev_group: maximum minibatch-stddev group size (the batch must be divisible by
            ``min(B, stddev_group)``).
        narrow: channel ratio.
    """

    def __init__(
        self,
        out_size: int,
        channel_multiplier: float = 1,
        resample_kernel: Sequence[int] = DEFAULT_FIR,
        stddev_group: int = 4,
        narrow: float = 1,
    ) -> None:
        super().__init__()
        ch = stylegan_channels(channel_multiplier, narrow)
        body, in_ch = _residual_body(out_size, ch, resample_kernel, persistent_kernel=False)
        self.conv_body = nn.Sequential(*body)
        self.final_conv, self.final_linear = _head(in_ch, ch[4])
        self.stddev_group = stddev_group
        self.stddev_feat = 1

    def _run(self, x: Tensor, feats: list[Tensor] | None) -> Tensor:
        group = min(x.shape[0], self.stddev_group)
        body, conv, head = self.conv_body, self.final_conv, self.final_linear
        return _discriminate(x, body, conv, head, group, self.stddev_feat, feats)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(B, 1)``."""
        return self._run(x, None)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits (identical to :meth:`forward`) and the intermediate activations: the output of
        each ``conv_body`` element (the 1x1 ConvLayer, then every ResBlock) and of
        ``final_conv``."""
        feats: list[Tensor] = []
        return self._run(x, feats), feats


class GPENDiscriminator(nn.Module):
    """GPEN ``Discriminator``: same topology, keys ``convs.*`` with FIR ``kernel`` buffers, and the
    minibatch-stddev statistic taken over the WHOLE batch (one group).

    Args:
        size: input resolution.
        channel_multiplier: channel multiplier for resolutions >= 64.
        blur_kernel: FIR taps of the downsampling blur.
        narrow: channel ratio.
        device: accepted for compatibility with the official signature; ignored.
    """

    def __init__(
        self,
        size: int,
        channel_multiplier: float = 2,
        blur_kernel: Sequence[int] = DEFAULT_FIR,
        narrow: float = 1,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        ch = stylegan_channels(channel_multiplier, narrow)
        body, in_ch = _residual_body(size, ch, blur_kernel, persistent_kernel=True)
        self.convs = nn.Sequential(*body)
        self.stddev_feat = 1
        self.final_conv, self.final_linear = _head(in_ch, ch[4])

    def _run(self, x: Tensor, feats: list[Tensor] | None) -> Tensor:
        body, conv, head = self.convs, self.final_conv, self.final_linear
        return _discriminate(x, body, conv, head, x.shape[0], self.stddev_feat, feats)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(B, 1)``."""
        return self._run(x, None)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits (identical to :meth:`forward`) and the intermediate activations: the output of
        each ``convs`` element (the 1x1 ConvLayer, then every ResBlock) and of ``final_conv``."""
        feats: list[Tensor] = []
        return self._run(x, feats), feats


class FacialComponentDiscriminator(nn.Module):
    """GFP-GAN facial component (eyes, mouth) discriminator; fixed VGG-style topology.

    ``forward(x, return_feats=False)`` returns ``(patch_logits, feats)`` where ``feats`` is
    ``[conv3_out, conv5_out]`` when ``return_feats`` (used by the component style loss), else
    None.
    """

    def __init__(self) -> None:
        super().__init__()
        kw: dict[str, Any] = {"persistent_kernel": False}
        self.conv1 = ConvLayer(3, 64, 3, **kw)
        self.conv2 = ConvLayer(64, 128, 3, downsample=True, **kw)
        self.conv3 = ConvLayer(128, 128, 3, **kw)
        self.conv4 = ConvLayer(128, 256, 3, downsample=True, **kw)
        self.conv5 = ConvLayer(256, 256, 3, **kw)
        self.final_conv = ConvLayer(256, 1, 3, bias=True, activate=False, **kw)

    def forward(
        self, x: Tensor, return_feats: bool = False, **kwargs: Any
    ) -> tuple[Tensor, list[Tensor] | None]:
        """Patch logits ``(B, 1, H/4, W/4)`` and optionally the intermediate features."""
        feat = self.conv3(self.conv2(self.conv1(x)))
        feats = [feat] if return_feats else []
        feat = self.conv5(self.conv4(feat))
        if return_feats:
            feats.append(feat)
        out = self.final_conv(feat)
        return out, (feats if return_feats else None)
