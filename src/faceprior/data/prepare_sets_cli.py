"""The dataset subcommands of ``faceprior-prepare``: ``ffhq``, ``celeba-hq``, ``folder`` and
``fid-stats`` (see :mod:`faceprior.data.prepare_cli` for the command line as a whole).

Each is declared by one ``_add_<name>`` function that adds its subparser and sets ``handler``
(``args -> exit code``); :func:`add_subcommands` adds them all. The work is done by
:mod:`faceprior.data.prepare_sets`; this module turns flags into calls and results into a report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import Console
from rich.progress import Progress as ProgressBar

from faceprior.data.prepare import MANIFEST_NAME, PrepareError
from faceprior.data.prepare_convert import ConvertResult, Options, Progress
from faceprior.data.prepare_formats import SPLIT_NAMES
from faceprior.data.prepare_sets import prepare_celeba_hq, prepare_ffhq, prepare_folder

if TYPE_CHECKING:  # the generic is not subscriptable at runtime
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
#: names printed per list in the report (the manifest has them all)
SHOWN = 20


def int_at_least(low: int, below: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for integers in ``[low, below)``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < low or (below is not None and value >= below):
            bound = f"in [{low}, {below})" if below is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _split_list(text: str) -> tuple[str, ...]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(SPLIT_NAMES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma list of train, val, test; got '{text}'")
    return tuple(s for s in SPLIT_NAMES if s in names)


def _add_common(cmd: argparse.ArgumentParser, lmdb: str | None) -> None:
    """Flags of the image-writing subcommands; ``lmdb``: the LMDB's name, if one can be packed."""
    cmd.add_argument("--out", required=True, metavar="DIR", help="output folder")
    cmd.add_argument(
        "--size",
        type=int_at_least(1),
        default=512,
        metavar="S",
        help="output side (default 512): centre square crop, then cv2.INTER_AREA to shrink, "
        "cv2.INTER_CUBIC to enlarge (faceprior.data.io.to_square, as synth-benchmark); 8-bit PNG",
    )
    cmd.add_argument("--limit", type=int_at_least(1), metavar="N", help="only the first N images")
    cmd.add_argument(
        "--manifest",
        metavar="FILE",
        help="verify the inputs against a JSON checksum list ({name: sha256}, or records with a "
        "file name and sha256/md5 such as FFHQ's ffhq-dataset-v2.json); missing and mismatching "
        "files are listed and the exit code is 1",
    )
    if lmdb is not None:
        cmd.add_argument(
            "--lmdb", action="store_true", help=f"also pack the PNGs into OUT/{lmdb} (BasicSR)"
        )
    cmd.add_argument(
        "--strict", action="store_true", help="stop at the first unusable or mismatching input"
    )
    cmd.add_argument(
        "--overwrite", action="store_true", help="replace an OUT made with other settings"
    )


def _add_ffhq(sub: Subparsers) -> None:
    cmd = sub.add_parser(
        "ffhq",
        help="FFHQ 1024x1024 aligned faces -> OUT/images/NNNNN.png at --size",
        description="Resize FFHQ's aligned faces (images1024x1024/, with 00000/... subfolders or "
        "flat; listed recursively, sorted by file name) to OUT/images/NNNNN.png and write "
        "OUT/manifest.json. --landmarks ffhq-dataset-v2.json also writes "
        "OUT/eye_mouth_landmarks_<size>.pth as GFP-GAN's parse_landmark.py does (for "
        "data.train_components). Reruns keep outputs whose recorded hashes match.",
    )
    cmd.add_argument(
        "--src", required=True, metavar="DIR", help="images1024x1024 or the folder holding it"
    )
    cmd.add_argument(
        "--landmarks",
        metavar="JSON",
        help="FFHQ's ffhq-dataset-v2.json: 68 landmarks per image -> eye/mouth boxes",
    )
    _add_common(cmd, lmdb="ffhq_<size>.lmdb")
    cmd.set_defaults(handler=_ffhq)


