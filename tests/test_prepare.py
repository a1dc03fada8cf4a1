"""``faceprior-prepare synth-benchmark``: deterministic, batch-independent, resumable benchmarks."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceprior.data import FaceDataModule, FaceDataset, read_image
from faceprior.data.io import to_square
from faceprior.data.prepare import (
    SynthSettings,
    benchmark_seeds,
    images_digest,
    load_degradation,
    synth_benchmark,
)
from faceprior.data.prepare_cli import main
from faceprior.data.synthetic import render_face

COUNT = 5


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 32x32 synthetic faces, written in an order unlike their sorted names."""
    root = tmp_path_factory.mktemp("gt")
    for i in reversed(range(COUNT)):
        face = render_face(11, i, 32).image
        cv2.imwrite(str(root / f"face_{i:02d}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    (root / "notes.txt").write_text("not an image: ignored")
    return root


@pytest.fixture()
def gt_copy(gt_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(gt_dir, tmp_path / "gt"))


def synth(gt: Path, out: Path, *extra: str) -> int:
    return main(["synth-benchmark", "--gt", str(gt), "--out", str(out), *extra])


def base(gt: Path, out: Path, *extra: str) -> int:
    return synth(gt, out, "--degradation", "gfpgan_v1", "--seed", "0", *extra)


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_rerun_gives_identical_files_and_manifest(gt_dir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert base(gt_dir, a) == 0
    first = snapshot(a)
    assert sorted(first) == [
        *(f"gt/face_{i:02d}.png" for i in range(COUNT)),
        *(f"lq/face_{i:02d}.png" for i in range(COUNT)),
        "manifest.json",
    ]
    assert base(gt_dir, a) == 0
    assert snapshot(a) == first
    assert base(gt_dir, b) == 0  # another folder: the same bytes (no paths, no timestamps)
    assert snapshot(b) == first

    m = manifest(a)
    assert m["complete"] and m["count"] == COUNT and m["failed"] == []
    assert m["tool"]["name"] == "faceprior-prepare synth-benchmark"
    assert {"torch", "torchvision", "opencv", "numpy"} <= set(m["environment"])
    assert {"pillow", "python", "device"} <= set(m["runtime"])
    settings = m["settings"]
    assert settings["degradation"] == "gfpgan_v1" and settings["seed"] == 0
    assert settings["degradation_config"] == load_degradation("gfpgan_v1")[1]
    assert settings["size"] is None and settings["resize"] is None
    assert m["images_sha256"] == images_digest(m["images"])
    for i, entry in enumerate(m["images"]):
        assert entry["index"] == i and entry["source"] == f"face_{i:02d}.png"
        assert entry["seed"] == benchmark_seeds(0, [i])[0]
        assert {"blur.sigma_x", "downsample.scale", "noise.sigma", "jpeg.quality"} <= set(
            entry["params"]
        )
        for kind in ("gt", "lq"):
            data = (a / entry[kind]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry[f"{kind}_sha256"]
        lq = read_image(a / entry["lq"])
        assert lq.shape == (32, 32, 3)
        # no --size: the GT written is the decoded source
        assert np.array_equal(read_image(a / entry["gt"]), read_image(gt_dir / entry["source"]))


def test_batch_size_does_not_change_the_output(gt_dir: Path, tmp_path: Path) -> None:
    one, four = tmp_path / "one", tmp_path / "four"
    assert base(gt_dir, one, "--batch-size", "1") == 0
    assert base(gt_dir, four, "--batch-size", "4") == 0  # batches of 4 and 1
    assert snapshot(one) == snapshot(four)


def test_another_seed_gives_other_lq_and_the_same_gt(gt_dir: Path, tmp_path: Path) -> None:
    s0, s1 = tmp_path / "s0", tmp_path / "s1"
    assert base(gt_dir, s0) == 0
    assert synth(gt_dir, s1, "--degradation", "gfpgan_v1", "--seed", "1") == 0
    m0, m1 = manifest(s0), manifest(s1)
    assert m0["images_sha256"] != m1["images_sha256"]
    for e0, e1 in zip(m0["images"], m1["images"], strict=True):
        assert e0["gt_sha256"] == e1["gt_sha256"]
        assert e0["lq_sha256"] != e1["lq_sha256"]


def test_benchmark_seeds_depend_on_seed_and_index() -> None:
    # torch CPU generators keep only the low 32 bits of a seed: the rule must stay within them
    assert all(0 <= s < 2**32 for s in benchmark_seeds(2**32 - 1, range(10)))
    assert benchmark_seeds(0, range(4)) == [0, 1, 2, 3]
    seen = {s for seed in range(4) for s in benchmark_seeds(seed, range(3000))}
    assert len(seen) == 4 * 3000


def test_lq_equals_the_datamodule_degradation_of_the_same_seeds(
    gt_dir: Path, tmp_path: Path
) -> None:
    """With --size, image i's LQ is what the DataModule's degradation of the dataset's item i gives
    with the same per-sample seed: decoding, resizing and degradation are the training path's."""
    out, seed = tmp_path / "out", 7
    assert (
        synth(gt_dir, out, "--degradation", "gfpgan_v1", "--seed", str(seed), "--size", "32") == 0
    )
    degradation, _ = load_degradation("gfpgan_v1")
    dm = FaceDataModule("unused", 32, COUNT, degradation=degradation, num_workers=0)
    dataset = FaceDataset(gt_dir, 32)
    items = [dataset[i] for i in range(COUNT)]
    batch = {"gt": torch.stack([it["gt"] for it in items]), "index": torch.arange(COUNT)}
    lq = (dm.degrade_batch(batch, benchmark_seeds(seed, range(COUNT)))["lq"] * 255).round()
    for i, entry in enumerate(manifest(out)["images"]):
        expected = lq[i].to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(read_image(out / entry["lq"]), expected)


def test_size_resizes_the_gt_and_records_the_filter(tmp_path: Path) -> None:
    """Mixed inputs: non-square (cropped), larger and smaller than --size, 16-bit gray, RGBA."""
    gt = tmp_path / "gt"
    gt.mkdir()
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 256, (56, 48, 3), dtype=np.uint8), (5, 5), 2)
    cv2.imwrite(str(gt / "a_big.png"), big)
    cv2.imwrite(str(gt / "b_small.jpg"), cv2.resize(big, (24, 24)))
    cv2.imwrite(str(gt / "c_gray16.png"), (rng.random((40, 40)) * 65535).astype(np.uint16))
    rgba = np.dstack([cv2.resize(big, (32, 32)), np.full((32, 32), 128, np.uint8)])
    cv2.imwrite(str(gt / "d_rgba.png"), rgba)
    out = tmp_path / "out"
    assert synth(gt, out, "--degradation", "mild", "--size", "32", "--batch-size", "3") == 0
    m = manifest(out)
    assert m["settings"]["size"] == 32
    assert m["settings"]["resize"]["shrink"] == "cv2.INTER_AREA"
    assert m["settings"]["resize"]["enlarge"] == "cv2.INTER_CUBIC"
    entries = {e["source"]: e for e in m["images"]}
    assert entries["a_big.png"]["resize"] == "INTER_AREA"
    assert entries["a_big.png"]["source_size"] == [48, 56]
    assert entries["b_small.jpg"]["resize"] == "INTER_CUBIC"
    assert entries["d_rgba.png"]["resize"] == "none"
    for name, entry in entries.items():
        written = read_image(out / entry["gt"])
        assert written.shape == (32, 32, 3)
        assert np.array_equal(written, to_square(read_image(gt / name), 32)[0])
        assert read_image(out / entry["lq"]).shape == (32, 32, 3)


def test_resume_rewrites_only_what_is_missing(gt_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    settings = SynthSettings("gfpgan_v1", seed=0)
    full = synth_benchmark(gt_copy, out, settings)
    assert (full.written, full.reused) == (COUNT, 0)
    before = snapshot(out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "lq").iterdir()}
    (out / "lq" / "face_02.png").unlink()
    again = synth_benchmark(gt_copy, out, settings, batch_size=2)
    assert (again.written, again.reused) == (1, COUNT - 1)
    assert snapshot(out) == before
    for p in (out / "lq").iterdir():
        if p.name != "face_02.png":
            assert p.stat().st_mtime_ns == mtimes[p.name]
    # a corrupted output is detected by its hash and rewritten
    (out / "gt" / "face_04.png").write_bytes(b"garbage")
    assert synth_benchmark(gt_copy, out, settings).written == 1
    assert snapshot(out) == before
    # --limit: a prefix of the same set; growing it reuses, shrinking it removes the rest
    short = tmp_path / "short"
    assert synth_benchmark(gt_copy, short, settings, limit=2).written == 2
    grown = synth_benchmark(gt_copy, short, settings)
    assert (grown.written, grown.reused) == (COUNT - 2, 2)
    assert manifest(short)["images"] == manifest(out)["images"]
    shrunk = synth_benchmark(gt_copy, short, settings, limit=2)
    assert shrunk.removed == 2 * (COUNT - 2)
    assert sorted(p.name for p in (short / "lq").iterdir()) == ["face_00.png", "face_01.png"]


def test_corrupt_gt_is_skipped_and_listed(
    gt_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (gt_copy / "face_01x.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    assert base(gt_copy, out) == 0
    printed = capsys.readouterr().out
    assert "face_01x.jpg" in printed and "failed 1" in printed
    m = manifest(out)
    assert [f["source"] for f in m["failed"]] == ["face_01x.jpg"]
    assert m["failed"][0]["index"] == 2  # sorted position: face_00, face_01, face_01x, ...
    assert m["count"] == COUNT and not (out / "lq" / "face_01x.png").exists()
    strict = tmp_path / "strict"
    assert base(gt_copy, strict, "--strict") == 1
    assert "--strict" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"")
    assert base(bad, tmp_path / "bad_out") == 1
    assert "no ground-truth image could be used" in capsys.readouterr().err


def test_other_settings_need_another_out_or_overwrite(
    gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert base(gt_dir, out) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert synth(gt_dir, out, "--degradation", "gfpgan_v1", "--seed", "5") == 2
    err = capsys.readouterr().err
    assert "settings.seed: 0 -> 5" in err
    assert "choose another --out" in err and "--overwrite" in err
    assert snapshot(out) == before
    assert synth(gt_dir, out, "--degradation", "mild", "--seed", "5", "--overwrite") == 0
    assert manifest(out)["settings"]["degradation"] == "mild"
    # PNGs without a manifest are not silently overwritten either
    (out / "manifest.json").unlink()
    assert base(gt_dir, out) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_bad_arguments(tmp_path: Path, gt_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert base(missing, tmp_path / "out") == 2
    assert f"--gt folder '{missing}' does not exist" in capsys.readouterr().err
    assert synth(gt_dir, tmp_path / "out") == 2
    assert "--degradation NAME or --preset NAME" in capsys.readouterr().err
    assert synth(gt_dir, tmp_path / "out", "--degradation", "no_such") == 2
    assert "gfpgan_v1" in capsys.readouterr().err  # lists the presets
    with pytest.raises(SystemExit):
        synth(gt_dir, tmp_path / "out", "--degradation", "mild", "--batch-size", "0")


def test_celeba_test_preset(
    gt_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = tmp_path / "out"
    assert synth(gt_dir, out, "--preset", "celeba_test", "--seed", "3") == 2
    assert "--preset celeba_test uses --seed 0" in capsys.readouterr().err
    assert synth(gt_dir, out, "--preset", "celeba_test", "--strict") == 2
    assert f"expects 3000 images, '{gt_dir}' has {COUNT}" in capsys.readouterr().err
    assert not out.exists()
    with caplog.at_level(logging.WARNING):
        assert synth(gt_dir, out, "--preset", "celeba_test", "--limit", "1") == 0
    assert "expects 3000 images" in caplog.text
    m = manifest(out)
    assert m["settings"]["preset"] == "celeba_test"
    assert (m["settings"]["degradation"], m["settings"]["size"], m["settings"]["seed"]) == (
        "gfpgan_v1",
        512,
        0,
    )
    assert m["images"][0]["resize"] == "INTER_CUBIC"
    assert read_image(out / "lq" / "face_00.png").shape == (512, 512, 3)
