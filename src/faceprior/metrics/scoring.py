"""Score a folder of restored images (optionally against a GT folder) with the metric classes.

Used by ``faceprior-metrics``; the numbers are the metric classes' ``per_image`` values, so the
CLI and the torchmetrics used during validation agree by construction.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

import faceprior
from faceprior.metrics.base import PerImageMeanMetric
from faceprior.metrics.fid import FID
from faceprior.metrics.folders import Batch, ImagePair, Pairing, load_batches, pair_folders
from faceprior.metrics.identity import IdentityDistance, vqfr_mean

#: CLI metric names, in display order
METRIC_NAMES = ("psnr", "ssim", "psnr_y", "ssim_y", "niqe", "lpips", "fid", "idd", "lmd")
NO_REFERENCE = frozenset({"niqe", "fid"})


@dataclass(frozen=True)
class ScoringOptions:
    """Settings of a folder evaluation (the CLI arguments)."""

    metrics: Sequence[str]
    crop_border: int = 0
    fid_stats: str | None = None
    device: str = "cpu"
    batch_size: int = 8
    skip_unpaired: bool = False
    #: folder with the metric weights (None: ``$FACEPRIOR_WEIGHTS_DIR`` or the default)
    weights_dir: str | Path | None = None


def default_metrics(has_gt: bool, fid_stats: str | None) -> list[str]:
    """All metrics with a GT folder; otherwise NIQE (and FID when statistics are given)."""
    if has_gt:
        return list(METRIC_NAMES)
    return ["niqe", "fid"] if fid_stats else ["niqe"]


def build_metric(name: str, options: ScoringOptions) -> Metric:
    """Instantiate one metric class for a CLI metric name (weights from the weights dir)."""
    from faceprior.metrics import NIQE, PSNR, SSIM, LandmarkDistance
    from faceprior.metrics.lpips_metric import LPIPS

    crop, folder = options.crop_border, options.weights_dir
    factories: dict[str, Callable[[], Metric]] = {
        "psnr": lambda: PSNR(crop_border=crop),
        "psnr_y": lambda: PSNR(crop_border=crop, test_y_channel=True),
        "ssim": lambda: SSIM(crop_border=crop),
        "ssim_y": lambda: SSIM(crop_border=crop, test_y_channel=True),
        "niqe": lambda: NIQE(crop_border=crop),
        "lpips": lambda: LPIPS(net="vgg", weights_dir=folder),
        "fid": lambda: FID(reference_stats=options.fid_stats, weights_dir=folder),
        "idd": lambda: IdentityDistance(weights_dir=folder),
        "lmd": lambda: LandmarkDistance(weights_dir=folder),
    }
    if name not in factories:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)}")
    return factories[name]()


def check_request(metrics: Sequence[str], has_gt: bool, fid_stats: str | None) -> None:
    """Raise ``ValueError`` for unknown names or metrics that cannot run without ``--gt``."""
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRIC_NAMES)}")
    if not has_gt:
        needs_gt = [m for m in metrics if m not in NO_REFERENCE]
        if needs_gt:
            raise ValueError(f"metric(s) {needs_gt} compare with ground truth: pass --gt GT_DIR")
        if "fid" in metrics and not fid_stats:
            raise ValueError("fid without --gt needs reference statistics: pass --fid-stats FILE")


def versions() -> dict[str, str]:
    """Versions of the packages that determine the numbers."""
    import cv2

    found = {"python": platform.python_version(), "faceprior": faceprior.__version__}
    for package in ("torch", "torchvision", "torchmetrics", "lpips", "numpy", "scipy", "facexlib"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["opencv"] = cv2.__version__
    return found


def _protocol(metric: Metric) -> dict[str, Any]:
    record: dict[str, Any] = metric.protocol()  # type: ignore[operator]
    return record


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) or math.isinf(value) else None


def _score_batch(
    batch: Batch, metrics: dict[str, Metric], device: torch.device, per_image: dict[str, Any]
) -> None:
    restored = batch.restored.to(device)
    gt = batch.gt.to(device) if batch.gt is not None else None
    for name, metric in metrics.items():
        if isinstance(metric, FID):
            metric.update(restored, gt)
            continue
        assert isinstance(metric, PerImageMeanMetric)
        values = metric.per_image(restored, gt).tolist()
        for stem, value in zip(batch.stems, values):
            per_image.setdefault(stem, {})[name] = float(value)


def _means(
    metrics: dict[str, Metric], per_image: dict[str, dict[str, float]]
) -> dict[str, float | None]:
    means: dict[str, float | None] = {}
    for name, metric in metrics.items():
        if isinstance(metric, FID):
            means[name] = float(metric.compute())
            continue
        values = torch.tensor([row[name] for row in per_image.values()], dtype=torch.float64)
        if isinstance(metric, IdentityDistance):
            means[name] = _finite_or_none(float(vqfr_mean(values, metric.exclude_below_deg)))
            means[f"{name}_all"] = float(values.mean())
        else:
            means[name] = _finite_or_none(float(np.mean(values.numpy())))
    return means


def score_pairs(
    pairs: Sequence[ImagePair],
    metrics: Mapping[str, Metric],
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, float | None], dict[str, dict[str, float]]]:
    """Score image pairs in batches with metrics already built and on ``device``.

    The loop of :func:`score_folders`, for callers that build their own metric instances (e.g.
    randomly initialised feature networks in ``scripts/bench_eval.py``). Returns
    ``(means, per_image)`` as in the ``score_folders`` result. FID accumulates features: pass
    freshly built or ``reset()`` metrics.
    """
    target = torch.device(device)
    built = dict(metrics)
    per_image: dict[str, dict[str, float]] = {pair.stem: {} for pair in pairs}
    for batch in load_batches(pairs, batch_size):
        _score_batch(batch, built, target, per_image)
        if progress is not None:
            progress(len(batch.stems))
    return _means(built, per_image), per_image


def score_folders(
    restored_dir: Path,
    gt_dir: Path | None,
    options: ScoringOptions,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the folders; returns ``{'mean', 'per_image', 'protocol'}`` (see the CLI).

    Args:
        progress: called with the number of images done after each batch.
    """
    metrics_requested = list(options.metrics)
    check_request(metrics_requested, gt_dir is not None, options.fid_stats)
    pairing: Pairing = pair_folders(restored_dir, gt_dir, options.skip_unpaired)
    device = torch.device(options.device)
    metrics = {name: build_metric(name, options).to(device) for name in metrics_requested}
    means, per_image = score_pairs(pairing.pairs, metrics, device, options.batch_size, progress)
    protocol = {
        "restored_dir": str(restored_dir),
        "gt_dir": str(gt_dir) if gt_dir is not None else None,
        "num_images": len(pairing.pairs),
        "skipped": pairing.skipped,
        "crop_border": options.crop_border,
        "device": str(device),
        "metrics": {name: _protocol(metric) for name, metric in metrics.items()},
        "versions": versions(),
    }
    return {"mean": means, "per_image": per_image, "protocol": protocol}
