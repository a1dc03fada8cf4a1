"""Identity distance ("Deg." in GFP-GAN/VQFR): ArcFace embedding angle between restored and GT.

Protocol §7, following TencentARC/VQFR ``metric_paper/calculate_cos_dist.py``:

- input: ``cv2.imread(path, 0)`` gray (libpng's conversion, see
  :func:`faceprior.metrics.color.rgb_to_vqfr_gray`), ``cv2.resize`` to 128x128 with
  ``INTER_LINEAR`` on the whole aligned face, ``(x - 127.5) / 127.5`` in float32. This step runs
  with OpenCV on the CPU so it is bit-identical to the script; the network runs on the metric's
  device.
- network: ArcFace ResNet-18 (``resnet_face18``, no SE), eval mode, injected or loaded from
  ``arcface_resnet18.pth`` / ``resnet18_110.pth``.
- score: ``degrees(arccos(cos))`` per pair (cosine clipped to [-1, 1]: VQFR's unclipped
  ``arccos`` returns NaN when rounding pushes the cosine above 1); the reported value drops
  pairs below 1 degree (VQFR counts them as "identical"); the plain mean over all pairs is also
  kept (:meth:`IdentityDistance.compute_all`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from faceprior.metrics.base import (
    FrozenNetwork,
    NetworkMetricMixin,
    PerImageMeanMetric,
    check_pair,
    random_caveat,
    to_uint8_range,
)
from faceprior.metrics.color import rgb_to_vqfr_gray
from faceprior.metrics.weights import ResolvedWeights, resolve_metric_weights

INPUT_SIZE = 128
VQFR_EXCLUDE_BELOW_DEG = 1.0


def vqfr_identity_input(images: Tensor) -> Tensor:
    """ArcFace input of VQFR's script: ``(B, 3, H, W)`` 8-bit RGB -> ``(B, 1, 128, 128)`` float32.

    Computed on the CPU with OpenCV (fixed-point resize), values in [-1, 1].
    """
    gray = rgb_to_vqfr_gray(images.detach().cpu())[:, 0].numpy()
    size = (INPUT_SIZE, INPUT_SIZE)
    resized = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_LINEAR) for g in gray])
    x = torch.from_numpy(resized.astype(np.float32))[:, None]
    return (x - 127.5) / 127.5


def identity_angle(embedding_a: Tensor, embedding_b: Tensor) -> Tensor:
    """Angle in degrees between corresponding rows of two ``(N, D)`` embeddings (float64)."""
    a, b = embedding_a.to(torch.float64), embedding_b.to(torch.float64)
    cos = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def vqfr_mean(angles: Tensor, exclude_below_deg: float = VQFR_EXCLUDE_BELOW_DEG) -> Tensor:
    """Mean of the angles at or above ``exclude_below_deg`` (VQFR's rule; NaN if none)."""
    kept = angles[angles >= exclude_below_deg]
    return kept.mean() if kept.numel() else torch.tensor(math.nan, dtype=angles.dtype)


def build_arcface(
    weights: str = "arcface_resnet18", weights_dir: str | Path | None = None
) -> tuple[nn.Module, ResolvedWeights]:
    """ArcFace ResNet-18 (``faceprior.nets.arcface``) loaded strictly from a registered file.

    ``weights``: ``'arcface_resnet18'`` (GFP-GAN release) or ``'resnet18_110'`` (VQFR's file);
    DataParallel ``module.`` prefixes are removed.
    """
    resolved = resolve_metric_weights(weights, weights_dir)
    from faceprior.checkpoints import load_state_dict_checked, load_state_dict_file
    from faceprior.nets.arcface import ArcFaceResNet18

    network = ArcFaceResNet18(block="IRBlock", layers=[2, 2, 2, 2], use_se=False)
    extracted = load_state_dict_file(resolved.path)
    load_state_dict_checked(network, extracted.state_dict, source=str(resolved.path))
    return network.eval(), resolved


class IdentityDistance(NetworkMetricMixin, PerImageMeanMetric):
    """ArcFace identity angle (degrees) between restored and GT faces; lower is better.

    ``update(preds, target)``: RGB ``(B, 3, H, W)`` floats in [0, 1] (quantised like a saved
    PNG) or ``uint8``, aligned faces (512x512 in the papers). ``compute`` returns the mean over
    pairs whose angle is at least ``exclude_below_deg`` (VQFR's rule, 1 degree); the base states
    also keep the plain mean over all pairs (:meth:`compute_all`).

    Args:
        network: an embedding network ``(B, 1, 128, 128) -> (B, D)``; default: ArcFace ResNet-18
            loaded from ``weights``.
        weights: registry name of the ArcFace file when ``network`` is None.
        weights_dir: folder holding it (default: platform weights directory).
        exclude_below_deg: pairs below this angle are left out of the reported mean (0: none).
    """

    higher_is_better = False
    default_name = "idd"
    convention = (
        "VQFR calculate_cos_dist: ArcFace resnet_face18 on cv2 gray 128x128 in [-1, 1], "
        "angle in degrees, pairs < 1 degree excluded from the mean"
    )

    kept_total: Tensor
    kept_count: Tensor

    def __init__(
        self,
        network: nn.Module | None = None,
        weights: str = "arcface_resnet18",
        weights_dir: str | Path | None = None,
        exclude_below_deg: float = VQFR_EXCLUDE_BELOW_DEG,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._weights: ResolvedWeights | None = None
        if network is None:
            network, self._weights = build_arcface(weights, weights_dir)
        self._network = FrozenNetwork(network)
        self._network_name = type(network).__name__
        self._caveat = random_caveat(network, "ArcFace")
        self.exclude_below_deg = float(exclude_below_deg)
        zero = torch.tensor(0.0, dtype=torch.float64)
        self.add_state("kept_total", default=zero, dist_reduce_fx="sum")
        self.add_state("kept_count", default=torch.tensor(0), dist_reduce_fx="sum")

    def embed(self, images: Tensor) -> Tensor:
        """Embeddings of 8-bit quantised RGB images, ``(B, D)`` float32."""
        inputs = vqfr_identity_input(to_uint8_range(images))
        return self._network(inputs.to(self._network.device()))

    def per_image(self, preds: Tensor, target: Tensor | None = None) -> Tensor:
        """Angle in degrees per pair, ``(B,)`` float64 (no exclusion)."""
        if target is None:
            raise ValueError("IdentityDistance is a full-reference metric: pass a target batch")
        check_pair(preds, target)
        return identity_angle(self.embed(target), self.embed(preds))

    def update(self, preds: Tensor, target: Tensor | None = None) -> None:
        """Accumulate the angles (all pairs, and those at or above the exclusion threshold)."""
        angles = self.per_image(preds, target).to(self.total.device)
        kept = angles[angles >= self.exclude_below_deg]
        self.total += angles.sum()
        self.count += angles.numel()
        self.kept_total += kept.sum()
        self.kept_count += kept.numel()

    def compute(self) -> Tensor:
        """Mean angle over the pairs not excluded (VQFR's "Deg.")."""
        return self.kept_total / self.kept_count

    def compute_all(self) -> dict[str, Tensor]:
        """VQFR-rule mean, plain mean over all pairs and the number of excluded pairs.

        Synchronised across processes like ``compute``.
        """
        with self.sync_context():
            return {
                "idd": self.kept_total / self.kept_count,
                "idd_all": self.total / self.count,
                "idd_excluded": self.count - self.kept_count,
            }

    def protocol(self) -> dict[str, Any]:
        """Convention, network file (SHA-256) and the exclusion threshold."""
        record = super().protocol()
        record["network"] = self._weights.describe() if self._weights else self._network_name
        record["exclude_below_deg"] = self.exclude_below_deg
        if self._caveat:
            record["caveat"] = self._caveat
        return record


def random_arcface(seed: int = 0) -> nn.Module:
    """A randomly initialised ArcFace ResNet-18 drawn from ``seed`` (CPU smoke runs and tiny
    comparisons): the same network in every run, so identity distances compare within a study but
    never with published ones. Warns whenever one is built."""
    from faceprior.nets.arcface import ArcFaceResNet18

    logging.getLogger(__name__).warning(
        "identity distance uses a RANDOMLY INITIALISED ArcFace (seed %d): values compare methods "
        "scored with the same seed only, not published numbers",
        seed,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ArcFaceResNet18(block="IRBlock", layers=[2, 2, 2, 2], use_se=False).eval()
    setattr(net, "random_init_seed", seed)  # noqa: B010  read by the metric's protocol (the random-weights caveat)
    return net
