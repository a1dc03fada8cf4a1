"""Real photos (../shared/images/in_the_wild) with the real RetinaFace MobileNet-0.25 detector:
faces found, landmark fit onto the templates, seamless paste mask; the acceptance CLI runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from faceprior.checkpoints import export_checkpoint
from faceprior.checkpoints.registry import get_spec
from faceprior.inference import (
    FFHQ,
    GPEN,
    FaceFilter,
    FaceModel,
    FaceRestorer,
    RetinaFaceDetector,
    read_photo,
)
from faceprior.inference.cli import main
from faceprior.inference.templates import alignment_residual, crop_scale, fit_similarity
from faceprior.inference.warp import FEATHER_SIGMA

from .conftest import SHARED

pytestmark = pytest.mark.real_data

WILD = SHARED / "images" / "in_the_wild"
DETECTOR = SHARED / "weights" / "facexlib"
#: inter-ocular distance of the templates at 512 px
IOD_512 = {t.name: float(np.linalg.norm(np.subtract(*t.scaled(512)[:2]))) for t in (FFHQ, GPEN)}


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector(DETECTOR, "mobile0.25")


@pytest.fixture(scope="module")
def photos() -> dict[str, object]:
    return {p.name: read_photo(p) for p in sorted(WILD.glob("*.jpg"))}


def test_every_visible_face_is_found(detector: RetinaFaceDetector, photos) -> None:
    """Blake_Lively.jpg is a side-by-side of the actress as a child and as an adult: two visible
    faces (the shared README's "one adult face" counts only the adult); the centre-face option
    keeps the adult (its box centre is nearer the photo centre). The scan has two children."""
    counts = {name: len(detector(p.uint8())) for name, p in photos.items()}
    assert counts == {"Blake_Lively.jpg": 2, "two_children_scan.jpg": 2}
    blake = photos["Blake_Lively.jpg"]
    centre = RetinaFaceDetector(DETECTOR, "mobile0.25", filter=FaceFilter(only_center_face=True))
    (adult,) = centre(blake.uint8())
    assert adult.box[0] > blake.width / 2


def test_large_photos_are_detected_downscaled_and_mapped_back(detector, photos) -> None:
    """The 1297x1920 scan is detected on a 1280 px copy; landmarks mapped back to full resolution
    agree with a full-size detection within 10 % of the eye distance (RetinaFace's landmark
    regression moves by a few percent of the face between scales; a missing rescale would be off
    by a third of the coordinates)."""
    scan = photos["two_children_scan.jpg"]
    small = detector(scan.uint8())
    assert detector.last_scale == pytest.approx(1280 / 1920)
    full = RetinaFaceDetector(DETECTOR, "mobile0.25", max_side=None)(scan.uint8())
    for a in small:
        b = min(full, key=lambda f: np.abs(f.landmarks - a.landmarks).sum())
        assert np.abs(a.landmarks - b.landmarks).max() < 0.1 * b.eye_distance()


@pytest.mark.parametrize("template", [FFHQ, GPEN], ids=lambda t: t.name)
def test_landmarks_map_onto_the_template_with_a_small_residual(detector, photos, template) -> None:
    """RMS residual of the similarity fit, at 512 px, below 10 % of the template's eye distance
    (12.6 px FFHQ, 10.7 px GPEN). A similarity has 4 degrees of freedom for 10 coordinates; what
    remains is how a face differs from the mean face (the broad smile and the children's slight
    yaw give 2-9 px here). Wrongly ordered points (eyes swapped with mouth corners) leave
    > 65 px, so the bound separates a real fit from a broken one by a wide margin."""
    pts = template.scaled(512)
    bound = 0.1 * IOD_512[template.name]
    for photo in photos.values():
        for face in detector(photo.uint8()):
            m = fit_similarity(face.landmarks, pts, template.fit)
            assert alignment_residual(face.landmarks, m, pts) < bound
            wrong = face.landmarks[[3, 4, 2, 0, 1]]
            m = fit_similarity(wrong, pts, template.fit)
            assert alignment_residual(wrong, m, pts) > 5 * bound


class _HardSquare:
    """The crop square with no feathering: the seam the feathered mask avoids."""

    name = "hard"

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        return torch.ones((faces.shape[0], 1, *faces.shape[-2:]))


@pytest.mark.parametrize("upscale", [1, 2])
def test_paste_mask_has_no_hard_edge(detector, photos, upscale: int) -> None:
    """The union of the warped paste masks changes by at most 1.1 / (sigma_out sqrt(2 pi)) between
    neighbouring output pixels, sigma_out = the feather's sigma (8 crop px at 512) over the crop
    pixels per output pixel of the smallest face. 1 / (sigma sqrt(2 pi)) is the peak slope of a
    Gaussian-blurred step, the steepest part of the feathered mask; 10 % covers the sampled
    kernel, the taken-off tail and bilinear resampling (measured: 0.93-1.00 of the bound). A hard
    square edge jumps by ~1 in one pixel."""
    identity = FaceModel(nn.Identity(), face_size=512)
    restorer = FaceRestorer(identity, detector, upscale=upscale, device="cpu")
    hard = FaceRestorer(identity, detector, upscale=upscale, device="cpu", mask=_HardSquare())
    for photo in photos.values():
        out = restorer.restore(photo, keep_coverage=True)
        assert out.coverage is not None and out.coverage.max() > 0.99
        steepest = max(np.abs(np.diff(out.coverage, axis=a)).max() for a in (0, 1))
        sigma_out = min(FEATHER_SIGMA * 512 * upscale / crop_scale(f.matrix) for f in out.faces)
        assert steepest <= 1.1 / (sigma_out * math.sqrt(2 * math.pi))
        seam = hard.restore(photo, keep_coverage=True).coverage
        assert seam is not None
        assert max(np.abs(np.diff(seam, axis=a)).max() for a in (0, 1)) > 0.5


def _official(folder: Path, name: str) -> Path:
    spec = get_spec(name)
    torch.manual_seed(0)
    return export_checkpoint(spec.build(dict(spec.kwargs)), folder / spec.filename, spec.layout)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "name"), [("gfpgan", "GFPGANv1.4"), ("gpen", "GPEN-BFR-512")])
def test_acceptance_cli_on_the_wild_photos(tmp_path: Path, family: str, name: str) -> None:
    """`faceprior-restore ../shared/images/in_the_wild --model gfpgan|gpen --weights <random-init
    official-layout file> --out out/` on CPU (about 15-20 s per model here)."""
    weights = _official(tmp_path / "w", name)
    out = tmp_path / "out"
    args = [str(WILD), "--model", family, "--weights", str(weights), "--out", str(out)]
    assert main([*args, "--detector-weights", str(DETECTOR), "--quiet"]) == 0
    for stem, faces in (("Blake_Lively", 2), ("two_children_scan", 2)):
        side = json.loads((out / "sidecars" / f"{stem}.json").read_text())
        assert side["faces_found"] == faces and side["status"] == "restored"
        assert side["settings"]["model"]["registry_entry"] == name
        assert side["settings"]["template"] == ("ffhq" if family == "gfpgan" else "gpen")
        assert side["settings"]["mask"]["kind"] == "feather"
        w, h = side["input_size"]
        assert side["output_size"] == [2 * w, 2 * h]  # default upscale 2
        assert (out / "restored" / f"{stem}.png").is_file()
        assert (out / "compare" / f"{stem}.jpg").is_file()
        for k in range(faces):
            assert (out / "faces" / f"{stem}_{k:02d}_before.png").is_file()
            assert (out / "faces" / f"{stem}_{k:02d}_after.png").is_file()
            assert side["faces"][k]["alignment_residual_px"] < 12.6
        assert set(side["timings_s"]) >= {"decode", "detect", "align", "restore", "paste"}
