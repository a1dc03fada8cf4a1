"""Identity-preserving loss: L1 between ArcFace embeddings of the restored and the GT face."""

from __future__ import annotations

import logging

import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.losses.gan import ContextTerm, GeneratorContext

log = logging.getLogger(__name__)


def gray_for_identity(x: Tensor, size: int = 128) -> Tensor:
    """``(B, 3, H, W)`` in [-1, 1] → ``(B, 1, size, size)`` luma (0.2989, 0.5870, 0.1140), bilinear."""
    gray = 0.2989 * x[:, 0:1] + 0.5870 * x[:, 1:2] + 0.1140 * x[:, 2:3]
    return F.interpolate(gray, size=(size, size), mode="bilinear", align_corners=False)


class Identity(ContextTerm):
    """``weight · L1(e(restored), e(gt))`` with a frozen embedding net ``e`` (ArcFace ResNet-18).

    The embeddings are the network's raw 512-d output (not L2-normalised), as GFP-GAN trains.

    Args:
        weight: loss weight (10 in GFP-GAN).
        weights_path: the ArcFace file (``arcface_resnet18.pth``); ``None`` keeps a randomly
            initialised network and warns (for tests and plumbing only).
        network: an embedding network ``(B, 1, size, size) -> (B, D)`` to use instead.
        size: input side of the embedding network.
    """

    def __init__(
        self,
        weight: float = 10.0,
        weights_path: str | None = None,
        network: nn.Module | None = None,
        size: int = 128,
    ) -> None:
        super().__init__(weight)
        if network is None:
            from faceprior.nets.arcface import ArcFaceResNet18

            network = ArcFaceResNet18(block="IRBlock", layers=[2, 2, 2, 2], use_se=False)
            if weights_path is None:
                log.warning(
                    "identity loss uses a randomly initialised ArcFace (weights_path is null): fine "
                    "for tests, meaningless for training; get arcface_resnet18.pth from the GFP-GAN "
                    "v0.1.0 release (faceprior-weights download arcface_resnet18)"
                )
            else:
                self._load(network, weights_path)
        self.network = network.eval().requires_grad_(False)
        self.size = int(size)

    @staticmethod
    def _load(network: nn.Module, weights_path: str) -> None:
        from faceprior.checkpoints.io import load_file_into, required_file

        key = "model.generator_losses.identity.weights_path"
        path = required_file(weights_path, key, label="ArcFace weights", weights="arcface_resnet18")
        load_file_into(network, path, f"{key} {path}")

    def train(self, mode: bool = True) -> Identity:
        """The embedding network always stays in eval mode (frozen BatchNorm and dropout)."""
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, ctx: GeneratorContext) -> Tensor:
        target = self.network(gray_for_identity(ctx.gt, self.size)).detach()
        pred = self.network(gray_for_identity(ctx.output, self.size))
        return self.weight * F.l1_loss(pred, target)
