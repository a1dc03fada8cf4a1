"""CPU-side datasets: decode, flip, crop. Degradation happens later, on the device, in batches."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from faceprior.data.io import BadImageError, to_square
from faceprior.data.sources import FolderSource, LMDBSource, open_source

log = logging.getLogger(__name__)

COMPONENTS = ("left_eye", "right_eye", "mouth")


class ComponentBoxes:
    """Eye/mouth boxes from an FFHQ-format landmark file.

    The file (``torch.save``-d dict) maps an image key to ``{"left_eye": [cx, cy, half_len],
    "right_eye": [...], "mouth": [...]}`` in pixels of the stored image. Keys are looked up by file
    stem, then by the 8-digit position of the image in the sorted source (the FFHQ convention).
    """

    def __init__(self, path: str | Path, eye_enlarge_ratio: float = 1.4) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(
                f"component landmark file '{self.path}' does not exist (expected an FFHQ-format "
                "eye/mouth landmark file such as FFHQ_eye_mouth_landmarks_512.pth, or the "
                "eye_mouth_landmarks.pth written by `faceprior-data synth`)"
            )
        table = torch.load(self.path, map_location="cpu", weights_only=False)
        if not isinstance(table, Mapping):
            raise ValueError(
                f"component landmark file '{self.path}' must hold a dict, got {type(table)}"
            )
        self.table: dict[str, np.ndarray] = {}
        for key, entry in table.items():
            try:
                self.table[str(key)] = np.array([entry[c] for c in COMPONENTS], dtype=np.float64)
            except (KeyError, TypeError) as err:
                raise ValueError(
                    f"component landmark file '{self.path}': entry '{key}' must have keys {COMPONENTS} "
                    "each holding [cx, cy, half_len]"
                ) from err
        self.eye_enlarge_ratio = eye_enlarge_ratio

    def lookup(self, name: str, index: int) -> np.ndarray:
        """``(3, 3)`` array of ``[cx, cy, half_len]`` rows (left eye, right eye, mouth)."""
        for key in (name, f"{index:08d}"):
            if key in self.table:
                return self.table[key].copy()
        raise KeyError(
            f"no eye/mouth landmarks for image '{name}' (index {index}) in '{self.path}'"
        )


def components_to_boxes(centres: np.ndarray, eye_enlarge_ratio: float) -> np.ndarray:
    """Convert ``[cx, cy, half_len]`` rows into ``[x1, y1, x2, y2]`` boxes, enlarging the eyes.

    Uses the FFHQ training convention ``[cx - h + 1, cy - h + 1, cx + h, cy + h]``.
    """
    out = np.empty((len(centres), 4), dtype=np.float32)
    for i, (cx, cy, h) in enumerate(centres):
        if i < 2:
            h = h * eye_enlarge_ratio
        out[i] = (cx - h + 1, cy - h + 1, cx + h, cy + h)
    return out


class FaceDataset(Dataset[dict[str, object]]):
    """Ground-truth faces for training or evaluation.

    Each item is ``{"gt": uint8 (3, S, S), "index": int, "skipped": int}`` plus ``"boxes"`` (float32
    ``(3, 4)``: left eye, right eye, mouth) when a component file is given, and ``"lq"`` (uint8) for
    paired sources. Unusable files are skipped (the next record is used instead) with one warning per
    file and process, and counted in ``"skipped"``; with ``strict=True`` they raise instead.
    """

    def __init__(
        self,
        source: FolderSource | LMDBSource | str | Path,
        size: int,
        *,
        flip_prob: float = 0.0,
        crop_size: int | None = None,
        components: ComponentBoxes | None = None,
        lq_source: FolderSource | LMDBSource | str | Path | None = None,
        strict: bool = False,
    ) -> None:
        self.source = open_source(source) if isinstance(source, str | Path) else source
        self.lq_source = open_source(lq_source) if isinstance(lq_source, str | Path) else lq_source
        self.size = int(size)
        self.crop_size = crop_size
        self.components = components
        self.strict = strict
        self.flip_prob = flip_prob
        transforms: list[A.BasicTransform] = []
        if flip_prob > 0:
            transforms.append(A.HorizontalFlip(p=flip_prob))
        if crop_size is not None and crop_size < self.size:
            transforms.append(A.RandomCrop(crop_size, crop_size))
        self.transform = A.Compose(transforms, save_applied_params=True) if transforms else None
        self._warned: set[str] = set()
        self._lq_index: dict[str, int] | None = None
        if self.lq_source is not None:
            self._lq_index = {self.lq_source.name(i): i for i in range(len(self.lq_source))}
            missing = [
                self.source.name(i)
                for i in range(len(self.source))
                if self.source.name(i) not in self._lq_index
            ]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} ground-truth images have no LQ partner in "
                    f"'{self.lq_source.root}' (pairing is by file stem), e.g. {missing[:5]}"
                )

    def __len__(self) -> int:
        return len(self.source)

    def report(self, err: BadImageError) -> None:
        """Warn once per bad file (or raise in strict mode)."""
        if self.strict:
            raise err
        if err.path not in self._warned:
            self._warned.add(err.path)
            log.warning("skipping %s (%s)", err.path, err.reason)

    def _load(self, index: int) -> tuple[np.ndarray, int, int]:
        """Read record ``index`` or, if it is unusable, the next usable one."""
        skipped = 0
        n = len(self.source)
        for offset in range(n):
            idx = (index + offset) % n
            try:
                return self.source.read(idx), idx, skipped
            except BadImageError as err:
                self.report(err)
                skipped += 1
        raise RuntimeError(f"no readable image in '{self.source.root}'")

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, object]:
        """Item ``key``: an index, or ``(index, seed)`` from :class:`SeededSampler` (the seed then
        decides this item's flip/crop, independently of workers and of the process RNG)."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        img, used, skipped = self._load(index)
        img, scale, (x0, y0) = to_square(img, self.size)
        item: dict[str, object] = {"index": index, "skipped": skipped}
        centres = None
        if self.components is not None:
            centres = self.components.lookup(self.source.name(used), used)
            centres[:, 0] = (centres[:, 0] - x0) * scale
            centres[:, 1] = (centres[:, 1] - y0) * scale
            centres[:, 2] *= scale
        extra: dict[str, np.ndarray] = {}
        if self._lq_index is not None and self.lq_source is not None:
            lq = self.lq_source.read(self._lq_index[self.source.name(used)])
            extra["lq"] = to_square(lq, self.size)[0]
        if self.transform is not None:
            if seed is None:
                seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            self.transform.set_random_seed(seed % 2**32)
            out = self.transform(image=img)
            img = out["image"]
            for name, params in out["applied_transforms"]:
                if centres is not None and name == "HorizontalFlip":
                    centres[:, 0] = self.size - centres[:, 0]
                    centres[[0, 1]] = centres[[1, 0]]
                elif centres is not None and name == "RandomCrop":
                    cx0, cy0 = params["crop_coords"][:2]
                    centres[:, 0] -= cx0
                    centres[:, 1] -= cy0
        item["gt"] = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()
        if "lq" in extra:
            item["lq"] = (
                torch.from_numpy(np.ascontiguousarray(extra["lq"])).permute(2, 0, 1).contiguous()
            )
        if centres is not None and self.components is not None:
            boxes = components_to_boxes(centres, self.components.eye_enlarge_ratio)
            item["boxes"] = torch.from_numpy(boxes)
        return item


class LQOnlyDataset(Dataset[dict[str, object]]):
    """Real low-quality inputs without ground truth (e.g. WebPhoto-Test); items hold ``"lq"`` only."""

    def __init__(
        self, source: FolderSource | LMDBSource | str | Path, size: int, strict: bool = False
    ):
        self.inner = FaceDataset(source, size, strict=strict)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict[str, object]:
        item = self.inner[index]
        item["lq"] = item.pop("gt")
        return item
