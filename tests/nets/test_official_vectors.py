"""Numeric equality with the official outputs (``../shared/reference/official/*.pt``).

Each vector holds random weights in the official key layout, a fixed input and the outputs of
the unmodified official classes (float32, CPU), made on another machine.

Tolerance: ``max |actual - expected| <= 1e-5 + 1e-5 * max |expected|`` per output tensor.
Bit equality is not guaranteed: oneDNN/MKL pick float32 convolution and GEMM kernels (blocking,
reduction order) by CPU model, and our equivalent ops are not bitwise the official ones anyway
(max err up to 3e-6 on an AMD EPYC with the default kernels). That rounding noise accumulates
through the layers in proportion to the activations' magnitude, not to each element's value,
so the relative term uses the tensor's scale: per-element ``allclose(rtol=atol=1e-5)`` kept
only ~10% headroom on GFPGANv1's output (max |value| 14, many elements near 0) with oneDNN's
and ATen's AVX2 kernels (``DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``: max err 2e-5;
13% of this bound). Real errors stay far outside it: a wrong minibatch-stddev grouping moves
the discriminator outputs by 1e-3..1e-2 (the vectors scale those weights up for this), a 1%
change of one modulation bias moves GFPGANv1's output by 2.6e-2 (190x the bound).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

pytestmark = pytest.mark.real_data

Vector = dict[str, Any]
LoadVector = Callable[[str], Vector]
Build = Callable[[Vector], nn.Module]


#: see the module docstring: absolute floor and relative-to-scale term of the bound
ATOL = RTOL = 1e-5


def assert_matches(actual: Tensor, expected: Tensor, what: str) -> None:
    """Max abs error within ``ATOL + RTOL * max |expected|`` (float32 cross-CPU rounding)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    err = (actual - expected).abs().max().item()
    bound = ATOL + RTOL * expected.abs().max().item()
    assert err <= bound, f"{what}: max abs err {err:.3g} > {bound:.3g}"


@pytest.mark.parametrize("file", ["gfpganv1_clean_small.pt", "gfpganv1_small.pt"])
def test_gfpgan_generators(file: str, load_vector: LoadVector, build_official: Build) -> None:
    vec = load_vector(file)
    model = build_official(vec)
    x = vec["input"]
    with torch.no_grad():
        image, rgbs = model(x, **vec["forward_kwargs"])
        assert rgbs == []
        assert_matches(image, vec["output"], "output")

        _, out_rgbs = model(x, **vec["out_rgbs_forward_kwargs"])
        assert len(out_rgbs) == len(vec["out_rgbs"])
        for i, (a, e) in enumerate(zip(out_rgbs, vec["out_rgbs"])):
            assert_matches(a, e, f"out_rgbs[{i}]")

        # one torch.randn-equivalent draw per StyleConv, in execution order
        torch.manual_seed(vec["output_randomized_noise_seed"])
        noisy, _ = model(x, return_rgb=False, randomize_noise=True)
        assert_matches(noisy, vec["output_randomized_noise"], "output_randomized_noise")


def test_gpen_generator(load_vector: LoadVector, build_official: Build) -> None:
    vec = load_vector("gpen_small.pt")
    model = build_official(vec)
    x = vec["input"]
    with torch.no_grad():
        image, latent = model(x, **vec["forward_kwargs"])
        assert latent is None
        assert_matches(image, vec["output"], "output")
        image2, latent = model(x, **vec["latent_forward_kwargs"])
        assert latent is not None
        assert_matches(latent, vec["latent"], "latent")
        assert torch.equal(image, image2)  # same ops on the same input in one process


def test_gpen_generator_draws_no_random_numbers(
    load_vector: LoadVector, build_official: Build
) -> None:
    vec = load_vector("gpen_small.pt")
    model = build_official(vec)
    with torch.no_grad():
        torch.manual_seed(1)
        a, _ = model(vec["input"])
        torch.manual_seed(2)
        b, _ = model(vec["input"])
    assert torch.equal(a, b)


@pytest.mark.parametrize("file", ["gfpgan_discriminator_small.pt", "gpen_discriminator_small.pt"])
def test_discriminators_both_batch_sizes(
    file: str, load_vector: LoadVector, build_official: Build
) -> None:
    vec = load_vector(file)
    model = build_official(vec)
    with torch.no_grad():
        assert_matches(model(vec["input"]), vec["output"], "output (batch 8)")
        assert_matches(model(vec["input_b2"]), vec["output_b2"], "output_b2 (batch 2)")


def test_facial_component_discriminator(load_vector: LoadVector, build_official: Build) -> None:
    vec = load_vector("gfpgan_facial_component_discriminator.pt")
    model = build_official(vec)
    with torch.no_grad():
        out, feats = model(vec["input"], **vec["forward_kwargs"])
        assert_matches(out, vec["output"], "output")
        assert feats is not None and len(feats) == 2
        for i, (a, e) in enumerate(zip(feats, vec["feats"])):
            assert_matches(a, e, f"feats[{i}]")
        out_plain, none = model(vec["input"])
        assert none is None
        assert torch.equal(out_plain, out)
