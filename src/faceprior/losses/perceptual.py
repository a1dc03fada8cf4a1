"""VGG perceptual and Gram-matrix style losses sharing one feature extractor."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.nets.vgg import VGG19FeatureExtractor

log = logging.getLogger(__name__)


def gram_matrix(x: Tensor) -> Tensor:
    """``F Fᵀ / (c·h·w)`` per sample, computed in float32."""
    b, c, h, w = x.shape
    f = x.float().reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


_warned_random = False


def _warn_random_vgg() -> None:
    global _warned_random
    if not _warned_random:
        from faceprior.checkpoints.registry import get_weights

        entry = get_weights("vgg19")
        log.warning(
            "PerceptualLoss has no weights_path: using a RANDOMLY initialised VGG19. Perceptual/style "
            "losses are then only placeholders for plumbing; download %s (%s) and set "
            "model.generator_losses.perceptual.weights_path for real training.",
            entry.filename,
            entry.url,
        )
        _warned_random = True


class PerceptualLoss(nn.Module):
    """Weighted feature distance (``perceptual``) and Gram distance (``style``) over VGG19 layers.

    Returns a dict with ``perceptual`` and, when ``style_weight > 0``, ``style`` — each already
    multiplied by its weight. The target's features are computed without gradients. The VGG19 is
    truncated after the deepest layer with a non-zero weight (a weight of 0 removes a layer).

    Args:
        layer_weights: weight of each VGG19 layer (``conv3_4``: before ReLU) in both sums.
        weights_path: torchvision VGG19 state dict; ``None`` = random init (warns once).
        perceptual_weight: weight of the feature term (0 disables it).
        style_weight: weight of the Gram term (0 disables it).
        criterion: ``l1`` or ``l2``.
        range_norm: inputs are in [-1, 1] (mapped to [0, 1] before ImageNet normalisation).
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float],
        weights_path: str | None = None,
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        criterion: str = "l1",
        range_norm: bool = True,
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "l2"):
            raise ValueError(f"criterion must be 'l1' or 'l2', got {criterion!r}")
        self.layer_weights = {str(k): float(v) for k, v in layer_weights.items() if float(v) != 0.0}
        if not self.layer_weights:
            raise ValueError("layer_weights must give at least one layer a non-zero weight")
        self.extractor = VGG19FeatureExtractor(
            layers=list(self.layer_weights), range_norm=range_norm
        )
        if weights_path is not None:
            from faceprior.checkpoints.io import load_vgg19_weights

            load_vgg19_weights(self.extractor, weights_path)
        else:
            _warn_random_vgg()
        self.perceptual_weight = float(perceptual_weight)
        self.style_weight = float(style_weight)
        self._dist = F.l1_loss if criterion == "l1" else F.mse_loss

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        feats = self.extractor(pred)
        with_grad_off = self.extractor(target.detach())
        out: dict[str, Tensor] = {}
        if self.perceptual_weight > 0:
            terms = [
                w * self._dist(feats[k], with_grad_off[k].detach())
                for k, w in self.layer_weights.items()
            ]
            out["perceptual"] = self.perceptual_weight * torch.stack(terms).sum()
        if self.style_weight > 0:
            terms = [
                w * self._dist(gram_matrix(feats[k]), gram_matrix(with_grad_off[k].detach()))
                for k, w in self.layer_weights.items()
            ]
            out["style"] = self.style_weight * torch.stack(terms).sum()
        return out
