"""The JPEG op: quality rounding per preset (official samplers), codec back ends, CUDA batching.

Official behaviour the presets follow (official-models.md §6):

- GFP-GAN (BasicSR ``random_add_jpg_compression``) passes ``q ~ U[60, 100)`` as a float to
  ``cv2.imencode``; the OpenCV of 2021 rounded it to nearest, so the official qualities are the
  integers 60..100 with 60 and 100 at half weight (``quality_rounding="round"``);
- GPEN (and CodeFormer's ``FFHQBlindDataset`` since 2024-10) call ``int(q)``: 60..99 uniform
  (``quality_rounding="truncate"``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import stats

from faceprior.degradation import JPEG, Context, Degradation
from faceprior.degradation.ops import host_libjpeg_roundtrip, libjpeg_roundtrip
from tests.test_degradation import assert_close_up_to_level_flips

REPO = Path(__file__).resolve().parents[1]
GT_DIR = REPO.parent / "shared" / "reference" / "metrics" / "pairs" / "gt"
N_DRAWS = 4000
P_MIN = 1e-3  # fixed seeds: deterministic; this only guards against a real mismatch
LEVELS = np.arange(60, 101)

#: nvJPEG (as torchvision 0.29 drives it) encodes 4:4:4 where libjpeg encodes 4:2:0. On the 10 real
#: faces, libjpeg 4:4:4 vs 4:2:0 alone is 28.3-41.3 dB apart (min over faces; 64-512 px, q 30-100,
#: measured on CPU with PIL); nvJPEG's own DCT and colour conversion add a little.
NVJPEG_MIN_PSNR = 26.0


def official_rounded() -> np.ndarray:
    """P(q) for q = 60..100 when U[60, 100) is rounded to nearest (GFP-GAN with 2021 OpenCV)."""
    p = np.full(len(LEVELS), 1 / 40)
    p[0] = p[-1] = 1 / 80
    return p


def truncated() -> np.ndarray:
    """P(q) for q = 60..100 under ``int(q)`` (GPEN, CodeFormer): 60..99 uniform, never 100."""
    p = np.full(len(LEVELS), 1 / 40)
    p[-1] = 0.0
    return p


def pearson_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """Chi-square goodness-of-fit p-value; 0 if a level of probability 0 was drawn."""
    expected = counts.sum() * probs
    if np.any((expected == 0) & (counts > 0)):
        return 0.0
    mask = expected > 0
    stat = float(((counts[mask] - expected[mask]) ** 2 / expected[mask]).sum())
    return float(stats.chi2.sf(stat, int(mask.sum()) - 1))


def draw_qualities(op: JPEG, n: int = N_DRAWS) -> np.ndarray:
    qs = [op.sample(torch.Generator().manual_seed(i))["quality"] for i in range(n)]
    return np.asarray(qs)


def counts_of(qualities: np.ndarray) -> np.ndarray:
    return np.asarray([np.sum(qualities == q) for q in LEVELS])


def test_round_is_the_official_gfpgan_distribution() -> None:
    qs = draw_qualities(JPEG(quality=(60, 100), quality_rounding="round"))
    assert set(np.unique(qs)) <= set(LEVELS.tolist()) and np.all(qs == np.round(qs))
    counts = counts_of(qs)
    n = len(qs)
    # q = 100 appears, about 1/80 of the draws; 60 at half the weight of an inner level
    assert counts[-1] > 0
    for level, idx in ((100, -1), (60, 0)):
        p = stats.binomtest(int(counts[idx]), n, 1 / 80).pvalue
        print(f"round: q={level} {counts[idx]}/{n} (expected {n / 80:.0f}), binomial p={p:.3f}")
        assert p > P_MIN
    inner = counts[1:-1].mean()
    assert 0.3 < counts[0] / inner < 0.7 and 0.3 < counts[-1] / inner < 0.7
    p_official, p_trunc = pearson_p(counts, official_rounded()), pearson_p(counts, truncated())
    print(f"round: chi2 p vs official rounded {p_official:.3f}, vs truncation {p_trunc:.2g}")
    assert p_official > P_MIN
    assert p_trunc < 1e-6


def test_truncate_is_uniform_over_60_to_99() -> None:
    qs = draw_qualities(JPEG(quality=(60, 100), quality_rounding="truncate"))
    assert qs.min() == 60 and qs.max() == 99  # never 100
    counts = counts_of(qs)
    p_trunc, p_official = pearson_p(counts, truncated()), pearson_p(counts, official_rounded())
    print(f"truncate: chi2 p vs uniform 60..99 {p_trunc:.3f}, vs rounded {p_official:.2g}")
    assert p_trunc > P_MIN
    assert p_official < 1e-6


def test_rounding_does_not_change_the_other_draws() -> None:
    """Both roundings consume the generator identically: only the quality can differ, by <= 1."""
    a, b = JPEG(quality_rounding="round"), JPEG(quality_rounding="truncate")
    for seed in range(200):
        pa = a.sample(torch.Generator().manual_seed(seed))
        pb = b.sample(torch.Generator().manual_seed(seed))
        assert pa["applied"] == pb["applied"] and pa["quality"] - pb["quality"] in (0.0, 1.0)


def _preset(name: str) -> Degradation:
    deg = hydra.utils.instantiate(OmegaConf.load(REPO / "conf" / "degradation" / f"{name}.yaml"))
    assert isinstance(deg, Degradation)
    return deg


@pytest.mark.parametrize(
    "name,rounding,levels,cuda_codec",
    [
        # published presets: the official 4:2:0 libjpeg codec on CUDA too
        ("gfpgan_v1", "round", (60, 100), "libjpeg"),  # BasicSR's float through the 2021 OpenCV
        ("gpen_simple", "truncate", (60, 99), "libjpeg"),  # GPEN: int(q)
        ("codeformer", "truncate", (30, 79), "libjpeg"),  # CodeFormer FFHQBlindDataset: int(jpeg_p)
        ("mild", "round", (70, 100), "nvjpeg"),  # ours, on the GFP-GAN v1 chain
        ("severe", "truncate", (10, 59), "nvjpeg"),  # ours, GPEN/CodeFormer lineage
    ],
)
def test_presets_use_the_real_codec_and_their_rounding(
    name: str, rounding: str, levels: tuple[int, int], cuda_codec: str
) -> None:
    op = _preset(name).ops["jpeg"]
    assert isinstance(op, JPEG)
    assert op.impl == "codec" and op.cuda_codec == cuda_codec
    assert op.quality_rounding == rounding
    qs = draw_qualities(op, 2000)
    assert (qs.min(), qs.max()) == levels


def test_default_impl_is_the_codec_and_auto_is_rejected_by_name() -> None:
    assert JPEG().impl == "codec"
    cfg = OmegaConf.load(REPO / "conf" / "degradation" / "gfpgan_v1.yaml")
    cfg.ops.jpeg.impl = "auto"
    with pytest.raises(Exception) as info:
        hydra.utils.instantiate(cfg)
    text = str(info.value)
    assert "ops.jpeg" in text and "impl='auto'" in text
    assert "'codec'" in text and "'differentiable'" in text
    cfg.ops.jpeg.impl = "codec"
    cfg.ops.jpeg.quality_rounding = "floor"
    with pytest.raises(Exception, match="quality_rounding must be one of"):
        hydra.utils.instantiate(cfg)


# --------------------------------------------------------------------------------------------------
# Codec back ends
# --------------------------------------------------------------------------------------------------
def _faces(side: int | None = None) -> torch.Tensor:
    files = sorted(GT_DIR.glob("*.png"))
    assert len(files) == 10, f"expected 10 reference faces in {GT_DIR}"
    rgb = [cv2.imread(str(f), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for f in files]
    x = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in rgb]).float() / 255.0
    if side is not None:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
    return x


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.mark.real_data
@pytest.mark.parametrize("side", [512, 97])
def test_cpu_codec_is_opencvs_codec_bit_for_bit(side: int) -> None:
    """torchvision's libjpeg and ``cv2.imencode``/``imdecode`` (integer DCT both): equal 8-bit output."""
    faces = _faces(side)
    for q in (30, 61, 95, 100):
        ours = libjpeg_roundtrip(list(faces), [q] * len(faces))
        for img, out in zip(faces, ours, strict=True):
            bgr = np.ascontiguousarray(
                (img * 255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1]
            )
            ok, enc = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), q])
            assert ok
            ref = torch.from_numpy(cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].copy())
            assert torch.equal((out * 255).round().byte(), ref.permute(2, 0, 1))


