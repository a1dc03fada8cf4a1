"""Baseline losses, the VGG19 feature extractor and the U-Net."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import vgg19

from faceprior.checkpoints import StateDictMismatchError
from faceprior.checkpoints.io import load_vgg19_weights
from faceprior.losses import PerceptualLoss, PixelLoss, WeightedLoss, gram_matrix
from faceprior.nets import UNet, VGG19FeatureExtractor


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    ref = vgg19(weights=None)
    path = tmp_path_factory.mktemp("w") / "vgg19-dcbb9e9d.pth"
    torch.save(ref.state_dict(), path)
    return path, ref


def test_vgg_features_before_relu_match_torchvision(vgg_file: tuple[Path, torch.nn.Module]) -> None:
    path, ref = vgg_file
    ext = VGG19FeatureExtractor(layers=["conv1_2", "conv3_4", "relu3_4"])
    load_vgg19_weights(ext, path)
    assert len(ext.features) == 18  # truncated after relu3_4
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = ext(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    xn = ((x + 1) / 2 - mean) / std
    with torch.no_grad():
        assert torch.allclose(out["conv1_2"], ref.features[:3](xn), atol=1e-5)
        assert torch.allclose(out["conv3_4"], ref.features[:17](xn), atol=1e-5)
    assert (out["conv3_4"] < 0).any() and (out["relu3_4"] >= 0).all()
    assert not any(p.requires_grad for p in ext.parameters())


def test_vgg_missing_weights_message(tmp_path: Path) -> None:
    key = r"model\.generator_losses\.perceptual\.weights_path"
    with pytest.raises(FileNotFoundError, match=rf"{key}: VGG19 weights .*vgg19-dcbb9e9d\.pth"):
        PerceptualLoss({"conv1_2": 1.0}, weights_path=str(tmp_path / "nope.pth"))


def test_vgg_wrong_file_and_networks_never_open_files(tmp_path: Path) -> None:
    import inspect

    assert "weights_path" not in inspect.signature(VGG19FeatureExtractor).parameters
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1, 3, 3, 3)}, wrong)
    with pytest.raises(
        StateDictMismatchError, match=r"wrong.pth \(VGG19\) does not fit Sequential"
    ):
        load_vgg19_weights(VGG19FeatureExtractor(layers=["conv1_2"]), wrong)


def test_perceptual_and_style_terms(vgg_file: tuple[Path, torch.nn.Module]) -> None:
    path, _ = vgg_file
    loss = PerceptualLoss(
        {"conv1_2": 0.1, "conv2_2": 1.0, "conv5_4": 0.0},
        weights_path=str(path),
        perceptual_weight=2.0,
        style_weight=50.0,
    )
    assert len(loss.extractor.features) == 8  # conv5_4 has weight 0: truncated after conv2_2
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    parts = loss(x, x)
    assert parts["perceptual"].item() == 0.0 and parts["style"].item() == 0.0
    y = (x + 0.3 * torch.randn_like(x)).requires_grad_(True)
    parts = loss(y, x)
    f = loss.extractor(y)
    g = loss.extractor(x)
    expect = 2.0 * (
        0.1 * (f["conv1_2"] - g["conv1_2"]).abs().mean()
        + (f["conv2_2"] - g["conv2_2"]).abs().mean()
    )
    assert torch.allclose(parts["perceptual"], expect)
    parts["perceptual"].backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_gram_matrix() -> None:
    x = torch.randn(2, 4, 3, 5)
    g = gram_matrix(x)
    f = x.reshape(2, 4, 15)
    assert torch.allclose(g, f @ f.transpose(1, 2) / 60)


def test_weighted_loss_parts_and_total() -> None:
    loss = WeightedLoss({"l1": PixelLoss(0.5), "l2": PixelLoss(2.0, "l2")})
    a, b = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    total, parts = loss(a, b)
    assert parts["l1"].item() == pytest.approx(0.5) and parts["l2"].item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="criterion"):
        PixelLoss(criterion="l3")


def test_unet_shapes_and_residual() -> None:
    net = UNet(base_channels=8, channel_mults=(1, 2, 4))
    x = torch.rand(2, 3, 32, 32)
    assert net(x).shape == x.shape
    for p in net.tail.parameters():
        torch.nn.init.zeros_(p)
    assert torch.equal(net(x), x)  # zero residual -> identity
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 3, 30, 30))


def test_unet_group_norm_option() -> None:
    net = UNet(base_channels=8, channel_mults=(1, 2), norm="group")
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 2 * 4  # two per ConvBlock: 2 down levels, mid, 1 up level
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="norm"):
        UNet(norm="batch")


def test_identity_missing_weights_message(tmp_path: Path) -> None:
    from faceprior.losses import Identity

    key = r"model\.generator_losses\.identity\.weights_path"
    url = r"https://github\.com/TencentARC/GFPGAN/releases/download/v0\.1\.0/arcface_resnet18\.pth"
    with pytest.raises(FileNotFoundError, match=rf"{key}: ArcFace weights '.*nope\.pth'.*{url}"):
        Identity(weights_path=str(tmp_path / "nope.pth"))
