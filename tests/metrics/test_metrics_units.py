"""Unit tests of the metric building blocks on synthetic data (no shared files needed)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from faceprior.metrics import NIQE, PSNR, SSIM
from faceprior.metrics.base import to_uint8_range
from faceprior.metrics.color import rgb_to_y
from faceprior.metrics.frechet import frechet_distance, gaussian_of
from faceprior.metrics.functional import calculate_psnr, calculate_ssim, numpy_to_tensor
from faceprior.metrics.landmarks import heatmap_points
from faceprior.metrics.matlab_resize import imresize, resize_weights
from faceprior.metrics.niqe import PRISTINE_PARAMS_SHA256, load_pristine_model, niqe_of_luma
from faceprior.metrics.weights import file_sha256


def test_quantisation_rounds_like_png_saving():
    x = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 0.2, 1.0, 1.7]).view(1, 1, 1, -1)
    expected = [0, 0, 0, 2, 51, 255, 255]  # round half to even, clamped
    assert to_uint8_range(x).view(-1).tolist() == expected
    assert to_uint8_range(torch.tensor([[[[7]]]], dtype=torch.uint8)).item() == 7.0


def test_y_channel_formula():
    rgb = torch.tensor([255.0, 0.0, 0.0, 0.0, 255.0, 0.0, 0.0, 0.0, 255.0, 255, 255, 255])
    y = rgb_to_y(rgb.view(4, 3, 1, 1).float()).view(-1)
    expected = [16 + 65.481, 16 + 128.553, 16 + 24.966, 235.0]
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-4)


def test_psnr_ssim_identical_and_known_values(synthetic_pairs):
    restored, gt = synthetic_pairs[0]
    assert math.isinf(calculate_psnr(gt, gt))
    assert calculate_ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(gt.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    mse = np.mean((noisy.astype(np.float64) - gt) ** 2)
    assert calculate_psnr(noisy, gt) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-12)
    assert calculate_ssim(restored, gt) < 1.0


def test_classes_match_functions_batched_and_quantised(synthetic_pairs, unit_rgb):
    restored = unit_rgb([r for r, _ in synthetic_pairs])
    gt = unit_rgb([g for _, g in synthetic_pairs])
    for cls, func, kwargs in (
        (PSNR, calculate_psnr, {"crop_border": 3, "test_y_channel": True}),
        (SSIM, calculate_ssim, {"crop_border": 0, "test_y_channel": False}),
    ):
        metric = cls(**kwargs)
        for start in (0, 4):  # uneven batches: per-image values are averaged, not pooled
            metric.update(restored[start : start + 4], gt[start : start + 4])
        expected = np.mean([func(r, g, **kwargs) for r, g in synthetic_pairs])
        assert float(metric.compute()) == pytest.approx(expected, abs=1e-12)
        per_image = metric.per_image(restored + 0.4 / 255, gt)  # sub-quantum change: same PNG
        assert per_image.dtype == torch.float64 and per_image.shape == (len(synthetic_pairs),)
        np.testing.assert_allclose(
            per_image.numpy(), [func(r, g, **kwargs) for r, g in synthetic_pairs], atol=1e-12
        )


def test_metric_names_and_flags():
    assert PSNR().metric_name == "psnr" and PSNR(test_y_channel=True).metric_name == "psnr_y"
    assert SSIM(test_y_channel=True).metric_name == "ssim_y"
    assert NIQE().metric_name == "niqe" and NIQE.full_reference is False
    assert PSNR.higher_is_better and SSIM.higher_is_better and not NIQE.higher_is_better
    assert "BasicSR" in PSNR.convention and PSNR(crop_border=2).protocol()["crop_border"] == 2


def test_input_validation():
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="shapes differ"):
        PSNR().update(x, torch.rand(2, 3, 32, 30))
    with pytest.raises(ValueError, match="full-reference"):
        SSIM().update(x)
    with pytest.raises(ValueError, match="crop_border"):
        PSNR(crop_border=-1)
    with pytest.raises(ValueError, match="at least two 96x96 blocks"):
        NIQE().update(torch.rand(1, 3, 128, 128))
    with pytest.raises(ValueError, match="larger than 10x10"):
        SSIM().update(torch.rand(1, 3, 10, 10), torch.rand(1, 3, 10, 10))


def test_compute_is_mean_and_reset(synthetic_pairs, unit_rgb):
    metric = PSNR()
    restored, gt = synthetic_pairs[1]
    value = calculate_psnr(restored, gt)
    batch = unit_rgb([restored]), unit_rgb([gt])
    metric.update(*batch)
    metric.update(*batch)
    assert float(metric.compute()) == pytest.approx(value, abs=1e-12)
    assert int(metric.count) == 2
    metric.reset()
    assert int(metric.count) == 0


def test_matlab_resize_weights_and_constant_image():
    weights, indices = resize_weights(480, 0.5)
    assert weights.shape == (240, 8) and weights.dtype == torch.float32
    # Exact on any CPU: at scale 0.5 every kernel argument is k/4 and every intermediate a short
    # dyadic fraction, so no float32 step (in any order, with or without FMA) rounds.
    expected = np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875]) / 2
    np.testing.assert_array_equal(weights[0].numpy(), np.r_[expected, expected[::-1]])
    assert indices[0].tolist() == list(range(-2, 6))  # 1-based, mirrored at the border
    flat = torch.full((96, 64), 0.25)  # sums of those weights times 0.25: exact as well
    assert torch.equal(imresize(flat, 0.5), torch.full((48, 32), 0.25))


def test_niqe_pristine_params_packaged():
    from importlib import resources

    ref = resources.files("faceprior.metrics").joinpath("data", "niqe_pris_params.npz")
    with resources.as_file(ref) as path:
        assert file_sha256(path) == PRISTINE_PARAMS_SHA256
    model = load_pristine_model()
    assert model.mean.shape == (36,) and model.cov.shape == (36, 36)
    assert model.window[3, 3] == pytest.approx(0.1173963554, abs=1e-10)


def test_niqe_orders_quality(make_face):
    """Sharp texture scores better (lower) than its blurred version; the crop is top-left."""
    sharp_bgr = make_face(5, size=192)
    sharp = numpy_to_tensor(sharp_bgr)
    blurred = numpy_to_tensor(cv2.GaussianBlur(sharp_bgr, (7, 7), 2.0))
    metric = NIQE()
    sharp_value, blurred_value = metric.per_image(torch.cat([sharp, blurred]) / 255.0).tolist()
    assert sharp_value < blurred_value
    luma = rgb_to_y(sharp).round()[0, 0].float().numpy()
    padded = np.pad(luma, ((0, 20), (0, 30)), constant_values=7)
    # same float32 ops on the same pixels in one process (only the memory differs): equal
    assert niqe_of_luma(padded) == pytest.approx(niqe_of_luma(luma), abs=1e-12)


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) * 1.5 + 0.3
    assert frechet_distance(*gaussian_of(a), *gaussian_of(a)) == pytest.approx(0.0, abs=1e-9)
    d = frechet_distance(*gaussian_of(a), *gaussian_of(b))
    mu_a, cov_a = gaussian_of(a)
    mu_b, cov_b = gaussian_of(b)
    from scipy.linalg import sqrtm

    ref = (mu_a - mu_b) @ (mu_a - mu_b) + np.trace(cov_a + cov_b)
    ref -= 2 * np.trace(sqrtm(cov_a @ cov_b).real)
    assert d == pytest.approx(ref, rel=1e-9)


def test_heatmap_points_rule():
    heatmaps = np.zeros((2, 64, 64), np.float32)
    heatmaps[0, 10, 20] = 1.0
    heatmaps[0, 10, 21] = 0.5  # right neighbour larger than left -> +0.25 in x
    heatmaps[1, 30, 40] = 1.0
    heatmaps[1, 29, 40] = 0.5  # upper neighbour larger -> -0.25 in y
    points = heatmap_points(heatmaps)
    np.testing.assert_allclose(points, [[20.75, 10.5], [40.5, 30.25]])
    heatmaps[1, 63, 5] = 2.0  # a point in the last row: all vertical tests use the last pixel
    points = heatmap_points(heatmaps)
    assert points[1].tolist() == [5.5, 63.5]


def test_ssim_filters_agree():
    """The OpenCV (CPU) and shifted-sum (GPU) window filters give the same valid region."""
    from faceprior.metrics.psnr_ssim import _filter_opencv, _filter_shifted_sums

    planes = torch.rand(3, 1, 40, 33, dtype=torch.float64) * 255
    opencv, shifted = _filter_opencv(planes), _filter_shifted_sums(planes)
    assert opencv.shape == shifted.shape == (3, 1, 30, 23)
    torch.testing.assert_close(opencv, shifted, rtol=0, atol=1e-10)
    direct = (
        planes[0, 0, :11, :11]
        * torch.outer(*[torch.tensor(cv2.getGaussianKernel(11, 1.5))[:, 0]] * 2)
    ).sum()
    assert float(opencv[0, 0, 0, 0]) == pytest.approx(float(direct), abs=1e-10)
