"""``faceprior-restore``: model loading (official files, registry names, training checkpoints), bad
input handled one file at a time, exit codes. Real-photo cases use ../shared (``real_data``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from faceprior.checkpoints import export_checkpoint
from faceprior.checkpoints.errors import CheckpointError
from faceprior.checkpoints.registry import get_spec
from faceprior.data.io import BadImageError
from faceprior.data.synthetic import render_face
from faceprior.inference import load_face_model, read_photo
from faceprior.inference.cli import expand_inputs, main
from faceprior.nets import UNet

from .conftest import SHARED

WILD = SHARED / "images" / "in_the_wild"
DETECTOR = SHARED / "weights" / "facexlib"
UNET = {
    "in_channels": 3, "out_channels": 3, "base_channels": 8, "channel_mults": [1, 2],
    "blocks_per_level": 1, "global_residual": True, "norm": "none",
}  # fmt: skip


def training_run(root: Path, seed: int = 0) -> Path:
    """A faceprior-style run folder: checkpoints/last.ckpt (net_g + a different EMA) and
    .hydra/config.yaml naming the generator, as `faceprior-train` leaves them."""
    torch.manual_seed(seed)
    net, ema = UNet(**UNET), UNet(**UNET)
    state = {f"net_g.{k}": v for k, v in net.state_dict().items()}
    state.update({f"ema.shadow.{k}": v for k, v in ema.state_dict().items()})
    (root / "checkpoints").mkdir(parents=True)
    (root / ".hydra").mkdir()
    meta = {"module_class": "faceprior.models.restoration.RestorationModule", "experiment": None}
    torch.save({"state_dict": state, "faceprior": meta}, root / "checkpoints" / "last.ckpt")
    cfg = {
        "data": {"size": 64},
        "model": {"generator": {"_target_": "faceprior.nets.UNet", **UNET}},
    }
    (root / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.save(ema.state_dict(), root / "ema.pt")
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return training_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def gpen256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = get_spec("GPEN-BFR-256")
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    return export_checkpoint(spec.build(dict(spec.kwargs)), folder / spec.filename, spec.layout)


# -- models -----------------------------------------------------------------------------------
def test_a_training_checkpoint_gives_its_ema_generator(ckpt: Path) -> None:
    model = load_face_model(str(ckpt))
    assert model.family == "generic" and model.face_size == 64 and model.template == "ffhq"
    assert model.info["weights"] == "ema.shadow" and model.info["config"].endswith("config.yaml")
    ema = UNet(**UNET)
    ema.load_state_dict(torch.load(ckpt.parents[1] / "ema.pt"))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), ema(x).clamp(-1, 1))


def test_a_checkpoint_without_config_says_what_to_pass(tmp_path: Path, ckpt: Path) -> None:
    lone = tmp_path / "moved.ckpt"
    lone.write_bytes(ckpt.read_bytes())
    with pytest.raises(CheckpointError, match="--config"):
        load_face_model(str(lone))
    assert (
        load_face_model(str(lone), config=ckpt.parents[1] / ".hydra" / "config.yaml").face_size
        == 64
    )


def test_official_files_by_family_by_name_and_mismatched(gpen256: Path) -> None:
    model = load_face_model("gpen", weights=gpen256)
    assert (model.family, model.face_size, model.template) == ("gpen", 256, "gpen")
    assert model.info["registry_entry"] == "GPEN-BFR-256" and len(model.info["sha256"]) == 64
    assert load_face_model("GPEN-BFR-256", weights_dir=gpen256.parent).name == "GPEN-BFR-256"
    with pytest.raises(CheckpointError, match="use --model gpen"):
        load_face_model("gfpgan", weights=gpen256)
    # a family without --weights: its newest release from the weights dir (as faceprior-export)
    with pytest.raises(FileNotFoundError, match=r"GFPGANv1\.4\.pth"):
        load_face_model("gfpgan", weights_dir=gpen256.parent)


# -- decoding ---------------------------------------------------------------------------------
def _face(size: int = 96) -> np.ndarray:
    return render_face(1, 0, size).image  # RGB uint8


def bad_and_odd_files(folder: Path) -> dict[str, Path]:
    """One file per awkward case, upright content = a synthetic face (RGB)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _face()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    files = {}
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1], dtype=np.uint8), (rgb.shape[0], 1))
    files["rgba"] = folder / "rgba.png"
    cv2.imwrite(str(files["rgba"]), np.dstack([bgr, alpha]))
    files["16bit"] = folder / "deep.png"
    cv2.imwrite(str(files["16bit"]), bgr.astype(np.uint16) * 257)
    files["gray"] = folder / "gray.png"
    cv2.imwrite(str(files["gray"]), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    files["palette"] = folder / "palette.png"
    Image.fromarray(rgb).quantize(64).save(files["palette"])
    files["exif"] = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    Image.fromarray(np.rot90(rgb, 1).copy()).save(files["exif"], exif=exif, quality=95)
    files["text"] = folder / "notes.jpg"
    files["text"].write_text("not an image")
    files["truncated"] = folder / "cut.png"
    cv2.imwrite(str(files["truncated"]), bgr)
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:-40])
    files["empty"] = folder / "empty.png"
    files["empty"].write_bytes(b"")
    return files


