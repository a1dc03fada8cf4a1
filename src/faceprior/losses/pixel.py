"""Pixel-space reconstruction losses."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

_CRITERIA = {"l1": F.l1_loss, "l2": F.mse_loss, "smooth_l1": F.smooth_l1_loss}


class PixelLoss(nn.Module):
    """``weight * criterion(pred, target)`` with ``criterion`` one of ``l1``, ``l2``, ``smooth_l1``."""

    def __init__(self, weight: float = 1.0, criterion: str = "l1") -> None:
        super().__init__()
        if criterion not in _CRITERIA:
            raise ValueError(f"criterion must be one of {sorted(_CRITERIA)}, got {criterion!r}")
        self.weight = float(weight)
        self.criterion = criterion

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.weight * _CRITERIA[self.criterion](pred, target)
