"""pytorch-fid's FID-Inception network (TF 2015-12-05 Inception-v3 ported to PyTorch).

This is the network of BasicSR's ``calculate_fid_folder.py`` (protocol §6): torchvision's
Inception-v3 with 1008 classes and four patched block types that reproduce the TensorFlow
graph: average pools in the A, C and first E blocks exclude the padding
(``count_include_pad=False``) and the last E block pools with a max instead of an average. The
forward pass resizes to 299x299 with bilinear interpolation (``align_corners=False``, no
antialias) and returns the 2048-d average-pool ("pool3") features. Inputs are RGB in [-1, 1].

The state dict layout is torchvision's, so ``pt_inception-2015-12-05-6726825d.pth`` loads as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

FEATURE_DIM = 2048
INPUT_SIZE = 299


def _avg_pool_excluding_padding(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(InceptionA):
    """Inception A block whose pooling branch ignores the zero padding (TF behaviour)."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_avg_pool_excluding_padding(x))
        return [self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool]


class FIDInceptionC(InceptionC):
    """Inception C block whose pooling branch ignores the zero padding (TF behaviour)."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            dbl = layer(dbl)
        dbl = self.branch7x7dbl_5(dbl)
        branch_pool = self.branch_pool(_avg_pool_excluding_padding(x))
        return [self.branch1x1(x), branch7x7, dbl, branch_pool]


class FIDInceptionE(InceptionE):
    """Inception E block with TF pooling: padding-free average (first) or max (second block)."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x: Tensor) -> list[Tensor]:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_excluding_padding(x)
        return [self.branch1x1(x), branch3x3, dbl, self.branch_pool(pooled)]


class FIDInceptionV3(Inception3):
    """FID-Inception returning ``(B, 2048)`` pool3 features of RGB images in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__(num_classes=1008, aux_logits=False, init_weights=False)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)

    def forward(self, x: Tensor) -> Tensor:
        """Pool3 features ``(B, 2048)`` of ``(B, 3, H, W)`` images in [-1, 1]."""
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        for stem in (self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3, self.maxpool1):
            x = stem(x)
        for stem in (self.Conv2d_3b_1x1, self.Conv2d_4a_3x3, self.maxpool2):
            x = stem(x)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        for block in (self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(self.avgpool(x), 1)


def random_fid_inception(seed: int = 0) -> FIDInceptionV3:
    """A randomly initialised FID-Inception (He-normal convolutions, seeded), for CPU smoke runs.

    Its features keep unit scale through the ReLU stack, so Fréchet distances are of order one
    and comparable with each other *within* one run (same seed); they are not FID values and are
    never comparable with published ones. A warning says so whenever one is built.
    """
    import logging

    logging.getLogger(__name__).warning(
        "FID uses a RANDOMLY INITIALISED Inception (seed %d): values are only comparable within "
        "this run, not with published FIDs (point the metric at pt_inception-2015-12-05 for real FID)",
        seed,
    )
    net = FIDInceptionV3()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                std = (2.0 / fan_in) ** 0.5
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
    setattr(net, "random_init_seed", seed)  # noqa: B010  read by the metric's protocol (the random-weights caveat)
    return net.eval()
