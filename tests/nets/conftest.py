"""Shared fixtures for the network and checkpoint tests.

Reference data lives in the ``shared`` folder beside the repository
(``../shared/reference/official``); tests that need it are marked ``real_data`` and skip with
the reason when it is absent. Helpers are exposed as fixtures (no imports from this file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
from torch import nn

from faceprior import nets

ModuleT = TypeVar("ModuleT", bound=nn.Module)

OFFICIAL_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "official"

#: Official class name -> our class, for the test vectors.
OFFICIAL_CLASSES: dict[str, type[nn.Module]] = {
    "GFPGANv1Clean": nets.GFPGANv1Clean,
    "GFPGANv1": nets.GFPGANv1,
    "FullGenerator": nets.GPENGenerator,
    "StyleGAN2Discriminator": nets.StyleGAN2Discriminator,
    "Discriminator": nets.GPENDiscriminator,
    "FacialComponentDiscriminator": nets.FacialComponentDiscriminator,
}


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Run these tests on one intra-op thread (restored afterwards).

    The networks here are tiny; with several threads, OpenMP synchronisation dominates and a
    busy CI machine makes the suite several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def official_dir() -> Path:
    """``../shared/reference/official``, or skip when the shared folder is absent."""
    if not OFFICIAL_DIR.is_dir():
        pytest.skip(
            f"reference data not found at {OFFICIAL_DIR.resolve()} (needs the 'shared' folder "
            "beside the repository root)"
        )
    return OFFICIAL_DIR


@pytest.fixture(scope="session")
def load_manifest(official_dir: Path) -> Callable[[str], list[list[Any]]]:
    """``load_manifest(name)`` -> the ordered ``[[key, shape], ...]`` of ``name.json``."""

    def load(name: str) -> list[list[Any]]:
        with (official_dir / f"{name}.json").open() as f:
            manifest: list[list[Any]] = json.load(f)
        return manifest

    return load


@pytest.fixture(scope="session")
def load_vector(official_dir: Path) -> Callable[[str], dict[str, Any]]:
    """``load_vector(file_name)`` -> the test-vector dict (read with ``weights_only=True``)."""

    def load(name: str) -> dict[str, Any]:
        vector: dict[str, Any] = torch.load(official_dir / name, weights_only=True)
        return vector

    return load


@pytest.fixture(scope="session")
def build_official() -> Callable[[dict[str, Any]], nn.Module]:
    """``build_official(vector)`` -> our network for the vector's official class and config,
    loaded with ``strict=True``, in eval mode."""

    def build(vector: dict[str, Any]) -> nn.Module:
        model = OFFICIAL_CLASSES[vector["arch"]](**vector["config"])
        model.load_state_dict(vector["state_dict"], strict=True)
        return model.eval()

    return build


def refill_zero_params(model: ModuleT, seed: int = 1234) -> ModuleT:
    """Give every all-zero parameter (noise strengths, zero-initialised biases) random values,
    as the official test vectors do, so that no branch is silently disabled."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture
def small_clean() -> nets.GFPGANv1Clean:
    """A tiny randomly initialised GFPGANv1Clean (32 px, 32-d styles), eval mode."""
    torch.manual_seed(0)
    cfg = {"out_size": 32, "num_style_feat": 32, "channel_multiplier": 2, "narrow": 0.0625}
    return refill_zero_params(nets.GFPGANv1Clean(**cfg)).eval()


@pytest.fixture
def small_v1() -> nets.GFPGANv1:
    """A tiny randomly initialised GFPGANv1 (32 px, 32-d styles), eval mode."""
    torch.manual_seed(0)
    cfg = {"out_size": 32, "num_style_feat": 32, "channel_multiplier": 1, "narrow": 0.0625}
    return refill_zero_params(nets.GFPGANv1(**cfg)).eval()


@pytest.fixture
def small_gpen() -> nets.GPENGenerator:
    """A tiny randomly initialised GPENGenerator (32 px, 32-d styles), eval mode."""
    torch.manual_seed(0)
    return refill_zero_params(nets.GPENGenerator(32, 32, 8, 2, narrow=0.0625)).eval()


@pytest.fixture
def image() -> torch.Tensor:
    """A fixed batch of two 32x32 RGB images in [-1, 1] (the size of the small nets)."""
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 2 - 1
