"""Identity-preserving losses between face embeddings of the restored and the GT face.

:class:`Identity` is GFP-GAN's (L1 between ArcFace ResNet-18 embeddings of grey faces);
:class:`IdentityCosine` is GPEN's (cosine distance between IR-SE-50 embeddings of cropped RGB
faces).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.losses.gan import ContextTerm, GeneratorContext

log = logging.getLogger(__name__)


def gray_for_identity(x: Tensor, size: int = 128) -> Tensor:
    """``(B, 3, H, W)`` in [-1, 1] → ``(B, 1, size, size)`` luma (0.2989, 0.5870, 0.1140), bilinear."""
    gray = 0.2989 * x[:, 0:1] + 0.5870 * x[:, 1:2] + 0.1140 * x[:, 2:3]
    return F.interpolate(gray, size=(size, size), mode="bilinear", align_corners=False)


class _EmbeddingTerm(ContextTerm):
    """An identity term on a frozen embedding network, built from a config like every term.

    ``network`` wins; otherwise ``build()`` makes the official architecture, loaded from
    ``weights_path`` (registry entry ``weights``; the config key is named in errors) or left
    random with a warning (tests and plumbing only). The network stays in eval mode.
    """

    def __init__(
        self,
        weight: float,
        weights_path: str | None,
        network: nn.Module | None,
        build: Callable[[], nn.Module],
        label: str,
        weights: str,
    ) -> None:
        super().__init__(weight)
        if network is None:
            network = build()
            if weights_path is None:
                log.warning(
                    "identity loss uses a randomly initialised %s (weights_path is null): fine for "
                    "tests, meaningless for training; get %s.pth with `faceprior-weights download "
                    "%s`",
                    label,
                    weights,
                    weights,
                )
            else:
                from faceprior.checkpoints.io import load_file_into, required_file

                key = "model.generator_losses.identity.weights_path"
                path = required_file(weights_path, key, label=f"{label} weights", weights=weights)
                load_file_into(network, path, f"{key} {path}")
        self.network = network.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> _EmbeddingTerm:
        """The embedding network always stays in eval mode (frozen BatchNorm and dropout)."""
        super().train(mode)
        self.network.eval()
        return self


class Identity(_EmbeddingTerm):
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
        def build() -> nn.Module:
            from faceprior.nets.arcface import ArcFaceResNet18

            return ArcFaceResNet18(block="IRBlock", layers=[2, 2, 2, 2], use_se=False)

        super().__init__(weight, weights_path, network, build, "ArcFace", "arcface_resnet18")
        self.size = int(size)

    def forward(self, ctx: GeneratorContext) -> Tensor:
        target = self.network(gray_for_identity(ctx.gt, self.size)).detach()
        pred = self.network(gray_for_identity(ctx.output, self.size))
        return self.weight * F.l1_loss(pred, target)


class IdentityCosine(_EmbeddingTerm):
    """GPEN's identity loss ``weight · mean_b (1 − ⟨e(output_b), e(gt_b)⟩)``.

    ``e`` is the frozen IR-SE-50 ArcFace (:class:`faceprior.nets.irse.IRSE50`, the official
    ``Backbone(112, 50, 0.6, 'ir_se')``), whose embeddings are L2-normalised, so the inner product
    is the cosine similarity. The GT embedding is computed under ``torch.no_grad()``.

    Both images are RGB in [-1, 1] and square ``(B, 3, H, H)``. Before embedding, the face region
    is cropped and average-pooled to ``pool_size``: with margins ``(top, bottom, left, right) =
    crop`` given for a ``reference_size`` image (the official ``(35, 33, 32, 36)`` at 256) and
    ``s = H // reference_size``, the crop is ``x[:, :, top·s : H − bottom·s, left·s : W − right·s]``
    followed by ``adaptive_avg_pool2d(·, pool_size)``. For ``H >= reference_size`` this is exactly
    the official integer ``s``, also when ``H`` is not a multiple of ``reference_size`` (e.g.
    ``H = 384`` uses ``s = 1``, the official behaviour, not 1.5). Below ``reference_size`` the
    official ``s`` is 0 and the crop would be empty; there the margins are scaled by
    ``H / reference_size`` and rounded half up, and one warning says so.

    Args:
        weight: loss weight.
        weights_path: ``model_ir_se50.pth``; ``None`` keeps a randomly initialised network and
            warns (for tests and plumbing only).
        network: an embedding network ``(B, 3, pool_size, pool_size) -> (B, D)`` with
            L2-normalised output, used instead of IR-SE-50.
        crop: ``(top, bottom, left, right)`` margins at ``reference_size``.
        reference_size: the resolution the margins are given for.
        pool_size: side of the pooled crop fed to the network.
    """

    def __init__(
        self,
        weight: float = 1.0,
        weights_path: str | None = None,
        network: nn.Module | None = None,
        crop: Sequence[int] = (35, 33, 32, 36),
        reference_size: int = 256,
        pool_size: int = 112,
    ) -> None:
        margins = tuple(int(m) for m in crop)
        if len(margins) != 4 or min(margins) < 0:
            raise ValueError(
                "model.generator_losses.identity.crop must be four margins >= 0 "
                f"(top, bottom, left, right), got {list(crop)}"
            )
        if reference_size < 1 or pool_size < 1:
            raise ValueError(
                "model.generator_losses.identity.reference_size and pool_size must be >= 1, got "
                f"{reference_size} and {pool_size}"
            )

        def build() -> nn.Module:
            from faceprior.nets.irse import IRSE50

            return IRSE50(input_size=112, num_layers=50, drop_ratio=0.6, mode="ir_se")

        super().__init__(weight, weights_path, network, build, "IR-SE-50", "model_ir_se50")
        self.crop = margins
        self.reference_size = int(reference_size)
        self.pool_size = int(pool_size)
        self._warned_small = False

    def crop_box(self, size: int) -> tuple[int, int, int, int]:
        """``(row_start, row_stop, col_start, col_stop)`` of the face crop of a ``size`` image."""
        top, bottom, left, right = self.crop
        scale = size // self.reference_size
        if scale >= 1:
            return top * scale, size - bottom * scale, left * scale, size - right * scale
        if not self._warned_small:
            log.warning(
                "identity loss on %d px images, below reference_size %d: the official integer "
                "crop scale would be 0 (an empty crop), so the margins %s are scaled by %d/%d",
                size,
                self.reference_size,
                list(self.crop),
                size,
                self.reference_size,
            )
            self._warned_small = True
        ratio = size / self.reference_size
        top, bottom, left, right = (math.floor(m * ratio + 0.5) for m in self.crop)
        return top, size - bottom, left, size - right

    def face_crop(self, x: Tensor) -> Tensor:
        """The face region of ``x`` ``(B, 3, H, H)``, pooled to ``(B, 3, pool_size, pool_size)``."""
        if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
            raise ValueError(
                f"identity loss expects square (B, 3, H, H) images, got {tuple(x.shape)}"
            )
        r0, r1, c0, c1 = self.crop_box(x.shape[-1])
        if r1 <= r0 or c1 <= c0:
            raise ValueError(
                f"identity loss crop {list(self.crop)} leaves nothing of a {x.shape[-1]} px image "
                "(model.generator_losses.identity.crop)"
            )
        return F.adaptive_avg_pool2d(x[:, :, r0:r1, c0:c1], self.pool_size)

    def forward(self, ctx: GeneratorContext) -> Tensor:
        with torch.no_grad():
            target = self.network(self.face_crop(ctx.gt))
        pred = self.network(self.face_crop(ctx.output))
        similarity = (pred.float() * target.float()).sum(dim=1)
        return self.weight * (1 - similarity).mean()
