"""GPEN training pieces: path-length penalty, IR-SE-50 identity loss, discriminator features and
feature matching, and the concat generator's fresh noise."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.losses import (
    Adversarial,
    FeatureMatching,
    GeneratorContext,
    IdentityCosine,
    PathLengthPenalty,
)
from faceprior.losses import path_length as path_length_module
from faceprior.nets import GPENDiscriminator, NoiseInjection, StyleGAN2Discriminator
from faceprior.nets.gpen import GPENStyleGenerator

# -- path-length penalty --------------------------------------------------------------------------


class _TinySynthesis(nn.Module):
    """A small nonlinear map from latents (B, L, D) to images (B, 2, 3, 3)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(11)
        self.weight = nn.Parameter(torch.randn(3 * 4, 2 * 3 * 3) * 0.5)

    def forward(self, latents: Tensor) -> Tensor:
        flat = latents.reshape(latents.shape[0], -1)
        return torch.tanh(flat @ self.weight).reshape(-1, 2, 3, 3) * flat.pow(2).sum(1).view(
            -1, 1, 1, 1
        )


def _reference_path_penalty(
    images: Tensor, latents: Tensor, mean_path_length: float | Tensor, decay: float
) -> tuple[Tensor, Tensor]:
    """The official formula written out by hand: ``(penalty, new running mean)``."""
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), latents, create_graph=True)
    lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
    path_mean = mean_path_length + decay * (lengths.mean() - mean_path_length)
    return (lengths - path_mean).pow(2).mean(), path_mean.detach()


def _two_steps(
    step: Callable[[Tensor, Tensor], Tensor], net: _TinySynthesis
) -> tuple[list[Tensor], list[Tensor]]:
    """Two seeded regularisation steps; returns the terms and the gradients of ``net.weight``."""
    terms, grads = [], []
    for seed in (5, 6):
        torch.manual_seed(seed)
        latents = torch.randn(4, 3, 4, requires_grad=True)
        term = step(net(latents), latents)
        (grad,) = torch.autograd.grad(term, net.weight)
        terms.append(term.detach())
        grads.append(grad)
    return terms, grads


