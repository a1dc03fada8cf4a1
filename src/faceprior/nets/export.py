"""Export-friendly view of the restoration generators (``torch.jit.trace``, ONNX).

The official forwards return tuples with lists or ``None`` in them and GFP-GAN draws fresh noise
by default; neither can be traced. :class:`GeneratorExport` fixes the call so that ``forward(x)``
returns only the image tensor and is deterministic.

The modulated convolutions of StyleGAN2 run all samples of a batch as ONE grouped convolution
with ``groups = batch``. A traced or exported graph records that group count as a constant, so the
graph only runs at the batch size it was traced with. With ``batch_agnostic=True`` the wrapper
swaps every modulated convolution for :class:`BatchAgnosticModConv`, the same function written as
"scale the input channels, convolve with the shared weight, scale the output channels" (the
``fused_modconv=False`` form of StyleGAN2-ADA), whose graph has no batch-sized constant. The two
forms agree up to float32 rounding (summation order of the demodulation factors).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.nets.gfpgan import GFPGANv1, GFPGANv1Clean
from faceprior.nets.gpen import GPENGenerator
from faceprior.nets.layers import ModulatedConv2d
from faceprior.nets.ops import resize_bilinear
from faceprior.nets.stylegan2_clean import ModulatedConv2dClean

#: the generators :class:`GeneratorExport` accepts
ExportableGenerator = GFPGANv1 | GFPGANv1Clean | GPENGenerator


class BatchAgnosticModConv(nn.Module):
    """A modulated convolution computed without per-sample weights (no ``groups = batch``).

    For input-channel styles ``s`` (B, C_in) and the shared weight ``w`` (C_out, C_in, k, k)::

        y = conv(x * s, w) * d,   d[b, o] = rsqrt(sum_{i,k} (w[o, i, k] * s[b, i])^2 + eps)

    which equals convolving sample ``b`` with the modulated, demodulated weight ``w * s[b] *
    d[b]``: both scalings are per channel, so they commute with the convolution and with the
    per-channel FIR blur and bilinear resize of the up/down-sampling variants. The wrapped module
    (``inner``) keeps its parameters; nothing is copied.
    """

    def __init__(self, inner: ModulatedConv2d | ModulatedConv2dClean) -> None:
        super().__init__()
        self.inner = inner

    def _weight(self) -> Tensor:
        inner = self.inner
        if isinstance(inner, ModulatedConv2d):
            return inner.weight[0] * inner.scale
        return inner.weight[0]

    def _demodulation(self, weight: Tensor, styles: Tensor) -> Tensor:
        """``d`` (B, C_out), evaluated in float32 like :func:`faceprior.nets.ops.modulate_weight`."""
        energy = weight.float().pow(2).sum(dim=(2, 3))  # (C_out, C_in)
        return torch.rsqrt(styles.float().pow(2) @ energy.t() + self.inner.eps)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """Same contract as the wrapped module: modulate by ``style`` and convolve ``x``."""
        inner = self.inner
        styles = inner.modulation(style)
        weight = self._weight()
        x = x * styles[:, :, None, None].to(x.dtype)
        w = weight.to(x.dtype)
        if isinstance(inner, ModulatedConv2d):
            if inner.upsample:
                out = inner.blur(F.conv_transpose2d(x, w.transpose(0, 1), stride=2))
            elif inner.downsample:
                out = F.conv2d(inner.blur(x), w, stride=2)
            else:
                out = F.conv2d(x, w, padding=inner.padding)
        else:
            if inner.sample_mode == "upsample":
                x = resize_bilinear(x, 2)
            elif inner.sample_mode == "downsample":
                x = resize_bilinear(x, 0.5)
            out = F.conv2d(x, w, padding=inner.padding)
        if inner.demodulate:
            demod = self._demodulation(weight, styles)
            out = out * demod[:, :, None, None].to(out.dtype)
        return out


def make_batch_agnostic(net: nn.Module) -> int:
    """Replace every modulated convolution inside ``net`` (in place) by its batch-agnostic form.

    Returns the number of modules replaced.
    """
    count = 0
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, ModulatedConv2d | ModulatedConv2dClean):
                setattr(module, name, BatchAgnosticModConv(child))
                count += 1
    return count


class GeneratorExport(nn.Module):
    """Wrap a GFP-GAN or GPEN generator as ``forward(x) -> image``.

    GFP-GAN is called with ``return_rgb=False, randomize_noise=False`` (stored noise buffers,
    constant-noise mode); GPEN is deterministic already.

    Args:
        net: the generator (not modified).
        batch_agnostic: run the modulated convolutions in the batch-agnostic form (see
            :class:`BatchAgnosticModConv`) on a deep copy of ``net``, so that a traced or exported
            graph works for any batch size. With ``False`` (default) the official grouped
            convolutions are used and a traced graph is specialised to the batch size it was
            traced with (as with the official code).
    """

    def __init__(self, net: ExportableGenerator, batch_agnostic: bool = False) -> None:
        super().__init__()
        if not isinstance(net, GFPGANv1 | GFPGANv1Clean | GPENGenerator):
            raise TypeError(
                f"GeneratorExport wraps GFPGANv1, GFPGANv1Clean or GPENGenerator, got "
                f"{type(net).__name__}"
            )
        self.batch_agnostic = batch_agnostic
        if batch_agnostic:
            net = copy.deepcopy(net)
            make_batch_agnostic(net)
        self.net = net
        self.call_kwargs: dict[str, Any] = (
            {}
            if isinstance(net, GPENGenerator)
            else {"return_rgb": False, "randomize_noise": False}
        )

    def forward(self, x: Tensor) -> Tensor:
        """Restore ``x`` (B, 3, H, W) in [-1, 1] deterministically; returns only the image."""
        image: Tensor = self.net(x, **self.call_kwargs)[0]
        return image
