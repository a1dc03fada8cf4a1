"""Golden values on the stored arrays: Fréchet distance, identity angle, LMD, ArcFace input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from faceprior.metrics.color import rgb_to_vqfr_gray
from faceprior.metrics.frechet import frechet_distance, gaussian_of
from faceprior.metrics.identity import identity_angle, vqfr_identity_input, vqfr_mean
from faceprior.metrics.landmarks import landmark_distance

pytestmark = pytest.mark.real_data

#: Identity angle (degrees) of a pair of IDENTICAL embeddings (row 0 of the arrays): at most this
#: instead of 0. The formula is float64, but arccos is ill-conditioned at 0: the cosine is 1 only
#: up to the last bits of 512-term float64 sums, whose order follows the CPU's SIMD width; orders
#: that differ by 4 ulps in those sums already give up to 2.4e-6 (1 ulp below 1 is 8.5e-7). The
#: other rows (0.29 to 169 degrees) are well-conditioned and keep the README's 1e-6 (ours: 4e-12).
IDENTICAL_PAIR_MAX_DEG = 1e-5


@pytest.mark.parametrize("case", ["full_rank_d32", "rank_deficient_d64"])
def test_frechet_distance(case, reference_dir, reference_values):
    spec = reference_values["frechet_distance"]
    a, b = (np.load(reference_dir / p) for p in spec["inputs"][case])
    expected = spec["values"][case][spec["reference_key"]]
    assert frechet_distance(*gaussian_of(a), *gaussian_of(b)) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(*gaussian_of(b), *gaussian_of(a)) == pytest.approx(expected, rel=1e-6)


def test_identity_angle_and_vqfr_rule(reference_dir, reference_values):
    spec = reference_values["identity_angle"]
    gt, restored = (torch.from_numpy(np.load(reference_dir / p)) for p in spec["inputs"])
    angles = identity_angle(gt, restored)
    expected = np.asarray(spec["degrees"])
    assert torch.equal(gt[0], restored[0]) and expected[0] == 0.0  # the identical pair
    assert 0.0 <= float(angles[0]) <= IDENTICAL_PAIR_MAX_DEG  # (NaN without the clip)
    np.testing.assert_allclose(angles.numpy()[1:], expected[1:], atol=1e-6, rtol=0)
    assert float(vqfr_mean(angles)) == pytest.approx(  # excludes row 0
        spec["mean_degrees_vqfr_rule_excluding_lt1deg"], abs=1e-6
    )
    all_tol = 1e-6 + IDENTICAL_PAIR_MAX_DEG / len(expected)  # row 0's share of the mean
    assert float(angles.mean()) == pytest.approx(spec["mean_degrees_all"], abs=all_tol)
    assert int((angles < 1.0).sum()) == spec["vqfr_identical_count_lt1deg"]


def test_landmark_distance(reference_dir, reference_values):
    spec = reference_values["lmd"]
    gt, restored = (np.load(reference_dir / p) for p in spec["inputs"])
    per_pair = landmark_distance(gt, restored)
    np.testing.assert_allclose(per_pair, spec["per_pair"], atol=1e-9, rtol=0)
    assert per_pair.mean() == pytest.approx(spec["mean"], abs=1e-9)


def test_identity_preprocessing_statistics(reference_dir, reference_values):
    for name, stats in reference_values["identity_preprocessing"]["per_image"].items():
        bgr = cv2.imread(str(reference_dir / "pairs" / name))
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)))
        x = vqfr_identity_input(rgb[None])[0, 0].numpy()
        assert x.shape == (128, 128) and x.dtype == np.float32
        assert x.mean() == pytest.approx(stats["vqfr_mean"], abs=1e-5), name
        assert x.std() == pytest.approx(stats["vqfr_std"], abs=1e-5), name
        assert x.astype(np.float64).sum() == pytest.approx(stats["vqfr_sum"], abs=1e-2), name


def test_gray_conversion_matches_opencv_png_decoder(reference_dir):
    """``cv2.imread(path, 0)`` (libpng's RGB->gray) is reproduced exactly from the color image."""
    for path in sorted((reference_dir / "pairs").glob("*/*.png")):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)))
        ours = rgb_to_vqfr_gray(rgb[None])[0, 0].numpy()
        np.testing.assert_array_equal(ours, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