def test_path_length_matches_the_official_formula() -> None:
    net = _TinySynthesis()
    module = PathLengthPenalty(weight=2.0, interval=4, decay=0.01)
    logs: list[dict[str, Tensor]] = []

    def ours(images: Tensor, latents: Tensor) -> Tensor:
        term, log = module(images, latents)
        logs.append(log)
        return term

    ref_mean: list[float | Tensor] = [0.0]

    def official(images: Tensor, latents: Tensor) -> Tensor:
        penalty, ref_mean[0] = _reference_path_penalty(images, latents, ref_mean[0], 0.01)
        return 2.0 * 4 * penalty + 0 * images[0, 0, 0, 0]

    terms, grads = _two_steps(ours, net)
    ref_terms, ref_grads = _two_steps(official, net)
    for a, b in zip(terms + grads, ref_terms + ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert float(module.mean_path_length) == pytest.approx(float(ref_mean[0]), rel=1e-6)
    assert float(module.mean_path_length) > 0 and terms[1] > 0
    torch.testing.assert_close(logs[1]["path_penalty"] * 8, terms[1])
    torch.testing.assert_close(logs[1]["mean_path_length"], module.mean_path_length)
    assert logs[0]["mean_path_length"] < logs[1]["mean_path_length"]
    assert "mean_path_length" in module.state_dict()


def test_path_length_gradient_flows_through_the_running_mean() -> None:
    """The official code does not detach the batch mean; detaching it changes the gradient."""
    net = _TinySynthesis()
    _, grads = _two_steps(lambda i, w: PathLengthPenalty(decay=0.5)(i, w)[0], net)

    def detached(images: Tensor, latents: Tensor) -> Tensor:
        noise = torch.randn_like(images) / 3.0
        (grad,) = torch.autograd.grad((images * noise).sum(), latents, create_graph=True)
        lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
        path_mean = 0.5 * lengths.mean().detach()
        return 2.0 * 4 * (lengths - path_mean).pow(2).mean()

    _, grads_detached = _two_steps(detached, net)
    assert not torch.allclose(grads[0], grads_detached[0], rtol=1e-3)


def test_path_length_sync_uses_the_global_mean_value_and_the_local_gradient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_all_reduce(tensor: Tensor, op: object = None) -> None:
        tensor.add_(3.0)  # the other rank's batch mean is 3

    monkeypatch.setattr(path_length_module, "_world_size", lambda: 2)
    monkeypatch.setattr(path_length_module.dist, "all_reduce", fake_all_reduce)
    local = torch.tensor(1.0, requires_grad=True)
    synced = PathLengthPenalty()._synced(local * 2)
    (grad,) = torch.autograd.grad(synced, local)
    assert float(synced.detach()) == pytest.approx(2.5) and float(grad) == pytest.approx(2.0)
    unsynced = PathLengthPenalty(sync_mean=False)._synced(local * 2)
    assert float(unsynced.detach()) == pytest.approx(2.0)


def test_path_length_batch_and_validation() -> None:
    assert PathLengthPenalty(batch_shrink=2).path_batch(8) == 4
    assert PathLengthPenalty(batch_shrink=2).path_batch(1) == 1
    assert PathLengthPenalty(batch_shrink=1).path_batch(5) == 5
    assert PathLengthPenalty(batch_shrink=3).path_batch(7) == 2
    bad = [
        ({"weight": -1.0}, "model.path_length.weight"),
        ({"interval": 0}, "model.path_length.interval"),
        ({"decay": 0.0}, "model.path_length.decay"),
        ({"decay": 1.5}, "model.path_length.decay"),
        ({"batch_shrink": 0}, "model.path_length.batch_shrink"),
    ]
    for kwargs, key in bad:
        with pytest.raises(ValueError, match=key):
            PathLengthPenalty(**kwargs)  # type: ignore[arg-type]
    PathLengthPenalty(weight=0.0, decay=1.0)


def test_path_length_on_the_gpen_generator_reaches_its_parameters() -> None:
    torch.manual_seed(0)
    g = GPENStyleGenerator(size=16, style_dim=16, n_mlp=1, narrow=0.0625)
    images, latents = g([torch.randn(2, 16)], return_latents=True)
    assert latents is not None
    term, logs = PathLengthPenalty()(images, latents)
    term.backward()
    assert torch.isfinite(term) and float(logs["path_length"]) > 0
    assert g.convs[0].conv.weight.grad is not None and g.style[1].weight.grad is not None


# -- identity (IR-SE-50, cosine) ------------------------------------------------------------------


class _Probe(nn.Module):
    """Records its input; embeds by pooling to 4x4 and L2-normalising."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach())
        return F.normalize(F.adaptive_avg_pool2d(x, 4).flatten(1), dim=1)


def _ctx(output: Tensor, gt: Tensor, **kwargs: object) -> GeneratorContext:
    return GeneratorContext(output, gt, [], 1, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def irse_loss() -> IdentityCosine:
    torch.manual_seed(0)
    return IdentityCosine(weight=1.0, weights_path=None)


def test_identity_cosine_crop_at_512_uses_the_official_integer_scale() -> None:
    probe = _Probe()
    loss = IdentityCosine(network=probe, pool_size=376)
    assert loss.crop_box(512) == (70, 446, 64, 440)
    assert loss.crop_box(256) == (35, 223, 32, 220)
    assert loss.crop_box(384) == (35, 351, 32, 348)  # s = 384 // 256 = 1, as officially
    rows = torch.arange(512.0).view(1, 1, 512, 1)
    cols = torch.arange(512.0).view(1, 1, 1, 512)
    image = (rows * 1000 + cols).expand(1, 3, 512, 512)
    pooled = loss.face_crop(image)  # pool size = crop size: the crop itself
    assert pooled.shape == (1, 3, 376, 376)
    assert float(pooled[0, 0, 0, 0]) == 70 * 1000 + 64
    assert float(pooled[0, 0, -1, -1]) == 445 * 1000 + 439


def test_identity_cosine_scales_the_crop_below_256_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = _Probe()
    loss = IdentityCosine(network=probe)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with caplog.at_level(logging.WARNING, logger="faceprior.losses.identity"):
        loss(_ctx(x, x))
        loss(_ctx(x, x))
    assert loss.crop_box(64) == (9, 56, 8, 55)  # 8.75, 8.25, 8, 9 rounded half up
    warnings = [r for r in caplog.records if "below reference_size" in r.getMessage()]
    assert len(warnings) == 1
    assert probe.seen[0].shape == (2, 3, 112, 112)
    torch.testing.assert_close(probe.seen[0], F.adaptive_avg_pool2d(x[:, :, 9:56, 8:55], 112))


def test_identity_cosine_value_and_gradients(irse_loss: IdentityCosine) -> None:
    torch.manual_seed(1)
    gt = torch.rand(2, 3, 64, 64) * 2 - 1
    assert float(irse_loss(_ctx(gt, gt.clone()))) == pytest.approx(0.0, abs=1e-6)
    out = (gt + 0.5 * torch.randn_like(gt)).clamp(-1, 1).requires_grad_(True)
    value = irse_loss(_ctx(out, gt))
    with torch.no_grad():
        a = irse_loss.network(irse_loss.face_crop(out))
        b = irse_loss.network(irse_loss.face_crop(gt))
    expected = (1 - (a * b).sum(1)).mean()
    assert 0 < float(value.detach()) < 2
    torch.testing.assert_close(value, expected)
    value.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in irse_loss.network.parameters())
    irse_loss.train()
    assert not irse_loss.network.training


def test_identity_cosine_errors(tmp_path: object) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.generator_losses\.identity\.weights_path"):
        IdentityCosine(weights_path="/nonexistent/model_ir_se50.pth")
    with pytest.raises(ValueError, match="crop"):
        IdentityCosine(network=_Probe(), crop=(1, 2, 3))
    with pytest.raises(ValueError, match="square"):
        IdentityCosine(network=_Probe()).face_crop(torch.zeros(1, 3, 64, 32))


# -- discriminator features, adversarial, feature matching ---------------------------------------


def _discriminators() -> list[nn.Module]:
    torch.manual_seed(3)
    return [
        StyleGAN2Discriminator(32, channel_multiplier=1, stddev_group=2, narrow=0.0625),
        GPENDiscriminator(32, channel_multiplier=1, narrow=0.0625),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_forward_features_logits_are_bit_identical(index: int) -> None:
    d = _discriminators()[index]
    x = torch.randn(4, 3, 32, 32)
    logits, feats = d.forward_features(x)
    assert torch.equal(logits, d(x))
    # 1x1 conv at 32, ResBlocks to 16, 8, 4, final conv
    assert [tuple(f.shape[1:]) for f in feats] == [
        (32, 32, 32),
        (32, 16, 16),
        (32, 8, 8),
        (32, 4, 4),
        (32, 4, 4),
    ]
    body = d.conv_body if index == 0 else d.convs
    torch.testing.assert_close(feats[0], body[0](x), rtol=0, atol=0)


def _counting(fn: Callable[[Tensor], tuple[Tensor, list[Tensor]]], calls: list[Tensor]) -> Callable:
    def wrapped(x: Tensor) -> tuple[Tensor, list[Tensor]]:
        calls.append(x)
        return fn(x)

    return wrapped


def test_adversarial_with_and_without_features_agree() -> None:
    d = _discriminators()[1]
    torch.manual_seed(4)
    out, gt = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    adv = Adversarial(weight=0.1)
    plain = adv(_ctx(out, gt, net_d=d))
    shared = adv(_ctx(out, gt, net_d=d, net_d_features=d.forward_features))
    assert torch.equal(plain, shared) and float(plain.detach()) > 0
    with pytest.raises(RuntimeError, match="discriminator"):
        adv(_ctx(out, gt))


def test_feature_matching_values_layers_and_sharing() -> None:
    d = _discriminators()[0]
    torch.manual_seed(5)
    gt = torch.randn(2, 3, 32, 32)
    out = (gt + 0.3 * torch.randn_like(gt)).requires_grad_(True)
    assert FeatureMatching()(_ctx(gt, gt.clone(), net_d_features=d.forward_features)).item() == 0

    calls: list[Tensor] = []
    ctx = _ctx(out, gt, net_d=d, net_d_features=_counting(d.forward_features, calls))
    adv_value = Adversarial()(ctx)
    fm_all = FeatureMatching(weight=0.02)(ctx)
    fm_l1 = FeatureMatching(weight=1.0, distance="l1", layers=[0, -1])(ctx)
    assert len(calls) == 2  # one fake and one real forward for all three terms
    assert calls[0] is out and calls[1] is gt
    assert float(adv_value.detach()) > 0

    with torch.no_grad():
        _, fake = d.forward_features(out)
        _, real = d.forward_features(gt)
    expected_all = 0.02 * sum(F.mse_loss(f, r) for f, r in zip(fake, real, strict=True))
    expected_l1 = F.l1_loss(fake[0], real[0]) + F.l1_loss(fake[-1], real[-1])
    torch.testing.assert_close(fm_all, expected_all)
    torch.testing.assert_close(fm_l1, expected_l1)
    assert float(fm_all.detach()) > 0 and float(fm_l1.detach()) > 0

    assert not any(f.requires_grad for f in ctx.main_d("real")[1])
    fm_all.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_feature_matching_errors() -> None:
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(RuntimeError, match="net_d_features"):
        FeatureMatching()(_ctx(x, x, net_d=_discriminators()[0]))
    with pytest.raises(ValueError, match=r"model\.generator_losses\.feature_matching\.distance"):
        FeatureMatching(distance="l2")
    d = _discriminators()[1]
    with pytest.raises(IndexError, match="layers"):
        FeatureMatching(layers=[7])(_ctx(x, x, net_d_features=d.forward_features))
    with pytest.raises(ValueError, match="fake"):
        _ctx(x, x, net_d_features=d.forward_features).main_d("both")


def test_component_cache_keys_still_work_next_to_the_main_d() -> None:
    d = _discriminators()[1]
    x = torch.randn(2, 3, 32, 32)

    class _Component(nn.Module):
        def forward(self, x: Tensor, return_feats: bool = False) -> tuple[Tensor, list[Tensor]]:
            return x.mean((1, 2, 3)), [x]

    crops = {"mouth": (x[:, :, :8, :8], x[:, :, 8:16, 8:16])}
    ctx = _ctx(x, x, net_d_features=d.forward_features, component_ds={"mouth": _Component()})
    ctx.crops = crops
    ctx.main_d("fake")
    assert ctx.run_component("mouth", "real")[1][0] is crops["mouth"][1]
    assert ("mouth", "real") in ctx._cache and len(ctx._cache) == 2


# -- GPEN concat generator with fresh noise -------------------------------------------------------


def test_noise_injection_draws_noise_with_the_input_channels() -> None:
    torch.manual_seed(6)
    x = torch.zeros(2, 5, 4, 4)
    for isconcat in (True, False):
        inj = NoiseInjection(isconcat=isconcat)
        with torch.no_grad():
            inj.weight.fill_(1.0)
        out = inj(x)
        noise = out[:, 5:] if isconcat else out
        assert out.shape == ((2, 10, 4, 4) if isconcat else (2, 5, 4, 4))
        assert noise.shape == (2, 5, 4, 4)
        assert not torch.equal(noise[:, 0], noise[:, 1])  # a distinct draw per channel


def test_concat_gpen_generator_runs_with_fresh_noise() -> None:
    torch.manual_seed(7)
    g = GPENStyleGenerator(size=32, style_dim=32, n_mlp=2, narrow=0.25, isconcat=True)
    image, latent = g([torch.randn(2, 32)])
    assert image.shape == (2, 3, 32, 32) and latent is None
    assert torch.isfinite(image).all()
    torch.manual_seed(8)
    with torch.no_grad():
        for conv in [g.conv1, *g.convs]:
            conv.noise.weight.fill_(1.0)
    z = torch.randn(2, 32)
    a, _ = g([z])
    b, _ = g([z])
    assert not torch.equal(a, b)  # the noise is drawn afresh and reaches the image
