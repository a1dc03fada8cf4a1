"""NIQE (Mittal et al., "Making a completely blind image quality analyzer"), BasicSR/MATLAB-exact.

Follows BasicSR's ``calculate_niqe(img, crop_border, convert_to='y')`` (protocol §4), itself a
port of the official MATLAB release:

1. MATLAB BT.601 Y of the 8-bit image, border crop, **rounded to integers**; crop to a multiple
   of 96 (top-left).
2. Two scales (full, then MATLAB bicubic ``imresize(x / 255, 0.5) * 255``). At each scale the
   MSCN coefficients ``(I - mu) / (sigma + 1)`` use the 7x7 Gaussian window shipped with the
   pristine model and replicate ("nearest") borders; every 96x96 block (48x48 at scale 2)
   gives 18 features: an AGGD fit of the coefficients and of their products with the
   neighbour along 4 directions (``roll`` inside the block); the AGGD shape is picked on the
   grid 0.2:0.001:10 by moment matching.
3. A Gaussian fitted to the block features (NaN-aware mean, covariance of the NaN-free rows) is
   compared with the pristine model: ``sqrt(d^T pinv((C_p + C) / 2) d)``.

Numerics: BasicSR works on a float32 image, so the MSCN map and the block moments are float32
and the resize is BasicSR's float32 one. On smooth (restored) faces the float32 variance
``E[I^2] - E[I]^2`` cancels badly and a one-ulp change anywhere moves the score by up to ~1e-3,
so this module repeats the same float32 operations with numpy/scipy (and the resize in
:mod:`faceprior.metrics.matlab_resize`) instead of porting them to the GPU: NIQE always runs on
the CPU (about 0.1 s per 512x512 image). The AGGD shape grid, the feature assembly and the
Gaussian fit are float64, as in the reference. The pristine model is the official
``niqe_pris_params.npz`` shipped as package data (see ``data/README.md``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import torch
from scipy.ndimage import convolve
from scipy.special import gamma as gamma_fn
from torch import Tensor

from faceprior.metrics.base import PerImageMeanMetric, check_images, to_uint8_range
from faceprior.metrics.color import rgb_to_y
from faceprior.metrics.matlab_resize import imresize

BLOCK_SIZE = 96
PRISTINE_PARAMS_FILE = "niqe_pris_params.npz"
PRISTINE_PARAMS_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"

#: neighbour directions of the pairwise-product features (row, column), as the MATLAB release
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class PristineModel:
    """Multivariate Gaussian of pristine-image features and the MSCN window (float64)."""

    mean: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)
    window: np.ndarray  # (7, 7)


@functools.cache
def load_pristine_model() -> PristineModel:
    """Load the official pristine model shipped in ``faceprior/metrics/data`` (cached)."""
    ref = resources.files("faceprior.metrics").joinpath("data", PRISTINE_PARAMS_FILE)
    with ref.open("rb") as handle, np.load(handle) as params:
        return PristineModel(
            mean=params["mu_pris_param"].reshape(-1).astype(np.float64),
            cov=params["cov_pris_param"].astype(np.float64),
            window=params["gaussian_window"].astype(np.float64),
        )


@dataclass(frozen=True)
class _ShapeTable:
    """Grid of AGGD shape values with the gamma-function ratios needed by the fit."""

    shape: np.ndarray  # alpha grid 0.2:0.001:10
    ratio: np.ndarray  # Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), matched to the moment ratio
    scale: np.ndarray  # sqrt(Gamma(1/a) / Gamma(3/a)): standard deviation -> AGGD scale
    mean: np.ndarray  # Gamma(2/a) / Gamma(1/a): factor of the AGGD mean


@functools.cache
def _shape_table() -> _ShapeTable:
    alpha = np.arange(0.2, 10.001, 0.001)
    recip = np.reciprocal(alpha)
    ratio = gamma_fn(recip * 2) ** 2 / (gamma_fn(recip) * gamma_fn(recip * 3))
    scale = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    mean = gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
    return _ShapeTable(alpha, ratio, scale, mean)


def _moments(samples: np.ndarray) -> tuple[np.float32, np.float32, np.float32]:
    """Left/right standard deviations and normalised moment ratio of one float32 sample set.

    Float32 reductions over contiguous 1-D arrays, as the reference; empty sides give NaN.
    """
    negative = samples[samples < 0]
    positive = samples[samples > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(np.mean(negative**2)) if negative.size else np.float32(np.nan)
        right = np.sqrt(np.mean(positive**2)) if positive.size else np.float32(np.nan)
        g = left / right
        r_hat = np.mean(np.abs(samples)) ** 2 / np.mean(samples**2)
        r_norm = (r_hat * (g**3 + 1) * (g + 1)) / ((g**2 + 1) ** 2)
    return left, right, r_norm


def _fit_aggd(sample_sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each float32 sample set.

    Returns ``(shape_index, beta_left, beta_right)`` as float64/int arrays; the shape is
    ``table.shape[shape_index]``. A set without negative or positive values has NaN betas and
    the first grid shape (``argmin`` of an all-NaN row), as in the reference.
    """
    table = _shape_table()
    stats = np.array([_moments(s) for s in sample_sets], dtype=np.float64)
    left, right, r_norm = stats.T
    index = np.argmin((table.ratio[None, :] - r_norm[:, None]) ** 2, axis=1)
    factor = table.scale[index]
    return index, left * factor, right * factor


