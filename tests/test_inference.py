"""The in-the-wild pipeline on generated photos: alignment geometry, batching, masks, paste-back.

Networks are tiny random-init GFP-GAN / U-Net restorers (64 px crops) so every test is fast on
CPU; faces are synthetic (faceprior.data.synthetic) with known 5-point landmarks, fed through
``KnownFaces`` because RetinaFace does not fire on drawn faces.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from faceprior.data.synthetic import render_face
from faceprior.inference import (
    FFHQ,
    GPEN,
    DeviceError,
    FaceFilter,
    FaceModel,
    FaceRestorer,
    FeatherMask,
    KnownFaces,
    resolve_device,
    resolve_dtype,
)
from faceprior.inference.detection import Face, center_face, detector_weights
from faceprior.inference.masks import parsenet_weights
from faceprior.inference.templates import (
    alignment_residual,
    apply_affine,
    compose,
    fit_least_squares,
    fit_similarity,
    invert_affine,
    resize_matrix,
)
from faceprior.inference.warp import FEATHER_SIGMA, align_faces, feather_mask, paste_faces
from faceprior.nets import GFPGANv1Clean

SIZE = 64


def tiny_gfpgan(seed: int = 0) -> GFPGANv1Clean:
    torch.manual_seed(seed)
    return GFPGANv1Clean(
        out_size=SIZE, num_style_feat=64, channel_multiplier=1, decoder_load_path=None,
        fix_decoder=False, num_mlp=2, input_is_latent=True, different_w=True, narrow=0.125,
        sft_half=True,
    )  # fmt: skip


def group_photo(
    h: int = 240, w: int = 360, placements=((20, 30, 100), (190, 90, 80), (270, 10, 64))
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth background with synthetic faces pasted in; returns (RGB float, landmarks)."""
    yy, xx = np.mgrid[0:h, 0:w]
    canvas = np.stack([xx / w, yy / h, 0.5 + 0 * xx], -1).astype(np.float32)
    lms = []
    for k, (x0, y0, s) in enumerate(placements):
        face = render_face(0, k, s)
        canvas[y0 : y0 + s, x0 : x0 + s] = face.image / 255.0
        lms.append(face.landmarks + np.array([x0, y0]))
    return canvas, np.asarray(lms)


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel(tiny_gfpgan())


# -- geometry ---------------------------------------------------------------------------------
def test_least_squares_similarity_recovers_a_known_transform() -> None:
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    src = FFHQ.scaled(512)
    dst = src @ rot.T + shift
    m = fit_least_squares(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)
    for fit in ("lmeds", "least_squares"):  # exact points: both fits find the transform back
        fitted = fit_similarity(dst, src, fit)  # type: ignore[arg-type]
        assert alignment_residual(dst, fitted, src) < 1e-4
    # GPEN's crop is looser: the same landmarks land on a smaller face
    to_ffhq = fit_similarity(dst, FFHQ.scaled(512), FFHQ.fit)
    to_gpen = fit_similarity(dst, GPEN.scaled(512), GPEN.fit)
    assert np.linalg.det(to_gpen[:, :2]) < np.linalg.det(to_ffhq[:, :2])


def test_matrix_helpers_compose_and_invert() -> None:
    m = np.array([[0.9, -0.2, 4.0], [0.2, 0.9, -3.0]])
    pts = np.random.default_rng(0).uniform(0, 100, (7, 2))
    np.testing.assert_allclose(apply_affine(compose(invert_affine(m), m), pts), pts, atol=1e-9)
    # pixel centres: the centre of the last pixel of a 10 px row lands on the last of a 20 px row
    np.testing.assert_allclose(apply_affine(resize_matrix(2.0), [[9.5, 0]]), [[19.5, 0.5]])


def test_batched_kornia_alignment_equals_opencv() -> None:
    img, lms = group_photo()
    mats = [fit_similarity(lm, FFHQ.scaled(SIZE), "lmeds") for lm in lms]
    tensor = torch.from_numpy(img).permute(2, 0, 1)[None]
    crops = align_faces(tensor, mats, SIZE, [0.5, 0.25, 0.75], antialias=False)
    for m, crop in zip(mats, crops):
        ref = cv2.warpAffine(
            img, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=(0.5, 0.25, 0.75)
        )
        np.testing.assert_allclose(crop.permute(1, 2, 0).numpy(), ref, atol=1e-4)