def test_read_photo_handles_every_awkward_file(tmp_path: Path) -> None:
    files = bad_and_odd_files(tmp_path)
    rgb = _face().astype(np.float32) / 255
    rgba = read_photo(files["rgba"])
    assert rgba.alpha is not None and rgba.alpha[0, -1] == 1.0 and rgba.alpha[0, 0] == 0.0
    np.testing.assert_allclose(rgba.rgb[:, 0], 1.0)  # transparent column composited over white
    deep = read_photo(files["16bit"])
    assert deep.bit_depth == 16 and np.abs(deep.rgb - rgb).max() < 1e-6
    gray = read_photo(files["gray"])
    assert gray.grayscale and gray.rgb.shape == (96, 96, 3)
    pal = read_photo(files["palette"])
    assert pal.palette and np.abs(pal.rgb - rgb).mean() < 0.03  # 64-colour quantisation
    rot = read_photo(files["exif"])
    assert rot.orientation == 6 and np.abs(rot.rgb - rgb).mean() < 0.03  # upright again
    for key, why in (("text", "decodable"), ("truncated", "truncated PNG"), ("empty", "empty")):
        with pytest.raises(BadImageError, match=why):
            read_photo(files[key])
    with pytest.raises(BadImageError, match="cannot read"):
        read_photo(tmp_path / "missing.png")
    with pytest.raises(BadImageError, match="MP, above the limit"):
        read_photo(files["rgba"], max_pixels=100 * 100, upscale=2)


def test_inputs_are_files_folders_and_globs(tmp_path: Path) -> None:
    files = bad_and_odd_files(tmp_path / "in")
    (tmp_path / "in" / "readme.txt").write_text("skip me")
    paths, missing = expand_inputs(
        [str(tmp_path / "in"), str(tmp_path / "in" / "*.png"), "nope/*.jpg"]
    )
    assert set(paths) == set(files.values())  # folders list images only; duplicates removed
    assert missing == [("nope/*.jpg", "no such file, folder or matching pattern")]


# -- the command line -------------------------------------------------------------------------
def _sidecar(out: Path, name: str) -> dict:
    return json.loads((out / "sidecars" / f"{name}.json").read_text())


