"""LightningModules: thin recipes on one training core (:mod:`faceprior.models.gan`)."""

from faceprior.models.base import RestorerBase
from faceprior.models.ema import EMA
from faceprior.models.gan import GANModule, OptimizerSpec, Phase
from faceprior.models.gfpgan import GFPGANModule
from faceprior.models.restoration import RestorationModule

__all__ = [
    "EMA",
    "GANModule",
    "GFPGANModule",
    "OptimizerSpec",
    "Phase",
    "RestorationModule",
    "RestorerBase",
]