def _add_celeba_hq(sub: Subparsers) -> None:
    cmd = sub.add_parser(
        "celeba-hq",
        help="CelebA-HQ -> OUT/<split>/NNNNN.png by CelebA's official train/val/test partition",
        description="Split the 30,000 CelebA-HQ images (named by CelebA-HQ index: 0.jpg, "
        "00000.png or imgHQ00000.png) by the official CelebA partition of their original file "
        "and resize them to OUT/<split>/NNNNN.png, with OUT/splits.json and OUT/manifest.json. "
        "A complete set gives train 24,183 / val 2,993 / test 2,824. GFP-GAN's CelebA-Test "
        "(3,000 images) should be used as released (conf/benchmark/celeba_test.yaml), not "
        "re-synthesised; `synth-benchmark --gt OUT/test` builds a deterministic set from this "
        "split.",
    )
    cmd.add_argument("--src", required=True, metavar="DIR", help="folder of CelebA-HQ images")
    cmd.add_argument(
        "--mapping",
        required=True,
        metavar="FILE",
        help="CelebA-HQ-to-CelebA-mapping.txt (CelebAMask-HQ) or image_list.txt "
        "(progressive_growing_of_gans): idx, orig_idx, orig_file columns",
    )
    cmd.add_argument(
        "--partition",
        metavar="FILE",
        help="CelebA's list_eval_partition.txt (default: its boundaries by original file "
        "number: 1-162770 train, 162771-182637 val, 182638-202599 test)",
    )
    cmd.add_argument(
        "--splits",
        type=_split_list,
        default=SPLIT_NAMES,
        metavar="LIST",
        help="comma list of the splits to write (default train,val,test)",
    )
    _add_common(cmd, lmdb=None)
    cmd.set_defaults(handler=_celeba_hq)


def _add_folder(sub: Subparsers) -> None:
    cmd = sub.add_parser(
        "folder",
        help="any folder of aligned faces -> OUT/images/<stem>.png at --size",
        description="Resize every image of --src (sorted by file name) to OUT/images/<stem>.png "
        "and write OUT/manifest.json; two inputs with one stem are an error.",
    )
    cmd.add_argument("--src", required=True, metavar="DIR", help="folder of aligned faces")
    cmd.add_argument("--recursive", action="store_true", help="also read the sub-folders")
    _add_common(cmd, lmdb="images_<size>.lmdb")
    cmd.set_defaults(handler=_folder)


def _add_fid_stats(sub: Subparsers) -> None:
    cmd = sub.add_parser(
        "fid-stats",
        help="FID reference statistics (mean, covariance) of a folder, as faceprior-fid-stats",
        description="Compute the FID-Inception features of the images of --folder and save "
        "their mean and covariance: .pth in BasicSR's format, .npz with mean/cov and mu/sigma. "
        "Needs pt_inception-2015-12-05-6726825d.pth in the weights folder.",
    )
    cmd.add_argument("--folder", required=True, metavar="DIR", help="folder of reference images")
    cmd.add_argument("--out", required=True, metavar="FILE", help="output .pth or .npz")
    cmd.add_argument("--name", help="reference set name (default: the folder name)")
    cmd.add_argument(
        "--num-images", type=int_at_least(2), metavar="N", help="use the first N images"
    )
    cmd.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda[:K] (default: cuda when available)",
    )
    cmd.add_argument(
        "--batch-size", type=int_at_least(1), default=16, metavar="B", help="images per batch"
    )
    cmd.add_argument(
        "--weights-dir",
        metavar="DIR",
        help="folder with the Inception weights (default: the platform weights folder)",
    )
    cmd.set_defaults(handler=_fid_stats)


def add_subcommands(sub: Subparsers) -> None:
    """Add ``ffhq``, ``celeba-hq``, ``folder`` and ``fid-stats`` to ``faceprior-prepare``."""
    for add in (_add_ffhq, _add_celeba_hq, _add_folder, _add_fid_stats):
        add(sub)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        size=args.size,
        limit=args.limit,
        strict=args.strict,
        overwrite=args.overwrite,
        checksums=args.manifest,
    )