def test_alignment_and_inverse_alignment_round_trip_a_smooth_image() -> None:
    """Warp a smooth image into rotated, scaled crops and back: error bounded by interpolation.

    Bilinear interpolation of ``f`` errs by at most ``(dx^2 |f_xx| + dy^2 |f_yy|) / 8`` with sample
    spacings ``dx, dy`` <= 1 source pixel; the image is ``0.5 + 0.25 (sin(2 pi x / L) + sin(2 pi y
    / L))`` so ``|f''| <= 0.25 (2 pi / L)^2`` per axis. The crop is sampled at spacing 1 in the
    photo's grid and the way back samples the crop at spacing 1/k crop pixels of a crop that has k
    crop pixels per photo pixel, so each direction costs at most ``2 * 0.25 (2 pi / L)^2 / 8``
    (in photo-pixel units); the bound is twice that.
    """
    h, w, period = 160, 200, 40.0
    yy, xx = np.mgrid[0:h, 0:w]
    f = 0.5 + 0.25 * (np.sin(2 * np.pi * xx / period) + np.sin(2 * np.pi * yy / period))
    img = np.repeat(f[:, :, None], 3, axis=2).astype(np.float32)
    bound = 2 * (2 * 0.25 * (2 * np.pi / period) ** 2 / 8)
    tensor = torch.from_numpy(img).permute(2, 0, 1)[None]
    size = 128
    for angle, scale in ((0.0, 1.0), (0.4, 1.6), (-0.7, 1.2)):
        c, s = scale * math.cos(angle), scale * math.sin(angle)
        centre = np.array([100.0, 80.0])
        m = np.array([[c, -s, 0.0], [s, c, 0.0]])
        m[:, 2] = size / 2 - m[:, :2] @ centre
        crop = align_faces(tensor, [m], size, [0.0, 0.0, 0.0])
        canvas = torch.zeros_like(tensor[0])
        paste_faces(canvas, crop, torch.ones((1, 1, size, size)), [invert_affine(m)])
        back = canvas.permute(1, 2, 0).numpy()
        # compare where the crop covered the photo, away from its edge (2 px)
        inner = np.zeros((h, w), bool)
        pts = apply_affine(m, np.stack([xx.ravel(), yy.ravel()], 1)).reshape(h, w, 2)
        inner[(pts > 2).all(-1) & (pts < size - 3).all(-1)] = True
        err = np.abs(back - img)[inner].max()
        assert inner.sum() > 1000 and err <= bound, (angle, scale, err, bound)


# -- the pipeline -----------------------------------------------------------------------------
def test_pipeline_keeps_the_size_changes_faces_not_the_far_background(model: FaceModel) -> None:
    img, lms = group_photo()
    restorer = FaceRestorer(model, KnownFaces(lms), upscale=1, device="cpu")
    out = restorer.restore(img, keep_coverage=True)
    assert out.image.shape == img.shape and len(out.faces) == 3
    assert out.coverage is not None
    diff = np.abs(out.image - img).max(-1)
    far = out.coverage == 0  # outside every warped mask: the input, bit for bit
    assert far.mean() > 0.5 and diff[far].max() == 0.0
    for lm in lms:
        cx, cy = lm.mean(0).astype(int)
        assert diff[cy - 5 : cy + 5, cx - 5 : cx + 5].mean() > 0.05  # a random net changes faces
    assert set(out.timings) >= {"detect", "align", "restore", "mask", "background", "paste"}
    assert all(f.residual < 0.1 * SIZE for f in out.faces)


