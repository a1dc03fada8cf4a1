"""The loop shared by ``faceprior-prepare ffhq``, ``celeba-hq`` and ``folder``: list -> resize ->
write PNG -> manifest, resumable.

:func:`convert` takes the inputs as :class:`Job` s (sorted by file name by :func:`list_sources`),
decodes each with :func:`~faceprior.data.io.decode_image_bytes` (8-bit RGB), brings it to ``size``
x ``size`` with the training pipeline's :func:`~faceprior.data.io.to_square` (centre square crop,
``cv2.INTER_AREA`` to shrink, ``cv2.INTER_CUBIC`` to enlarge), writes an 8-bit PNG (tmp file +
``os.replace``) and records it in ``manifest.json``.

The manifest has sorted keys and no timestamps or absolute paths, so a rerun writes identical bytes.
It holds the tool, the settings, the library versions (:func:`~faceprior.data.prepare.environment`)
and, per image, the source name and SHA-256 and the output name and SHA-256. A rerun with the same
settings keeps every output whose source hash and own hash match the record and writes the rest;
one with other settings needs another output folder or ``overwrite``.

An unusable input is skipped, counted and listed (``strict``: the first one stops the run), and so
is one whose hash differs from a ``--manifest`` checksum list; names of that list that are absent
from the inputs are reported as missing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faceprior
from faceprior.data.io import IMAGE_EXTENSIONS, BadImageError, decode_image_bytes, to_square
from faceprior.data.prepare import (
    MANIFEST_NAME,
    PNG_COMPRESSION,
    PrepareError,
    encode_png,
    environment,
    images_digest,
    sha256_bytes,
    stable_json,
)
from faceprior.data.prepare_formats import Digest, read_checksums

log = logging.getLogger("faceprior.data.prepare")

#: how every input is brought to the output size (recorded in the manifest)
RESIZE = {
    "function": "faceprior.data.io.to_square (centre square crop of side min(h, w), then resize)",
    "shrink": "cv2.INTER_AREA",
    "enlarge": "cv2.INTER_CUBIC",
}
DECODE = "faceprior.data.io.decode_image_bytes (8-bit RGB; gray repeated, alpha over white, 16-bit / 257)"
#: output sub-folders this tool writes PNGs to (only files there are ever removed)
OUTPUT_DIRS = frozenset({"images", "train", "val", "test"})
#: manifest sections that must match for an output folder to be resumed
COMPARED_KEYS = ("tool", "environment", "settings")
#: seconds between saves of the incomplete manifest during a run
SAVE_EVERY_S = 10.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Options:
    """Flags shared by the preparations: output side, how many inputs, and error handling."""

    size: int = 512
    limit: int | None = None
    strict: bool = False
    overwrite: bool = False
    checksums: str | Path | None = None  # --manifest: expected input hashes


@dataclass(frozen=True)
class Job:
    """One image to write: the input file, its recorded name (relative to the source folder) and
    the output path relative to the output folder."""

    source: Path
    name: str
    output: str


@dataclass(frozen=True)
class Skipped:
    """An input that was not written, and why."""

    source: str
    reason: str


class ChecksumMismatchError(BadImageError):
    """An input whose hash differs from the ``--manifest`` checksum list."""


@dataclass
class ConvertResult:
    """What a run did; ``manifest`` is the final manifest, ``previous`` the one it resumed."""

    out: Path
    selected: int
    written: int = 0
    reused: int = 0
    removed: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    previous: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return len(self.entries)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then move it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # os.replace: atomic on one file system


def header(command: str, size: int, settings: dict[str, Any]) -> dict[str, Any]:
    """The manifest sections compared on resume: tool, library versions and settings."""
    return {
        "tool": {"name": f"faceprior-prepare {command}", "version": faceprior.__version__},
        "environment": environment(),
        "settings": {
            "size": size,
            "resize": RESIZE,
            "decode": DECODE,
            "png": {"encoder": "cv2.imencode", "compression": PNG_COMPRESSION, "bit_depth": 8},
            **settings,
        },
    }


def list_sources(folder: str | Path, flag: str, recursive: bool) -> list[Path]:
    """Image files of ``folder`` (hidden ones skipped), sorted by file name, then path."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise PrepareError(f"{flag} folder '{folder}' does not exist")
    if not folder.is_dir():
        raise PrepareError(f"{flag} '{folder}' is not a folder")
    files = [
        p
        for p in folder.glob("**/*" if recursive else "*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    ]
    if not files:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise PrepareError(f"{flag} folder '{folder}' contains no images ({exts})")
    return sorted(files, key=lambda p: (p.name, p.as_posix()))


def stem_jobs(files: Sequence[Path], root: Path, folder: str = "images") -> list[Job]:
    """``folder/<stem>.png`` for each file; two files with one stem are an error naming both."""
    seen: dict[str, Path] = {}
    for p in files:
        other = seen.setdefault(p.stem, p)
        if other is not p:
            a, b = (x.relative_to(root).as_posix() for x in (other, p))
            raise PrepareError(f"'{a}' and '{b}' in '{root}' would both be {folder}/{p.stem}.png")
    return [Job(p, p.relative_to(root).as_posix(), f"{folder}/{p.stem}.png") for p in files]


def _claim(out: Path, head: dict[str, Any], jobs: Sequence[Job], overwrite: bool) -> dict[str, Any]:
    """Check ``out`` against ``head``; the manifest to resume from (empty: none)."""
    path = out / MANIFEST_NAME
    if not path.is_file():
        if not overwrite and any((out / job.output).exists() for job in jobs):
            raise PrepareError(
                f"'{out}' has images but no {MANIFEST_NAME}; choose another --out, or pass "
                "--overwrite to replace them"
            )
        return {}
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PrepareError(
            f"cannot read '{path}' ({err}); choose another --out or pass --overwrite"
        ) from err
    if not isinstance(previous, dict):
        raise PrepareError(f"'{path}' is not a manifest; choose another --out")
    diffs = []
    for key in COMPARED_KEYS:
        found = previous.get(key)
        old: dict[str, Any] = found if isinstance(found, dict) else {}
        new: dict[str, Any] = head[key]
        for sub in sorted(set(old) | set(new)):
            if old.get(sub) != new.get(sub):
                diffs.append(
                    f"{key}.{sub}: {stable_json(old.get(sub))} -> {stable_json(new.get(sub))}"
                )
    if not diffs:
        return previous
    if not overwrite:
        raise PrepareError(
            f"'{out}' holds a set made with other settings:\n  "
            + "\n  ".join(diffs)
            + "\nchoose another --out, or pass --overwrite to replace it"
        )
    _remove_outputs(out, [str(e.get("output")) for e in _entries(previous)])
    path.unlink()
    return {}


def _entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    images = manifest.get("images", [])
    return [e for e in images if isinstance(e, dict)] if isinstance(images, list) else []


def _remove_outputs(out: Path, names: Collection[str]) -> int:
    """Delete the listed PNGs that lie in this tool's output folders; returns how many."""
    removed = 0
    for name in sorted(names):
        parts = Path(name).parts
        ours = len(parts) == 2 and parts[0] in OUTPUT_DIRS and name.endswith(".png")
        if ours and (out / name).is_file():
            (out / name).unlink()
            removed += 1
    return removed


def _reusable(entry: dict[str, Any] | None, out: Path, job: Job, source_sha: str) -> bool:
    """A recorded entry for the same source bytes whose output is on disk with its hash."""
    if entry is None or entry.get("source") != job.name or entry.get("source_sha256") != source_sha:
        return False
    target = out / job.output
    return target.is_file() and sha256_bytes(target.read_bytes()) == entry.get("output_sha256")


def _convert_one(
    job: Job, out: Path, size: int, previous: dict[str, Any] | None, expected: Digest | None
) -> tuple[dict[str, Any], bool]:
    """Reuse or write one output; returns its entry and whether it was reused."""
    try:
        data = job.source.read_bytes()
    except OSError as err:
        raise BadImageError(job.source, f"cannot read file ({err.strerror or err})") from err
    source_sha = sha256_bytes(data)
    if expected is not None and not expected.matches(data, source_sha):
        raise ChecksumMismatchError(
            job.source, f"{expected.algorithm} is not {expected.hexdigest} as --manifest says"
        )
    if _reusable(previous, out, job, source_sha):
        assert previous is not None
        return previous, True
    image = decode_image_bytes(data, str(job.source))
    h, w = image.shape[:2]
    side = min(h, w)
    resize = "none" if side == size else ("INTER_AREA" if side > size else "INTER_CUBIC")
    png = encode_png(to_square(image, size)[0])
    write_atomic(out / job.output, png)
    entry = {
        "source": job.name,
        "source_sha256": source_sha,
        "source_size": [w, h],
        "resize": resize,
        "output": job.output,
        "output_sha256": sha256_bytes(png),
    }
    return entry, False


def save_manifest(
    result: ConvertResult,
    head: dict[str, Any],
    options: Options,
    *,
    complete: bool,
    extra: dict[str, Any] | None = None,
    pending: Collection[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Write ``manifest.json``; ``pending``: previous entries kept while a run is incomplete."""
    by_output = {e["output"]: e for e in [*pending, *result.entries]}
    images = [by_output[k] for k in sorted(by_output)]
    manifest = {
        **head,
        "limit": options.limit,
        "complete": complete,
        "count": len(images),
        "skipped": [vars(s) for s in sorted(result.skipped, key=lambda s: (s.source, s.reason))],
        "verification": result.verification,
        "images": images,
        "images_sha256": images_digest(images),
        **(extra or {}),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_atomic(result.out / MANIFEST_NAME, text.encode())
    return manifest


def _verify_listing(
    result: ConvertResult, path: str | Path, expected: dict[str, Digest], listed: Collection[str]
) -> None:
    """Names of the checksum list absent from the inputs, and the verification record."""
    present = set(listed)
    result.missing = sorted(set(expected) - present)
    result.verification = {
        "file": Path(path).name,
        "sha256": sha256_bytes(Path(path).expanduser().read_bytes()),
        "expected": len(expected),
        "found": len(present & set(expected)),
        "not_listed": len(present - set(expected)),
        "missing": result.missing,
    }


def convert(
    jobs: Sequence[Job],
    out: str | Path,
    head: dict[str, Any],
    options: Options,
    *,
    listed: Collection[str] = (),
    skipped: Sequence[Skipped] = (),
    progress: Progress | None = None,
) -> ConvertResult:
    """Write the outputs of ``jobs`` under ``out`` and an incomplete manifest (see the module doc).

    ``listed``: the file names of every input found (for ``--manifest`` verification); ``skipped``:
    inputs already rejected while listing. The caller finishes with :func:`save_manifest`.
    """
    out = Path(out).expanduser()
    result = ConvertResult(out=out, selected=len(jobs), skipped=list(skipped))
    expected = read_checksums(options.checksums) if options.checksums else None
    if options.checksums and expected is not None:
        _verify_listing(result, options.checksums, expected, listed)
        if result.missing and options.strict:
            shown = ", ".join(result.missing[:10]) + (" ..." if len(result.missing) > 10 else "")
            raise PrepareError(
                f"{len(result.missing)} file(s) of --manifest '{options.checksums}' are not in "
                f"--src: {shown}",
                1,
            )
    result.previous = _claim(out, head, jobs, options.overwrite)
    old = {str(e.get("output")): e for e in _entries(result.previous)}
    for folder in sorted({Path(job.output).parent for job in jobs}):
        (out / folder).mkdir(parents=True, exist_ok=True)
    if not result.previous:
        save_manifest(result, head, options, complete=False)  # claims the folder
    unvisited, saved_at = dict(old), time.monotonic()
    for done, job in enumerate(jobs, start=1):
        unvisited.pop(job.output, None)
        digest = expected.get(job.source.name) if expected is not None else None
        try:
            entry, reused = _convert_one(job, out, options.size, old.get(job.output), digest)
        except BadImageError as err:
            result.skipped.append(Skipped(job.name, err.reason))
            if isinstance(err, ChecksumMismatchError):
                result.mismatched.append(job.name)
            if options.strict:
                save_manifest(result, head, options, complete=False, pending=unvisited.values())
                raise PrepareError(f"{err} (--strict stops at the first bad image)", 1) from err
            log.warning("skipping %s", err)
        else:
            result.entries.append(entry)
            result.reused += reused
            result.written += not reused
        if progress is not None:
            progress(done, len(jobs))
        if time.monotonic() - saved_at > SAVE_EVERY_S:
            save_manifest(result, head, options, complete=False, pending=unvisited.values())
            saved_at = time.monotonic()
    if result.verification is not None:
        result.verification["mismatched"] = sorted(result.mismatched)
    kept = {e["output"] for e in result.entries}
    result.removed = _remove_outputs(out, set(old) - kept)
    return result