@contextmanager
def _progress(label: str) -> Iterator[Progress]:
    """A transient rich progress bar on stderr, as a ``(done, total)`` callback."""
    with ProgressBar(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _print_names(title: str, lines: list[str]) -> None:
    print(f"{title}:")
    for line in lines[:SHOWN]:
        print(f"  {line}")
    if len(lines) > SHOWN:
        print(f"  ... and {len(lines) - SHOWN} more (all in {MANIFEST_NAME})")


def report(command: str, result: ConvertResult) -> int:
    """Print what a run did; the exit code (1: nothing written, or the verification failed)."""
    removed = f", removed {result.removed} stale" if result.removed else ""
    print(
        f"{command}: {result.succeeded}/{result.selected} images in {result.out} (written "
        f"{result.written}, kept {result.reused}, skipped {len(result.skipped)}{removed})"
    )
    if result.skipped:
        lines = [f"{s.source}: {s.reason}" for s in result.skipped]
        _print_names(f"{len(result.skipped)} skipped input file(s)", lines)
    failed = False
    if result.verification is not None:
        check = result.verification
        print(f"--manifest {check['file']}: {check['found']}/{check['expected']} files in --src")
        if result.missing:
            _print_names(f"{len(result.missing)} missing from --src", result.missing)
        if result.mismatched:
            _print_names(f"{len(result.mismatched)} with another hash", result.mismatched)
        if check["not_listed"]:
            print(f"{check['not_listed']} file(s) of --src are not in --manifest")
        failed = bool(result.missing or result.mismatched)
    digest = result.manifest.get("images_sha256")
    print(f"manifest: {result.out / MANIFEST_NAME} (images_sha256 {digest})")
    if not result.succeeded:
        print("error: no input image could be used", file=sys.stderr)
        return 1
    if failed:
        print("error: the inputs do not match --manifest (listed above)", file=sys.stderr)
        return 1
    return 0


def _ffhq(args: argparse.Namespace) -> int:
    with _progress(f"ffhq -> {args.out}") as progress:
        result = prepare_ffhq(
            args.src,
            args.out,
            _options(args),
            lmdb=args.lmdb,
            landmarks=args.landmarks,
            progress=progress,
        )
    code = report("ffhq", result)
    for key in ("landmarks", "lmdb"):
        section = result.manifest.get(key)
        if section:
            print(f"{key}: {result.out / section['output' if key == 'landmarks' else 'path']}")
    return code


def _celeba_hq(args: argparse.Namespace) -> int:
    with _progress(f"celeba-hq -> {args.out}") as progress:
        result, found = prepare_celeba_hq(
            args.src,
            args.out,
            args.mapping,
            _options(args),
            partition=args.partition,
            splits=args.splits,
            progress=progress,
        )
    written = result.manifest["split_counts"]
    counts = ", ".join(
        f"{s} {written.get(s, '-')} (of {found.get(s, 0)} found)" for s in SPLIT_NAMES
    )
    code = report("celeba-hq", result)
    print(f"splits: {counts}; {result.out / 'splits.json'}")
    return code


def _folder(args: argparse.Namespace) -> int:
    with _progress(f"folder -> {args.out}") as progress:
        result = prepare_folder(
            args.src,
            args.out,
            _options(args),
            recursive=args.recursive,
            lmdb=args.lmdb,
            progress=progress,
        )
    code = report("folder", result)
    if result.manifest.get("lmdb"):
        print(f"lmdb: {result.out / result.manifest['lmdb']['path']}")
    return code


def _fid_stats(args: argparse.Namespace) -> int:
    from faceprior.metrics.fid_stats_cli import write_stats

    folder, out = Path(args.folder).expanduser(), Path(args.out).expanduser()
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise PrepareError(f"--folder '{folder}' {state}")
    if out.suffix not in (".pth", ".npz"):
        raise PrepareError(f"--out '{out}': expected a .pth (BasicSR) or .npz file name")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise PrepareError(f"--device {args.device}: expected cpu or cuda[:K]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrepareError(f"--device {args.device}: CUDA is not available")
    weights = Path(args.weights_dir).expanduser() if args.weights_dir else None
    return write_stats(
        folder,
        out,
        name=args.name,
        num_images=args.num_images,
        device=args.device,
        batch_size=args.batch_size,
        weights_dir=weights,
        prog="faceprior-prepare",
        debug=bool(getattr(args, "debug", False)),
    )
