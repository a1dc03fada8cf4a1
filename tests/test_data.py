"""Sources, decoding conversions, bad files, component boxes and the DataModule's batches."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceprior.data import (
    BadImageError,
    Benchmark,
    ComponentBoxes,
    FaceDataModule,
    FaceDataset,
    FolderSource,
    LMDBSource,
    read_image,
)
from faceprior.data.cli import main as data_cli
from faceprior.data.screening import screen_source
from faceprior.data.sources import write_lmdb
from faceprior.data.synthetic import render_face, write_synthetic_split
from faceprior.degradation import Degradation, GaussianNoise, Quantize


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_split(tmp_path_factory.mktemp("faces"), count=6, size=48, seed=3)


def test_synthetic_is_deterministic_and_varied() -> None:
    a, b = render_face(7, 3, 64), render_face(7, 3, 64)
    c = render_face(7, 4, 64)
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image)
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 10
    # eyes sit near the FFHQ template (scaled to 64 px), left eye left of right eye
    le, re = a.components["left_eye"], a.components["right_eye"]
    assert le[0] < re[0]
    assert abs(le[1] - 240 / 8) < 4 and abs((le[0] + re[0]) / 2 - 32) < 4


def test_synthetic_split_files(faces: Path) -> None:
    images = sorted((faces / "images").glob("*.png"))
    assert [p.name for p in images] == [f"{i:08d}.png" for i in range(6)]
    table = torch.load(faces / "eye_mouth_landmarks.pth", weights_only=False)
    assert set(table) == {p.stem for p in images}
    assert set(table["00000000"]) == {"left_eye", "right_eye", "mouth"}
    assert len(table["00000000"]["mouth"]) == 3


def test_data_cli_synth(tmp_path: Path) -> None:
    assert data_cli(["synth", str(tmp_path / "s"), "--count", "3", "--size", "32"]) == 0
    assert len(list((tmp_path / "s" / "images").glob("*.png"))) == 3


def test_conversions(tmp_path: Path) -> None:
    gray = np.full((20, 30), 100, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    rgba[..., 3] = 128
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    deep = np.full((8, 8, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    g = read_image(tmp_path / "g.png")
    assert g.shape == (20, 30, 3) and (g == 100).all()
    a = read_image(tmp_path / "a.png")
    assert a.shape == (10, 10, 3)
    assert a[0, 0, 0] == 255 and abs(int(a[0, 0, 1]) - 127) <= 1  # red over white at 50 %
    d = read_image(tmp_path / "d.png")
    assert d.dtype == np.uint8 and (d == 255).all()
    ds = FaceDataset(FolderSource(tmp_path), size=16)
    item = ds[[p.name for p in ds.source.files].index("g.png")]
    assert item["gt"].shape == (3, 16, 16) and item["gt"].dtype == torch.uint8


def _bad_folder(tmp_path: Path, faces: Path) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in sorted((faces / "images").glob("*.png"))[:4]:
        (folder / p.name).write_bytes(p.read_bytes())
    data = (faces / "images" / "00000004.png").read_bytes()
    (folder / "00000004_truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_bad_files_warn_and_count(
    tmp_path: Path, faces: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _bad_folder(tmp_path, faces)
    source = FolderSource(folder)
    with caplog.at_level(logging.WARNING):
        removed = screen_source(source, verify=True, strict=False)
    assert removed == 2
    skips = [r for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skips) == 2
    assert any("00000004_truncated.png" in r.getMessage() for r in skips)
    assert any("notes.txt" in r.getMessage() for r in skips)
    assert len(source) == 4


def test_bad_files_strict_names_first(tmp_path: Path, faces: Path) -> None:
    folder = _bad_folder(tmp_path, faces)
    with pytest.raises(BadImageError, match=r"00000004_truncated\.png"):
        screen_source(FolderSource(folder), verify=True, strict=True)


def test_unverified_bad_file_is_skipped_at_read(tmp_path: Path, faces: Path) -> None:
    folder = _bad_folder(tmp_path, faces)
    ds = FaceDataset(FolderSource(folder), size=48)
    names = [p.name for p in ds.source.files]
    item = ds[names.index("00000004_truncated.png")]
    assert item["skipped"] == 1 and item["gt"].shape == (3, 48, 48)
    strict = FaceDataset(FolderSource(folder), size=48, strict=True)
    with pytest.raises(BadImageError, match="truncated"):
        strict[names.index("00000004_truncated.png")]


def test_missing_root_names_path_and_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        FolderSource(tmp_path / "nowhere")
    assert "nowhere" in str(info.value) and "faceprior-data synth" in str(info.value)


def test_lmdb_round_trip(tmp_path: Path, faces: Path) -> None:
    files = sorted((faces / "images").glob("*.png"))
    out = write_lmdb(files, tmp_path / "faces.lmdb")
    src = LMDBSource(out)
    assert len(src) == len(files) and src.name(0) == files[0].stem
    assert np.array_equal(src.read(2), read_image(files[2]))
    ds = FaceDataset(out, size=48)
    assert ds[1]["gt"].shape == (3, 48, 48)


def test_component_boxes_follow_flip(faces: Path) -> None:
    comps = ComponentBoxes(faces / "eye_mouth_landmarks.pth")
    plain = FaceDataset(faces / "images", 48, components=comps)
    flipped = FaceDataset(faces / "images", 48, components=comps, flip_prob=1.0)
    a, b = plain[0], flipped[0]
    assert torch.equal(b["gt"], a["gt"].flip(-1))
    table = torch.load(faces / "eye_mouth_landmarks.pth", weights_only=False)["00000000"]
    cx, cy, h = table["left_eye"]
    h14 = h * 1.4
    assert torch.allclose(
        a["boxes"][0], torch.tensor([cx - h14 + 1, cy - h14 + 1, cx + h14, cy + h14]), atol=1e-4
    )
    # flipped: the image's right eye becomes the left one, mirrored as x -> W - x
    rcx, rcy, rh = table["right_eye"]
    rh14 = rh * 1.4
    fx = 48 - rcx
    assert torch.allclose(
        b["boxes"][0],
        torch.tensor([fx - rh14 + 1, rcy - rh14 + 1, fx + rh14, rcy + rh14]),
        atol=1e-4,
    )
    mcx, mcy, mh = table["mouth"]
    assert torch.allclose(
        b["boxes"][2],
        torch.tensor([48 - mcx - mh + 1, mcy - mh + 1, 48 - mcx + mh, mcy + mh]),
        atol=1e-4,
    )


def _dm(faces: Path, **kw: object) -> FaceDataModule:
    deg = Degradation({"noise": GaussianNoise(sigma=(5, 20)), "q": Quantize()})
    return FaceDataModule(
        str(faces / "images"),
        size=48,
        batch_size=4,
        degradation=deg,
        val_root=str(faces / "images"),
        num_workers=0,
        benchmarks={"b": Benchmark("b", gt_root=str(faces / "images"), seed=5)},
        **kw,  # type: ignore[arg-type]
    )


def test_datamodule_batches(faces: Path) -> None:
    dm = _dm(faces, train_components=str(faces / "eye_mouth_landmarks.pth"))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["gt"].dtype == torch.uint8 and batch["boxes"].shape == (4, 3, 4)
    out = dm.degrade_batch(batch, dm.train_seeds(4))
    assert out["lq"].shape == (4, 3, 48, 48) and out["lq"].dtype == torch.float32
    assert out["lq"].min() >= 0 and out["lq"].max() <= 1
    assert out["params"]["noise.sigma"].unique().numel() == 4  # per-sample parameters
    assert not torch.equal(out["lq"], out["gt"])


def test_eval_degradation_is_deterministic_per_index(faces: Path) -> None:
    dm = _dm(faces)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    seeds = dm.eval_seeds(batch["index"], dm.val_seed)
    a = dm.degrade_batch(batch, seeds)["lq"]
    b = dm.degrade_batch(batch, dm.eval_seeds(batch["index"], dm.val_seed))["lq"]
    assert torch.equal(a, b)
    # the same image alone in a batch gets the same degradation
    single = {k: v[1:2] for k, v in batch.items()}
    c = dm.degrade_batch(single, dm.eval_seeds(single["index"], dm.val_seed))["lq"]
    assert torch.equal(c[0], a[1])


def test_train_seeds_resume_from_state(faces: Path) -> None:
    dm = _dm(faces)
    dm.setup("fit")
    dm.train_seeds(4)
    state = dm.state_dict()
    expected = dm.train_seeds(4)
    other = _dm(faces)
    other.load_state_dict(state)
    other.setup("fit")
    assert other.train_seeds(4) == expected


def test_global_batch_must_divide(faces: Path) -> None:
    dm = _dm(faces)

    class _T:
        world_size, global_rank = 3, 0

    dm.trainer = _T()  # type: ignore[assignment]
    with pytest.raises(ValueError, match="divisible"):
        dm.setup("fit")


def test_paired_and_lq_only_benchmarks(tmp_path: Path, faces: Path) -> None:
    gt = faces / "images"
    lq = tmp_path / "lq"
    lq.mkdir()
    for p in gt.glob("*.png"):
        img = cv2.imread(str(p))
        cv2.imwrite(str(lq / p.name), cv2.GaussianBlur(img, (5, 5), 2))
    dm = FaceDataModule(
        str(gt),
        48,
        2,
        num_workers=0,
        benchmarks={
            "pairs": Benchmark("pairs", kind="paired", gt_root=str(gt), lq_root=str(lq)),
            "real": Benchmark("real", kind="lq_only", lq_root=str(lq)),
        },
    )
    dm.setup("test")
    loaders = dm.test_dataloader()
    paired = dm.degrade_batch(next(iter(loaders[0])), None)
    assert paired["lq"].shape == paired["gt"].shape == (2, 3, 48, 48)
    assert not torch.equal(paired["lq"], paired["gt"])
    real = dm.degrade_batch(next(iter(loaders[1])), None)
    assert "gt" not in real and real["lq"].shape == (2, 3, 48, 48)


def test_regenerating_a_smaller_synthetic_split_removes_stale_images(tmp_path: Path) -> None:
    from faceprior.data.synthetic import synthetic_split_complete

    root = tmp_path / "split"
    write_synthetic_split(root, count=4, size=32, seed=0)
    write_synthetic_split(root, count=2, size=32, seed=0)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["00000000.png", "00000001.png"]
    assert sorted(torch.load(root / "eye_mouth_landmarks.pth")) == ["00000000", "00000001"]
    assert synthetic_split_complete(root, 2, 32, 0) and not synthetic_split_complete(root, 4, 32, 0)


def test_eval_sampler_gives_every_image_once_across_ranks() -> None:
    from faceprior.data.sampler import EvalSampler

    data = list(range(7))
    shards = [list(EvalSampler(data, num_replicas=2, rank=r)) for r in (0, 1)]
    assert shards == [[0, 2, 4, 6], [1, 3, 5]]  # no padding repeat of image 0 on rank 1
    assert [len(EvalSampler(data, num_replicas=2, rank=r)) for r in (0, 1)] == [4, 3]
    assert list(EvalSampler(data)) == data
    assert list(EvalSampler(data[:1], num_replicas=3, rank=2)) == []
