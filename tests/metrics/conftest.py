"""Fixtures for the metric tests: the shared reference set and small synthetic image batches."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

#: ``../shared`` beside the repository root (reference data, read-only).
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE_DIR = SHARED / "reference" / "metrics"
PAIR_IDS = [f"p{i:02d}" for i in range(1, 11)]


def require_reference() -> Path:
    """Return the reference folder or skip the calling test with the reason."""
    if not (REFERENCE_DIR / "reference_values.json").is_file():
        pytest.skip(f"metric reference set not found at {REFERENCE_DIR} (needs ../shared)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the metric reference set (skips when ../shared is absent)."""
    return require_reference()


@pytest.fixture(scope="session")
def reference_values(reference_dir: Path) -> dict[str, Any]:
    """Parsed ``reference_values.json``."""
    return json.loads((reference_dir / "reference_values.json").read_text())


@pytest.fixture(scope="session")
def reference_pairs(reference_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{pair id: (restored BGR uint8, gt BGR uint8)}`` read with ``cv2.imread``."""
    pairs = {}
    for pid in PAIR_IDS:
        restored = cv2.imread(str(reference_dir / "pairs" / "restored" / f"{pid}.png"))
        gt = cv2.imread(str(reference_dir / "pairs" / "gt" / f"{pid}.png"))
        pairs[pid] = (restored, gt)
    return pairs


@pytest.fixture(scope="session")
def cli_results(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The acceptance command: ``faceprior-metrics`` psnr,ssim,psnr_y,ssim_y,niqe on the pairs."""
    from faceprior.metrics import cli

    out = tmp_path_factory.mktemp("cli") / "r.json"
    pairs = reference_dir / "pairs"
    argv = [str(pairs / "restored"), "--gt", str(pairs / "gt")]
    argv += ["--metrics", "psnr,ssim,psnr_y,ssim_y,niqe", "--out", str(out), "--device", "cpu"]
    assert cli.main(argv) == 0
    results: dict[str, Any] = json.loads(out.read_text())
    return results


def _bgr_to_unit_rgb(images: list[np.ndarray]) -> torch.Tensor:
    """Stack BGR uint8 HWC arrays into a float32 RGB ``(B, 3, H, W)`` batch in [0, 1]."""
    rgb = np.stack([img[:, :, ::-1].transpose(2, 0, 1) for img in images])
    return torch.from_numpy(np.ascontiguousarray(rgb)).float() / 255.0


@pytest.fixture(scope="session")
def unit_rgb() -> Callable[[list[np.ndarray]], torch.Tensor]:
    """Function stacking BGR uint8 HWC arrays into a float32 RGB batch in [0, 1]."""
    return _bgr_to_unit_rgb


def smooth_face_like(seed: int, size: int = 128) -> np.ndarray:
    """A deterministic BGR uint8 test image with smooth regions, edges and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 120 + 60 * np.sin(6 * xx + seed) * np.cos(4 * yy)
    disk = ((xx - 0.5) ** 2 + (yy - 0.45) ** 2 < 0.08) * 50.0
    img = np.stack([base + disk * k for k in (0.6, 0.8, 1.0)], axis=2)
    img = img + rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def make_face() -> Callable[..., np.ndarray]:
    """Function ``(seed, size=128) -> BGR uint8`` synthetic test image."""
    return smooth_face_like


@pytest.fixture(scope="session")
def synthetic_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Six (restored, gt) BGR pairs of 128x128 synthetic images."""
    pairs = []
    for seed in range(6):
        gt = smooth_face_like(seed)
        restored = cv2.GaussianBlur(gt, (5, 5), 1.2)
        pairs.append((restored, gt))
    return pairs


@pytest.fixture(scope="session")
def fake_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Randomly initialised networks saved under the real metric weight file names.

    The torchvision backbones hold only their ``features`` (all LPIPS reads), the ArcFace file
    is DataParallel-prefixed like GFP-GAN's, the FAN file is facexlib's ``{'state_dict': ...}``
    and the FFHQ statistics are BasicSR's ``{'name', 'mean', 'cov'}`` with numpy arrays.
    """
    import torchvision
    from facexlib.alignment.awing_arch import FAN

    from faceprior.metrics.inception import FIDInceptionV3
    from faceprior.nets.arcface import ArcFaceResNet18

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for name, net in (
        ("vgg16-397923af.pth", torchvision.models.vgg16()),
        ("alexnet-owt-7be5be79.pth", torchvision.models.alexnet()),
    ):
        features = {f"features.{k}": v for k, v in net.features.state_dict().items()}
        torch.save(features, folder / name)
    torch.save(FIDInceptionV3().state_dict(), folder / "pt_inception-2015-12-05-6726825d.pth")
    arcface = {f"module.{k}": v for k, v in ArcFaceResNet18().state_dict().items()}
    torch.save(arcface, folder / "arcface_resnet18.pth")
    fan = FAN(num_modules=4, num_landmarks=98, device="cpu")
    torch.save({"state_dict": fan.state_dict()}, folder / "alignment_WFLW_4HG.pth")
    stats = {"name": "FFHQ_512", "mean": np.zeros(2048), "cov": np.eye(2048) * 0.01}
    torch.save(stats, folder / "inception_FFHQ_512-f7b384ab.pth")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # ~300 MB of random weights


def _write_pairs(root: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Path, Path]:
    """Save (restored, gt) BGR pairs as PNGs ``root/restored/iNN.png``, ``root/gt/iNN.png``."""
    restored_dir, gt_dir = root / "restored", root / "gt"
    restored_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    for i, (restored, gt) in enumerate(pairs):
        cv2.imwrite(str(restored_dir / f"i{i:02d}.png"), restored)
        cv2.imwrite(str(gt_dir / f"i{i:02d}.png"), gt)
    return restored_dir, gt_dir


@pytest.fixture(scope="session")
def save_pairs() -> Callable[[Path, list[tuple[np.ndarray, np.ndarray]]], tuple[Path, Path]]:
    """Function saving (restored, gt) pairs as PNG folders; returns (restored_dir, gt_dir)."""
    return _write_pairs
