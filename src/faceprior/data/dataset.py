"""CPU-side datasets: decode, flip, crop. Degradation happens later, on the device, in batches."""

from __future__ import annotations

import logging
import math
import numbers
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


def require_int(key: str, value: object, minimum: int) -> int:
    """``value`` as an ``int`` of at least ``minimum``; a ``ValueError`` naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def require_range(
    key: str, value: object, low: float, high: float = math.inf, *, open_low: bool = False
) -> float:
    """``value`` as a ``float`` in ``[low, high]`` (``(low, high]`` with ``open_low``); a
    ``ValueError`` naming ``key`` otherwise."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if (number > low or (number == low and not open_low)) and number <= high:
            return number
    bounds = f"{'>' if open_low else '>='} {low}" + (f" and <= {high}" if high < math.inf else "")
    raise ValueError(f"{key} must be a number {bounds}, got {value!r}")


def validate_data_options(
    *,
    size: object,
    crop_size: object = None,
    flip_prob: object = 0.0,
    eye_enlarge_ratio: object = 1.4,
    num_workers: object = 0,
    val_batch_size: object = None,
    prefetch_factor: object = None,
) -> None:
    """Range-check the ``data.*`` options before anything is read or generated (keys named)."""
    side = require_int("data.size", size, 1)
    if crop_size is not None and require_int("data.crop_size", crop_size, 1) > side:
        raise ValueError(f"data.crop_size={crop_size} must not exceed data.size={side}")
    require_range("data.flip_prob", flip_prob, 0.0, 1.0)
    require_range("data.eye_enlarge_ratio", eye_enlarge_ratio, 0.0, open_low=True)
    require_int("data.num_workers", num_workers, 0)
    if val_batch_size is not None:
        require_int("data.val_batch_size", val_batch_size, 1)
    if prefetch_factor is not None:
        require_int("data.prefetch_factor", prefetch_factor, 1)


def _shared_flags(count: int) -> torch.Tensor:
    """``count`` zero bytes in shared memory (a per-process tensor where that is unavailable)."""
    flags = torch.zeros(max(count, 1), dtype=torch.uint8)
    try:
        return flags.share_memory_()
    except RuntimeError:  # no shared memory here: warnings become once per process
        return flags


class ComponentBoxes:
    """Eye/mouth boxes from an FFHQ-format landmark file.

    The file (``torch.save``-d dict) maps an image key to ``{"left_eye": [cx, cy, half_len],
    "right_eye": [...], "mouth": [...]}`` in pixels of the stored image. Images are matched to keys
    by file stem (:meth:`keys_for`); the FFHQ position convention is only a fallback.
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
        if not table:
            raise ValueError(f"component landmark file '{self.path}' holds no entries")
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

    def lookup(self, key: str) -> np.ndarray:
        """``(3, 3)`` array of ``[cx, cy, half_len]`` rows (left eye, right eye, mouth) of ``key``."""
        return self.table[key].copy()

    def stem_key(self, stem: str) -> str | None:
        """The key of a file stem: the stem itself, or for a numeric stem its 8-digit form
        (``00042.png`` -> ``"00000042"``, as in the FFHQ landmark files); ``None`` when absent."""
        if stem in self.table:
            return stem
        if stem.isdigit() and f"{int(stem):08d}" in self.table:
            return f"{int(stem):08d}"
        return None

    def keys_for(self, source: FolderSource | LMDBSource) -> list[str]:
        """The key of every record of ``source``, matched by file stem; raises on the first miss.

        The FFHQ position convention (record *i* -> ``f"{i:08d}"``) is used only when no stem
        matches and the source is complete and unfiltered: nothing dropped at start-up and as many
        records as the file has entries. Anything else could pair an image with another's boxes.
        """
        keys = [self.stem_key(source.name(i)) for i in range(len(source))]
        missing = [i for i, key in enumerate(keys) if key is None]
        if not missing:
            return [key for key in keys if key is not None]
        problem = self._position_problem(source, matched=len(keys) - len(missing))
        if problem is None:
            log.info("eye/mouth landmarks of %s matched by position (FFHQ order)", source.root)
            return [f"{i:08d}" for i in range(len(source))]
        first = missing[0]
        raise ValueError(
            f"no eye/mouth landmarks for {source.origin(first)} in '{self.path}': images are "
            f"matched by file stem and '{source.name(first)}' is not a key (keys look like "
            f"'{next(iter(self.table))}'); matching by position is refused because {problem}"
        )

    def _position_problem(self, source: FolderSource | LMDBSource, matched: int) -> str | None:
        """Why record positions cannot stand in for keys, or ``None`` when they can."""
        if matched:
            return f"{matched} other image(s) do match by stem"
        if source.dropped:
            return (
                f"{len(source.dropped)} image(s) were left out at start-up (first: "
                f"'{source.dropped[0]}'), which would shift every later image's boxes"
            )
        if len(source) != len(self.table):
            return f"the source has {len(source)} images but the file {len(self.table)} entries"
        absent = next((i for i in range(len(source)) if f"{i:08d}" not in self.table), None)
        if absent is not None:
            return f"the file has no position key '{absent:08d}'"
        return None


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
    file and run, and counted in ``"skipped"``; with ``strict=True`` they raise instead.
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
        self.size = require_int("size", size, 1)
        if crop_size is not None:
            require_int("crop_size", crop_size, 1)
            if crop_size > self.size:
                raise ValueError(f"crop_size ({crop_size}) must not exceed size ({self.size})")
        require_range("flip_prob", flip_prob, 0.0, 1.0)
        self.source = open_source(source) if isinstance(source, str | Path) else source
        self.lq_source = open_source(lq_source) if isinstance(lq_source, str | Path) else lq_source
        self.crop_size = crop_size
        self.components = components
        # keys bound now, so that a mismatch stops here and not in a DataLoader worker
        self._keys = components.keys_for(self.source) if components is not None else None
        self.strict = strict
        self.flip_prob = flip_prob
        transforms: list[A.BasicTransform] = []
        if flip_prob > 0:
            transforms.append(A.HorizontalFlip(p=flip_prob))
        if crop_size is not None and crop_size < self.size:
            transforms.append(A.RandomCrop(crop_size, crop_size))
        self.transform = A.Compose(transforms, save_applied_params=True) if transforms else None
        self._reported = _shared_flags(len(self.source))
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

    def report(self, err: BadImageError, index: int) -> None:
        """Warn once per bad record and run (or raise in strict mode).

        The flags live in shared memory, so DataLoader workers — recreated every epoch unless
        persistent — see what earlier ones reported.
        """
        if self.strict:
            raise err
        if not self._reported[index]:
            self._reported[index] = 1
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
                self.report(err, idx)
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
        if self.components is not None and self._keys is not None:
            centres = self.components.lookup(self._keys[used])
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
