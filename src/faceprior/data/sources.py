"""Where ground-truth faces come from: an image folder or an LMDB.

A source is an indexable list of named records whose bytes decode to an image. Listing is cheap (no
decoding); files that cannot be images are reported at listing time, undecodable ones on first read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from faceprior.data.io import BadImageError, decode_image_bytes, is_image_name, read_image

log = logging.getLogger(__name__)

PREPARE_HINT = (
    "Prepare data first: `faceprior-data synth ROOT` writes synthetic faces, "
    "`faceprior-data lmdb FOLDER OUT.lmdb` packs a folder into an LMDB, and the `data=synthetic` "
    "config generates its own data on first use."
)


class ImageSource(Protocol):
    """An indexable collection of images."""

    root: Path
    #: files that are not usable records (reported by the caller)
    rejected: list[BadImageError]
    #: names of records removed from the index
    dropped: list[str]

    def __len__(self) -> int: ...

    def drop(self, indices: Iterable[int]) -> None:
        """Remove records from the index, remembering their names in :attr:`dropped`."""
        ...

    def name(self, index: int) -> str:
        """Stable record name (file stem or LMDB key)."""
        ...

    def origin(self, index: int) -> str:
        """Human-readable location of the record, used in error messages."""
        ...

    def read(self, index: int) -> np.ndarray:
        """Decode record ``index`` into RGB uint8 ``(H, W, 3)``; raises :class:`BadImageError`."""
        ...


def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} '{path}' does not exist. {PREPARE_HINT}")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} '{path}' is not a directory")


class FolderSource:
    """All regular files below ``root`` (recursively, sorted, hidden files ignored).

    Files whose extension is not an image extension and broken symbolic links are kept out of the
    index and returned by :attr:`rejected` so that the caller can warn about or fail on them.
    :attr:`dropped` names the image records left out of the sorted listing (broken links named like
    images here, undecodable files once :func:`~faceprior.data.screening.screen_source` ran), which
    tells whether positions in the folder still match an FFHQ-style position index.
    """

    def __init__(self, root: str | Path, recursive: bool = True) -> None:
        self.root = Path(root).expanduser()
        _require_dir(self.root, "image folder")
        entries = _list_entries(self.root, recursive)
        broken = [p for p in entries if p.is_symlink() and not p.exists()]
        files = [p for p in entries if p.is_file()]
        self.files: list[Path] = [p for p in files if is_image_name(p)]
        self.rejected: list[BadImageError] = [
            BadImageError(p, f"not an image file (extension '{p.suffix or '<none>'}')")
            for p in files
            if not is_image_name(p)
        ]
        self.rejected += [
            BadImageError(p, f"broken symbolic link (target '{p.readlink()}' does not exist)")
            for p in broken
        ]
        self.dropped: list[str] = [p.stem for p in broken if is_image_name(p)]
        if not self.files:
            raise FileNotFoundError(
                f"image folder '{self.root}' contains no images. {PREPARE_HINT}"
            )

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        return self.files[index].stem

    def origin(self, index: int) -> str:
        return str(self.files[index])

    def read(self, index: int) -> np.ndarray:
        return read_image(self.files[index])

    def drop(self, indices: Iterable[int]) -> None:
        """Remove records (unusable files) from the index, remembering their names."""
        remove = set(indices)
        self.dropped += [self.files[i].stem for i in sorted(remove)]
        self.files = [p for i, p in enumerate(self.files) if i not in remove]

    def subfolders(self) -> dict[str, int]:
        """Image count per subfolder (relative path) below ``root``; empty when all lie in ``root``."""
        counts: dict[str, int] = {}
        for path in self.files:
            if path.parent != self.root:
                key = path.parent.relative_to(self.root).as_posix()
                counts[key] = counts.get(key, 0) + 1
        return counts


def _list_entries(root: Path, recursive: bool) -> list[Path]:
    """Sorted non-directory entries below ``root`` (broken links included), hidden ones skipped."""
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in root.glob(pattern)
        if not p.is_dir() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


class LMDBSource:
    """An LMDB in the BasicSR layout: ``data.mdb`` plus ``meta_info.txt``.

    Each line of ``meta_info.txt`` is ``<key>.png (<h>,<w>,<c>) <compression>``; values are the encoded
    image bytes stored under ``<key>``. The environment is opened lazily, once per process, so the
    source can be handed to DataLoader workers.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        _require_dir(self.root, "LMDB")
        meta = self.root / "meta_info.txt"
        if not meta.is_file():
            raise FileNotFoundError(
                f"LMDB '{self.root}' has no meta_info.txt (expected the BasicSR layout: data.mdb + "
                f"meta_info.txt). {PREPARE_HINT}"
            )
        self.keys: list[str] = []
        for lineno, line in enumerate(meta.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            first = line.split()[0]
            key = first.rsplit(".", 1)[0] if "." in first else first
            if not key:
                raise ValueError(f"{meta}:{lineno}: cannot parse a key from '{line}'")
            self.keys.append(key)
        if not self.keys:
            raise FileNotFoundError(f"LMDB '{self.root}' lists no images in meta_info.txt")
        self.rejected: list[BadImageError] = []
        self.dropped: list[str] = []
        self._env: object | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def drop(self, indices: Iterable[int]) -> None:
        """Remove records (undecodable values) from the index, remembering their keys."""
        remove = set(indices)
        self.dropped += [self.keys[i] for i in sorted(remove)]
        self.keys = [k for i, k in enumerate(self.keys) if i not in remove]

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_env"] = None  # never pickle an open environment into a worker
        return state

    def _open(self) -> object:
        if self._env is None:
            self._env = _open_lmdb(self.root)
        return self._env

    def name(self, index: int) -> str:
        return self.keys[index]

    def origin(self, index: int) -> str:
        return f"{self.root}[{self.keys[index]}]"

    def read(self, index: int) -> np.ndarray:
        env = self._open()
        with env.begin(write=False) as txn:  # type: ignore[attr-defined]
            data = txn.get(self.keys[index].encode("ascii"))
        if data is None:
            raise BadImageError(
                self.origin(index), "key listed in meta_info.txt but missing in the LMDB"
            )
        return decode_image_bytes(bytes(data), self.origin(index))


_LMDB_ENVS: dict[tuple[int, str], object] = {}


def _open_lmdb(root: Path) -> object:
    """One read-only environment per path and process (LMDB refuses to open a path twice)."""
    import lmdb

    key = (os.getpid(), str(root.resolve()))
    if key not in _LMDB_ENVS:
        _LMDB_ENVS[key] = lmdb.open(
            str(root), readonly=True, lock=False, readahead=False, meminit=False
        )
    return _LMDB_ENVS[key]


def open_source(root: str | Path) -> FolderSource | LMDBSource:
    """Pick the source type from the path: an ``*.lmdb`` directory or one with ``data.mdb`` is an LMDB."""
    path = Path(root).expanduser()
    if path.suffix == ".lmdb" or (path / "data.mdb").is_file():
        return LMDBSource(path)
    return FolderSource(path)


def write_lmdb(
    files: Sequence[Path], out: str | Path, *, compress_level: int = 1, map_size: int | None = None
) -> Path:
    """Pack image files into a BasicSR-layout LMDB (PNG-encoded values, ``meta_info.txt``)."""
    import cv2
    import lmdb

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(p.stat().st_size for p in files)
    env = lmdb.open(str(out), map_size=map_size or max(total * 4, 1 << 26))
    lines = []
    with env.begin(write=True) as txn:
        for path in files:
            img = read_image(path)
            ok, enc = cv2.imencode(
                ".png", img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, compress_level]
            )
            if not ok:
                raise BadImageError(path, "could not re-encode as PNG")
            key = path.stem
            txn.put(key.encode("ascii"), enc.tobytes())
            h, w, c = img.shape
            lines.append(f"{key}.png ({h},{w},{c}) {compress_level}")
    env.close()
    (out / "meta_info.txt").write_text("\n".join(lines) + "\n")
    return out