def test_upscale_and_background_hook(model: FaceModel) -> None:
    img, lms = group_photo()
    calls = []

    def hook(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")

    out = FaceRestorer(model, KnownFaces(lms), upscale=2, bg_upsampler=hook, device="cpu").restore(
        img, keep_coverage=True
    )
    assert calls == [(1, 3, *img.shape[:2])]
    assert out.image.shape == (2 * img.shape[0], 2 * img.shape[1], 3)
    up = np.repeat(np.repeat(img, 2, 0), 2, 1)  # the hook's nearest-neighbour background
    assert out.coverage is not None
    # exact where no face is pasted: nearest-neighbour copies pixels, the resize to the same
    # size is skipped
    np.testing.assert_array_equal(out.image[out.coverage == 0], up[out.coverage == 0])


def test_faces_of_many_photos_in_one_batch_equal_one_at_a_time(model: FaceModel) -> None:
    """Batching groups faces along the batch axis only: GFP-GAN's modulated convolutions are
    per-sample (grouped conv), so results differ only by float summation order (~1e-6); 1e-4
    leaves room for a different convolution algorithm at another batch size."""
    img_a, lm_a = group_photo()
    img_b, lm_b = group_photo(200, 260, ((10, 10, 90), (120, 60, 100)))
    det = KnownFaces(lambda im: lm_a if im.shape[0] == 240 else lm_b)
    batched = FaceRestorer(model, det, upscale=1, batch_size=8, device="cpu")
    single = FaceRestorer(model, det, upscale=1, batch_size=1, device="cpu")
    together = batched.restore_batch([img_a, img_b])
    for img, res in zip((img_a, img_b), together):
        alone = single.restore(img)
        assert len(alone.faces) == len(res.faces)
        np.testing.assert_allclose(res.image, alone.image, atol=1e-4)
        for f, g in zip(res.faces, alone.faces):
            np.testing.assert_allclose(f.after, g.after, atol=1e-4)


def test_fidelity_weight_zero_returns_the_input_crops(model: FaceModel) -> None:
    img, lms = group_photo()
    out = FaceRestorer(model, KnownFaces(lms), upscale=1, weight=0.0, device="cpu").restore(img)
    for face in out.faces:
        np.testing.assert_allclose(face.after, face.before, atol=1e-6)
    with pytest.raises(ValueError, match="weight"):
        FaceRestorer(model, KnownFaces(lms), weight=1.5, device="cpu")


def test_bfloat16_is_close_to_float32(model: FaceModel) -> None:
    img, lms = group_photo()
    fp32 = FaceRestorer(model, KnownFaces(lms), upscale=1, device="cpu").restore(img)
    bf16 = FaceRestorer(model, KnownFaces(lms), upscale=1, device="cpu", dtype="bfloat16")
    out = bf16.restore(img)
    assert bf16.describe()["dtype"] == "bfloat16"
    # bf16 keeps 8 mantissa bits: ~0.4 % per op; a random 64 px net stays within a few percent
    assert np.abs(out.image - fp32.image).mean() < 0.02


def test_aligned_inputs_are_resized_and_restored_without_paste(model: FaceModel) -> None:
    crop = render_face(0, 3, 100).image
    out = FaceRestorer(model, aligned=True, device="cpu").restore(crop)
    assert out.image.shape == (SIZE, SIZE, 3) and len(out.faces) == 1
    assert any("aligned input" in n for n in out.notes)


def test_no_face_gives_the_upscaled_photo_with_a_note(model: FaceModel) -> None:
    img, _ = group_photo()
    out = FaceRestorer(model, KnownFaces(np.zeros((0, 5, 2))), upscale=1, device="cpu").restore(img)
    assert out.faces == [] and any(n.startswith("no face") for n in out.notes)
    np.testing.assert_array_equal(out.image, img)  # exact: upscale 1 and no face copy the photo


def test_a_plain_module_and_its_template_choice() -> None:
    unet_like = nn.Conv2d(3, 3, 3, padding=1)
    wrapped = FaceModel(unet_like, face_size=32)
    assert wrapped.family == "generic" and wrapped.template == "ffhq"
    with pytest.raises(ValueError, match="face size"):
        FaceModel(nn.Identity())
    from faceprior.nets import GPENGenerator

    torch.manual_seed(0)
    gpen = FaceModel(GPENGenerator(32, 32, 1, 1, narrow=0.0625))
    assert gpen.family == "gpen" and gpen.template == "gpen" and gpen.face_size == 32
    restorer = FaceRestorer(gpen, aligned=True, device="cpu", template="ffhq")
    assert restorer.describe()["template"] == "ffhq"  # overridable


# -- masks and compositing --------------------------------------------------------------------
def test_feather_mask_is_zero_at_the_edge_one_inside_and_gently_sloped() -> None:
    m = feather_mask(512)[0, 0].numpy()
    assert m.max() > 0.999 and m[256, 256] > 0.999
    assert max(m[0].max(), m[-1].max(), m[:, 0].max(), m[:, -1].max()) == 0.0
    sigma = 512 / 64
    slope = max(np.abs(np.diff(m, axis=0)).max(), np.abs(np.diff(m, axis=1)).max())
    # a blurred step's peak slope, x 1/(1 - 7e-4) for the subtracted tail, 2 % for the sampled kernel
    assert slope <= 1.02 / (sigma * math.sqrt(2 * math.pi))


def test_overlapping_faces_are_composited_in_order() -> None:
    canvas = torch.zeros((3, 40, 40))
    faces = torch.stack([torch.full((3, 16, 16), 0.2), torch.full((3, 16, 16), 0.8)])
    masks = torch.ones((2, 1, 16, 16))
    same = np.array([[1.0, 0, 10], [0, 1.0, 10]])
    paste_faces(canvas, faces, masks, [same, same])
    assert torch.allclose(canvas[:, 15, 15], torch.tensor(0.8))  # the later face is on top
    assert canvas[:, 0, 0].abs().max() == 0


# -- settings and errors ----------------------------------------------------------------------
def test_requested_devices_that_do_not_exist_are_errors() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(DeviceError, match=r"cuda:99|not available"):
        resolve_device("cuda:99")
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8")


def test_face_filter_thresholds_and_center_face() -> None:
    def face(x: float, score: float, eye: float = 20.0) -> Face:
        lm = np.array([[x, 50], [x + eye, 50], [x + eye / 2, 60], [x, 70], [x + eye, 70]])
        return Face((x - 10, 30, x + eye + 10, 90), score, lm)

    faces = [face(10, 0.99), face(100, 0.98), face(180, 0.5), face(60, 0.99, eye=2)]
    kept = FaceFilter(threshold=0.9)(faces, 100, 200)
    assert [f.box[0] for f in kept] == [0, 90]  # low score and tiny eye distance dropped
    assert FaceFilter(min_size=70)(faces, 100, 200) == []
    assert center_face(kept, 100, 200)[0].box[0] == 90
    assert len(FaceFilter(threshold=0.9, only_center_face=True)(faces, 100, 200)) == 1


def test_missing_detector_and_parser_files_name_what_to_get(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"detection_mobilenet0\.25_Final\.pth.*github"):
        detector_weights("retinaface_mobile0.25", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"parsing_parsenet\.pth.*--mask feather"):
        parsenet_weights(tmp_path)
    with pytest.raises(ValueError, match="unknown mask"):
        FaceRestorer(FaceModel(tiny_gfpgan()), aligned=True, mask="box", device="cpu")


def test_parse_mask_from_a_local_parsenet_file(tmp_path) -> None:
    """A random-init ParseNet stands for the real one: the mask kind is recorded, values stay in
    [0, 1] and fade out before the crop edge (feathered square), whatever the labels."""
    from facexlib.parsing.parsenet import ParseNet

    from faceprior.inference import ParseMask

    torch.manual_seed(0)
    torch.save(ParseNet(512, 512, 19).state_dict(), tmp_path / "parsing_parsenet.pth")
    mask = ParseMask(tmp_path)
    assert mask.describe()["kind"] == "parse"
    faces = torch.rand((2, 3, SIZE, SIZE))
    m = mask(faces)
    assert m.shape == (2, 1, SIZE, SIZE) and m.min() >= 0 and m.max() <= 1
    assert m[..., 0, :].max() == 0 and m[..., :, -1].max() == 0
    restorer = FaceRestorer(FaceModel(tiny_gfpgan()), aligned=True, mask=mask, device="cpu")
    assert restorer.describe()["mask"]["kind"] == "parse"


class _HalfBackground(nn.Module):
    """A stand-in parser: background (label 0) on the left half, skin (label 1) on the right."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits = torch.zeros((x.shape[0], 19, *x.shape[-2:]))
        logits[:, 0, :, : x.shape[-1] // 2] = 1.0
        logits[:, 1, :, x.shape[-1] // 2 :] = 1.0
        return logits, None


def test_parse_mask_has_no_hard_edge(tmp_path) -> None:
    """A hard label step inside the crop comes out as a blurred step: at 512 px the mask changes by
    at most 1.1 (1 / (s_p sqrt(2 pi)) + 1 / (s_f sqrt(2 pi))) per pixel, s_p = 11 sqrt(2) px (the
    parsing blur) and s_f = 8 px (the feathered square it is multiplied by; |d(ab)| <= |da| + |db|
    for a, b in [0, 1]); 10 % for the sampled kernels. The step itself is still there: the slope
    across it reaches 90 % of a blurred step's peak, and the background half is masked out."""
    from facexlib.parsing.parsenet import ParseNet

    from faceprior.inference import ParseMask
    from faceprior.inference.masks import PARSE_SIGMA_512

    torch.save(ParseNet(512, 512, 19).state_dict(), tmp_path / "parsing_parsenet.pth")
    mask = ParseMask(tmp_path)
    mask.net = _HalfBackground()
    m = mask(torch.rand((1, 3, 512, 512)))[0, 0]
    peak = 1.0 / math.sqrt(2 * math.pi)
    steepest = max(m.diff(dim=d).abs().max().item() for d in (0, 1))
    assert steepest <= 1.1 * (peak / PARSE_SIGMA_512 + peak / (FEATHER_SIGMA * 512))
    across = m[256].diff().abs()[200:312].max().item()  # the label step, away from the square
    assert across >= 0.9 * peak / PARSE_SIGMA_512
    assert m[256, 100].item() < 1e-3 and m[256, 400].item() > 0.99


def test_feather_mask_maker_broadcasts_over_the_batch() -> None:
    m = FeatherMask()(torch.zeros((3, 3, 32, 32)))
    assert m.shape == (3, 1, 32, 32)