def test_cli_on_aligned_crops_keeps_going_past_bad_files(
    tmp_path: Path, ckpt: Path, capsys
) -> None:
    files = bad_and_odd_files(tmp_path / "in")
    out = tmp_path / "out"
    code = main(
        [str(tmp_path / "in"), "--model", str(ckpt), "--aligned", "--out", str(out), "--quiet"]
    )
    text = capsys.readouterr().out
    assert code == 0
    for key in ("text", "truncated", "empty"):
        assert (
            files[key].name in text and not (out / "sidecars" / f"{files[key].stem}.json").exists()
        )
    assert "failed:" in text and "3 failed" in text
    rgba = cv2.imread(str(out / "restored" / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (64, 64, 4)  # aligned: the restored crop, alpha kept
    deep = cv2.imread(str(out / "restored" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16
    gray = cv2.imread(str(out / "restored" / "gray.png"), cv2.IMREAD_UNCHANGED)
    assert gray.ndim == 2
    side = _sidecar(out, "rotated")
    assert any("EXIF orientation 6" in n for n in side["notes"])
    assert side["settings"]["model"]["family"] == "generic" and side["settings"]["aligned"]
    assert (out / "faces" / "palette_00_before.png").exists() and (
        out / "compare" / "palette.jpg"
    ).exists()


def test_cli_exit_codes(tmp_path: Path, ckpt: Path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    args = ["--model", str(ckpt), "--aligned", "--out", str(tmp_path / "o"), "--quiet"]
    assert main([str(bad), *args]) == 1  # nothing written
    odd = tmp_path / "photo[red] [1].png"  # printed as named, not read as console markup
    odd.write_text("nope")
    assert main([str(odd), *args]) == 1
    assert f"{odd}: " in capsys.readouterr().out
    assert main([str(bad), *args, "--device", "cuda:99"]) == 2  # set-up error, named
    assert "faceprior-restore: error:" in (err := capsys.readouterr().err) and "cuda:99" in err
    detector = ["--detector", "mobile0.25", "--detector-weights", str(tmp_path)]
    assert main([str(bad), "--model", str(ckpt), "--out", str(tmp_path / "o"), *detector]) == 2
    assert "detection_mobilenet0.25_Final.pth" in capsys.readouterr().err


# -- real photos and the real detector --------------------------------------------------------
@pytest.mark.real_data
def test_cli_on_real_photos_with_bad_inputs(tmp_path: Path, ckpt: Path, capsys) -> None:
    """Real faces in awkward containers: each is found and restored, alpha/16 bits/grey kept at
    upscale 1, the rotated file is restored upright, a face-free photo is written with a note."""
    src = tmp_path / "in"
    src.mkdir()
    bgr = cv2.imread(str(WILD / "Blake_Lively.jpg"))
    h, w = bgr.shape[:2]
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, : w // 10] = 0
    cv2.imwrite(str(src / "rgba.png"), np.dstack([bgr, alpha]))
    cv2.imwrite(str(src / "deep.png"), bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(src / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    Image.fromarray(bgr[:, :, ::-1]).quantize(256).save(src / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(bgr[:, :, ::-1], 1).copy()).save(src / "rotated.jpg", exif=exif)
    yy, xx = np.mgrid[0:200, 0:300]
    cv2.imwrite(
        str(src / "sky.png"), np.dstack([xx % 256, yy % 256, 0 * xx + 128]).astype(np.uint8)
    )
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "out"
    args = ["--model", str(ckpt), "--out", str(out), "--upscale", "1", "--quiet"]
    code = main([str(src), *args, "--detector", "mobile0.25", "--detector-weights", str(DETECTOR)])
    text = capsys.readouterr().out
    assert code == 0 and "broken.jpg" in text and "sky.png" in text
    for name in ("rgba", "deep", "gray", "palette", "rotated"):
        side = _sidecar(out, name)
        assert side["faces_found"] == 2, (name, side["notes"])
        assert side["output_size"] == [w, h]  # the rotated file too: restored upright
    restored = cv2.imread(str(out / "restored" / "rgba.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(restored[:, :, 3], alpha)  # alpha untouched at upscale 1
    assert cv2.imread(str(out / "restored" / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(str(out / "restored" / "gray.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    sky = _sidecar(out, "sky")
    assert sky["status"] == "no_face" and any("no face" in n for n in sky["notes"])
    assert (out / "restored" / "sky.png").exists()
