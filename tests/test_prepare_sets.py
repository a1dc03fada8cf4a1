"""``faceprior-prepare ffhq | celeba-hq | folder | fid-stats``: outputs, landmark file, CelebA splits,
resume, bad inputs, checksum verification and FID statistics, on tiny generated images."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceprior.data import ComponentBoxes, FaceDataset, LMDBSource, read_image
from faceprior.data.dataset import components_to_boxes
from faceprior.data.io import to_square
from faceprior.data.prepare import PrepareError
from faceprior.data.prepare_cli import main
from faceprior.data.prepare_formats import (
    celeba_hq_index,
    celeba_split,
    read_celeba_mapping,
    read_checksums,
)
from faceprior.data.prepare_sets import CELEBA_HQ_COUNTS, _check_celeba_counts
from faceprior.data.synthetic import render_face

COUNT = 8
SRC_SIZE = 64


def write_face(path: Path, index: int, size: int = SRC_SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    face = cv2.cvtColor(render_face(3, index, size).image, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), face)


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: hand-made landmarks of FFHQ entry 0 (1024-pixel coordinates): a wide left eye, a narrow right
#: eye (its box hits the 16-pixel floor at 128) and a mouth wider than tall
LEFT_EYE = [(300, 400), (400, 410), (500, 420), (600, 430), (700, 440), (500, 450)]
RIGHT_EYE = [(600, 400), (610, 402), (620, 404), (630, 406), (640, 408), (620, 410)]
MOUTH = [(350 + 15 * k, 600 + 10 * k) for k in range(20)]


@pytest.fixture(scope="module")
def ffhq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FFHQ's layout: images1024x1024/<thousands>/NNNNN.png (here 64x64) + ffhq-dataset-v2.json."""
    root = tmp_path_factory.mktemp("ffhq")
    rng = np.random.default_rng(0)
    table = {}
    for i in range(COUNT):
        sub = f"{i // 5 * 1000:05d}"  # two sub-folders, as 00000/ and 01000/
        path = root / "images1024x1024" / sub / f"{i:05d}.png"
        write_face(path, i)
        points = rng.uniform(0, 1024, size=(68, 2))
        if i == 0:
            points[36:42], points[42:48], points[48:68] = LEFT_EYE, RIGHT_EYE, MOUTH
        table[str(i)] = {
            "image": {
                "file_path": f"images1024x1024/{sub}/{i:05d}.png",
                "file_md5": md5(path),
                "face_landmarks": points.tolist(),
            },
            "in_the_wild": {},
        }
    (root / "ffhq-dataset-v2.json").write_text(json.dumps(table))
    return root


@pytest.fixture()
def faces(tmp_path: Path) -> Path:
    folder = tmp_path / "faces"
    for i in range(5):
        write_face(folder / f"face_{i}.png", i, 48 + 8 * i)  # 48..80: enlarged and shrunk
    return folder