def _block_features(blocks: list[np.ndarray]) -> np.ndarray:
    """The 18 NIQE features of each float32 MSCN block -> ``(N, 18)`` float64."""
    table = _shape_table()
    index, beta_l, beta_r = _fit_aggd([b.ravel() for b in blocks])
    features = [table.shape[index], (beta_l + beta_r) / 2]
    for shift in _SHIFTS:
        products = [(b * np.roll(b, shift, axis=(0, 1))).ravel() for b in blocks]
        index, beta_l, beta_r = _fit_aggd(products)
        features += [table.shape[index], (beta_r - beta_l) * table.mean[index], beta_l, beta_r]
    return np.stack(features, axis=1)


def _mscn(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a float32 image (float32 result)."""
    mu = convolve(image, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(np.square(image), window, mode="nearest") - np.square(mu)))
    return (image - mu) / (sigma + 1)


def _blocks(image: np.ndarray, size: int) -> list[np.ndarray]:
    """Non-overlapping ``size x size`` blocks of an image whose sides are multiples of ``size``."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    return [
        image[r * size : (r + 1) * size, c * size : (c + 1) * size]
        for r in range(rows)
        for c in range(cols)
    ]


def niqe_of_luma(luma: np.ndarray, model: PristineModel | None = None) -> float:
    """NIQE of one rounded luma image ``(H, W)`` on the [0, 255] scale.

    Only the top-left multiple of 96x96 pixels is used, as in the reference. When no block has
    a complete feature vector (e.g. a flat image) the score is NaN, as in the reference.
    """
    model = model or load_pristine_model()
    height, width = luma.shape
    rows, cols = height // BLOCK_SIZE, width // BLOCK_SIZE
    if rows * cols < 2:
        raise ValueError(
            f"NIQE needs at least two {BLOCK_SIZE}x{BLOCK_SIZE} blocks (e.g. 96x192), "
            f"got {height}x{width}"
        )
    image = np.ascontiguousarray(luma[: rows * BLOCK_SIZE, : cols * BLOCK_SIZE], dtype=np.float32)
    per_scale = []
    for scale in (1, 2):
        per_scale.append(_block_features(_blocks(_mscn(image, model.window), BLOCK_SIZE // scale)))
        if scale == 1:
            half = imresize(torch.from_numpy(image / np.float32(255.0)), 0.5)
            image = half.numpy() * np.float32(255.0)
    features = np.concatenate(per_scale, axis=1)
    mean = np.nanmean(features, axis=0)
    cov = np.cov(features[~np.isnan(features).any(axis=1)], rowvar=False)
    diff = model.mean - mean
    inv = np.linalg.pinv((model.cov + cov) / 2)
    return float(np.sqrt(diff @ inv @ diff))


def upscale_factor(height: int, width: int, upscale_below: int | None) -> int:
    """The smallest integer factor that brings the shorter side to ``upscale_below`` (1: none)."""
    short = min(height, width)
    if not upscale_below or short >= upscale_below:
        return 1
    return -(-int(upscale_below) // short)


def niqe_per_image(
    images: Tensor, crop_border: int = 0, upscale_below: int | None = None
) -> Tensor:
    """NIQE of each image of a batch (computed on the CPU, see the module docstring).

    Args:
        images: ``(B, 3, H, W)`` RGB (or ``(B, 1, H, W)`` luma) values on the [0, 255] scale.
        crop_border: pixels removed on each side after the Y conversion.
        upscale_below: images whose shorter side is below this many pixels are scored after
            enlarging their rounded Y channel by the smallest integer factor that reaches it
            (MATLAB bicubic, rounded and clipped to 8 bits). For images smaller than NIQE's two
            96x96 blocks (tiny CPU runs); such values are not comparable with published NIQE.

    Returns:
        ``(B,)`` float64 on the CPU (lower is better).
    """
    check_images(images, "images", channels=None)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"NIQE expects 1 or 3 channels, got {images.shape[1]}")
    images = images.detach().cpu()
    luma = rgb_to_y(images) if images.shape[1] == 3 else images.to(torch.float64)
    if crop_border:
        luma = luma[..., crop_border:-crop_border, crop_border:-crop_border]
    # MATLAB parity: NIQE sees an integer-valued Y (float32, as the reference).
    rounded = torch.round(luma[:, 0]).to(torch.float32)
    factor = upscale_factor(rounded.shape[-2], rounded.shape[-1], upscale_below)
    if factor > 1:
        rounded = torch.stack(
            [imresize(single, float(factor)).round().clamp(0, 255) for single in rounded]
        )
    return torch.tensor([niqe_of_luma(single) for single in rounded.numpy()], dtype=torch.float64)


class NIQE(PerImageMeanMetric):
    """NIQE of 8-bit quantised images (no reference), BasicSR ``calculate_niqe(..., 'y')``.

    ``update(preds, target=None)`` takes RGB ``(B, 3, H, W)`` floats in [0, 1] (quantised like a
    saved PNG) or ``uint8``; ``target`` is ignored, so the metric can sit in a MetricCollection
    with full-reference metrics. Images need at least two 96x96 blocks. Lower is better. The score is
    computed on the CPU whatever the input device (see :mod:`faceprior.metrics.niqe`).

    Args:
        crop_border: pixels dropped on each side before scoring.
        upscale_below: enlarge images whose shorter side is below this (>= 192) by an integer
            factor first (see :func:`niqe_per_image`); recorded with a caveat in the protocol.
    """

    higher_is_better = False
    full_reference = False
    default_name = "niqe"
    convention = "BasicSR calculate_niqe: rounded MATLAB Y, 96x96 blocks, official pristine model"

    def __init__(
        self, crop_border: int = 0, upscale_below: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {crop_border}")
        if upscale_below is not None and upscale_below < 2 * BLOCK_SIZE:
            raise ValueError(
                f"upscale_below must be at least {2 * BLOCK_SIZE} (two {BLOCK_SIZE}-pixel blocks), "
                f"got {upscale_below}"
            )
        self.crop_border = int(crop_border)
        self.upscale_below = None if upscale_below is None else int(upscale_below)

    def protocol(self) -> dict[str, Any]:
        """Convention, ``crop_border`` and the pristine model file's SHA-256."""
        record = super().protocol()
        record["crop_border"] = self.crop_border
        record["pristine_params"] = {"file": PRISTINE_PARAMS_FILE, "sha256": PRISTINE_PARAMS_SHA256}
        if self.upscale_below is not None:
            record["upscale_below"] = self.upscale_below
            record["caveat"] = (
                f"images smaller than {self.upscale_below} px were enlarged (MATLAB bicubic, "
                "integer factor) before scoring: not comparable with published NIQE"
            )
        return record

    def per_image(self, preds: Tensor, target: Tensor | None = None) -> Tensor:
        """Per-image NIQE, ``(B,)`` float64."""
        check_images(preds, "preds")
        return niqe_per_image(to_uint8_range(preds), self.crop_border, self.upscale_below)
