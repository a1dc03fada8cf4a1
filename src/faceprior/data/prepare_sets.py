"""Sets from published face datasets: FFHQ, CelebA-HQ, or any folder of aligned faces.

Each preparation lists its inputs, names the outputs and hands them to the shared
:func:`~faceprior.data.prepare_convert.convert` loop (resize, PNG, manifest, resume), then adds
what the dataset needs besides the images: an LMDB, FFHQ's eye/mouth landmark file, or CelebA-HQ's
``splits.json``.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from faceprior.data.prepare import PrepareError, images_digest, sha256_bytes
from faceprior.data.prepare_convert import (
    ConvertResult,
    Job,
    Options,
    Progress,
    Skipped,
    convert,
    header,
    list_sources,
    save_manifest,
    stem_jobs,
    write_atomic,
)
from faceprior.data.prepare_formats import (
    FFHQ_LANDMARK_SIZE,
    MIN_HALF_LEN,
    SPLIT_NAMES,
    celeba_hq_index,
    celeba_split,
    ffhq_component_table,
    read_celeba_mapping,
    read_partition,
)
from faceprior.data.sources import write_lmdb

log = logging.getLogger("faceprior.data.prepare")

#: per-split image counts of the complete CelebA-HQ (30,000) under CelebA's official partition
CELEBA_HQ_COUNTS = {"train": 24183, "val": 2993, "test": 2824}
CELEBA_HQ_TOTAL = 30000
SPLITS_NAME = "splits.json"


def pack_lmdb(result: ConvertResult, name: str) -> dict[str, Any] | None:
    """Pack the written PNGs into ``out/name`` (BasicSR layout, keys = file stems).

    Kept as it is when the previous manifest recorded the same images; otherwise built in a
    temporary folder that then replaces the old one. None when no image was written.
    """
    files = [result.out / e["output"] for e in result.entries]
    stems = [f.stem for f in files]
    if not stems:
        return None
    bad = next((s for s in stems if not s.isascii()), None)
    if bad is not None:
        raise PrepareError(f"--lmdb: '{bad}' is not an ASCII name; LMDB keys are the file stems")
    pairs = [{"output": e["output"], "output_sha256": e["output_sha256"]} for e in result.entries]
    section = {
        "path": name,
        "count": len(files),
        "images_sha256": images_digest(pairs),
        "layout": "BasicSR: data.mdb + meta_info.txt, PNG values (compression 1), keys = stems",
    }
    target = result.out / name
    if result.previous.get("lmdb") == section and (target / "meta_info.txt").is_file():
        return section
    tmp = result.out / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_lmdb(files, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return section


def load_landmarks(path: str | Path, size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The eye/mouth table of an ``ffhq-dataset-v2.json`` at ``size`` and its manifest record."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PrepareError(f"--landmarks '{path}' cannot be read ({err.strerror or err})") from err
    table = ffhq_component_table(data, str(path), size)
    section = {
        "source": path.name,
        "source_sha256": sha256_bytes(data),
        "output": f"eye_mouth_landmarks_{size}.pth",
        "count": len(table),
        "scale": f"landmarks * {size} / {FFHQ_LANDMARK_SIZE}",
        "rule": "left eye points 36-41, right eye 42-47, mouth 48-67: [mean_x, mean_y, "
        f"max(max(max - min over x, y) / 2, {MIN_HALF_LEN:g})] (GFP-GAN parse_landmark.py)",
        "keys": "8-digit position of the entry in the JSON ('00000000' = 00000.png)",
        "eye_enlarge_ratio": "applied by the dataset when loading (not stored)",
    }
    return table, section


def write_landmarks(
    result: ConvertResult, table: dict[str, Any], section: dict[str, Any]
) -> dict[str, Any]:
    """Save the table with ``torch.save`` unless the recorded one is on disk unchanged."""
    target = result.out / section["output"]
    previous = result.previous.get("landmarks")
    unchanged = (
        isinstance(previous, dict)
        and previous.get("source_sha256") == section["source_sha256"]
        and target.is_file()
        and sha256_bytes(target.read_bytes()) == previous.get("output_sha256")
    )
    if unchanged:
        assert isinstance(previous, dict)
        return {**section, "output_sha256": previous["output_sha256"]}
    buffer = io.BytesIO()
    torch.save(table, buffer)
    write_atomic(target, buffer.getvalue())
    if result.skipped:
        log.warning(
            "%d image(s) were skipped: the dataset looks boxes up by the 8-digit position of an "
            "image in the sorted folder, so fill the gaps before training with %s",
            len(result.skipped),
            target.name,
        )
    return {**section, "output_sha256": sha256_bytes(buffer.getvalue())}


def prepare_ffhq(
    src: str | Path,
    out: str | Path,
    options: Options,
    *,
    lmdb: bool = False,
    landmarks: str | Path | None = None,
    progress: Progress | None = None,
) -> ConvertResult:
    """FFHQ's aligned 1024x1024 faces -> ``out/images/NNNNN.png`` at ``options.size``.

    ``src`` is FFHQ's ``images1024x1024`` (subfolders ``00000/`` ... or flat) or the folder that
    holds it; images are listed recursively and sorted by file name. ``lmdb`` also packs them into
    ``out/ffhq_<size>.lmdb``; ``landmarks`` (``ffhq-dataset-v2.json``) writes
    ``out/eye_mouth_landmarks_<size>.pth`` as GFP-GAN's ``parse_landmark.py`` does.
    """
    root = Path(src).expanduser()
    if (root / "images1024x1024").is_dir():
        root = root / "images1024x1024"
    files = list_sources(root, "--src", recursive=True)
    jobs = stem_jobs(files, root)[: options.limit]
    table = load_landmarks(landmarks, options.size) if landmarks is not None else None
    head = header(
        "ffhq", options.size, {"order": "sorted by file name", "output": "images/<stem>.png"}
    )
    result = convert(jobs, out, head, options, listed=[p.name for p in files], progress=progress)
    extra: dict[str, Any] = {"landmarks": None, "lmdb": None}
    if table is not None:
        extra["landmarks"] = write_landmarks(result, *table)
    if lmdb:
        extra["lmdb"] = pack_lmdb(result, f"ffhq_{options.size}.lmdb")
    result.manifest = save_manifest(result, head, options, complete=True, extra=extra)
    return result


def prepare_folder(
    src: str | Path,
    out: str | Path,
    options: Options,
    *,
    recursive: bool = False,
    lmdb: bool = False,
    progress: Progress | None = None,
) -> ConvertResult:
    """Any folder of aligned faces -> ``out/images/<stem>.png`` (``out/images_<size>.lmdb``)."""
    root = Path(src).expanduser()
    files = list_sources(root, "--src", recursive=recursive)
    jobs = stem_jobs(files, root)[: options.limit]
    order = "sorted by file name" + (", then path (recursive)" if recursive else "")
    head = header("folder", options.size, {"order": order, "output": "images/<stem>.png"})
    result = convert(jobs, out, head, options, listed=[p.name for p in files], progress=progress)
    extra = {"lmdb": pack_lmdb(result, f"images_{options.size}.lmdb") if lmdb else None}
    result.manifest = save_manifest(result, head, options, complete=True, extra=extra)
    return result


def _celeba_files(
    files: Sequence[Path], mapping: dict[int, str], partition: dict[int, str] | None
) -> tuple[dict[int, tuple[Path, str]], list[Skipped]]:
    """CelebA-HQ index -> (file, split) of the listed files, and the files that are not ones."""
    found: dict[int, Path] = {}
    skipped: list[Skipped] = []
    for path in files:
        index = celeba_hq_index(path.stem)
        if index is None:
            reason = "file name holds no CelebA-HQ index (like 0.jpg, 00042.png, imgHQ00042.png)"
            skipped.append(Skipped(path.name, reason))
        elif index not in mapping:
            skipped.append(Skipped(path.name, f"CelebA-HQ index {index} is not in --mapping"))
        elif index in found:
            raise PrepareError(
                f"'{found[index].name}' and '{path.name}' in '{path.parent}' are both CelebA-HQ "
                f"image {index}"
            )
        else:
            found[index] = path
    return {i: (found[i], celeba_split(mapping[i], partition)) for i in sorted(found)}, skipped


def _check_celeba_counts(counts: Counter[str], total: int, strict: bool) -> None:
    """A complete CelebA-HQ must split as CelebA's partition does (warning; error if strict)."""
    if total != CELEBA_HQ_TOTAL or dict(counts) == CELEBA_HQ_COUNTS:
        return
    got = ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLIT_NAMES)
    want = ", ".join(f"{s} {n}" for s, n in CELEBA_HQ_COUNTS.items())
    message = (
        f"the {total} CelebA-HQ images split into {got}, not CelebA's {want}; check --mapping "
        "and --partition"
    )
    if strict:
        raise PrepareError(message)
    log.warning("%s (continuing; --strict makes this an error)", message)


