"""LightningModules: thin wiring of networks, losses, metrics and optimisers."""

from faceprior.models.ema import EMA
from faceprior.models.restoration import RestorationModule

__all__ = ["EMA", "RestorationModule"]
