"""Landmark distance (LMD): mean pixel distance between FAN/AWing 98-point landmarks.

Protocol §8, following TencentARC/VQFR ``metric_paper/calculate_landmark_distance.py``: each
8-bit image is resized to 256x256 with ``cv2.resize`` (bilinear), fed as RGB in [0, 1] to the
4-hourglass FAN trained on WFLW (facexlib's ``awing_fan`` architecture,
``alignment_WFLW_4HG.pth``); the last hourglass's first 98 heat maps (64x64) give points by
arg-max plus a quarter-pixel shift towards the larger neighbour, plus 0.5, scaled by
``(W / 64, H / 64)`` to image pixels. LMD of a pair is the mean over the 98 points of the
Euclidean distance; the reported value is the mean over pairs.
"""

from __future__ import annotations

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
    to_uint8_range,
)
from faceprior.metrics.weights import ResolvedWeights, resolve_metric_weights

NUM_LANDMARKS = 98
INPUT_SIZE = 256


def heatmap_points(heatmaps: np.ndarray) -> np.ndarray:
    """Sub-pixel points ``(N, 2)`` (x, y) on the heat-map grid from ``(N, H, W)`` heat maps.

    Reproduces facexlib/VQFR ``calculate_points`` for one image, quirks included: the vertical
    neighbours fall back to the first/last heat-map value for *all* points as soon as *any*
    point lies in the top/bottom row, and the left neighbour of the first pixel wraps around.
    The right neighbour of the very last pixel (an index error in the reference) is clamped.
    """
    count, height, width = heatmaps.shape
    size = height * width
    flat = heatmaps.reshape(count, size)
    index = flat.argmax(axis=1)
    rows = np.arange(count)
    points = np.stack((index % width, index // width), axis=1).astype(np.float64)
    right = flat[rows, np.minimum(index + 1, size - 1)]
    left = flat[rows, index - 1]
    below = flat[rows, size - 1] if (index + width >= size).any() else flat[rows, index + width]
    above = flat[rows, 0] if (index - width <= 0).any() else flat[rows, index - width]
    shift = np.sign(np.stack((right - left, below - above), axis=1)) * 0.25
    return points + shift + 0.5


def landmark_distance(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> np.ndarray:
    """Per-pair LMD: mean over points of the Euclidean distance, ``(B, P, 2)`` -> ``(B,)``."""
    diff = np.asarray(landmarks_a, np.float64) - np.asarray(landmarks_b, np.float64)
    return np.sqrt((diff**2).sum(axis=-1)).mean(axis=-1)


def build_fan(weights_dir: str | Path | None = None) -> tuple[nn.Module, ResolvedWeights]:
    """facexlib's ``FAN(num_modules=4, num_landmarks=98)`` with ``alignment_WFLW_4HG.pth``."""
    resolved = resolve_metric_weights("alignment_WFLW_4HG", weights_dir)
    from facexlib.alignment.awing_arch import FAN

    from faceprior.checkpoints import load_state_dict_checked, read_checkpoint
    from faceprior.checkpoints.layouts import extract_state_dict

    network = FAN(num_modules=4, num_landmarks=NUM_LANDMARKS, device="cpu")
    checkpoint = read_checkpoint(resolved.path)
    key = "state_dict" if isinstance(checkpoint, dict) and "state_dict" in checkpoint else None
    state = extract_state_dict(checkpoint, key).state_dict
    load_state_dict_checked(network, state, source=str(resolved.path))
    return network.eval(), resolved


class LandmarkDistance(NetworkMetricMixin, PerImageMeanMetric):
    """LMD in pixels of the input resolution between restored and GT landmarks; lower is better.

    ``update(preds, target)``: RGB ``(B, 3, H, W)`` floats in [0, 1] (quantised like a saved
    PNG) or ``uint8``. The 256x256 resize runs with OpenCV on the CPU; the FAN on the metric's
    device.

    Args:
        network: a FAN-like module returning ``(heatmap list, ...)`` whose last entry has
            ``98 + 1`` channels at 64x64; default: facexlib ``awing_fan`` with
            ``alignment_WFLW_4HG.pth``.
        weights_dir: folder holding the weights (default: platform weights directory).
    """

    higher_is_better = False
    default_name = "lmd"
    convention = (
        "VQFR calculate_landmark_distance: FAN 4HG WFLW 98 points at 256 input, heat-map "
        "arg-max +-0.25, scaled to the image, mean Euclidean distance"
    )

    def __init__(
        self,
        network: nn.Module | None = None,
        weights_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._weights: ResolvedWeights | None = None
        if network is None:
            network, self._weights = build_fan(weights_dir)
        self._network = FrozenNetwork(network)
        self._network_name = type(network).__name__

    def landmarks(self, images: Tensor) -> np.ndarray:
        """``(B, 98, 2)`` landmark coordinates (x, y) in pixels of the input images."""
        rgb = to_uint8_range(images).to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
        height, width = rgb.shape[1:3]
        size = (INPUT_SIZE, INPUT_SIZE)
        resized = np.stack([cv2.resize(np.ascontiguousarray(im), size) for im in rgb])
        inputs = torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255.0
        outputs = self._network(inputs.to(self._network.device()))[0]
        heatmaps = outputs[-1][:, :NUM_LANDMARKS].float().cpu().numpy()
        scale = np.array([width / 64.0, height / 64.0])
        return np.stack([heatmap_points(h) * scale for h in heatmaps])

    def per_image(self, preds: Tensor, target: Tensor | None = None) -> Tensor:
        """LMD per pair in pixels, ``(B,)`` float64."""
        if target is None:
            raise ValueError("LandmarkDistance is a full-reference metric: pass a target batch")
        check_pair(preds, target)
        distances = landmark_distance(self.landmarks(target), self.landmarks(preds))
        return torch.from_numpy(distances)

    def protocol(self) -> dict[str, Any]:
        """Convention and the FAN weights file (SHA-256)."""
        record = super().protocol()
        record["network"] = self._weights.describe() if self._weights else self._network_name
        return record