def test_host_libjpeg_roundtrip_equals_libjpeg() -> None:
    """The batched-transfer back end (used for CUDA tensors) on CPU tensors: the same result."""
    torch.manual_seed(0)
    images = [torch.rand(3, h, w) for h, w in ((17, 23), (64, 64), (40, 9))]
    qualities = [35, 90, 61]
    for a, b in zip(
        host_libjpeg_roundtrip(images, qualities),
        libjpeg_roundtrip(images, qualities),
        strict=True,
    ):
        assert torch.equal(a, b)  # the same uint8 codec on the same input


# --------------------------------------------------------------------------------------------------
# CUDA (skipped without a device)
# --------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.real_data
@pytest.mark.parametrize("side", [512, 128])
def test_cuda_nvjpeg_is_close_to_cpu_libjpeg(side: int) -> None:
    faces = _faces(side)
    op = JPEG()  # impl codec, cuda_codec nvjpeg
    for q in (30, 60, 90, 100):
        cpu = torch.stack(op.codec(list(faces), [q] * len(faces)))
        out = op.codec(list(faces.cuda()), [q] * len(faces))
        assert all(t.is_cuda for t in out)
        gpu = torch.stack(out).cpu()
        assert gpu.shape == cpu.shape
        values = [psnr(g, c) for g, c in zip(gpu, cpu, strict=True)]
        mad = float((gpu - cpu).abs().mean()) * 255
        print(f"{side}px q={q}: nvJPEG vs libjpeg PSNR min {min(values):.1f} dB, MAD {mad:.2f}")
        assert min(values) >= NVJPEG_MIN_PSNR and mad <= 5.0


