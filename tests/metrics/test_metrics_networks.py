"""LPIPS, FID, identity and LMD end to end with random networks saved under the real file names,
and the documented error when a file is missing."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from torch import nn

from faceprior.metrics import FID, LPIPS, IdentityDistance, LandmarkDistance
from faceprior.metrics.frechet import frechet_distance, load_reference_stats, save_reference_stats
from faceprior.metrics.weights import MissingWeightsError

MISSING = {
    "lpips": (
        lambda d: LPIPS(net="vgg", weights_dir=d),
        "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
    ),
    "fid": (
        lambda d: FID(weights_dir=d),
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/",
    ),
    "idd": (
        lambda d: IdentityDistance(weights_dir=d),
        "arcface_resnet18.pth",
        "https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth",
    ),
    "idd_vqfr": (
        lambda d: IdentityDistance(weights="resnet18_110", weights_dir=d),
        "resnet18_110.pth",
        "https://drive.google.com/drive/folders/1k3RCSliF6PsujCMIdCD1hNM63EozlDIZ",
    ),
    "lmd": (
        lambda d: LandmarkDistance(weights_dir=d),
        "alignment_WFLW_4HG.pth",
        "https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth",
    ),
}

#: the random networks in fake_weights_dir fail the registered hashes, by design
pytestmark = pytest.mark.filterwarnings("ignore:.*does not match the registered SHA-256")


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_weights_message(name, tmp_path):
    build, filename, url = MISSING[name]
    with pytest.raises(MissingWeightsError) as info:
        build(tmp_path)
    message = str(info.value)
    assert filename in message and url in message and str(tmp_path) in message


def test_missing_fid_reference_statistics(fake_weights_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("inception_FFHQ_512-f7b384ab.pth")):
        FID(reference_stats="inception_FFHQ_512", weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape("stats.pth")):
        FID(reference_stats=tmp_path / "stats.pth", weights_dir=fake_weights_dir)


@pytest.fixture(scope="module")
def batch(synthetic_pairs, unit_rgb):
    restored = unit_rgb([r for r, _ in synthetic_pairs[:3]])
    gt = unit_rgb([g for _, g in synthetic_pairs[:3]])
    return restored, gt


def test_lpips_end_to_end(fake_weights_dir, batch):
    restored, gt = batch
    with pytest.warns(UserWarning, match="does not match the registered SHA-256"):
        metric = LPIPS(net="alex", weights_dir=fake_weights_dir)
    per_image = metric.per_image(restored, gt)
    assert per_image.shape == (3,) and bool((per_image > 0).all())
    assert torch.equal(metric.per_image(gt, gt), torch.zeros(3, dtype=torch.float64))
    metric.update(restored[:2], gt[:2])
    metric.update(restored[2:], gt[2:])
    assert float(metric.compute()) == pytest.approx(float(per_image.mean()), rel=1e-6)
    record = metric.protocol()
    assert record["backbone"]["file"] == "alexnet-owt-7be5be79.pth"
    assert record["backbone"]["verified"] is False  # random weights: hash prefix fails
    assert record["heads"]["sha256"].startswith("df73285e")
    assert list(metric.parameters()) == []  # the network is not part of the LightningModule
    assert not any("slice" in k or "lin" in k for k in metric.state_dict())
    random_metric = LPIPS(net="vgg", random_backbone=True)
    assert random_metric.protocol()["backbone"] == "random (untrained)"


def test_fid_end_to_end_with_inception(fake_weights_dir, batch):
    restored, gt = batch
    metric = FID(reference_stats="inception_FFHQ_512", weights_dir=fake_weights_dir)
    assert not metric.full_reference
    metric.update(restored[:2])
    metric.update(gt)
    feats = metric.features(torch.cat([restored[:2], gt]))
    assert feats.shape == (5, 2048) and int(metric.pred_count) == 5
    mean, _ = metric.gaussian("pred")
    assert float(metric.compute()) > float(mean @ mean)  # Frechet math: golden tests
    record = metric.protocol()
    assert record["feature_extractor"]["file"].startswith("pt_inception")
    assert record["reference"]["name"] == "inception_FFHQ_512"
    assert len(record["reference"]["sha256"]) == 64 and record["num_images"] == 5


class TinyFeatures(nn.Module):
    """A deterministic 8-d feature extractor (channel means and standard deviations...)."""

    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        return self.proj(stats)


def test_fid_matches_numpy_on_injected_features(batch, tmp_path):
    restored, gt = batch
    torch.manual_seed(0)  # the weights and images, whatever ran before
    extractor = TinyFeatures()
    metric = FID(feature_extractor=extractor)
    more = torch.rand(5, 3, 32, 32)
    metric.update(more, torch.rand(5, 3, 32, 32))
    metric.update(restored[:, :, :32, :32], gt[:, :, :32, :32])
    feats = metric.features(torch.cat([more, restored[:, :, :32, :32]])).numpy()
    mean, cov = metric.gaussian("pred")
    # The features depend on the batch split through float32 GEMM rounding (kernel choice per
    # batch size and CPU), i.e. by ulps of the feature SCALE: a relative tolerance alone fails
    # on a mean near 0 (2 of 300 weight seeds on one CPU), so the floor is scale * 1e-6 / 1e-5
    # (8 / 80 float32 ulps; 3% / <1% of it used over those seeds, also with AVX2 kernels).
    scale = float(np.abs(feats).max())
    np.testing.assert_allclose(mean, feats.mean(0), rtol=1e-6, atol=1e-6 * scale)
    cov_floor = 1e-5 * scale**2
    np.testing.assert_allclose(cov, np.cov(feats, rowvar=False), rtol=1e-5, atol=cov_floor)
    # 8 samples in 8 dimensions: cov is singular, and the Frechet distance takes square roots of
    # eigenvalues that are 0 up to rounding, so a change eps there shows as sqrt(eps), first order:
    # the float32 batch-split noise above gives |FID| up to 3e-8 * tr(cov) (100 weight seeds,
    # simulated CPUs; this seed: 1e-8 * tr), and float64 LAPACK rounding (kernels per CPU) up to
    # 1.2e-9 relative below. A 1/n instead of 1/(n - 1) covariance would give 4e-3 * tr(cov).
    zero_tol = 1e-7 * float(np.trace(cov))
    for suffix in ("pth", "npz"):
        path = save_reference_stats(tmp_path / f"ref.{suffix}", mean, cov, "mine", 8)
        loaded = load_reference_stats(path)
        assert loaded.name == "mine" and loaded.num_images == 8
        against = FID(reference_stats=path, feature_extractor=extractor)
        against.add_features(torch.from_numpy(feats[:4]))
        against.add_features(torch.from_numpy(feats[4:]))
        assert float(against.compute()) == pytest.approx(0.0, abs=zero_tol)
        assert against.ref_outer.numel() == 0  # no reference states with a statistics file
        with pytest.raises(ValueError, match="statistics file"):
            against.add_features(torch.from_numpy(feats), "ref")
    other = np.random.default_rng(1).normal(size=(20, 8))
    against.reset()
    against.add_features(torch.from_numpy(other))
    expected = frechet_distance(*(other.mean(0), np.cov(other, rowvar=False)), mean, cov)
    assert float(against.compute()) == pytest.approx(expected, rel=1e-8)
    versus_target = FID(feature_extractor=extractor)  # no statistics: the targets are the reference
    assert versus_target.full_reference
    versus_target.update(restored, gt)
    versus_target.update(gt, restored)
    assert float(versus_target.compute()) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="dimensions"):
        FID(reference_stats=path, feature_extractor=nn.Sequential(nn.Flatten(), nn.LazyLinear(3)))


def test_fid_reads_pytorch_fid_npz(tmp_path):
    np.savez(tmp_path / "s.npz", mu=np.ones(4), sigma=np.eye(4))
    stats = load_reference_stats(tmp_path / "s.npz")
    assert stats.name == "s" and stats.mean.tolist() == [1, 1, 1, 1]


def test_identity_end_to_end(fake_weights_dir, batch):
    restored, gt = batch
    metric = IdentityDistance(weights_dir=fake_weights_dir)  # module.-prefixed file loads
    angles = metric.per_image(restored, gt)
    assert angles.shape == (3,) and bool(((angles >= 0) & (angles <= 180)).all())
    metric.update(restored, gt)
    metric.update(gt, gt)  # identical pairs: 0 degrees, excluded by the VQFR rule
    values = metric.compute_all()
    assert int(values["idd_excluded"]) == 3
    assert float(values["idd"]) == pytest.approx(float(angles.mean()), rel=1e-9)
    assert float(values["idd_all"]) == pytest.approx(float(angles.sum() / 6), rel=1e-9)
    assert metric.protocol()["network"]["file"] == "arcface_resnet18.pth"


def test_identity_injected_network_and_plain_mean(batch):
    from faceprior.nets.arcface import ArcFaceResNet18

    restored, gt = batch
    metric = IdentityDistance(network=ArcFaceResNet18(), exclude_below_deg=0.0)
    metric.update(restored, gt)
    metric.update(gt, gt)
    assert float(metric.compute()) == pytest.approx(float(metric.compute_all()["idd_all"]))
    clone = metric.clone()  # clones share the frozen network, not its weights in state_dict
    assert clone._network is metric._network
    assert all(not k.startswith("_network") for k in copy.deepcopy(metric).state_dict())


def test_landmark_distance_end_to_end(fake_weights_dir, batch):
    restored, gt = batch
    metric = LandmarkDistance(weights_dir=fake_weights_dir)
    landmarks = metric.landmarks(gt[:1])
    assert landmarks.shape == (1, 98, 2)
    assert (landmarks >= 0).all() and (landmarks <= 128).all()  # pixels of the 128x128 input
    metric.update(restored[:1], gt[:1])
    assert float(metric.compute()) >= 0.0 and int(metric.count) == 1
    assert float(metric.per_image(gt[:1], gt[:1])[0]) == 0.0
