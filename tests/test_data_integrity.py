"""Bad input never trains silently: one decoder for check and training, EXIF, component matching.

Truncated files, broken links, EXIF-rotated photos, landmark files that do not fit the folder and
out-of-range ``data.*`` options, each through the reader, the start-up screen, the DataModule and
the ``faceprior-data`` entry point.
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image, ImageOps
from torch.utils.data import DataLoader

from faceprior.data import BadImageError, ComponentBoxes, FaceDataModule, FaceDataset, read_image
from faceprior.data.cli import main as data_cli
from faceprior.data.io import decode_image_bytes, truncation_reason
from faceprior.data.screening import find_bad_records, screen_source
from faceprior.data.sources import FolderSource, write_lmdb
from faceprior.data.synthetic import render_face, write_synthetic_split

SIZE = 32


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_split(tmp_path_factory.mktemp("faces"), count=6, size=SIZE, seed=5)


def _jpeg(img: np.ndarray, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


@pytest.fixture
def truncated(tmp_path: Path, faces: Path) -> Path:
    """Four good PNGs, a JPEG and a PNG cut in half."""
    folder = tmp_path / "truncated"
    folder.mkdir()
    for path in sorted((faces / "images").glob("*.png"))[:4]:
        shutil.copy(path, folder / path.name)
    jpeg = _jpeg(render_face(1, 0, 64).image)
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = (faces / "images" / "00000005.png").read_bytes()
    (folder / "cut.png").write_bytes(png[: len(png) // 2])
    return folder


def _dm(root: Path, **kw: object) -> FaceDataModule:
    return FaceDataModule(str(root), size=SIZE, batch_size=2, num_workers=0, **kw)  # type: ignore[arg-type]


# -- one decoder ----------------------------------------------------------------------------------
def test_truncated_files_fail_the_reader_itself(truncated: Path) -> None:
    for name, kind in (("cut.jpg", "JPEG"), ("cut.png", "PNG")):
        with pytest.raises(BadImageError, match=rf"{name}.*truncated {kind}"):
            read_image(truncated / name)
    # a JPEG with bytes after its end-of-image marker is complete
    whole = _jpeg(render_face(1, 0, 64).image)
    assert truncation_reason(whole + b"\0" * 16) is None
    assert decode_image_bytes(whole + b"\0" * 16, "x").shape == (64, 64, 3)


def test_check_names_truncated_files(truncated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert data_cli(["check", str(truncated), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if line.startswith("unusable:")]
    assert len(bad) == 2
    assert "cut.jpg" in bad[0] and "truncated JPEG" in bad[0]
    assert "cut.png" in bad[1] and "truncated PNG" in bad[1]
    assert "4 usable image(s), 2 unusable file(s)" in out


def test_startup_screen_counts_and_drops_truncated(
    truncated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dm = _dm(truncated)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert dm.skipped_at_setup == 2
    assert dm.data_train is not None and len(dm.data_train) == 4  # type: ignore[arg-type]
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(warned) == 2 and any("cut.jpg" in m for m in warned)


def _screen_rank(rank: int, world: int, folder: str, init_file: str, out: str) -> None:
    """One DDP rank of the sharded screen: record which records it decoded and what it found."""
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        source = FolderSource(folder)
        reads: list[int] = []
        read = source.read

        def counted(index: int) -> object:
            reads.append(index)
            return read(index)

        source.read = counted  # type: ignore[method-assign]
        found = find_bad_records(source, workers=1)
        result = {"reads": sorted(reads), "bad": [[i, e.path, e.reason] for i, e in found]}
        Path(out, f"{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_split_the_screen_and_agree_on_the_result(
    truncated: Path, tmp_path: Path
) -> None:
    """Two gloo processes: each decodes a disjoint half of the 6 files, and both return the list a
    single process finds (same indices, paths and reasons), so every rank drops the same files."""
    import json

    import torch.multiprocessing as mp

    args = (2, str(truncated), str(tmp_path / "init"), str(tmp_path))
    mp.spawn(_screen_rank, args=args, nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["reads"] == [0, 2, 4] and ranks[1]["reads"] == [1, 3, 5]
    single = [[i, e.path, e.reason] for i, e in find_bad_records(FolderSource(truncated))]
    assert len(single) == 2 and ranks[0]["bad"] == ranks[1]["bad"] == single
    half = find_bad_records(FolderSource(truncated), shard=(1, 2))  # no process group: own share
    assert [i for i, _ in half] == [i for i, *_ in single if i % 2 == 1]


def test_benchmark_lq_folders_are_screened_and_bad_pairs_left_out(
    tmp_path: Path, faces: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real benchmarks: a truncated LQ file is skipped (counted, warned) instead of being scored as
    its neighbour (LQ-only) or crashing a worker (paired: the GT loses that pair); strict stops."""
    from faceprior.data import Benchmark

    gt, lq = tmp_path / "gt", tmp_path / "lq"
    gt.mkdir(), lq.mkdir()
    for path in sorted((faces / "images").glob("*.png"))[:4]:
        shutil.copy(path, gt / path.name)
        shutil.copy(path, lq / path.name)
    png = (lq / "00000002.png").read_bytes()
    (lq / "00000002.png").write_bytes(png[: len(png) // 2])
    benches = {
        "pairs": Benchmark("pairs", "paired", gt_root=str(gt), lq_root=str(lq)),
        "real": Benchmark("real", "lq_only", lq_root=str(lq)),
    }

    def module(**kw: object) -> FaceDataModule:
        return FaceDataModule(
            str(gt), size=SIZE, batch_size=2, num_workers=0, benchmarks=benches, **kw
        )  # type: ignore[arg-type]

    dm = module()
    with caplog.at_level(logging.WARNING):
        dm.setup("test")
    paired, real = dm.data_test
    names = ["00000000", "00000001", "00000003"]
    assert [paired.source.name(i) for i in range(len(paired))] == names  # type: ignore[attr-defined]
    assert [real.inner.source.name(i) for i in range(len(real))] == names  # type: ignore[attr-defined]
    assert all(paired[i]["lq"].shape == (3, SIZE, SIZE) for i in range(3))  # type: ignore[index, union-attr]
    assert dm.skipped_at_setup == 2  # the bad LQ file, once per benchmark reading it
    assert any("1 pair(s) left out" in r.getMessage() for r in caplog.records)
    with pytest.raises(BadImageError, match=r"00000002\.png.*truncated PNG"):
        module(strict=True).setup("test")


def test_strict_stops_at_setup_even_without_verify(truncated: Path) -> None:
    with pytest.raises(BadImageError, match=r"cut\.jpg.*truncated JPEG"):
        _dm(truncated, strict=True, verify=False).setup("fit")


def test_a_skipped_file_is_warned_once_per_run(
    truncated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = FolderSource(truncated)  # not screened: the bad files are met while loading
    ds = FaceDataset(source, SIZE)
    bad = [p.name for p in source.files].index("cut.jpg")
    loader = DataLoader(ds, batch_size=len(ds), num_workers=1)
    batch = next(iter(loader))  # epoch 1, in a worker process
    # cut.jpg skips to cut.png, skips to the first image; cut.png skips once
    assert batch["skipped"].tolist() == [0, 0, 0, 0, 2, 1]
    with caplog.at_level(logging.WARNING):  # epoch 2: the worker's reports are remembered
        item = ds[bad]
    assert item["skipped"] == 2  # still counted
    assert not [r for r in caplog.records if "skipping" in r.getMessage()]


# -- right data or an error -----------------------------------------------------------------------
@pytest.mark.parametrize(("orientation", "turns"), [(6, 1), (8, -1), (3, 2)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turns: int) -> None:
    upright = render_face(2, 0, 64).image[8:56]  # 48 x 64: a rotation changes the shape
    stored = np.ascontiguousarray(np.rot90(upright, turns))
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(_jpeg(stored, _orientation(orientation)))
    img = read_image(path)
    assert img.shape == upright.shape
    assert np.abs(img.astype(int) - upright).mean() < 3
    with Image.open(path) as pil:
        assert np.array_equal(img, np.asarray(ImageOps.exif_transpose(pil)))
    # lossless: PNG's eXIf chunk gives back the exact array
    png = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(png, exif=_orientation(orientation))
    assert np.array_equal(read_image(png), upright)


def _boxes(table: dict[str, np.ndarray], key: str) -> torch.Tensor:
    from faceprior.data.dataset import components_to_boxes

    return torch.from_numpy(components_to_boxes(table[key], 1.4))


def test_component_boxes_follow_the_stem_when_a_file_is_missing(
    tmp_path: Path, faces: Path
) -> None:
    folder = tmp_path / "gap"
    folder.mkdir()
    for path in sorted((faces / "images").glob("*.png")):
        if path.stem != "00000002":
            shutil.copy(path, folder / path.name)
    comps = ComponentBoxes(faces / "eye_mouth_landmarks.pth")
    ds = FaceDataset(folder, SIZE, components=comps)
    for index, path in enumerate(ds.source.files):  # type: ignore[union-attr]
        torch.testing.assert_close(ds[index]["boxes"], _boxes(comps.table, path.stem))


def _renamed(tmp_path: Path, faces: Path, skip: str | None = None) -> Path:
    """The faces under names that are not landmark keys (``face_a.png`` ...)."""
    folder = tmp_path / "renamed"
    folder.mkdir(parents=True)
    for path, letter in zip(sorted((faces / "images").glob("*.png")), "abcdef", strict=True):
        if path.stem != skip:
            shutil.copy(path, folder / f"face_{letter}.png")
    return folder


def test_position_fallback_only_for_a_complete_folder(tmp_path: Path, faces: Path) -> None:
    comps = ComponentBoxes(faces / "eye_mouth_landmarks.pth")
    complete = FaceDataset(_renamed(tmp_path, faces), SIZE, components=comps)
    torch.testing.assert_close(complete[3]["boxes"], _boxes(comps.table, "00000003"))
    gap = _renamed(tmp_path / "g", faces, skip="00000002")
    with pytest.raises(ValueError, match=r"face_a\.png.*5 images but the file 6 entries"):
        FaceDataset(gap, SIZE, components=comps)


def test_position_fallback_refused_after_a_file_is_dropped(tmp_path: Path, faces: Path) -> None:
    folder = _renamed(tmp_path, faces)
    (folder / "face_c.png").write_bytes((folder / "face_c.png").read_bytes()[:100])
    # an extra image keeps the count at the landmark file's six, but face_d... would be shifted
    shutil.copy(folder / "face_a.png", folder / "face_g.png")
    dm = _dm(folder, train_components=str(faces / "eye_mouth_landmarks.pth"))
    with pytest.raises(ValueError, match=r"face_a\.png.*left out at start-up.*face_c"):
        dm.setup("fit")


def test_broken_links_and_subfolders_are_reported(
    tmp_path: Path, faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "links"
    (folder / "extra").mkdir(parents=True)
    for path in sorted((faces / "images").glob("*.png"))[:3]:
        shutil.copy(path, folder / path.name)
    shutil.copy(faces / "images" / "00000004.png", folder / "extra" / "00000004.png")
    (folder / "00000009.png").symlink_to(tmp_path / "gone.png")
    assert data_cli(["check", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "00000009.png: broken symbolic link" in out
    assert "1 image(s) lie in 1 subfolder(s)" in out and "extra/ (1)" in out
    assert "'00000000': 00000000.png, extra/00000000.png" not in out  # distinct stems so far
    shutil.copy(folder / "00000000.png", folder / "extra" / "00000000.png")
    data_cli(["check", str(folder)])
    assert "'00000000': 00000000.png, extra/00000000.png" in capsys.readouterr().out
    assert FolderSource(folder).dropped == ["00000009"]  # a hole in the position order


# -- ranges and messages --------------------------------------------------------------------------
def test_data_size_is_range_checked_before_any_data(
    make_cfg: Callable[..., DictConfig], data_root: Path, faces: Path
) -> None:
    with pytest.raises(ValueError, match=r"data\.size must be an integer >= 1, got -1"):
        FaceDataModule(str(faces / "images"), size=-1, batch_size=2)
    with pytest.raises(ValueError, match=r"data\.crop_size=64 must not exceed data\.size=32"):
        FaceDataModule(str(faces / "images"), size=32, batch_size=2, crop_size=64)
    from faceprior.runs import build_datamodule

    cfg = make_cfg(["data.size=-1"])
    with pytest.raises(Exception, match=r"data\.size must be an integer >= 1"):
        build_datamodule(cfg)
    assert not (data_root / "synthetic_-1").exists()


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert data_cli(["check", str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("faceprior-data: error: image folder")
    assert str(missing) in err[0] and "Traceback" not in err[0]
    with pytest.raises(FileNotFoundError):
        data_cli(["check", str(missing), "--debug"])
    with pytest.raises(SystemExit) as exit_info:
        data_cli(["synth", str(tmp_path / "s"), "--size", "-1"])
    assert exit_info.value.code == 2 and "--size: must be >= 1" in capsys.readouterr().err


def test_valid_folder_and_lmdb_pass_check(
    tmp_path: Path, faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert data_cli(["check", str(faces / "images")]) == 0
    assert "6 usable image(s), 0 unusable file(s)" in capsys.readouterr().out
    source = FolderSource(faces / "images")
    assert screen_source(source, verify=True, strict=True) == 0 and not source.dropped
    assert cv2.imread(str(source.files[0])) is not None
    # an LMDB is checked with its own reader (values decoded by decode_image_bytes, in threads)
    db = write_lmdb(source.files, tmp_path / "faces.lmdb")
    assert data_cli(["check", str(db), "--workers", "3"]) == 0
    assert "6 usable image(s)" in capsys.readouterr().out
