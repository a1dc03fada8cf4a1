"""FID as in the GFP-GAN/VQFR tables (BasicSR ``calculate_fid_folder.py``), as a torchmetric.

Images are quantised to 8 bits, scaled to [-1, 1] RGB, fed to the pytorch-fid FID-Inception
(bilinear resize to 299 without antialias, 2048-d pool3 features, float32 network) and the
features' running sum and sum of outer products are accumulated in float64 (DDP-reduced with
``sum``). ``compute`` compares the Gaussian of the restored images with **reference
statistics**: a statistics file (BasicSR's FFHQ-512 file by default in the paper config) or, when
no file is given, the ``target`` images seen by ``update`` (FID against the GT set, DifFace's
protocol). The reference set's name and the file's SHA-256 are part of :meth:`FID.protocol`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from faceprior.metrics.base import (
    FrozenNetwork,
    NetworkMetricMixin,
    check_images,
    random_caveat,
    to_uint8_range,
)
from faceprior.metrics.frechet import ReferenceStats, frechet_distance, load_reference_stats
from faceprior.metrics.inception import FEATURE_DIM, FIDInceptionV3
from faceprior.metrics.weights import (
    METRIC_WEIGHTS,
    ResolvedWeights,
    resolve_metric_weights,
)


def load_fid_inception(weights_dir: str | Path | None = None) -> tuple[nn.Module, ResolvedWeights]:
    """The FID-Inception with ``pt_inception-2015-12-05-6726825d.pth`` from the weights dir."""
    weights = resolve_metric_weights("pt_inception", weights_dir)
    model = FIDInceptionV3()
    state = torch.load(weights.path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), weights


def resolve_reference_stats(
    reference: str | Path, weights_dir: str | Path | None = None, name: str | None = None
) -> ReferenceStats:
    """Load statistics from a path, or from the weights directory by registry name."""
    if isinstance(reference, str) and reference in METRIC_WEIGHTS:
        resolved = resolve_metric_weights(reference, weights_dir)
        stats = load_reference_stats(resolved.path, name=name or reference)
        return stats
    return load_reference_stats(reference, name=name)


def to_inception_input(images: Tensor, device: torch.device) -> Tensor:
    """8-bit quantised RGB scaled to [-1, 1] in float32 as BasicSR: ``(x / 255 - 0.5) / 0.5``."""
    return (to_uint8_range(images).to(device, torch.float32) / 255.0 - 0.5) / 0.5


class FID(NetworkMetricMixin, Metric):
    """Fréchet Inception Distance of the restored images against reference statistics.

    ``update(preds, target=None)``: RGB ``(B, 3, H, W)`` floats in [0, 1] (quantised like a saved
    PNG) or ``uint8``. ``target`` is used only when no ``reference_stats`` file is configured.

    Args:
        reference_stats: statistics file path or registry name (``'inception_FFHQ_512'``); None
            to use the ``target`` images as the reference set.
        reference_name: name reported for the reference set (default: from the file).
        weights_dir: folder with the Inception weights and named statistics files.
        feature_extractor: a module mapping [-1, 1] images to ``(B, D)`` features, replacing the
            FID-Inception (tests, other feature spaces); its name is recorded in the protocol.
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False
    default_name = "fid"
    metric_name = "fid"
    convention = (
        "BasicSR calculate_fid_folder: pytorch-fid FID-Inception, [-1, 1] RGB, bilinear 299 "
        "without antialias, pool3 2048-d, float64 Frechet distance vs reference statistics"
    )

    pred_sum: Tensor
    pred_outer: Tensor
    pred_count: Tensor
    ref_sum: Tensor
    ref_outer: Tensor
    ref_count: Tensor

    def __init__(
        self,
        reference_stats: str | Path | None = None,
        reference_name: str | None = None,
        weights_dir: str | Path | None = None,
        feature_extractor: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reference: ReferenceStats | None = None
        if reference_stats is not None:
            self.reference = resolve_reference_stats(reference_stats, weights_dir, reference_name)
        self._weights: ResolvedWeights | None = None
        if feature_extractor is None:
            feature_extractor, self._weights = load_fid_inception(weights_dir)
            dim = FEATURE_DIM
        else:
            dim = int(getattr(feature_extractor, "feature_dim", 0)) or self._probe_dim(
                feature_extractor
            )
        self._extractor = FrozenNetwork(feature_extractor)
        self._extractor_name = type(feature_extractor).__name__
        self._caveat = random_caveat(feature_extractor, "Inception")
        if self.reference is not None and self.reference.mean.shape[0] != dim:
            raise ValueError(
                f"reference statistics have {self.reference.mean.shape[0]} dimensions, "
                f"the feature extractor gives {dim}"
            )
        self._reference_name = reference_name
        # with a statistics file the reference states stay empty (saves 32 MB per copy at 2048-d)
        ref_dim = dim if self.reference is None else 0
        for prefix, size in (("pred", dim), ("ref", ref_dim)):
            zeros = torch.zeros(size, dtype=torch.float64)
            self.add_state(f"{prefix}_sum", default=zeros, dist_reduce_fx="sum")
            self.add_state(f"{prefix}_outer", default=zeros.outer(zeros), dist_reduce_fx="sum")
            self.add_state(f"{prefix}_count", default=torch.tensor(0), dist_reduce_fx="sum")

    @staticmethod
    def _probe_dim(extractor: nn.Module) -> int:
        with torch.no_grad():
            out = extractor.eval()(torch.zeros(1, 3, 64, 64))
        return int(out.shape[1])

    @property
    def full_reference(self) -> bool:
        """True when the reference is the ``target`` images (no statistics file)."""
        return self.reference is None

    def _state_device(self) -> torch.device:
        return self.pred_sum.device

    def features(self, images: Tensor) -> Tensor:
        """``(B, D)`` float64 features of an image batch (quantised first)."""
        check_images(images, "images")
        device = self._extractor.device(fallback=self.pred_sum.device)
        feats = self._extractor(to_inception_input(images, device))
        return feats.reshape(feats.shape[0], -1).to(self._state_device(), torch.float64)

    def update(
        self,
        preds: Tensor | None = None,
        target: Tensor | None = None,
        *,
        features: Tensor | None = None,
        reference_features: Tensor | None = None,
    ) -> None:
        """Accumulate features of ``preds`` (and of ``target`` when it is the reference).

        ``features``/``reference_features`` add precomputed ``(N, D)`` features instead.
        """
        if preds is not None:
            self._accumulate(self.features(preds), "pred")
        if self.reference is None and target is not None:
            self._accumulate(self.features(target), "ref")
        if features is not None:
            self._accumulate(features, "pred")
        if reference_features is not None:
            if self.reference is not None:
                raise ValueError("reference features given but the reference is a statistics file")
            self._accumulate(reference_features, "ref")

    def add_features(self, feats: Tensor, which: str = "pred") -> None:
        """Accumulate precomputed ``(N, D)`` features into the ``pred`` or ``ref`` set."""
        if which not in ("pred", "ref"):
            raise ValueError(f"which must be 'pred' or 'ref', got {which!r}")
        if which == "pred":
            self.update(features=feats)
        else:
            self.update(reference_features=feats)

    def _accumulate(self, feats: Tensor, which: str) -> None:
        feats = feats.to(self._state_device(), torch.float64)
        setattr(self, f"{which}_sum", getattr(self, f"{which}_sum") + feats.sum(0))
        setattr(self, f"{which}_outer", getattr(self, f"{which}_outer") + feats.T @ feats)
        setattr(self, f"{which}_count", getattr(self, f"{which}_count") + feats.shape[0])

    def gaussian(self, which: str = "pred") -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance (``np.cov`` convention) of the accumulated ``pred``/``ref`` set."""
        count = int(getattr(self, f"{which}_count"))
        if count < 2:
            raise ValueError(f"FID needs at least 2 images in the {which} set, got {count}")
        total = getattr(self, f"{which}_sum").cpu().numpy()
        outer = getattr(self, f"{which}_outer").cpu().numpy()
        mean = total / count
        cov = (outer - count * np.outer(mean, mean)) / (count - 1)
        return mean, cov

    def reference_gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the reference: the statistics file or the target images."""
        if self.reference is not None:
            return self.reference.mean, self.reference.cov
        return self.gaussian("ref")

    def compute(self) -> Tensor:
        """FID (float64 scalar tensor)."""
        mean, cov = self.gaussian("pred")
        ref_mean, ref_cov = self.reference_gaussian()
        return torch.tensor(frechet_distance(mean, cov, ref_mean, ref_cov), dtype=torch.float64)

    def protocol(self) -> dict[str, Any]:
        """Convention, feature extractor weights, reference set name/SHA-256, image counts."""
        if self.reference is not None:
            reference: dict[str, Any] = self.reference.describe()
        else:
            reference = {"name": self._reference_name or "target images", "sha256": None}
            reference["num_images"] = int(self.ref_count)
        extractor: Any = self._weights.describe() if self._weights else self._extractor_name
        record = {
            "convention": self.convention,
            "higher_is_better": False,
            "feature_extractor": extractor,
            "reference": reference,
            "num_images": int(self.pred_count),
        }
        if self._caveat:
            record["caveat"] = self._caveat
        return record
