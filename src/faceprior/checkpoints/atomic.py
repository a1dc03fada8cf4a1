"""Atomic checkpoint writes: a temporary file next to the target, fsync, then one rename.

Lightning's own writer stages the file through ``$TMPDIR``; the final move is a rename only when
``$TMPDIR`` and the run share a filesystem, so a kill or a full disk during the copy could leave a
truncated ``last.ckpt`` (the previous one already gone) and an orphan in ``$TMPDIR``. Here the
bytes go to ``.<name>.tmp-<pid>-<random>`` in the target's own directory, are flushed and
fsynced, and ``os.replace`` swaps them in: the target is always either the previous complete file
or the new complete file. A failed write removes its temporary file; one left by a killed writer is
removed by :func:`remove_orphans` (the next save in that directory, or the start of the run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem

log = logging.getLogger(__name__)

#: ``.<target name>.tmp-<pid>-<8 hex digits>``
TEMP_PATTERN = re.compile(r"^\.(?P<target>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")


def temp_path(target: Path) -> Path:
    """A fresh temporary name for ``target``, in the same directory."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write(target: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``target`` through ``write(file)`` so that it is replaced whole or not at all.

    The temporary file lives next to the target (never in ``$TMPDIR``); on any exception,
    interrupts included, it is removed and the previous ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    fh = tmp.open("xb")  # exclusive creation: never another writer's file
    try:
        with fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(target.parent)
    return target


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process writes one file at a time: anything of ours is left over
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:  # pragma: no cover
        return True
    return True


def orphans(directory: str | Path) -> list[Path]:
    """Temporary checkpoint files in ``directory`` whose writer is no longer running.

    Only names made by :func:`temp_path` count. A writer on another host of a shared filesystem
    cannot be seen: use this for reports, and :func:`remove_orphans` only in a run's own folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        match = TEMP_PATTERN.match(path.name)
        if match and path.is_file() and not _writer_alive(int(match["pid"])):
            found.append(path)
    return found


def remove_orphans(directory: str | Path) -> list[Path]:
    """Remove the :func:`orphans` of ``directory`` (a run's own checkpoint folder); returns them."""
    removed = []
    for path in orphans(directory):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
            log.warning("removed %s, a partial checkpoint of an interrupted save", path)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, saving through :func:`atomic_write`.

    Local paths only; a remote URL (``s3://``...) is handed to Lightning's writer. The first save
    into a directory removes the orphans of interrupted saves there (:func:`remove_orphans`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._cleaned: set[str] = set()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (see the module docstring)."""
        if storage_options is not None or _is_remote(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        directory = str(target.parent.resolve())
        if directory not in self._cleaned:
            remove_orphans(target.parent)
            self._cleaned.add(directory)
        atomic_write(target, lambda fh: torch.save(checkpoint, fh))
        log.debug("saved checkpoint %s", target)


def _is_remote(path: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return not isinstance(get_filesystem(path), LocalFileSystem)