def _file_record(path: str | Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    return {"file": path.name, "sha256": sha256_bytes(path.read_bytes())}


def prepare_celeba_hq(
    src: str | Path,
    out: str | Path,
    mapping: str | Path,
    options: Options,
    *,
    partition: str | Path | None = None,
    splits: Sequence[str] = SPLIT_NAMES,
    progress: Progress | None = None,
) -> tuple[ConvertResult, Counter[str]]:
    """CelebA-HQ -> ``out/<split>/NNNNN.png`` (5-digit CelebA-HQ index) and ``out/splits.json``.

    ``src`` holds the 30,000 images named by CelebA-HQ index (``0.jpg`` as CelebAMask-HQ's
    CelebA-HQ-img, ``00000.png``, ``imgHQ00000.png``). ``mapping`` gives each index its original
    CelebA file, whose official split decides the image's split: from ``partition`` (CelebA's
    ``list_eval_partition.txt``) when given, else from the boundaries of that file by original
    file number (1-162770 train, 162771-182637 val, 182638-202599 test). A complete set gives
    train 24,183 / val 2,993 / test 2,824 (checked: a warning, an error when ``strict``).

    GFP-GAN's CelebA-Test (3,000 images) should be used as released (``conf/benchmark/
    celeba_test.yaml``), not re-synthesised; ``synth-benchmark --gt out/test`` builds a
    deterministic set from this split instead. Returns the result and the per-split counts of
    every CelebA-HQ image found (requested splits or not).
    """
    unknown = sorted(set(splits) - set(SPLIT_NAMES))
    if unknown or not splits:
        raise PrepareError(f"--splits: expected names among train, val, test, got {list(splits)}")
    files = list_sources(src, "--src", recursive=False)
    table = read_celeba_mapping(mapping)
    assigned, skipped = _celeba_files(
        files, table, read_partition(partition) if partition else None
    )
    if skipped and options.strict:
        first = skipped[0]
        raise PrepareError(f"'{first.source}': {first.reason} (--strict stops at the first)", 1)
    counts = Counter(split for _, split in assigned.values())
    _check_celeba_counts(counts, len(assigned), options.strict)
    wanted = [(i, path, split) for i, (path, split) in assigned.items() if split in splits]
    jobs = [Job(path, path.name, f"{split}/{i:05d}.png") for i, path, split in wanted]
    settings = {"order": "CelebA-HQ index", "output": "<split>/NNNNN.png (CelebA-HQ index)"}
    head = header("celeba-hq", options.size, settings)
    result = convert(
        jobs[: options.limit],
        out,
        head,
        options,
        listed=[p.name for p in files],
        skipped=skipped,
        progress=progress,
    )
    names: dict[str, list[str]] = {s: [] for s in SPLIT_NAMES if s in splits}
    for entry in result.entries:
        folder, name = Path(entry["output"]).parts
        names[folder].append(name)
    names = {s: sorted(v) for s, v in names.items()}
    write_atomic(
        result.out / SPLITS_NAME, (json.dumps(names, indent=2, sort_keys=True) + "\n").encode()
    )
    split_rule = (
        "CelebA list_eval_partition.txt (--partition)"
        if partition
        else "CelebA list_eval_partition.txt boundaries by original file number: 1-162770 "
        "train, 162771-182637 val, 182638-202599 test"
    )
    extra = {
        "inputs": {"mapping": _file_record(mapping), "partition": _file_record(partition)},
        "split_rule": split_rule,
        "splits": {"requested": list(names), "found": {s: counts.get(s, 0) for s in SPLIT_NAMES}},
        "split_counts": {s: len(v) for s, v in names.items()},
    }
    result.manifest = save_manifest(result, head, options, complete=True, extra=extra)
    return result, counts
