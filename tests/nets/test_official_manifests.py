"""State-dict keys, shapes and ORDER equal the official manifests, for every released config.

Full-size networks are built on the meta device (no memory, no init cost).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from faceprior import nets
from faceprior.checkpoints import REGISTRY, expected_shapes

pytestmark = pytest.mark.real_data

MANIFESTS: dict[str, Callable[[], nn.Module]] = {
    "gfpganv1_clean_512": lambda: nets.GFPGANv1Clean(
        out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
        fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
        sft_half=True,
    ),
    "gfpganv1_512": lambda: nets.GFPGANv1(
        out_size=512, num_style_feat=512, channel_multiplier=1, resample_kernel=(1, 3, 3, 1),
        decoder_load_path=None, fix_decoder=True, num_mlp=8, lr_mlp=0.01, input_is_latent=True,
        different_w=True, narrow=1, sft_half=True,
    ),
    "gpen_bfr_512": lambda: nets.GPENGenerator(512, 512, 8, 2, narrow=1),
    "gpen_bfr_256": lambda: nets.GPENGenerator(256, 512, 8, 1, narrow=0.5),
    "gpen_discriminator_512": lambda: nets.GPENDiscriminator(512, channel_multiplier=2, narrow=1),
    "gpen_discriminator_256_candidate_cm1_narrow1": lambda: nets.GPENDiscriminator(256, 1),
    "gpen_discriminator_256_candidate_cm2_narrow1": lambda: nets.GPENDiscriminator(256, 2),
    "gfpgan_discriminator_512": lambda: nets.StyleGAN2Discriminator(
        out_size=512, channel_multiplier=1, resample_kernel=[1, 3, 3, 1]
    ),
    "gfpgan_facial_component_discriminator": lambda: nets.FacialComponentDiscriminator(),
    "gfpgan_stylegan2_512_cmul1": lambda: nets.StyleGAN2Generator(
        out_size=512, num_style_feat=512, num_mlp=8, channel_multiplier=1,
        resample_kernel=[1, 3, 3, 1], lr_mlp=0.01, narrow=1,
    ),
    "gfpgan_arcface_resnet18": lambda: nets.ArcFaceResNet18(
        block="IRBlock", layers=[2, 2, 2, 2], use_se=False
    ),
    "gpen_ir_se50": lambda: nets.IRSE50(
        input_size=112, num_layers=50, drop_ratio=0.6, mode="ir_se"
    ),
}  # fmt: skip

#: Registry entry -> manifest of its (assumed) configuration.
REGISTRY_MANIFESTS = {
    "GFPGANv1": "gfpganv1_512",
    "GFPGANCleanv1-NoCE-C2": "gfpganv1_clean_512",
    "GFPGANv1.3": "gfpganv1_clean_512",
    "GFPGANv1.4": "gfpganv1_clean_512",
    "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k": "gfpgan_stylegan2_512_cmul1",
    "arcface_resnet18": "gfpgan_arcface_resnet18",
    "GFPGANv1_net_d": "gfpgan_discriminator_512",
    "GFPGANv1_net_d_left_eye": "gfpgan_facial_component_discriminator",
    "GFPGANv1_net_d_right_eye": "gfpgan_facial_component_discriminator",
    "GFPGANv1_net_d_mouth": "gfpgan_facial_component_discriminator",
    "GPEN-BFR-512": "gpen_bfr_512",
    "GPEN-BFR-256": "gpen_bfr_256",
    "GPEN-BFR-512-D": "gpen_discriminator_512",
    "GPEN-BFR-256-D": "gpen_discriminator_256_candidate_cm1_narrow1",
    "model_ir_se50": "gpen_ir_se50",
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_state_dict_equals_manifest(
    name: str, load_manifest: Callable[[str], list[list[Any]]]
) -> None:
    with torch.device("meta"):
        module = MANIFESTS[name]()
    got = [[k, list(v.shape)] for k, v in module.state_dict().items()]
    expected = load_manifest(name)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"entry {i}: ours {g} vs official {e}"


def test_every_registry_entry_has_a_manifest() -> None:
    assert set(REGISTRY) == set(REGISTRY_MANIFESTS)


@pytest.mark.parametrize("name", sorted(REGISTRY_MANIFESTS))
def test_registry_configs_match_manifests(
    name: str, load_manifest: Callable[[str], list[list[Any]]]
) -> None:
    spec = REGISTRY[name]
    got = [[k, list(s)] for k, s in expected_shapes(spec.arch, spec.kwargs).items()]
    assert got == load_manifest(REGISTRY_MANIFESTS[name])


def test_gpen_256_discriminator_alternative_is_the_other_candidate(
    load_manifest: Callable[[str], list[list[Any]]],
) -> None:
    spec = REGISTRY["GPEN-BFR-256-D"]
    (alt,) = spec.alternatives
    got = [[k, list(s)] for k, s in expected_shapes(spec.arch, alt).items()]
    assert got == load_manifest("gpen_discriminator_256_candidate_cm2_narrow1")
