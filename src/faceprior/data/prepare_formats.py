"""Readers for the metadata files shipped with public face datasets, for ``faceprior-prepare``.

- FFHQ's ``ffhq-dataset-v2.json`` (68 landmarks per image, in 1024-pixel coordinates), turned into
  eye/mouth boxes laid out like GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth``
  (:func:`ffhq_component_table`, following the official ``scripts/parse_landmark.py``).
- The CelebA-HQ index -> CelebA file mapping (:func:`read_celeba_mapping`) and CelebA's official
  train/val/test partition (:func:`read_partition`, :func:`celeba_split`).
- Checksum lists used to verify inputs (:func:`read_checksums`).

Any problem with these files is a :class:`~faceprior.data.prepare.PrepareError` that names the file,
and the line or entry where it applies.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceprior.data.prepare import PrepareError

#: the coordinate frame of the FFHQ landmarks (the 1024x1024 aligned images)
FFHQ_LANDMARK_SIZE = 1024
#: 0-based indices of the 68-point (iBUG / dlib) layout that make up each component
COMPONENT_POINTS = {
    "left_eye": slice(36, 42),
    "right_eye": slice(42, 48),
    "mouth": slice(48, 68),
}
#: smallest half side of a component box, in output pixels (official value, applied after scaling)
MIN_HALF_LEN = 16.0

SPLIT_NAMES = ("train", "val", "test")  # codes 0, 1, 2 of list_eval_partition.txt
#: last original CelebA file number of each split in ``list_eval_partition.txt``
CELEBA_BOUNDARIES = ((162770, "train"), (182637, "val"), (202599, "test"))

_HEX = re.compile(r"[0-9a-f]+")
_ALGORITHM_BY_LENGTH = {64: "sha256", 32: "md5"}


def component_box(points: np.ndarray) -> list[float]:
    """``[mean_x, mean_y, half_len]`` of a group of points.

    ``half_len`` is half the larger of the x and y extents, never below :data:`MIN_HALF_LEN`.
    """
    centre = points.mean(axis=0)
    half = max(float((points.max(axis=0) - points.min(axis=0)).max()) / 2.0, MIN_HALF_LEN)
    return [float(centre[0]), float(centre[1]), half]


def ffhq_components(landmarks: np.ndarray, size: int) -> dict[str, list[float]]:
    """Eye and mouth boxes of one face at ``size`` pixels from its 68 FFHQ landmarks.

    The landmarks are scaled by ``size / 1024`` first, so the 16-pixel floor applies in output
    pixels, as in GFP-GAN's ``parse_landmark.py`` (which runs at scale 0.5 for 512).
    """
    scaled = np.asarray(landmarks, dtype=np.float64) * (size / FFHQ_LANDMARK_SIZE)
    return {name: component_box(scaled[part]) for name, part in COMPONENT_POINTS.items()}


def _landmarks_of(entry: Any) -> np.ndarray | None:
    try:
        points = np.asarray(entry["image"]["face_landmarks"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None
    return points if points.shape == (68, 2) and np.isfinite(points).all() else None


def parse_ffhq_landmarks(data: bytes, origin: str) -> list[np.ndarray]:
    """The ``(68, 2)`` landmark arrays of an ``ffhq-dataset-v2.json``, in file order."""
    try:
        table = json.loads(data)
    except ValueError as err:
        raise PrepareError(f"--landmarks '{origin}' is not valid JSON ({err})") from err
    if not isinstance(table, dict) or not table:
        raise PrepareError(
            f"--landmarks '{origin}' must be FFHQ's ffhq-dataset-v2.json: an object mapping "
            '"0".."69999" to {"image": {"face_landmarks": [[x, y] x 68], ...}, ...}'
        )
    arrays = []
    for key, entry in table.items():
        points = _landmarks_of(entry)
        if points is None:
            raise PrepareError(
                f"--landmarks '{origin}': entry '{key}' has no image.face_landmarks list of 68 "
                "[x, y] points"
            )
        arrays.append(points)
    return arrays


def ffhq_component_table(data: bytes, origin: str, size: int) -> dict[str, dict[str, list[float]]]:
    """The eye/mouth table for images of ``size`` pixels, keyed by 8-digit entry position.

    Entry ``i`` of the JSON (``"00000000"`` for the first) describes ``images1024x1024``'s
    ``NNNNN.png`` with ``NNNNN = i``; the dataset looks boxes up by this key.
    """
    arrays = parse_ffhq_landmarks(data, origin)
    return {f"{i:08d}": ffhq_components(points, size) for i, points in enumerate(arrays)}


def _rows(path: Path, flag: str) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text()
    except OSError as err:
        raise PrepareError(f"{flag} '{path}' cannot be read ({err.strerror or err})") from err
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_celeba_mapping(path: str | Path) -> dict[int, str]:
    """CelebA-HQ index -> original CelebA file name (e.g. ``119614.jpg``).

    Reads CelebAMask-HQ's ``CelebA-HQ-to-CelebA-mapping.txt`` (``idx orig_idx orig_file``) and
    progressive_growing_of_gans' ``image_list.txt`` (``idx orig_idx orig_file proc_md5
    final_md5``): whitespace-separated columns after one header line.
    """
    path = Path(path).expanduser()
    mapping: dict[int, str] = {}
    for i, (lineno, cols) in enumerate(_rows(path, "--mapping")):
        if i == 0 and not cols[0].isdigit():
            continue  # the header
        if len(cols) < 3 or not cols[0].isdigit():
            raise PrepareError(
                f"--mapping {path}:{lineno}: expected 'idx orig_idx orig_file ...' with an "
                f"integer idx, got '{' '.join(cols)}'"
            )
        index = int(cols[0])
        if index in mapping:
            raise PrepareError(f"--mapping {path}:{lineno}: CelebA-HQ index {index} listed twice")
        mapping[index] = cols[2]
    if not mapping:
        raise PrepareError(f"--mapping '{path}' has no rows after its header")
    return mapping


def _file_number(name: str) -> int | None:
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


def read_partition(path: str | Path) -> dict[int, str]:
    """CelebA's ``list_eval_partition.txt`` (``000001.jpg 0`` per line): file number -> split."""
    path = Path(path).expanduser()
    splits: dict[int, str] = {}
    for lineno, cols in _rows(path, "--partition"):
        number = _file_number(cols[0])
        if len(cols) != 2 or number is None or cols[1] not in ("0", "1", "2"):
            raise PrepareError(
                f"--partition {path}:{lineno}: expected '<number>.jpg 0|1|2', got '{' '.join(cols)}'"
            )
        splits[number] = SPLIT_NAMES[int(cols[1])]
    if not splits:
        raise PrepareError(f"--partition '{path}' is empty")
    return splits