@pytest.mark.gpu
def test_cuda_libjpeg_back_end_equals_cpu() -> None:
    torch.manual_seed(1)
    images = [torch.rand(3, h, w) for h, w in ((31, 47), (64, 64), (8, 120))]
    qualities = [30, 77, 100]
    op = JPEG(cuda_codec="libjpeg")
    cpu = op.codec(images, qualities)
    gpu = op.codec([t.cuda() for t in images], qualities)
    for a, b in zip(cpu, gpu, strict=True):
        assert b.is_cuda and torch.equal(a, b.cpu())  # uint8 codec, IEEE float ops around it


def _count_syncs(fn: Callable[[], None]) -> int:
    """Synchronising host<->device operations issued through torch while ``fn()`` runs."""
    fn()  # warm-up: nvJPEG handles, encoder/decoder state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


@pytest.mark.gpu
@pytest.mark.parametrize("packed", [False, True])
def test_cuda_codec_host_transfers_do_not_grow_with_the_batch(packed: bool) -> None:
    """No per-image host round trip in our code: the same number of synchronising transfers for 2
    images at one quality and for 12 images at 12 qualities (bitstreams: one copy for all)."""
    op = JPEG(quality=(30, 100))

    def run(n: int, qualities: list[float]) -> None:
        x = torch.rand(n, 3, 64, 64, device="cuda")
        p = {"applied": torch.ones(n, dtype=torch.float64), "quality": torch.tensor(qualities)}
        ctx = Context(gt=x, size=(64, 64))
        if packed:
            sizes = torch.tensor([[64 - 3 * j, 40 + 2 * j] for j in range(n)])
            op.degrade_packed(x, p, ctx, torch.arange(n), sizes)
        else:
            op.degrade(x, p, ctx, torch.arange(n))

    small = _count_syncs(lambda: run(2, [70.0, 70.0]))
    large = _count_syncs(lambda: run(12, [float(30 + 6 * j) for j in range(12)]))
    print(f"synchronising transfers: batch 2 -> {small}, batch 12 -> {large}")
    assert small == large <= 4


@pytest.mark.gpu
def test_cuda_codec_pipeline_canvas_and_groups() -> None:
    """gfpgan_v1 as configured (codec, nvJPEG) on CUDA: deterministic, canvas == groups up to
    float rounding and the 8-bit flips it can cause."""
    torch.manual_seed(3)
    gt = F.interpolate(torch.rand(8, 3, 16, 16), size=128, mode="bicubic").clamp(0, 1).cuda()
    deg = _preset("gfpgan_v1")
    seeds = list(range(500, 508))
    deg.packing = "canvas"
    a, _, _ = deg(gt, seeds)
    b, _, _ = deg(gt, seeds)
    assert a.is_cuda and torch.equal(a, b)  # same call, same shapes, same device
    deg.packing = "groups"
    g, _, _ = deg(gt, seeds)
    assert_close_up_to_level_flips(a.cpu(), g.cpu())
