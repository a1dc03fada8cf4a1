"""Screening a source for unusable files (non-images, corrupt or truncated images) before use."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from faceprior.data.io import BadImageError
from faceprior.data.sources import FolderSource, LMDBSource

log = logging.getLogger(__name__)


def _verify_file(path: Path) -> BadImageError | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as err:  # any decoder complaint marks the file as unusable
        return BadImageError(path, f"corrupt or truncated image ({type(err).__name__}: {err})")
    return None


def screen_source(
    source: FolderSource | LMDBSource, *, verify: bool, strict: bool, workers: int = 4
) -> int:
    """Report unusable files of a source before training; returns how many were removed.

    Non-image files are always reported; with ``verify`` every image file's integrity is checked
    (PIL ``verify``: CRCs and truncation, no full decode). In strict mode the first bad file in sorted
    order raises; otherwise each is logged once and dropped from the source.
    """
    bad: list[BadImageError] = list(source.rejected)
    if verify and isinstance(source, FolderSource):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_verify_file, source.files))
        bad.extend(err for err in results if err is not None)
    if not bad:
        return 0
    bad.sort(key=lambda e: e.path)
    if strict:
        raise bad[0]
    for err in bad:
        log.warning("skipping %s (%s)", err.path, err.reason)
    if isinstance(source, FolderSource):
        drop = {e.path for e in bad}
        source.files = [p for p in source.files if str(p) not in drop]
        if not source.files:
            raise FileNotFoundError(f"no usable images left in '{source.root}'")
    log.info("%d unusable file(s) skipped in %s", len(bad), source.root)
    return len(bad)