def celeba_split(orig_file: str, partition: dict[int, str] | None) -> str:
    """The official split of an original CelebA file.

    From ``partition`` (:func:`read_partition`) when given, else from the file number and the
    boundaries of ``list_eval_partition.txt``: 1-162770 train, 162771-182637 val, 182638-202599
    test.
    """
    number = _file_number(orig_file)
    if number is None:
        raise PrepareError(f"--mapping: '{orig_file}' is not a CelebA file name like 119614.jpg")
    if partition is not None:
        if number not in partition:
            raise PrepareError(f"--partition does not list CelebA file '{orig_file}'")
        return partition[number]
    for last, split in CELEBA_BOUNDARIES:
        if 1 <= number <= last:
            return split
    raise PrepareError(f"--mapping: CelebA file '{orig_file}' is outside 000001..202599")


def celeba_hq_index(stem: str) -> int | None:
    """The CelebA-HQ index in a file stem: ``0``, ``00042``, ``imgHQ00042`` (None: not one)."""
    match = re.fullmatch(r"[A-Za-z_\-]*(\d+)", stem)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Digest:
    """An expected file hash: the algorithm (``sha256`` or ``md5``) and its hex digest."""

    algorithm: str
    hexdigest: str

    def matches(self, data: bytes, sha256: str | None = None) -> bool:
        """Whether ``data`` has this digest (``sha256``: its SHA-256, when already known)."""
        if self.algorithm == "sha256" and sha256 is not None:
            return sha256 == self.hexdigest
        return hashlib.new(self.algorithm, data).hexdigest() == self.hexdigest


def _record_digest(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(name, hash) of one record of a checksum list, FFHQ's nested ``image`` record included."""
    if isinstance(record.get("image"), dict):
        record = record["image"]
    name = next((record[k] for k in ("file_path", "name", "path", "file") if k in record), None)
    digest = next(
        (record[k] for k in ("sha256", "file_sha256", "md5", "file_md5") if k in record), None
    )
    return (str(name) if name is not None else None), (str(digest) if digest is not None else None)


def read_checksums(path: str | Path) -> dict[str, Digest]:
    """Expected input hashes by file name (the last path component) from a ``--manifest`` file.

    Accepted: a JSON object ``{name: sha256}``; or records (a list, or an object of records as
    FFHQ's ``ffhq-dataset-v2.json``) with a name (``file_path``/``name``/``path``/``file``) and a
    hash (``sha256``/``file_sha256``/``md5``/``file_md5``), optionally under ``image``. The
    algorithm follows from the digest length (64 hex digits: SHA-256, 32: MD5).
    """
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PrepareError(f"--manifest '{path}' cannot be read as JSON ({err})") from err
    items: list[tuple[str | None, Any]] = []
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(None, v) for v in data]
    if not items:
        raise PrepareError(f"--manifest '{path}' must be a non-empty JSON object or list")
    expected: dict[str, Digest] = {}
    for i, (key, record) in enumerate(items):
        name: str | None = None
        digest: str | None = None
        if key is not None and isinstance(record, str):
            name, digest = key, record
        elif isinstance(record, dict):
            name, digest = _record_digest(record)
        where = f"--manifest '{path}' entry {i}"
        if name is None or digest is None:
            raise PrepareError(f"{where}: expected a file name and a sha256 (or md5) hash")
        digest = digest.lower()
        algorithm = _ALGORITHM_BY_LENGTH.get(len(digest))
        if algorithm is None or not _HEX.fullmatch(digest):
            raise PrepareError(f"{where} ('{name}'): '{digest}' is not a SHA-256 or MD5 hex digest")
        base = Path(name).name
        if base in expected:
            raise PrepareError(f"{where}: file name '{base}' is listed twice")
        expected[base] = Digest(algorithm, digest)
    return expected
