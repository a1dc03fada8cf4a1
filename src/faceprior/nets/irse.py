"""GPEN identity network: IR-SE-50 ArcFace backbone (model_ir_se50.pth).

The official ``Backbone(input_size=112, num_layers=50, drop_ratio=0.6, mode='ir_se')``. Input:
``(B, 3, 112, 112)`` RGB in [-1, 1] (GPEN crops the face and pools it to 112 first). Output: the
512-d embedding, L2-normalised. Keep it in ``eval()`` mode when used as a loss network.
"""

from __future__ import annotations

from torch import Tensor, nn

from faceprior.nets.ops import l2_normalize

_STAGES = {
    # num_layers: [(in_channels, depth, num_units), ...]; the first unit of a stage has stride 2
    50: [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)],
    100: [(64, 64, 3), (64, 128, 13), (128, 256, 30), (256, 512, 3)],
    152: [(64, 64, 3), (64, 128, 8), (128, 256, 36), (256, 512, 3)],
}


class SEModule(nn.Module):
    """Squeeze-and-excitation with 1x1 convolutions (``fc1``, ``fc2``, no bias)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        """Channel re-weighting."""
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIR(nn.Module):
    """IR / IR-SE bottleneck: ``res_layer(x) + shortcut_layer(x)``.

    ``res_layer`` = BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN [-> SE]. The shortcut is a
    strided identity (``MaxPool2d(1, stride)``) when the width is unchanged, else conv1x1 + BN.
    """

    def __init__(self, in_channels: int, depth: int, stride: int, use_se: bool) -> None:
        super().__init__()
        self.shortcut_layer: nn.Module
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        res: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if use_se:
            res.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*res)

    def forward(self, x: Tensor) -> Tensor:
        """Residual unit."""
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE50(nn.Module):
    """IR-SE ArcFace backbone with the official ``Backbone`` arguments and key layout.

    Args:
        input_size: 112 or 224.
        num_layers: 50, 100 or 152.
        drop_ratio: dropout before the embedding layer.
        mode: ``'ir_se'`` (with squeeze-excitation) or ``'ir'``.
        affine: learnable affine parameters of the final BatchNorm1d.
    """

    def __init__(
        self,
        input_size: int = 112,
        num_layers: int = 50,
        drop_ratio: float = 0.6,
        mode: str = "ir_se",
        affine: bool = True,
    ) -> None:
        super().__init__()
        if input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224, got {input_size}")
        if num_layers not in _STAGES:
            raise ValueError(f"num_layers must be one of {sorted(_STAGES)}, got {num_layers}")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        spatial = 7 if input_size == 112 else 14
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * spatial * spatial, 512),
            nn.BatchNorm1d(512, affine=affine),
        )
        units: list[nn.Module] = []
        for in_ch, depth, n in _STAGES[num_layers]:
            units.append(BottleneckIR(in_ch, depth, 2, mode == "ir_se"))
            units += [BottleneckIR(depth, depth, 1, mode == "ir_se") for _ in range(n - 1)]
        self.body = nn.Sequential(*units)

    def forward(self, x: Tensor) -> Tensor:
        """Embed faces to L2-normalised ``(B, 512)`` vectors."""
        return l2_normalize(self.output_layer(self.body(self.input_layer(x))))