def run(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def test_ffhq_images_landmarks_and_lmdb(ffhq: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    landmarks = ffhq / "ffhq-dataset-v2.json"
    assert (
        run("ffhq", "--src", ffhq, "--out", out, "--size", 128, "--landmarks", landmarks, "--lmdb")
        == 0
    )
    names = [f"{i:05d}.png" for i in range(COUNT)]
    assert sorted(p.name for p in (out / "images").iterdir()) == names
    m = manifest(out)
    assert m["tool"]["name"] == "faceprior-prepare ffhq" and m["complete"]
    assert m["settings"]["resize"]["shrink"] == "cv2.INTER_AREA"
    assert m["settings"]["resize"]["enlarge"] == "cv2.INTER_CUBIC"
    assert {"torch", "opencv", "numpy"} <= set(m["environment"])
    for entry in m["images"]:
        source = ffhq / "images1024x1024" / entry["source"]
        assert entry["source_sha256"] == sha256(source) and entry["resize"] == "INTER_CUBIC"
        assert entry["output_sha256"] == sha256(out / entry["output"])
        written = read_image(out / entry["output"])
        assert written.shape == (128, 128, 3)
        assert np.array_equal(written, to_square(read_image(source), 128)[0])

    # the landmark file: GFP-GAN's parse_landmark.py rule at scale 128 / 1024
    table = torch.load(out / "eye_mouth_landmarks_128.pth", weights_only=False)
    assert list(table) == [f"{i:08d}" for i in range(COUNT)]
    s = 128 / 1024
    expected = {
        "left_eye": [500 * s, 425 * s, 200 * s],  # half of the 400-wide x range: 25 > 16
        "right_eye": [620 * s, 405 * s, 16.0],  # 40 * s / 2 = 2.5: the floor
        "mouth": [(350 + 15 * 9.5) * s, (600 + 10 * 9.5) * s, 15 * 19 / 2 * s],  # 17.8
    }
    assert set(table["00000000"]) == set(expected)
    for name, value in expected.items():
        assert all(isinstance(v, float) for v in table["00000000"][name])
        np.testing.assert_allclose(table["00000000"][name], value, rtol=1e-12)
    assert m["landmarks"]["count"] == COUNT and m["landmarks"]["output_sha256"] == sha256(
        out / "eye_mouth_landmarks_128.pth"
    )

    # the project's dataset reads the file (eyes enlarged 1.4x at load time), folder and LMDB
    boxes = ComponentBoxes(out / "eye_mouth_landmarks_128.pth")
    centres = np.array([expected[k] for k in ("left_eye", "right_eye", "mouth")])
    item = FaceDataset(out / "images", 128, components=boxes)[0]
    np.testing.assert_allclose(item["boxes"].numpy(), components_to_boxes(centres, 1.4), rtol=1e-6)
    lmdb = LMDBSource(out / "ffhq_128.lmdb")
    assert lmdb.keys == [f"{i:05d}" for i in range(COUNT)]
    from_lmdb = FaceDataset(lmdb, 128, components=boxes)[0]
    assert torch.equal(from_lmdb["gt"], item["gt"]) and torch.equal(
        from_lmdb["boxes"], item["boxes"]
    )


def test_rerun_is_identical_and_rewrites_nothing(
    ffhq: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, other = tmp_path / "out", tmp_path / "other"
    argv = [
        "ffhq",
        "--src",
        ffhq,
        "--size",
        32,
        "--lmdb",
        "--landmarks",
        ffhq / "ffhq-dataset-v2.json",
    ]
    assert run(*argv, "--out", out) == 0
    before = snapshot(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert run(*argv, "--out", out) == 0
    assert f"{COUNT}/{COUNT} images" in capsys.readouterr().out
    assert snapshot(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes | {
        out / "manifest.json": (out / "manifest.json").stat().st_mtime_ns
    }
    assert "written 0, kept 8" in run_output(capsys, *argv, "--out", out)
    assert run(*argv, "--out", other) == 0  # another folder: the same manifest bytes
    assert (other / "manifest.json").read_bytes() == before["manifest.json"]

    (out / "images" / "00003.png").unlink()
    (out / "images" / "00005.png").write_bytes(b"changed")
    assert "written 2, kept 6" in run_output(capsys, *argv, "--out", out)
    assert snapshot(out)["manifest.json"] == before["manifest.json"]
    # --limit shrinks the set: the outputs beyond it are removed
    assert "removed 5 stale" in run_output(capsys, *argv, "--out", out, "--limit", 3)
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    assert LMDBSource(out / "ffhq_32.lmdb").keys == ["00000", "00001", "00002"]
    # other settings need another --out or --overwrite
    assert run("ffhq", "--src", ffhq, "--out", out, "--size", 48) == 2
    err = capsys.readouterr().err
    assert "settings.size: 32 -> 48" in err and "--overwrite" in err
    assert run("ffhq", "--src", ffhq, "--out", out, "--size", 48, "--overwrite") == 0
    assert read_image(out / "images" / "00000.png").shape == (48, 48, 3)


def run_output(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    capsys.readouterr()
    assert run(*argv) == 0
    return capsys.readouterr().out


def test_folder_sizes_and_bad_images(
    faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (faces / "face_2x.jpg").write_bytes(b"\xff\xd8 truncated")
    (faces / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert run("folder", "--src", faces, "--out", out, "--size", 64) == 0
    printed = capsys.readouterr().out
    assert "5/6 images" in printed and "skipped 1" in printed and "face_2x.jpg" in printed
    m = manifest(out)
    assert [s["source"] for s in m["skipped"]] == ["face_2x.jpg"]
    resize = {e["source"]: e["resize"] for e in m["images"]}
    assert resize == {
        "face_0.png": "INTER_CUBIC",
        "face_1.png": "INTER_CUBIC",
        "face_2.png": "none",
        "face_3.png": "INTER_AREA",
        "face_4.png": "INTER_AREA",
    }
    assert all(read_image(p).shape == (64, 64, 3) for p in (out / "images").iterdir())
    assert run("folder", "--src", faces, "--out", tmp_path / "strict", "--strict") == 1
    assert "face_2x.jpg" in capsys.readouterr().err
    assert not (tmp_path / "strict" / "images" / "face_3.png").exists()  # stopped at the first

    # recursive: sub-folders are read; two files with one stem are an error naming both
    (faces / "more").mkdir()
    write_face(faces / "more" / "face_9.png", 9)
    (faces / "face_2x.jpg").unlink()
    rec = tmp_path / "rec"
    assert run("folder", "--src", faces, "--out", rec, "--recursive", "--lmdb", "--size", 32) == 0
    assert (rec / "images" / "face_9.png").is_file()
    assert manifest(rec)["images"][-1]["source"] == "more/face_9.png"
    assert len(LMDBSource(rec / "images_32.lmdb")) == 6
    write_face(faces / "more" / "face_1.jpg", 1)
    assert run("folder", "--src", faces, "--out", tmp_path / "dup", "--recursive") == 2
    err = capsys.readouterr().err
    assert "'more/face_1.jpg' and 'face_1.png'" in err


def test_manifest_verification_reports_missing_and_mismatching(
    faces: Path, ffhq: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = {p.name: sha256(p) for p in faces.iterdir()}
    expected["face_3.png"] = "0" * 64
    expected["face_7.png"] = "1" * 64  # not in --src
    checks = tmp_path / "sha256.json"
    checks.write_text(json.dumps(expected))
    out = tmp_path / "out"
    assert run("folder", "--src", faces, "--out", out, "--size", 32, "--manifest", checks) == 1
    printed = capsys.readouterr()
    assert "1 missing from --src:\n  face_7.png" in printed.out
    assert "1 with another hash:\n  face_3.png" in printed.out
    assert "do not match --manifest" in printed.err
    assert not (out / "images" / "face_3.png").exists()
    verification = manifest(out)["verification"]
    assert verification["missing"] == ["face_7.png"] and verification["mismatched"] == [
        "face_3.png"
    ]
    assert (
        run("folder", "--src", faces, "--out", tmp_path / "s", "--manifest", checks, "--strict")
        == 1
    )
    assert "face_7.png" in capsys.readouterr().err

    # FFHQ's own metadata (file_md5 per image) verifies an FFHQ folder
    meta = ffhq / "ffhq-dataset-v2.json"
    assert (
        run("ffhq", "--src", ffhq, "--out", tmp_path / "f", "--size", 32, "--manifest", meta) == 0
    )
    assert f"{COUNT}/{COUNT} files in --src" in capsys.readouterr().out


def write_celeba(root: Path, originals: list[int]) -> tuple[Path, Path]:
    """CelebA-HQ images named three ways, and a mapping in image_list.txt's five columns."""
    src = root / "CelebA-HQ-img"
    for i in range(len(originals)):
        name = (f"{i}.jpg", f"{i:05d}.png", f"imgHQ{i:05d}.png")[i % 3]
        write_face(src / name, i, 32)
    (src / "0_hair.png").write_bytes(b"")  # not a CelebA-HQ image name
    mapping = root / "image_list.txt"
    rows = [f"{i} {n - 1} {n:06d}.jpg md5a md5b" for i, n in enumerate(originals)]
    mapping.write_text("idx orig_idx orig_file proc_md5 final_md5\n" + "\n".join(rows) + "\n")
    return src, mapping


def test_celeba_hq_splits_with_and_without_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # original CelebA numbers: train <= 162770 < val <= 182637 < test <= 202599
    originals = [1, 162770, 162771, 182637, 182638, 202599, 50000, 190000]
    src, mapping = write_celeba(tmp_path, originals)
    out = tmp_path / "out"
    assert run("celeba-hq", "--src", src, "--out", out, "--mapping", mapping, "--size", 16) == 0
    printed = capsys.readouterr().out
    assert "train 3 (of 3 found), val 2 (of 2 found), test 3 (of 3 found)" in printed
    assert "0_hair.png" in printed  # skipped and listed
    splits = json.loads((out / "splits.json").read_text())
    assert splits == {
        "train": ["00000.png", "00001.png", "00006.png"],
        "val": ["00002.png", "00003.png"],
        "test": ["00004.png", "00005.png", "00007.png"],
    }
    for split, names in splits.items():
        assert sorted(p.name for p in (out / split).iterdir()) == names
    assert read_image(out / "test" / "00005.png").shape == (16, 16, 3)
    assert manifest(out)["split_counts"] == {"train": 3, "val": 2, "test": 3}

    # CelebA's list_eval_partition.txt decides instead when given (here it disagrees on purpose)
    partition = tmp_path / "list_eval_partition.txt"
    codes = {1: 2, 162770: 2, 162771: 0, 182637: 0, 182638: 1, 202599: 1, 50000: 0, 190000: 2}
    partition.write_text("".join(f"{n:06d}.jpg {c}\n" for n, c in sorted(codes.items())))
    other = tmp_path / "other"
    argv = ["celeba-hq", "--src", src, "--out", other, "--mapping", mapping, "--size", 16]
    assert run(*argv, "--partition", partition, "--splits", "test,val") == 0
    splits = json.loads((other / "splits.json").read_text())
    assert splits == {
        "val": ["00004.png", "00005.png"],
        "test": ["00000.png", "00001.png", "00007.png"],
    }
    assert not (other / "train").exists()
    assert run(*argv, "--partition", partition, "--strict") == 1  # 0_hair.png
    assert "0_hair.png" in capsys.readouterr().err


def test_celeba_formats_and_count_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mapping = tmp_path / "CelebA-HQ-to-CelebA-mapping.txt"
    mapping.write_text("idx orig_idx orig_file\n0 119613 119614.jpg\n1 99546 99547.jpg\n")
    assert read_celeba_mapping(mapping) == {0: "119614.jpg", 1: "99547.jpg"}
    mapping.write_text("idx orig_idx orig_file\n0 119613 119614.jpg\nx 1\n")
    with pytest.raises(PrepareError, match=r"CelebA-HQ-to-CelebA-mapping.txt:3: expected"):
        read_celeba_mapping(mapping)
    assert [celeba_hq_index(s) for s in ("0", "00042", "imgHQ29999", "0_hair")] == [
        0,
        42,
        29999,
        None,
    ]
    assert [celeba_split(f"{n:06d}.jpg", None) for n in (162770, 162771, 182638)] == [
        "train",
        "val",
        "test",
    ]
    assert sum(CELEBA_HQ_COUNTS.values()) == 30000
    _check_celeba_counts(Counter(CELEBA_HQ_COUNTS), 30000, strict=True)  # the official counts
    wrong = Counter({"train": 24000, "val": 3000, "test": 3000})
    with caplog.at_level(logging.WARNING):
        _check_celeba_counts(wrong, 30000, strict=False)
    assert "train 24000" in caplog.text and "train 24183" in caplog.text
    with pytest.raises(PrepareError, match="check --mapping and --partition"):
        _check_celeba_counts(wrong, 30000, strict=True)
    _check_celeba_counts(wrong, 29999, strict=True)  # not the full set: nothing to compare


def test_checksum_list_formats(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(
        json.dumps(
            [{"name": "a/x.png", "sha256": "A" * 64}, {"file_path": "y.png", "md5": "b" * 32}]
        )
    )
    found = read_checksums(path)
    assert {k: (d.algorithm, d.hexdigest) for k, d in found.items()} == {
        "x.png": ("sha256", "a" * 64),
        "y.png": ("md5", "b" * 32),
    }
    path.write_text(json.dumps({"x.png": "not-a-hash"}))
    with pytest.raises(PrepareError, match="not a SHA-256 or MD5"):
        read_checksums(path)


def test_fid_stats_with_a_random_inception(
    faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceprior.metrics.frechet import load_reference_stats
    from faceprior.metrics.inception import random_fid_inception

    empty = tmp_path / "no_weights"
    empty.mkdir()
    argv = ["fid-stats", "--folder", faces, "--device", "cpu", "--batch-size", 3]
    assert run(*argv, "--out", tmp_path / "s.pth", "--weights-dir", empty) == 2
    assert "pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().err
    assert run(*argv, "--out", tmp_path / "s.txt") == 2
    assert "expected a .pth (BasicSR) or .npz" in capsys.readouterr().err

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(
        random_fid_inception(0).state_dict(), weights / "pt_inception-2015-12-05-6726825d.pth"
    )
    with pytest.warns(UserWarning, match="does not match"):
        assert (
            run(*argv, "--out", tmp_path / "s.pth", "--weights-dir", weights, "--name", "tiny") == 0
        )
    stats = load_reference_stats(tmp_path / "s.pth")
    assert stats.name == "tiny" and stats.num_images == 5
    assert stats.mean.shape == (2048,) and stats.cov.shape == (2048, 2048)
    with pytest.warns(UserWarning, match="does not match"):
        assert (
            run(*argv, "--out", tmp_path / "s.npz", "--weights-dir", weights, "--num-images", 2)
            == 0
        )
    npz = np.load(tmp_path / "s.npz")
    assert npz["mu"].shape == (2048,) and npz["sigma"].shape == (2048, 2048)
    assert int(npz["num_images"]) == 2


def test_missing_inputs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    out = tmp_path / "out"
    for argv in (
        ["ffhq", "--src", missing],
        ["folder", "--src", missing],
        ["celeba-hq", "--src", missing, "--mapping", tmp_path / "m.txt"],
    ):
        assert run(*argv, "--out", out) == 2
        assert f"--src folder '{missing}' does not exist" in capsys.readouterr().err
    assert run("fid-stats", "--folder", missing, "--out", tmp_path / "s.pth") == 2
    assert f"--folder '{missing}' does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("folder", "--src", empty, "--out", out) == 2
    assert "contains no images" in capsys.readouterr().err
    faces = tmp_path / "faces"
    write_face(faces / "a.png", 0)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps({"0": {"image": {"face_landmarks": [[1, 2]] * 5}}}))
    assert run("ffhq", "--src", faces, "--out", out, "--landmarks", bad_json) == 2
    assert "entry '0' has no image.face_landmarks list of 68" in capsys.readouterr().err
    assert not out.exists()  # checked before any image is written
    shutil.rmtree(faces)
