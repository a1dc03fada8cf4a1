"""Export-friendly view of the restoration generators (``torch.jit.trace``, ONNX).

The official forwards return tuples with lists or ``None`` in them and GFP-GAN draws fresh noise
by default; neither can be traced. :class:`GeneratorExport` fixes the call so that ``forward(x)``
returns only the image tensor and is deterministic.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from faceprior.nets.gfpgan import GFPGANv1, GFPGANv1Clean
from faceprior.nets.gpen import GPENGenerator


class GeneratorExport(nn.Module):
    """Wrap a GFP-GAN or GPEN generator as ``forward(x) -> image``.

    GFP-GAN is called with ``return_rgb=False, randomize_noise=False`` (stored noise buffers,
    constant-noise mode); GPEN is deterministic already. Note that the per-sample modulated
    convolutions are grouped by batch, so a traced graph is specialised to the batch size it was
    traced with (as with the official code).
    """

    def __init__(self, net: GFPGANv1 | GFPGANv1Clean | GPENGenerator) -> None:
        super().__init__()
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
