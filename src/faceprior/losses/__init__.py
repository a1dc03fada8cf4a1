"""Losses as small modules combined by a weighted mapping."""

from faceprior.losses.gan import (
    Adversarial,
    ComponentAdversarial,
    ComponentStyle,
    ContextTerm,
    DiscriminatorLoss,
    FeatureMatching,
    GeneratorContext,
    ImagePyramid,
    gan_loss,
    r1_penalty,
)
from faceprior.losses.identity import Identity, IdentityCosine, gray_for_identity
from faceprior.losses.path_length import PathLengthPenalty
from faceprior.losses.perceptual import PerceptualLoss, gram_matrix
from faceprior.losses.pixel import PixelLoss
from faceprior.losses.weighted import WeightedLoss

__all__ = [
    "Adversarial",
    "ComponentAdversarial",
    "ComponentStyle",
    "ContextTerm",
    "DiscriminatorLoss",
    "FeatureMatching",
    "GeneratorContext",
    "Identity",
    "IdentityCosine",
    "ImagePyramid",
    "PathLengthPenalty",
    "PerceptualLoss",
    "PixelLoss",
    "WeightedLoss",
    "gan_loss",
    "gram_matrix",
    "gray_for_identity",
    "r1_penalty",
]
