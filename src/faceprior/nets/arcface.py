"""GFP-GAN identity network: ``ResNetArcFace`` with IRBlocks (arcface_resnet18.pth).

Input: ``(B, 1, 128, 128)`` grayscale faces (GFP-GAN feeds ``0.2989 R + 0.5870 G + 0.1140 B`` of
the [-1, 1] image resized to 128). Output: the 512-d ``bn5`` embedding, NOT L2-normalised.
Keep it in ``eval()`` mode when used as a loss network (BatchNorm statistics, dropout).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class SEBlock(nn.Module):
    """Squeeze-and-excitation with a PReLU MLP (``fc.{0,1,2}``), used when ``use_se``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.PReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Channel re-weighting."""
        b, c = x.shape[:2]
        return x * self.fc(self.avg_pool(x).reshape(b, c)).reshape(b, c, 1, 1)


class IRBlock(nn.Module):
    """Improved residual block: BN -> conv -> BN -> PReLU -> conv(stride) -> BN [-> SE], + skip,
    PReLU (the same PReLU module is applied twice)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        use_se: bool = True,
    ) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(inplanes)
        self.conv1 = _conv3x3(inplanes, inplanes)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.prelu = nn.PReLU()
        self.conv2 = _conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.se = SEBlock(planes) if use_se else None

    def forward(self, x: Tensor) -> Tensor:
        """Residual unit."""
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        residual = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + residual)


class ArcFaceResNet18(nn.Module):
    """The official ``ResNetArcFace(block='IRBlock', layers=[2, 2, 2, 2], use_se=False)``.

    Args:
        block: residual block type; only ``'IRBlock'`` exists in the official model.
        layers: number of blocks in each of the four stages.
        use_se: add squeeze-and-excitation to every block.
    """

    def __init__(
        self, block: str = "IRBlock", layers: Sequence[int] = (2, 2, 2, 2), use_se: bool = False
    ) -> None:
        super().__init__()
        if block != "IRBlock":
            raise ValueError(f"only block='IRBlock' is supported, got {block!r}")
        self.inplanes = 64
        self.use_se = use_se
        self.conv1 = nn.Conv2d(1, 64, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout()
        self.fc5 = nn.Linear(512 * 8 * 8, 512)
        self.bn5 = nn.BatchNorm1d(512)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        units = [IRBlock(self.inplanes, planes, stride, downsample, use_se=self.use_se)]
        self.inplanes = planes
        units += [IRBlock(planes, planes, use_se=self.use_se) for _ in range(1, blocks)]
        return nn.Sequential(*units)

    def _init_weights(self) -> None:
        """Xavier-normal convs/linears, unit BatchNorm, zero biases (official init)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        """Embed ``(B, 1, 128, 128)`` faces to ``(B, 512)``."""
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.reshape(x.shape[0], -1)))
