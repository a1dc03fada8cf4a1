"""Networks: restorers, GAN priors, discriminators and frozen feature nets.

Every official GFP-GAN / GPEN network is reimplemented in plain PyTorch with the official
constructor arguments, state-dict keys (and order) and forward signatures, so the released
checkpoints load with ``strict=True`` and reproduce the official outputs. Importing this package
builds nothing and compiles nothing.
"""

from faceprior.nets.arcface import ArcFaceResNet18
from faceprior.nets.discriminators import (
    FacialComponentDiscriminator,
    GPENDiscriminator,
    StyleGAN2Discriminator,
)
from faceprior.nets.export import GeneratorExport
from faceprior.nets.gfpgan import GFPGANv1, GFPGANv1Clean
from faceprior.nets.gpen import GPENGenerator, GPENStyleGenerator
from faceprior.nets.irse import IRSE50
from faceprior.nets.layers import (
    Blur,
    ConstantInput,
    ConvLayer,
    EqualConv2d,
    EqualLinear,
    FusedLeakyReLU,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    ResBlock,
    ScaledLeakyReLU,
    Upsample,
)
from faceprior.nets.stylegan2 import StyleGAN2Generator, StyleGAN2GeneratorSFT
from faceprior.nets.stylegan2_clean import (
    ModulatedConv2dClean,
    StyleGAN2GeneratorClean,
    StyleGAN2GeneratorCSFT,
)
from faceprior.nets.unet import UNet
from faceprior.nets.vgg import VGG19FeatureExtractor

__all__ = [
    "IRSE50",
    "ArcFaceResNet18",
    "Blur",
    "ConstantInput",
    "ConvLayer",
    "EqualConv2d",
    "EqualLinear",
    "FacialComponentDiscriminator",
    "FusedLeakyReLU",
    "GFPGANv1",
    "GFPGANv1Clean",
    "GPENDiscriminator",
    "GPENGenerator",
    "GPENStyleGenerator",
    "GeneratorExport",
    "ModulatedConv2d",
    "ModulatedConv2dClean",
    "NoiseInjection",
    "PixelNorm",
    "ResBlock",
    "ScaledLeakyReLU",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "StyleGAN2GeneratorCSFT",
    "StyleGAN2GeneratorClean",
    "StyleGAN2GeneratorSFT",
    "UNet",
    "Upsample",
    "VGG19FeatureExtractor",
]
