"""CUDA path agrees with the CPU path (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from faceprior.metrics import NIQE, PSNR, SSIM

pytestmark = pytest.mark.gpu


# Two computation paths, so tolerances: PSNR/SSIM are float64 on both devices (SSIM's window
# filter is OpenCV on the CPU, shifted sums on CUDA: ~1e-12 apart; reductions in another order).
# NIQE scores on the CPU for both (CUDA only quantises, which is exact), but one ulp anywhere in
# its float32 steps would move it by ~1e-3 (test_metrics_golden_pixels.NIQE_TOL). The bounds are
# generous and have not been re-measured on a GPU.
@pytest.mark.parametrize(
    ("make", "tol"),
    [
        (lambda: PSNR(), 1e-4),
        (lambda: PSNR(test_y_channel=True, crop_border=4), 1e-4),
        (lambda: SSIM(), 1e-4),
        (lambda: SSIM(test_y_channel=True), 1e-4),
        (lambda: NIQE(), 1e-3),
    ],
)
def test_cuda_matches_cpu(make, tol, make_face, unit_rgb):
    import cv2

    gts = [make_face(seed, size=192) for seed in range(3)]
    restored = unit_rgb([cv2.GaussianBlur(g, (5, 5), 1.5) for g in gts])
    gt = unit_rgb(gts)
    cpu, cuda = make(), make().to("cuda")
    cpu.update(restored, gt)
    cuda.update(restored.cuda(), gt.cuda())
    assert float(cuda.compute()) == pytest.approx(float(cpu.compute()), abs=tol)
    per_image_cpu = cpu.per_image(restored, gt)
    per_image_cuda = cuda.per_image(restored.cuda(), gt.cuda()).cpu()
    assert torch.allclose(per_image_cuda, per_image_cpu, atol=tol, rtol=0)
