"""Losses as small modules combined by a weighted mapping."""

from faceprior.losses.perceptual import PerceptualLoss, gram_matrix
from faceprior.losses.pixel import PixelLoss
from faceprior.losses.weighted import WeightedLoss

__all__ = ["PerceptualLoss", "PixelLoss", "WeightedLoss", "gram_matrix"]
