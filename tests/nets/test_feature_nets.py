"""Identity networks: shapes, modes and the output conventions of the official models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from faceprior import nets


def test_arcface_resnet18_embeds_gray_128() -> None:
    torch.manual_seed(0)
    net = nets.ArcFaceResNet18().eval()
    with torch.no_grad():
        emb = net(torch.rand(2, 1, 128, 128) * 2 - 1)
    assert emb.shape == (2, 512)
    assert torch.isfinite(emb).all()
    assert not torch.allclose(emb.norm(dim=1), torch.ones(2))  # bn5 output, not L2-normalised


def test_arcface_se_variant_and_block_check() -> None:
    net = nets.ArcFaceResNet18(layers=(1, 1, 1, 1), use_se=True).eval()
    assert "layer1.0.se.fc.0.weight" in net.state_dict()
    with pytest.raises(ValueError, match="IRBlock"):
        nets.ArcFaceResNet18(block="BasicBlock")


def test_irse50_embeds_to_unit_vectors() -> None:
    torch.manual_seed(0)
    net = nets.IRSE50().eval()
    with torch.no_grad():
        emb = net(torch.rand(2, 3, 112, 112) * 2 - 1)
    assert emb.shape == (2, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2), rtol=1e-5, atol=1e-5)


def test_irse_argument_checks() -> None:
    with torch.device("meta"):
        ir = nets.IRSE50(mode="ir")
    assert not any(".fc1." in k for k in ir.state_dict())
    bad_args: list[dict[str, Any]] = [{"input_size": 128}, {"num_layers": 34}, {"mode": "se"}]
    for bad in bad_args:
        with pytest.raises(ValueError):
            nets.IRSE50(**bad)
