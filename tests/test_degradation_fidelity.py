"""Fidelity of the batched degradation to the official per-image OpenCV/numpy pipelines.

The reference below is written here from the specification (official-models.md §6 and BasicSR's
``basicsr/data/degradations.py`` semantics: ``mesh_grid``/``sigma_matrix2``/``pdf2`` kernels,
``random_mixed_kernels``, ``cv2.filter2D``, ``cv2.resize(INTER_LINEAR)``, Gaussian noise in 8-bit
units, ``cv2.imencode`` JPEG at an integer quality, resize back), on BGR images as the official code
reads them. It shares no code with ``faceprior.degradation``. GFP-GAN passes BasicSR's float quality
to OpenCV, which (<= 4.5.4, the versions that accept it) rounds it to nearest: the official sampler
below rounds.

- kernels: same σ/θ/β ⇒ same kernel to 1e-6, every family and several sizes;
- sampled parameters: Kolmogorov-Smirnov / chi-square / binomial tests of the ``gfpgan_v1`` preset
  against the official samplers (10k draws each);
- the blur → down → noise → JPEG → up chain with fixed parameters (and identical noise: the test
  feeds our per-sample noise field to the reference) on the real faces of
  ``../shared/reference/metrics/pairs/gt``, with the codec and the differentiable JPEG;
- seeded reproducibility (calls, batch order, batch size, packing mode; CUDA when available).

Bit equality is asserted only where the code guarantees it: repeated calls on the same shapes,
pure data movement (gathers, padding, copies) and the float64 parameter draws. Results of the same
sample computed in another batch composition or layout are compared with a tolerance (see
:func:`tests.test_degradation.assert_close_up_to_level_flips`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import stats

from faceprior.degradation import (
    JPEG,
    KERNEL_TYPES,
    ColorJitter,
    ColorShift,
    Degradation,
    GaussianNoise,
    Grayscale,
    RandomBlur,
    RandomResize,
    ResizeBack,
    bivariate_kernels,
    bucket_by_size,
    edge_pad,
    noise_field,
    resample_bilinear,
)
from tests.test_degradation import assert_close_up_to_level_flips

REPO = Path(__file__).resolve().parents[1]
GT_DIR = REPO.parent / "shared" / "reference" / "metrics" / "pairs" / "gt"
N_DRAWS = 10_000
P_MIN = 1e-3  # fixed seeds: the tests are deterministic; this only guards against a real mismatch


def preset(name: str, **jpeg: Any) -> Degradation:
    cfg = OmegaConf.load(REPO / "conf" / "degradation" / f"{name}.yaml")
    if jpeg:
        cfg.ops.jpeg.update(jpeg)
    deg = hydra.utils.instantiate(cfg)
    assert isinstance(deg, Degradation)
    return deg


# --------------------------------------------------------------------------------------------------
# Reference: BasicSR kernel semantics, written from the spec
# --------------------------------------------------------------------------------------------------
def mesh_grid(kernel_size: int) -> np.ndarray:
    ax = np.arange(-kernel_size // 2 + 1.0, kernel_size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    n = kernel_size * kernel_size
    return np.hstack((xx.reshape((n, 1)), yy.reshape(n, 1))).reshape(kernel_size, kernel_size, 2)


def sigma_matrix2(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    d_matrix = np.array([[sig_x**2, 0], [0, sig_y**2]])
    u_matrix = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return np.dot(u_matrix, np.dot(d_matrix, u_matrix.T))


def _quad(sigma_matrix: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.sum(np.dot(grid, np.linalg.inv(sigma_matrix)) * grid, 2)


def _sigma(sig_x: float, sig_y: float, theta: float, isotropic: bool) -> np.ndarray:
    if isotropic:
        return np.array([[sig_x**2, 0], [0, sig_x**2]])
    return sigma_matrix2(sig_x, sig_y, theta)


def bivariate_gaussian_ref(k: int, sx: float, sy: float, theta: float, iso: bool) -> np.ndarray:
    kernel = np.exp(-0.5 * _quad(_sigma(sx, sy, theta, iso), mesh_grid(k)))
    return kernel / np.sum(kernel)


def bivariate_generalized_ref(
    k: int, sx: float, sy: float, theta: float, beta: float, iso: bool
) -> np.ndarray:
    kernel = np.exp(-0.5 * np.power(_quad(_sigma(sx, sy, theta, iso), mesh_grid(k)), beta))
    return kernel / np.sum(kernel)


def bivariate_plateau_ref(
    k: int, sx: float, sy: float, theta: float, beta: float, iso: bool
) -> np.ndarray:
    kernel = np.reciprocal(np.power(_quad(_sigma(sx, sy, theta, iso), mesh_grid(k)), beta) + 1)
    return kernel / np.sum(kernel)


def reference_kernel(
    kind: str, k: int, sx: float, sy: float, theta: float, beta: float
) -> np.ndarray:
    iso = kind.endswith("iso") and not kind.endswith("aniso")
    if kind in ("iso", "aniso"):
        return bivariate_gaussian_ref(k, sx, sy, theta, iso)
    if kind.startswith("generalized"):
        return bivariate_generalized_ref(k, sx, sy, theta, beta, iso)
    return bivariate_plateau_ref(k, sx, sy, theta, beta, iso)


@pytest.mark.parametrize("kind", KERNEL_TYPES)
@pytest.mark.parametrize("k", [7, 21, 41])
def test_kernels_match_basicsr(kind: str, k: int) -> None:
    rng = np.random.default_rng(k * 10 + KERNEL_TYPES.index(kind))
    iso = kind.endswith("iso") and not kind.endswith("aniso")
    for _ in range(6):
        sx = float(rng.uniform(0.1, 10))
        sy = sx if iso else float(rng.uniform(0.1, 10))
        theta = 0.0 if iso else float(rng.uniform(-math.pi, math.pi))
        beta = float(rng.uniform(0.5, 4.0))
        ours = bivariate_kernels(
            k,
            torch.tensor([sx], dtype=torch.float64),
            torch.tensor([sy], dtype=torch.float64),
            torch.tensor([theta], dtype=torch.float64),
            torch.tensor([KERNEL_TYPES.index(kind)]),
            torch.tensor([beta], dtype=torch.float64),
        )[0].numpy()
        ref = reference_kernel(kind, k, sx, sy, theta, beta)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Sampled parameter distributions vs the official samplers
# --------------------------------------------------------------------------------------------------
def official_gfpgan_v1_draws(n: int, seed: int) -> dict[str, np.ndarray]:
    """Parameters drawn as FFHQDegradationDataset + basicsr degradations do (no images)."""
    py = random.Random(seed)
    rs = np.random.RandomState(seed)
    tg = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {
        k: []
        for k in [
            "aniso",
            "sigma_x",
            "sigma_y",
            "theta",
            "scale",
            "noise",
            "quality",
            "shift_applied",
            "shift",
            "gray",
            "jitter_applied",
            "brightness",
            "contrast",
            "saturation",
            "hue",
            "order",
        ]
    }
    for _ in range(n):
        kind = py.choices(["iso", "aniso"], [0.5, 0.5])[0]  # random_mixed_kernels
        sx = rs.uniform(0.1, 10)
        if kind == "aniso":
            sy, theta = rs.uniform(0.1, 10), rs.uniform(-math.pi, math.pi)
        else:
            sy, theta = sx, 0.0
        out["aniso"].append(float(kind == "aniso"))
        out["sigma_x"].append(sx)
        out["sigma_y"].append(sy)
        out["theta"].append(theta)
        out["scale"].append(rs.uniform(0.8, 8))
        out["noise"].append(rs.uniform(0, 20))  # random_generate_gaussian_noise, 8-bit units
        rs.uniform()  # gray-noise draw (gray_prob 0)
        # BasicSR passes the float to cv2.imencode; OpenCV <= 4.5.4 rounded it (cvRound: to nearest,
        # ties to even like np.rint) -> 60..100 with both ends at half weight
        out["quality"].append(int(np.rint(rs.uniform(60, 100))))
        shift = rs.uniform() < 0.3
        out["shift_applied"].append(float(shift))
        if shift:
            out["shift"].extend(rs.uniform(-20 / 255, 20 / 255, 3) * 255)
        out["gray"].append(float(rs.uniform() < 0.01))
        jitter = rs.uniform() < 0.3
        out["jitter_applied"].append(float(jitter))
        if jitter:  # color_jitter_pt: a random order, each factor drawn once
            order = torch.randperm(4, generator=tg).tolist()
            out["order"].append(order[0] * 64 + order[1] * 16 + order[2] * 4 + order[3])
            for name, (lo, hi) in (
                ("brightness", (0.5, 1.5)),
                ("contrast", (0.5, 1.5)),
                ("saturation", (0.0, 1.5)),
                ("hue", (-0.1, 0.1)),
            ):
                out[name].append(float(torch.empty(()).uniform_(lo, hi, generator=tg)))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def our_gfpgan_v1_draws(n: int) -> dict[str, np.ndarray]:
    drawn = preset("gfpgan_v1").sample(range(n))

    def col(op: str, key: str, where: Callable[[dict[str, Any]], bool] | None = None) -> np.ndarray:
        return np.asarray([d[op][key] for d in drawn if where is None or where(d)])

    aniso = col("blur", "kind") == KERNEL_TYPES.index("aniso")

    def shifted(d: dict[str, Any]) -> bool:
        return d["color_shift"]["applied"] > 0

    def jittered(d: dict[str, Any]) -> bool:
        return d["color_jitter"]["applied"] > 0

    return {
        "aniso": aniso.astype(np.float64),
        "sigma_x": col("blur", "sigma_x"),
        "sigma_y": col("blur", "sigma_y"),
        "theta": col("blur", "theta"),
        "scale": col("downsample", "scale"),
        "noise": col("noise", "sigma"),
        "quality": col("jpeg", "quality"),
        "shift_applied": col("color_shift", "applied"),
        "shift": np.concatenate([col("color_shift", c, shifted) for c in "rgb"]),
        "gray": col("gray", "applied"),
        "jitter_applied": col("color_jitter", "applied"),
        "order": col("color_jitter", "order", jittered),
        **{
            k: col("color_jitter", k, jittered)
            for k in ("brightness", "contrast", "saturation", "hue")
        },
    }


@pytest.fixture(scope="module")
def draws() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return our_gfpgan_v1_draws(N_DRAWS), official_gfpgan_v1_draws(N_DRAWS, seed=12345)


CONTINUOUS = [
    "sigma_x",
    "sigma_y|aniso",
    "theta|aniso",
    "scale",
    "noise",
    "shift",
    "brightness",
    "contrast",
    "saturation",
    "hue",
]


@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_parameters_match_official_ks(
    draws: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], name: str
) -> None:
    ours, ref = draws
    key, _, cond = name.partition("|")
    a, b = ours[key], ref[key]
    if cond:  # σy and θ are only random for anisotropic kernels (iso: σy = σx, θ = 0 in both)
        a, b = a[ours[cond] > 0], b[ref[cond] > 0]
        assert np.all(ours["sigma_y"][ours[cond] == 0] == ours["sigma_x"][ours[cond] == 0])
        assert np.all(ours["theta"][ours[cond] == 0] == 0)
    result = stats.ks_2samp(a, b)
    print(f"KS {name}: n={len(a)}/{len(b)} D={result.statistic:.4f} p={result.pvalue:.3f}")
    assert result.pvalue > P_MIN


@pytest.mark.parametrize("name,categories", [("quality", range(60, 101)), ("order", None)])
def test_discrete_parameters_match_official_chi2(
    draws: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], name: str, categories: Any
) -> None:
    ours, ref = draws
    cats = (
        np.asarray(list(categories), dtype=np.float64)
        if categories is not None
        else np.unique(np.concatenate([ours[name], ref[name]]))
    )
    assert set(np.unique(ours[name])) <= set(cats) and set(np.unique(ref[name])) <= set(cats)
    if name == "order":
        assert len(cats) == 24  # every permutation of the four adjustments occurs
    table = np.stack([[np.sum(d[name] == c) for c in cats] for d in (ours, ref)])
    result = stats.chi2_contingency(table)
    print(f"chi2 {name}: {len(cats)} categories p={result.pvalue:.3f}")
    assert result.pvalue > P_MIN


@pytest.mark.parametrize(
    "name,prob", [("aniso", 0.5), ("shift_applied", 0.3), ("gray", 0.01), ("jitter_applied", 0.3)]
)
def test_probabilities_binomial(
    draws: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], name: str, prob: float
) -> None:
    ours, _ = draws
    k = int(ours[name].sum())
    p = stats.binomtest(k, len(ours[name]), prob).pvalue
    print(f"binomial {name}: {k}/{len(ours[name])} p={p:.3f}")
    assert p > P_MIN


# --------------------------------------------------------------------------------------------------
# The chain on real faces with fixed parameters
# --------------------------------------------------------------------------------------------------
def reference_chain(
    img_bgr: np.ndarray,
    p: dict[str, dict[str, float]],
    noise_bgr: np.ndarray,
    jpeg: bool,
    quantize_before_up: bool = False,
) -> np.ndarray:
    """FFHQDegradationDataset's blur → down → noise → JPEG → up on one BGR float32 image."""
    h, w = img_bgr.shape[:2]
    blur = p["blur"]
    kind = KERNEL_TYPES[int(blur["kind"])]
    kernel = bivariate_gaussian_ref(
        41, blur["sigma_x"], blur["sigma_y"], blur["theta"], iso=kind == "iso"
    )
    out = cv2.filter2D(img_bgr, -1, kernel)
    scale = p["downsample"]["scale"]
    out = cv2.resize(out, (int(w // scale), int(h // scale)), interpolation=cv2.INTER_LINEAR)
    out = np.clip(out + noise_bgr * np.float32(p["noise"]["sigma"] / 255.0), 0, 1)
    if jpeg:
        u8 = np.clip(np.round(np.clip(out, 0, 1) * 255.0), 0, 255).astype(np.uint8)
        ok, enc = cv2.imencode(
            ".jpg", u8, [int(cv2.IMWRITE_JPEG_QUALITY), int(p["jpeg"]["quality"])]
        )
        assert ok
        out = np.float32(cv2.imdecode(enc, 1)) / 255.0
    if quantize_before_up:  # GPEN's GFPGAN_degradation
        out = np.clip((out * 255.0).round(), 0, 255) / 255.0
    return cv2.resize(out.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def _real_faces() -> list[np.ndarray]:
    files = sorted(GT_DIR.glob("*.png"))
    assert len(files) == 10, f"expected 10 reference faces in {GT_DIR}"
    return [cv2.imread(str(f), cv2.IMREAD_COLOR).astype(np.float32) / 255.0 for f in files]


CHAINS = {
    # name: (JPEG impl or None, minimum PSNR in dB)
    "no_jpeg": (None, 60.0),
    "codec": ("codec", 35.0),
    "differentiable": ("differentiable", 30.0),
}


@pytest.mark.real_data
@pytest.mark.parametrize("packing", ["groups", "canvas"])
@pytest.mark.parametrize("chain", list(CHAINS))
def test_chain_on_real_faces_matches_opencv(chain: str, packing: str) -> None:
    impl, min_psnr = CHAINS[chain]
    full = preset("gfpgan_v1", impl=impl or "codec")
    names = ["blur", "downsample", "noise", "jpeg", "upsample"]
    ops = {k: full.ops[k] for k in names if k != "jpeg" or impl is not None}
    deg = Degradation(ops, packing=packing)
    faces = _real_faces()
    params = deg.sample([1000 + i for i in range(len(faces))])
    gt = torch.stack([torch.from_numpy(f[:, :, ::-1].copy()).permute(2, 0, 1) for f in faces])
    lq, _, _ = deg.apply_params(gt, params)
    values = []
    for i, (face, p) in enumerate(zip(faces, params, strict=True)):
        scale = p["downsample"]["scale"]
        size = (3, int(512 // scale), int(512 // scale))
        noise_rgb = noise_field(int(p["noise"]["seed"]), size).numpy().transpose(1, 2, 0)
        ref_bgr = reference_chain(face, p, noise_rgb[:, :, ::-1], jpeg=impl is not None)
        ours = lq[i].permute(1, 2, 0).numpy()
        values.append(psnr(ours, ref_bgr[:, :, ::-1]))
    print(
        f"{chain}/{packing}: PSNR vs OpenCV min {min(values):.2f} mean {np.mean(values):.2f} "
        f"max {max(values):.2f} dB"
    )
    assert min(values) >= min_psnr, values


@pytest.mark.real_data
def test_gpen_chain_quantizes_before_upsampling() -> None:
    deg = preset("gpen_simple", impl="codec")
    faces = _real_faces()[:4]
    params = deg.sample(range(4))
    for p in params:
        p["gray"]["applied"] = 0.0  # colour faces (the gray GT is checked elsewhere)
    gt = torch.stack([torch.from_numpy(f[:, :, ::-1].copy()).permute(2, 0, 1) for f in faces])
    lq, gt_out, _ = deg.apply_params(gt, params)
    assert torch.equal(gt_out, gt)
    for i, (face, p) in enumerate(zip(faces, params, strict=True)):
        size = (3, int(512 // p["downsample"]["scale"]), int(512 // p["downsample"]["scale"]))
        noise = noise_field(int(p["noise"]["seed"]), size).numpy().transpose(1, 2, 0)[:, :, ::-1]
        ref = reference_chain(face, p, noise, jpeg=True, quantize_before_up=True)[:, :, ::-1]
        assert psnr(lq[i].permute(1, 2, 0).numpy(), ref) >= 35.0
    # no final rounding: the bilinear upsample of 8-bit levels is off the 8-bit grid
    assert not torch.allclose(lq * 255, (lq * 255).round(), atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Packed canvases: resampling, bucketing, equivalence with groups, batch independence
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("src", [(64, 64), (37, 50), (512, 512)])
def test_resample_bilinear_matches_interpolate_and_opencv(src: tuple[int, int]) -> None:
    torch.manual_seed(0)
    dst = [(8, 8), (13, 17), (src[0], src[1]), (80, 70), (1, 1), (src[0] * 2, src[1] + 3)]
    n = len(dst)
    x = torch.rand(n, 3, *src)
    out = resample_bilinear(x, torch.tensor([list(src)] * n), torch.tensor([list(d) for d in dst]))
    for j, (h, w) in enumerate(dst):
        img = x[j].permute(1, 2, 0).numpy()
        cv = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        np.testing.assert_allclose(out[j, :, :h, :w].permute(1, 2, 0).numpy(), cv, atol=1e-6)
        # F.interpolate computes the scale in float32: up to ~4e-5 off OpenCV on white noise
        ref = F.interpolate(x[j : j + 1], size=(h, w), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[j : j + 1, :, :h, :w], ref, atol=1e-4, rtol=0)
        # padding repeats the sample's last row / column: same source taps and weights, but the
        # lerp of a padding pixel may run in the SIMD body where its model ran in the scalar tail
        # (or vice versa; the split depends on sizes and threads), so equal to float32 rounding
        pad_rows, pad_cols = out[j, :, h:, :w], out[j, :, :, w:]
        last_row, last_col = out[j, :, h - 1 : h, :w], out[j, :, :, w - 1 : w]
        torch.testing.assert_close(pad_rows, last_row.expand_as(pad_rows), atol=1e-6, rtol=0)
        torch.testing.assert_close(pad_cols, last_col.expand_as(pad_cols), atol=1e-6, rtol=0)


def test_resample_from_a_packed_canvas_reads_only_valid_pixels() -> None:
    x = torch.rand(2, 3, 40, 40)
    x[0, :, 20:, :] = 1e6  # garbage padding
    x[0, :, :, 25:] = 1e6
    out = resample_bilinear(x, torch.tensor([[20, 25], [40, 40]]), torch.tensor([[64, 64]] * 2))
    ref = F.interpolate(x[:1, :, :20, :25], size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[:1], ref, atol=1e-5, rtol=0)


def test_resample_a_subset_by_index_equals_resampling_the_copy() -> None:
    x = torch.rand(5, 3, 48, 40)
    sel = torch.tensor([3, 0, 4])
    src = torch.tensor([[48, 40], [30, 33], [48, 40]])
    dst = torch.tensor([[10, 12], [60, 41], [7, 7]])
    by_index = resample_bilinear(x, src, dst, (64, 48), index=sel)
    by_copy = resample_bilinear(x[sel], src, dst, (64, 48))
    assert by_index.is_contiguous()
    # same taps and weights, different memory layout ((n, H, C, W) vs (n, C, H, W)): the lerps can
    # fall in the SIMD body in one and the scalar tail in the other, so float32 rounding may differ
    torch.testing.assert_close(by_index, by_copy, atol=1e-6, rtol=0)


def test_bucket_by_size_bounds_the_waste() -> None:
    rng = np.random.default_rng(0)
    sizes = [(int(512 // r), int(512 // r)) for r in rng.uniform(0.8, 8, 64)]
    buckets = bucket_by_size(sizes, max_waste=2.0)
    assert sorted(i for b in buckets for i in b) == list(range(64))
    for b in buckets:
        ch, cw = max(sizes[i][0] for i in b), max(sizes[i][1] for i in b)
        assert all(ch * cw <= 2.0 * sizes[i][0] * sizes[i][1] for i in b)
    assert len(buckets) <= 8  # sides 64..640: log_sqrt2(10) ~ 6.6 size classes
    assert len(bucket_by_size(sizes, float("inf"))) == 1
    assert len(bucket_by_size(sizes, 1.0)) == len(set(sizes))


def test_edge_pad() -> None:
    x = torch.rand(2, 3, 6, 7)
    out = edge_pad(x, torch.tensor([[3, 4], [6, 7]]))
    ref = F.pad(x[:1, :, :3, :4], (0, 3, 0, 3), mode="replicate")
    assert torch.equal(out[:1], ref) and torch.equal(out[1], x[1])  # pure data movement: exact


def _chain(impl: str | None, packing: str, colour: bool = False) -> Degradation:
    ops: dict[str, Any] = {
        "blur": RandomBlur(kernel_size=21, sigma_x=(0.2, 4), sigma_y=(0.2, 4)),
        "down": RandomResize(scale=(0.8, 8)),
        "noise": GaussianNoise(sigma=(0, 20)),
    }
    if colour:
        ops["shift"] = ColorShift(prob=0.5)
        ops["gray"] = Grayscale(prob=0.3)
    if impl is not None:
        ops["jpeg"] = JPEG(quality=(30, 100), impl=impl)
    ops["up"] = ResizeBack()
    return Degradation(ops, packing=packing)


@pytest.fixture(scope="module")
def faces_128() -> torch.Tensor:
    torch.manual_seed(3)
    x = torch.rand(10, 3, 16, 16)
    return F.interpolate(x, size=128, mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("colour", [False, True])
def test_canvas_equals_groups_without_jpeg(faces_128: torch.Tensor, colour: bool) -> None:
    seeds = list(range(20, 30))
    a, _, pa = _chain(None, "groups", colour)(faces_128, seeds)
    b, _, pb = _chain(None, "canvas", colour)(faces_128, seeds)
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["codec", "differentiable"])
def test_canvas_equals_groups_with_jpeg(faces_128: torch.Tensor, impl: str) -> None:
    seeds = list(range(40, 50))
    a, _, pa = _chain(impl, "groups")(faces_128, seeds)
    b, _, pb = _chain(impl, "canvas")(faces_128, seeds)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)  # same qualities, scales, noise seeds
    # identical up to float rounding, which can flip an 8-bit level (codec) or a quantised DCT
    # coefficient (model) in rare pixels
    diff = (a - b).abs()
    assert float((diff > 1e-5).float().mean()) < 1e-3
    assert psnr(a.numpy(), b.numpy()) > 50


@pytest.mark.parametrize("impl", ["codec", "differentiable", None])
@pytest.mark.parametrize("packing", ["groups", "canvas"])
def test_sample_output_does_not_depend_on_batch_mates(impl: str | None, packing: str) -> None:
    """LQ sides 64 (≡ 0 mod 16), 46, 47 (≡ 14, 15: the JPEG margin cases), 40 and 100, alone and
    in one batch (one canvas, max_waste=inf, so the small ones sit in a much larger canvas)."""
    deg = _chain(impl, packing)
    deg.max_waste = float("inf")
    torch.manual_seed(1)
    gt = torch.rand(5, 3, 128, 128)
    params = deg.sample(range(5))
    for p, side in zip(params, (64, 46, 47, 40, 100), strict=True):
        p["down"]["scale"] = 128 / side - 1e-9  # int(128 // r) == side
    batch, _, _ = deg.apply_params(gt, params)
    for i in range(5):
        alone, _, _ = deg.apply_params(gt[i : i + 1], params[i : i + 1])
        if impl is None:
            # no rounding step: the batch of 5 vs 1 changes the FFT batch and, in a canvas, the
            # SIMD tail / chunking of the resampling loops; float32 rounding differs by <= 1e-6
            # (6e-8 seen on Intel Xeon where AMD EPYC gave bit equality)
            torch.testing.assert_close(alone[0], batch[i], atol=1e-6, rtol=0)
        else:
            # the same float differences can flip an 8-bit level before the codec / a quantised
            # DCT coefficient in the model, which the 8x8 block then spreads
            assert_close_up_to_level_flips(alone[0], batch[i])


def test_noise_is_drawn_at_the_lq_size_from_the_sample_seed() -> None:
    ops = {
        "down": RandomResize(scale=(2, 6)),
        "noise": GaussianNoise(sigma=(10, 20), clip=False),
    }
    gt = torch.full((3, 3, 96, 96), 0.5)
    deg = Degradation(ops, packing="canvas")
    params = deg.sample([5, 6, 7])
    lq_sizes = [int(96 // p["down"]["scale"]) for p in params]
    assert len(set(lq_sizes)) == 3
    for i, p in enumerate(params):  # a single sample may end at its LQ size
        lq, _, _ = deg.apply_params(gt[i : i + 1], [p])
        s = lq_sizes[i]
        expected = 0.5 + noise_field(int(p["noise"]["seed"]), (3, s, s)) * p["noise"]["sigma"] / 255
        torch.testing.assert_close(lq[0], expected, atol=1e-6, rtol=0)
    # in a batch, each sample gets the same noise (resized back to compare at one size)
    both = Degradation({**ops, "up": ResizeBack()}, packing="canvas")
    alone = [both.apply_params(gt[i : i + 1], [{**p, "up": {}}])[0] for i, p in enumerate(params)]
    batch, _, _ = both.apply_params(gt, [{**p, "up": {}} for p in params])
    # same noise; the canvas resamplings of a batch vs a single sample round differently (SIMD tail)
    torch.testing.assert_close(batch, torch.cat(alone), atol=1e-6, rtol=0)


def test_batched_color_jitter_equals_torchvision_per_image() -> None:
    """Our batched jitter vs GFP-GAN's ``color_jitter_pt`` (torchvision ``adjust_*`` per image)."""
    from torchvision.transforms import functional as TF

    torch.manual_seed(2)
    x = torch.rand(12, 3, 24, 24)
    op = ColorJitter(prob=0.7)
    deg = Degradation({"jitter": op})
    params = deg.sample(range(12))
    out, _, p = deg.apply_params(x, params)  # CPU: per image
    collated = {k[len("jitter.") :]: v for k, v in p.items()}
    torch.testing.assert_close(op.degrade_batched(x, collated), out, atol=1e-5, rtol=0)
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    names = ("brightness", "contrast", "saturation", "hue")
    for i, d in enumerate(params):
        img, q = x[i], d["jitter"]
        if q["applied"]:
            code = int(q["order"])
            for fn_id in ((code >> 6) & 3, (code >> 4) & 3, (code >> 2) & 3, code & 3):
                img = fns[fn_id](img, q[names[fn_id]])
        torch.testing.assert_close(out[i], img, atol=1e-5, rtol=0)
    assert 0 < int(p["jitter.applied"].sum()) < 12


# --------------------------------------------------------------------------------------------------
# Fixed parameters and seeded reproducibility
# --------------------------------------------------------------------------------------------------
def test_apply_params_equals_forward_and_validates(faces_128: torch.Tensor) -> None:
    deg = preset("gfpgan_v1", impl="codec")
    a, _, pa = deg(faces_128[:4], [1, 2, 3, 4])
    b, _, pb = deg.apply_params(faces_128[:4], deg.sample([1, 2, 3, 4]))
    assert torch.equal(a, b) and all(torch.equal(pa[k], pb[k]) for k in pa)
    bad = deg.sample([1])
    del bad[0]["blur"]
    with pytest.raises(ValueError, match="ops"):
        deg.apply_params(faces_128[:1], bad)
    with pytest.raises(ValueError, match="parameter dicts"):
        deg.apply_params(faces_128[:2], deg.sample([1]))
    with pytest.raises(ValueError, match="packing"):
        Degradation({}, packing="tiles")


@pytest.mark.parametrize("packing", ["groups", "canvas"])
def test_seeded_reproducibility_cpu(faces_128: torch.Tensor, packing: str) -> None:
    deg = preset("gfpgan_v1", impl="codec")
    deg.packing = packing
    seeds = [101, 102, 103, 104, 105, 106, 107, 108]
    gt = faces_128[:8]
    a, _, pa = deg(gt, seeds)
    b, _, pb = deg(gt, seeds)
    # the same call on the same shapes is deterministic bit for bit (parameters: float64 draws)
    assert torch.equal(a, b) and all(torch.equal(pa[k], pb[k]) for k in pa)
    # another order, a sub-batch, a single sample: same samples in other batched FFTs / canvases,
    # equal up to float rounding and the 8-bit flips it can cause (assert_close_up_to_level_flips)
    perm = [5, 2, 7, 0, 3, 6, 1, 4]
    c, _, _ = deg(gt[perm], [seeds[i] for i in perm])
    assert_close_up_to_level_flips(c, a[perm])
    d, _, _ = deg(gt[2:5], seeds[2:5])
    assert_close_up_to_level_flips(d, a[2:5])
    for i in (0, 7):
        e, _, _ = deg(gt[i : i + 1], [seeds[i]])
        assert_close_up_to_level_flips(e[0], a[i])
    f, _, _ = deg(gt, [s + 1000 for s in seeds])
    assert not torch.equal(f, a)


@pytest.mark.gpu
def test_seeded_reproducibility_cuda(faces_128: torch.Tensor) -> None:
    deg = preset("gfpgan_v1", impl="differentiable")
    assert deg.packing_for(torch.device("cuda")) == "canvas"
    gt = faces_128[:8].cuda()
    seeds = list(range(300, 308))
    a, _, pa = deg(gt, seeds)
    b, _, _ = deg(gt, seeds)
    torch.testing.assert_close(a, b, atol=0, rtol=0)  # same call, same shapes, same device
    _, _, pc = deg(faces_128[:8], seeds)  # CPU
    assert pa.keys() == pc.keys() and all(torch.equal(pa[k], pc[k]) for k in pa)
    deg.packing = "groups"
    g, _, _ = deg(gt, seeds)
    assert psnr(a.cpu().numpy(), g.cpu().numpy()) > 45
