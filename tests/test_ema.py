"""EMA: decay from a half-life in images, only the shadow changes, state round-trips."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from faceprior.models import EMA


def test_decay_is_a_half_life_in_images() -> None:
    ema = EMA(half_life_images=10000 * 12 / 32)
    assert ema.decay(12) == pytest.approx(0.5 ** (32 / 10000))  # GFP-GAN's per-iteration decay
    assert ema.decay(1000) ** 2 == pytest.approx(ema.decay(2000))


def test_update_moves_only_the_shadow() -> None:
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    ema = EMA(half_life_images=4.0).attach(net)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    live = net.weight.detach().clone()
    ema.update(net, images=4)  # one half-life: halfway
    assert ema.shadow is not None
    assert torch.allclose(ema.shadow.weight, (start + live) / 2)
    assert torch.equal(net.weight, live)
    assert not any(p.requires_grad for p in ema.shadow.parameters())
    assert int(ema.images_seen) == 4


def test_start_images_copies_weights_first() -> None:
    net = nn.Linear(2, 2)
    ema = EMA(half_life_images=100.0, start_images=10).attach(net)
    with torch.no_grad():
        net.weight.mul_(3)
    ema.update(net, images=8)
    assert ema.shadow is not None and torch.equal(ema.shadow.weight, net.weight)


def test_state_dict_round_trip_and_bad_half_life() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = EMA(half_life_images=50.0).attach(net)
    ema.update(net, images=5)
    other = EMA(half_life_images=50.0).attach(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    other.load_state_dict(ema.state_dict())
    assert int(other.images_seen) == 5
    assert other.shadow is not None and ema.shadow is not None
    assert torch.equal(other.shadow[0].weight, ema.shadow[0].weight)
    with pytest.raises(ValueError, match="half_life_images"):
        EMA(half_life_images=0)
    assert math.isfinite(ema.decay(1))


def test_fixed_decay_is_per_update_whatever_the_batch() -> None:
    # GPEN / rosinality: accumulate(g_ema, g, 0.5 ** (32 / 10000)) after every iteration
    decay = 0.5 ** (32 / 10000)
    net = nn.Linear(2, 2)
    ema = EMA(decay=decay).attach(net)
    assert ema.decay(1) == ema.decay(64) == decay
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, images=64)
    assert ema.shadow is not None
    expected = start * decay + net.weight.detach() * (1 - decay)
    assert torch.allclose(ema.shadow.weight, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="exactly one of half_life_images and decay"):
        EMA(half_life_images=10, decay=0.9)
    with pytest.raises(ValueError, match="exactly one"):
        EMA()
    with pytest.raises(ValueError, match=r"model.ema.decay must be in \[0, 1\)"):
        EMA(decay=1.0)
