"""The functional StyleGAN2 ops against direct definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from faceprior.nets import (
    Blur,
    EqualConv2d,
    EqualLinear,
    ModulatedConv2d,
    ModulatedConv2dClean,
    NoiseInjection,
    Upsample,
)
from faceprior.nets.ops import (
    bias_leaky_relu,
    make_fir_kernel,
    minibatch_stddev,
    modulate_weight,
    pixel_norm,
    upfirdn2d,
)


def naive_upfirdn2d(x: torch.Tensor, k: torch.Tensor, up: int, down: int, p0: int, p1: int):
    """Textbook definition with explicit loops (one channel plane at a time)."""
    b, c, h, w = x.shape
    ups = torch.zeros(b, c, h * up, w * up)
    ups[:, :, ::up, ::up] = x
    padded = torch.zeros(b, c, h * up + p0 + p1, w * up + p0 + p1)
    padded[:, :, p0 : p0 + h * up, p0 : p0 + w * up] = ups
    kh, kw = k.shape
    out_h = (padded.shape[2] - kh) // down + 1
    out_w = (padded.shape[3] - kw) // down + 1
    out = torch.zeros(b, c, out_h, out_w)
    for y in range(out_h):
        for xx in range(out_w):
            acc = torch.zeros(b, c)
            for i in range(kh):
                for j in range(kw):
                    # true convolution: kernel index runs backwards over the window
                    acc += k[kh - 1 - i, kw - 1 - j] * padded[:, :, y * down + i, xx * down + j]
            out[:, :, y, xx] = acc
    return out


@pytest.mark.parametrize(("up", "down", "pad"), [(1, 1, (1, 1)), (2, 1, (2, 1)), (1, 2, (1, 1))])
def test_upfirdn2d_matches_definition(up: int, down: int, pad: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 5, 5, generator=g)
    k = torch.rand(4, 4, generator=g)  # asymmetric, so a missing flip would show
    got = upfirdn2d(x, k, up=up, down=down, pad=pad)
    torch.testing.assert_close(got, naive_upfirdn2d(x, k, up, down, *pad), rtol=1e-5, atol=1e-6)


def test_upfirdn2d_negative_pad_crops() -> None:
    x = torch.randn(1, 1, 8, 8)
    k = torch.ones(1, 1)
    # a single tap of 1.0: every output is 0 + 1.0 * x, exact whatever the conv kernel
    assert torch.equal(upfirdn2d(x, k, pad=(-1, -2)), x[:, :, 1:-2, 1:-2])


def test_fir_kernel_and_resamplers_preserve_constants() -> None:
    k = make_fir_kernel([1, 3, 3, 1])
    assert k.shape == (4, 4)
    assert math.isclose(k.sum().item(), 1.0, rel_tol=1e-6)
    x = torch.full((1, 2, 8, 8), 3.0)
    up = Upsample([1, 3, 3, 1])(x)
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 3.0))
    blurred = Blur([1, 3, 3, 1], pad=(2, 1))(x)
    assert blurred.shape == x.shape


def test_bias_leaky_relu_formula() -> None:
    x = torch.randn(2, 3, 4, 4)
    b = torch.randn(3)
    expected = F.leaky_relu(x + b.view(1, 3, 1, 1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(bias_leaky_relu(x, b), expected)
    torch.testing.assert_close(bias_leaky_relu(torch.randn(2, 3), None).shape, torch.Size([2, 3]))


def test_minibatch_stddev_uses_strided_groups() -> None:
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2)
    # group size 4 over a batch of 8: sample b is grouped with {b mod 2, b mod 2 + 2, ...}
    for b in range(8):
        members = x[b % 2 :: 2]
        expected = torch.sqrt(members.var(0, correction=0) + 1e-8).mean()
        torch.testing.assert_close(out[b, 3], torch.full((2, 2), expected.item()))
    with pytest.raises(ValueError, match="not divisible"):
        minibatch_stddev(torch.randn(6, 3, 2, 2), group_size=4)


def test_modulate_weight_demodulates_to_unit_norm() -> None:
    w = torch.randn(1, 5, 4, 3, 3)
    s = torch.rand(2, 4) + 0.5
    out = modulate_weight(w, s, demodulate=True)
    norms = out.pow(2).sum(dim=(2, 3, 4)).sqrt()
    torch.testing.assert_close(norms, torch.ones(2, 5), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(modulate_weight(w, s, False), w * s[:, None, :, None, None])


def test_half_precision_normalisations_stay_finite() -> None:
    # tiny weights: sum(w^2) and eps=1e-8 underflow to zero in float16, so a float16
    # rsqrt would give inf; the fp32 evaluation keeps the result finite
    w = torch.full((1, 2, 3, 1, 1), 1e-5, dtype=torch.float16)
    s = torch.ones(1, 3, dtype=torch.float16)
    naive = torch.rsqrt((w * s[:, None, :, None, None]).pow(2).sum(dim=(2, 3, 4)) + 1e-8)
    assert torch.isinf(naive).all()
    assert torch.isfinite(modulate_weight(w, s, demodulate=True)).all()
    assert torch.isfinite(pixel_norm(torch.full((2, 8), 1e-5, dtype=torch.float16))).all()
    x = torch.full((4, 2, 2, 2), 0.5, dtype=torch.float16)
    assert torch.isfinite(minibatch_stddev(x, 4)).all()


@pytest.mark.parametrize("mode", [None, "upsample", "downsample"])
def test_modulated_convs_resample(mode: str | None) -> None:
    x = torch.randn(2, 4, 8, 8)
    style = torch.randn(2, 16)
    size = {None: 8, "upsample": 16, "downsample": 4}[mode]
    fir = ModulatedConv2d(4, 6, 3, 16, upsample=mode == "upsample", downsample=mode == "downsample")
    clean = ModulatedConv2dClean(4, 6, 3, 16, sample_mode=mode)
    assert fir(x, style).shape == (2, 6, size, size)
    assert clean(x, style).shape == (2, 6, size, size)
    # no demodulation (ToRGB) path
    assert ModulatedConv2d(4, 3, 1, 16, demodulate=False)(x, style).shape == (2, 3, 8, 8)


def test_modulated_conv_per_sample_equals_separate_calls() -> None:
    conv = ModulatedConv2d(4, 6, 3, 16, upsample=True, persistent_kernel=False)
    x, style = torch.randn(3, 4, 5, 5), torch.randn(3, 16)
    batched = conv(x, style)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], conv(x[i : i + 1], style[i : i + 1]))
    assert "blur.kernel" not in conv.state_dict()


def test_noise_injection_modes() -> None:
    x = torch.randn(2, 4, 8, 8)
    noise = torch.randn(2, 4, 8, 8)
    add, cat = NoiseInjection(isconcat=False), NoiseInjection(isconcat=True)
    with torch.no_grad():
        add.weight.fill_(0.5)
        cat.weight.fill_(0.5)
    torch.testing.assert_close(add(x, noise[:, :1]), x + 0.5 * noise[:, :1])
    torch.testing.assert_close(cat(x, noise), torch.cat([x, 0.5 * noise], 1))
    assert add(x).shape == x.shape  # fresh noise when none is given


def test_equalized_layers_scale_at_runtime() -> None:
    conv = EqualConv2d(4, 2, 3, padding=1)
    x = torch.randn(1, 4, 5, 5)
    expected = F.conv2d(x, conv.weight / math.sqrt(4 * 9), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    lin = EqualLinear(8, 3, lr_mul=0.01, bias_init_val=1.0)
    v = torch.randn(2, 8)
    torch.testing.assert_close(
        lin(v), F.linear(v, lin.weight * 0.01 / math.sqrt(8), lin.bias * 0.01)
    )
