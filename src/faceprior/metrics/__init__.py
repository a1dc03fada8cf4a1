"""Image-quality metrics that reproduce the face-restoration papers' numbers.

One ``torchmetrics.Metric`` per metric, DDP-correct (per-image values averaged over the whole
set), each with ``higher_is_better``, a ``metric_name`` and the ``convention`` it follows
(the module docstrings cite the reference implementation of each):

- :class:`PSNR`, :class:`SSIM`, :class:`NIQE`: BasicSR/MATLAB-exact on 8-bit images;
- :class:`LPIPS`, :class:`FID`, :class:`IdentityDistance`, :class:`LandmarkDistance`: network
  based, weights resolved locally by :mod:`faceprior.metrics.weights`.

The network-based classes are imported on first access, so importing this package stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from faceprior.metrics.base import PerImageMeanMetric
from faceprior.metrics.niqe import NIQE
from faceprior.metrics.psnr_ssim import PSNR, SSIM

if TYPE_CHECKING:
    from faceprior.metrics.fid import FID
    from faceprior.metrics.identity import IdentityDistance
    from faceprior.metrics.landmarks import LandmarkDistance
    from faceprior.metrics.lpips_metric import LPIPS

_LAZY = {
    "FID": "faceprior.metrics.fid",
    "IdentityDistance": "faceprior.metrics.identity",
    "LandmarkDistance": "faceprior.metrics.landmarks",
    "LPIPS": "faceprior.metrics.lpips_metric",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FID",
    "LPIPS",
    "NIQE",
    "PSNR",
    "SSIM",
    "IdentityDistance",
    "LandmarkDistance",
    "PerImageMeanMetric",
]
