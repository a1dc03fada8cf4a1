"""Screening a source for unusable records before use, with the reader training uses.

Every record is fully decoded by the source's own ``read`` (:func:`~faceprior.data.io.read_image`
for folders, :func:`~faceprior.data.io.decode_image_bytes` for LMDB values), in a thread pool sized
to the CPUs (OpenCV releases the GIL while decoding), so a file that passes the screen decodes the
same way in every epoch.

Under DDP each rank decodes only its share of the records (every ``world``-th, from its rank) and
the ranks exchange what they found, so all of them drop the same files while the decoding cost is
split between them instead of repeated on each.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch.distributed as dist

from faceprior.data.io import BadImageError
from faceprior.data.sources import FolderSource, ImageSource, LMDBSource

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Threads for decoding: the CPUs this process may run on (at most 32)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, 32))


def _check(source: ImageSource, index: int) -> BadImageError | None:
    try:
        source.read(index)
    except BadImageError as err:
        return err
    return None


def _results(
    source: ImageSource, indices: range, workers: int, progress: bool
) -> Iterator[tuple[int, BadImageError | None]]:
    """``(index, error or None)`` for every record in ``indices``, in order."""
    total = len(indices)
    # the first read runs alone: it opens per-process handles (an LMDB environment) before threads
    first = [(indices[0], _check(source, indices[0]))]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rest = zip(indices[1:], pool.map(lambda i: _check(source, i), indices[1:]))
        items: Iterable[tuple[int, BadImageError | None]] = itertools.chain(first, rest)
        if progress:
            from rich.console import Console
            from rich.progress import track

            items = track(
                items,
                total=total,
                description=f"decoding {total} images in {source.root}",
                console=Console(stderr=True),
            )
        yield from items


def _distributed() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def find_bad_records(
    source: ImageSource,
    *,
    workers: int | None = None,
    progress: bool = False,
    shard: tuple[int, int] | None = None,
) -> list[tuple[int, BadImageError]]:
    """Decode every record of ``source``; ``(index, error)`` for each one that fails, in order.

    ``shard=(rank, world)`` decodes only records ``rank, rank + world, ...`` (default: this
    process's share under an initialised process group, all records otherwise); with ``world > 1``
    and a process group, the ranks' findings are gathered, so every rank returns the full list.
    """
    group = _distributed()
    rank, world = shard if shard is not None else group
    if not 0 <= rank < world:
        raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard}")
    indices = range(rank, len(source), world)
    found: list[tuple[int, BadImageError]] = []
    if len(indices):
        results = _results(source, indices, workers or default_workers(), progress)
        found = [(index, err) for index, err in results if err is not None]
    if world == 1 or group[1] != world:  # one process, or a shard without a group to ask
        return found
    # exceptions with extra constructor arguments do not survive pickling: send their fields
    parts: list[list[tuple[int, str, str]] | None] = [None] * world
    dist.all_gather_object(parts, [(i, err.path, err.reason) for i, err in found])
    merged = sorted(item for part in parts for item in part or [])
    return [(index, BadImageError(path, reason)) for index, path, reason in merged]


def screen_source(
    source: FolderSource | LMDBSource,
    *,
    verify: bool,
    strict: bool,
    workers: int | None = None,
    progress: bool = False,
) -> int:
    """Report unusable records of a source before training; returns how many were left out.

    Non-image files and broken links (``source.rejected``) are always reported. With ``verify`` —
    or ``strict``, which must stop before the first step rather than in a DataLoader worker — every
    record is decoded. In strict mode the first bad file in sorted order raises; otherwise each is
    logged once and removed from the source (its name lands in ``source.dropped``).
    """
    bad: list[BadImageError] = list(source.rejected)
    drop: list[int] = []
    if verify or strict:
        start = time.perf_counter()
        log.info(
            "checking %d images in %s (a full decode; data.verify=false skips this)",
            len(source),
            source.root,
        )
        found = find_bad_records(source, workers=workers, progress=progress)
        drop = [index for index, _ in found]
        bad.extend(err for _, err in found)
        log.info("checked %s in %.1f s", source.root, time.perf_counter() - start)
    if not bad:
        return 0
    bad.sort(key=lambda e: e.path)
    if strict:
        raise bad[0]
    for err in bad:
        log.warning("skipping %s (%s)", err.path, err.reason)
    source.drop(drop)
    if len(source) == 0:
        raise FileNotFoundError(f"no usable images left in '{source.root}'")
    log.info("%d unusable file(s) skipped in %s", len(bad), source.root)
    return len(bad)
