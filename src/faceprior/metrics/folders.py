"""Pairing restored and ground-truth image folders by file-name stem, and reading them.

Images are read with ``cv2.imread(path, cv2.IMREAD_COLOR)`` (8-bit BGR, as BasicSR/VQFR) and
returned as RGB ``uint8`` tensors ``(3, H, W)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


class PairingError(ValueError):
    """Folders whose files cannot be paired one to one (the message lists the offenders)."""


@dataclass(frozen=True)
class ImagePair:
    """One scored item: a restored image and, for full-reference metrics, its ground truth."""

    stem: str
    restored: Path
    gt: Path | None = None


@dataclass
class Pairing:
    """Result of pairing two folders: usable pairs and what was left out."""

    pairs: list[ImagePair]
    skipped: list[str] = field(default_factory=list)


def list_images(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files directly inside ``folder``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    found: dict[str, Path] = {}
    duplicates = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in found:
                duplicates.append(f"{found[path.stem].name} / {path.name}")
            found[path.stem] = path
    if duplicates:
        raise PairingError(f"several images share a stem in {folder}: {', '.join(duplicates)}")
    if not found:
        raise PairingError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {folder}")
    return found


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header (Pillow, no decoding)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError) as err:
        raise PairingError(f"cannot read image {path}: {err}") from err
    return int(height), int(width)


def pair_folders(restored_dir: Path, gt_dir: Path | None, skip_unpaired: bool = False) -> Pairing:
    """Pair files by stem; unpaired or size-mismatched files raise unless ``skip_unpaired``."""
    restored = list_images(restored_dir)
    if gt_dir is None:
        return Pairing([ImagePair(stem, path) for stem, path in restored.items()])
    gt = list_images(gt_dir)
    problems = [f"{restored[s].name}: no ground truth in {gt_dir}" for s in restored if s not in gt]
    problems += [
        f"{gt[s].name}: no restored image in {restored_dir}" for s in gt if s not in restored
    ]
    pairs = []
    for stem in sorted(set(restored) & set(gt)):
        size_r, size_g = image_size(restored[stem]), image_size(gt[stem])
        if size_r != size_g:
            problems.append(
                f"{stem}: restored {size_r[1]}x{size_r[0]} vs gt {size_g[1]}x{size_g[0]}"
            )
        else:
            pairs.append(ImagePair(stem, restored[stem], gt[stem]))
    if problems and not skip_unpaired:
        listing = "\n  ".join(problems)
        raise PairingError(
            f"{len(problems)} unpaired or mismatched file(s) (use --skip-unpaired to ignore):"
            f"\n  {listing}"
        )
    if not pairs:
        raise PairingError(f"no image pairs between {restored_dir} and {gt_dir}")
    return Pairing(pairs, problems)


def read_rgb(path: Path) -> Tensor:
    """8-bit RGB ``(3, H, W)`` ``uint8`` tensor of an image read with OpenCV."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PairingError(f"cannot decode image {path}")
    return torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)))


@dataclass
class Batch:
    """Stems and stacked RGB ``uint8`` images ``(B, 3, H, W)`` of consecutive pairs."""

    stems: list[str]
    restored: Tensor
    gt: Tensor | None


def _stack(stems: list[str], restored: list[Tensor], gt: list[Tensor]) -> Batch:
    return Batch(stems, torch.stack(restored), torch.stack(gt) if gt else None)


def load_batches(pairs: Sequence[ImagePair], batch_size: int) -> Iterator[Batch]:
    """Read the pairs in order, in batches of at most ``batch_size`` images of one size."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    stems: list[str] = []
    restored: list[Tensor] = []
    gt: list[Tensor] = []
    for pair in pairs:
        image = read_rgb(pair.restored)
        if restored and (len(stems) == batch_size or image.shape != restored[0].shape):
            yield _stack(stems, restored, gt)
            stems, restored, gt = [], [], []
        stems.append(pair.stem)
        restored.append(image)
        if pair.gt is not None:
            gt.append(read_rgb(pair.gt))
    if stems:
        yield _stack(stems, restored, gt)
