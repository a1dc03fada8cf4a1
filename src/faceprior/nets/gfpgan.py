"""GFP-GAN generators: ``GFPGANv1`` (paper model, FIR) and ``GFPGANv1Clean`` (v1.2/v1.3/v1.4).

Both are a U-Net (degradation removal) whose bottleneck predicts a W+ code and whose decoder side
predicts spatial feature transform (scale, shift) pairs that modulate a pretrained StyleGAN2
decoder. Forward: ``forward(x, return_latents=False, return_rgb=True, randomize_noise=True,
**kwargs) -> (image, out_rgbs)``; extra keyword arguments (e.g. ``weight=0.5`` passed by the
official inference helper) are ignored and ``return_latents`` does not change the return value,
exactly like the official classes.

Constructor defaults are the configuration of the released checkpoints (``GFPGANv1()`` builds
GFPGANv1.pth, ``GFPGANv1Clean()`` builds GFPGANv1.3/1.4); the official classes instead default to
``channel_multiplier=1, fix_decoder=True, input_is_latent=False, different_w=False,
sft_half=False`` with a required ``out_size``. Every official construction passes these
arguments explicitly, so calls written for the official classes build the same networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.nets.gfpgan_blocks import (
    ResBlockBilinear,
    ResUpBlock,
    sft_branch_clean,
    sft_branch_original,
)
from faceprior.nets.layers import (
    DEFAULT_FIR,
    ConvLayer,
    EqualConv2d,
    EqualLinear,
    ResBlock,
    log2_size,
    stylegan_channels,
)
from faceprior.nets.stylegan2 import StyleGAN2GeneratorSFT
from faceprior.nets.stylegan2_clean import StyleGAN2GeneratorCSFT

__all__ = ["GFPGANv1", "GFPGANv1Clean"]


class _GFPGANBase(nn.Module):
    """Shared forward pass and decoder handling of the two GFP-GAN generators."""

    conv_body_first: nn.Module
    conv_body_down: nn.ModuleList
    final_conv: nn.Module
    conv_body_up: nn.ModuleList
    toRGB: nn.ModuleList  # noqa: N815 (official state-dict key)
    final_linear: nn.Module
    stylegan_decoder: StyleGAN2GeneratorSFT | StyleGAN2GeneratorCSFT
    condition_scale: nn.ModuleList
    condition_shift: nn.ModuleList

    def __init__(
        self, out_size: int, num_style_feat: int, input_is_latent: bool, different_w: bool
    ) -> None:
        super().__init__()
        self.log_size = log2_size(out_size)
        self.num_style_feat = num_style_feat
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_latent = self.log_size * 2 - 2

    def _style_code_features(self) -> int:
        """Output width of ``final_linear``: one code per W+ layer, or a single code."""
        return self.num_latent * self.num_style_feat if self.different_w else self.num_style_feat

    def _setup_decoder(self, decoder_load_path: str | Path | None, fix_decoder: bool) -> None:
        """Optionally freeze the decoder; the prior itself is loaded outside the network.

        Networks never open files: ``decoder_load_path`` exists for the official signature and
        must be None; the training modules load the prior (``model.decoder_prior``) through
        :func:`faceprior.checkpoints.load_pretrained_decoder`.
        """
        if decoder_load_path:
            raise ValueError(
                f"decoder_load_path={str(decoder_load_path)!r}: networks do not read files; set "
                "model.decoder_prior (training) or call "
                "faceprior.checkpoints.load_pretrained_decoder(net.stylegan_decoder, path)"
            )
        if fix_decoder:
            for param in self.stylegan_decoder.parameters():
                param.requires_grad_(False)

    def _first(self, x: Tensor) -> Tensor:
        """First encoder layer (activation included)."""
        out: Tensor = self.conv_body_first(x)
        return out

    def _bottleneck(self, feat: Tensor) -> Tensor:
        """Final 4x4 encoder conv (activation included)."""
        out: Tensor = self.final_conv(feat)
        return out

    def forward(
        self,
        x: Tensor,
        return_latents: bool = False,
        return_rgb: bool = True,
        randomize_noise: bool = True,
        **kwargs: Any,
    ) -> tuple[Tensor, list[Tensor]]:
        """Restore ``x`` (B, 3, H, W) in [-1, 1]; returns ``(image, out_rgbs)``.

        ``out_rgbs`` holds the intermediate RGB predictions of the U-Net decoder (8x8 ... HxW) when
        ``return_rgb`` is True, else it is empty. ``randomize_noise=False`` uses the stored noise
        buffers and makes the output deterministic.
        """
        feat = self._first(x)
        unet_skips: list[Tensor] = []
        for down in self.conv_body_down:
            feat = down(feat)
            unet_skips.insert(0, feat)
        feat = self._bottleneck(feat)
        style_code = self.final_linear(feat.reshape(feat.shape[0], -1))
        if self.different_w:
            style_code = style_code.reshape(style_code.shape[0], -1, self.num_style_feat)

        conditions: list[Tensor] = []
        out_rgbs: list[Tensor] = []
        for i, up in enumerate(self.conv_body_up):
            feat = up(feat + unet_skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))
            if return_rgb:
                out_rgbs.append(self.toRGB[i](feat))

        image, _ = self.stylegan_decoder(
            [style_code],
            conditions,
            return_latents=return_latents,
            input_is_latent=self.input_is_latent,
            randomize_noise=randomize_noise,
        )
        return image, out_rgbs


class GFPGANv1(_GFPGANBase):
    """GFP-GAN paper model (GFPGANv1.pth): equalized-lr U-Net + ``StyleGAN2GeneratorSFT``.

    Args:
        out_size: output resolution.
        num_style_feat: style dimension of the decoder.
        channel_multiplier: StyleGAN2 channel multiplier (1 for the released model).
        resample_kernel: FIR taps for all up/down sampling.
        decoder_load_path: must be None (official signature; the prior is loaded outside).
        fix_decoder: freeze the decoder parameters (``requires_grad=False``).
        num_mlp: mapping layers of the decoder (present in the checkpoint, unused when
            ``input_is_latent``).
        lr_mlp: mapping learning-rate multiplier.
        input_is_latent: the predicted code is already in W (skip the mapping network).
        different_w: predict one code per decoder layer (W+).
        narrow: channel ratio (the U-Net uses half of it).
        sft_half: apply SFT to half of the decoder channels.
    """

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: float = 1,
        resample_kernel: Sequence[int] = DEFAULT_FIR,
        decoder_load_path: str | Path | None = None,
        fix_decoder: bool = True,
        num_mlp: int = 8,
        lr_mlp: float = 0.01,
        input_is_latent: bool = True,
        different_w: bool = True,
        narrow: float = 1,
        sft_half: bool = True,
    ) -> None:
        super().__init__(out_size, num_style_feat, input_is_latent, different_w)
        ch = stylegan_channels(channel_multiplier, narrow * 0.5)
        rk = resample_kernel
        levels = range(3, self.log_size + 1)

        self.conv_body_first = ConvLayer(3, ch[out_size], 1, persistent_kernel=False)
        self.conv_body_down = nn.ModuleList()
        in_ch = ch[out_size]
        for i in range(self.log_size, 2, -1):
            self.conv_body_down.append(
                ResBlock(in_ch, ch[2 ** (i - 1)], rk, persistent_kernel=False)
            )
            in_ch = ch[2 ** (i - 1)]
        self.final_conv = ConvLayer(in_ch, ch[4], 3, persistent_kernel=False)
        self.conv_body_up = nn.ModuleList()
        in_ch = ch[4]
        for i in levels:
            self.conv_body_up.append(ResUpBlock(in_ch, ch[2**i]))
            in_ch = ch[2**i]
        self.toRGB = nn.ModuleList([EqualConv2d(ch[2**i], 3, 1) for i in levels])
        self.final_linear = EqualLinear(ch[4] * 4 * 4, self._style_code_features())
        self.stylegan_decoder = StyleGAN2GeneratorSFT(
            out_size,
            num_style_feat,
            num_mlp,
            channel_multiplier,
            resample_kernel,
            lr_mlp,
            narrow,
            sft_half,
        )
        self._setup_decoder(decoder_load_path, fix_decoder)
        sft_out = (lambda c: c) if sft_half else (lambda c: 2 * c)
        self.condition_scale = nn.ModuleList(
            [sft_branch_original(ch[2**i], sft_out(ch[2**i]), last_bias=1.0) for i in levels]
        )
        self.condition_shift = nn.ModuleList(
            [sft_branch_original(ch[2**i], sft_out(ch[2**i]), last_bias=0.0) for i in levels]
        )


class GFPGANv1Clean(_GFPGANBase):
    """GFP-GAN v1.2 / v1.3 / v1.4: plain-conv U-Net + ``StyleGAN2GeneratorCSFT`` (bilinear).

    Args:
        out_size: output resolution.
        num_style_feat: style dimension of the decoder.
        channel_multiplier: StyleGAN2 channel multiplier (2 for the released models).
        decoder_load_path: must be None (official signature; the prior is loaded outside).
        fix_decoder: freeze the decoder parameters.
        num_mlp: mapping layers of the decoder (unused when ``input_is_latent``).
        input_is_latent: the predicted code is already in W (skip the mapping network).
        different_w: predict one code per decoder layer (W+).
        narrow: channel ratio (the U-Net uses half of it).
        sft_half: apply SFT to half of the decoder channels.
    """

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: float = 2,
        decoder_load_path: str | Path | None = None,
        fix_decoder: bool = False,
        num_mlp: int = 8,
        input_is_latent: bool = True,
        different_w: bool = True,
        narrow: float = 1,
        sft_half: bool = True,
    ) -> None:
        super().__init__(out_size, num_style_feat, input_is_latent, different_w)
        ch = stylegan_channels(channel_multiplier, narrow * 0.5)
        levels = range(3, self.log_size + 1)

        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList()
        in_ch = ch[out_size]
        for i in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlockBilinear(in_ch, ch[2 ** (i - 1)], mode="down"))
            in_ch = ch[2 ** (i - 1)]
        self.final_conv = nn.Conv2d(in_ch, ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList()
        in_ch = ch[4]
        for i in levels:
            self.conv_body_up.append(ResBlockBilinear(in_ch, ch[2**i], mode="up"))
            in_ch = ch[2**i]
        self.toRGB = nn.ModuleList([nn.Conv2d(ch[2**i], 3, 1) for i in levels])
        self.final_linear = nn.Linear(ch[4] * 4 * 4, self._style_code_features())
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size, num_style_feat, num_mlp, channel_multiplier, narrow, sft_half
        )
        self._setup_decoder(decoder_load_path, fix_decoder)
        sft_out = (lambda c: c) if sft_half else (lambda c: 2 * c)
        self.condition_scale = nn.ModuleList(
            [sft_branch_clean(ch[2**i], sft_out(ch[2**i])) for i in levels]
        )
        self.condition_shift = nn.ModuleList(
            [sft_branch_clean(ch[2**i], sft_out(ch[2**i])) for i in levels]
        )

    def _first(self, x: Tensor) -> Tensor:
        """1x1 conv followed by LeakyReLU(0.2)."""
        return F.leaky_relu(self.conv_body_first(x), 0.2)

    def _bottleneck(self, feat: Tensor) -> Tensor:
        """3x3 conv at 4x4 followed by LeakyReLU(0.2)."""
        return F.leaky_relu(self.final_conv(feat), 0.2)
