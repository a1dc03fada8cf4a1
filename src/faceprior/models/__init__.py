"""LightningModules: thin wiring of networks, losses, metrics and optimisers."""

from faceprior.models.base import RestorerBase
from faceprior.models.ema import EMA
from faceprior.models.gfpgan import GFPGANModule
from faceprior.models.restoration import RestorationModule

__all__ = ["EMA", "GFPGANModule", "RestorationModule", "RestorerBase"]
