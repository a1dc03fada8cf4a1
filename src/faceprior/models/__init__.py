"""LightningModules: thin recipes on one training core (:mod:`faceprior.models.gan`)."""

from faceprior.models.base import RestorerBase
from faceprior.models.ema import EMA
from faceprior.models.gan import GANModule, OptimizerSpec, Phase
from faceprior.models.gfpgan import GFPGANModule
from faceprior.models.gpen import GPENModule
from faceprior.models.restoration import RestorationModule
from faceprior.models.stylegan2_prior import StyleGAN2PriorModule

__all__ = [
    "EMA",
    "GANModule",
    "GFPGANModule",
    "GPENModule",
    "OptimizerSpec",
    "Phase",
    "RestorationModule",
    "RestorerBase",
    "StyleGAN2PriorModule",
]
