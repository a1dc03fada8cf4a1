"""``faceprior-prepare``: build training and evaluation sets from face datasets.

Subcommands::

    faceprior-prepare synth-benchmark --gt DIR --out DIR (--degradation NAME | --preset NAME)
        [--seed N] [--size S] [--limit N] [--device cpu] [--batch-size B] [--strict] [--overwrite]
    faceprior-prepare ffhq --src DIR --out DIR [--size 512] [--lmdb] [--landmarks JSON] [--limit N]
    faceprior-prepare celeba-hq --src DIR --out DIR --mapping FILE [--partition FILE]
        [--size 512] [--splits train,val,test] [--limit N]
    faceprior-prepare folder --src DIR --out DIR [--size 512] [--lmdb] [--recursive] [--limit N]
    faceprior-prepare fid-stats --folder DIR --out FILE.pth|FILE.npz [--name NAME]
        [--num-images N] [--device cpu] [--batch-size B] [--weights-dir DIR]

``synth-benchmark`` degrades every image of ``--gt`` with a ``conf/degradation`` preset,
deterministically per image (see :mod:`faceprior.data.prepare`), and writes ``lq/``, ``gt/`` and
``manifest.json`` under ``--out``. ``--preset celeba_test`` is the GFP-GAN CelebA-Test recipe:
``gfpgan_v1`` degradation, 512x512, seed 0, over the 3,000 CelebA-HQ test-partition faces.

``ffhq``, ``celeba-hq`` and ``folder`` resize a dataset's aligned faces to ``--size`` PNGs
(``images/``, or ``train/``, ``val/``, ``test/`` by CelebA's partition), optionally with an LMDB
and FFHQ's eye/mouth landmark file; ``fid-stats`` writes FID reference statistics of a folder
(see :mod:`faceprior.data.prepare_sets`). These also take ``--manifest FILE`` (verify the inputs'
hashes), ``--strict`` and ``--overwrite``, and, like ``synth-benchmark``, resume: outputs whose
recorded hashes match are kept and ``manifest.json`` is byte-identical on a rerun.

Each subcommand is declared by one ``_add_<name>`` function that adds its subparser and sets
``handler`` (``args -> exit code``); the dataset ones live in :mod:`faceprior.data.prepare_sets_cli`.
:func:`main` only parses and dispatches.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress

from faceprior.clitools import add_debug_flag, debugging, print_error, run_cli
from faceprior.data.prepare import (
    PrepareError,
    SynthResult,
    SynthSettings,
    list_images,
    synth_benchmark,
)
from faceprior.data.prepare_sets_cli import add_subcommands, int_at_least

log = logging.getLogger("faceprior.data.prepare")
PROG = "faceprior-prepare"


@dataclass(frozen=True)
class Preset:
    """A published benchmark recipe: degradation, size and seed, and the expected image count."""

    degradation: str
    size: int
    seed: int
    count: int
    description: str


PRESETS: dict[str, Preset] = {
    "celeba_test": Preset(
        degradation="gfpgan_v1",
        size=512,
        seed=0,
        count=3000,
        description="GFP-GAN CelebA-Test: the 3,000 CelebA-HQ test-partition faces, 512x512, "
        "gfpgan_v1 degradation, seed 0",
    ),
    "celebahq_gpen": Preset(
        degradation="gpen_simple",
        size=512,
        seed=0,
        count=2824,
        description="GPEN-style CelebA-HQ test: the 2,824 faces of the official CelebA-HQ test "
        "partition (faceprior-prepare celeba-hq --splits test), 512x512, gpen_simple degradation, "
        "seed 0 (benchmark=celebahq_gpen)",
    ),
}


def _add_synth_benchmark(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    presets = "; ".join(f"{k}: {p.description}" for k, p in PRESETS.items())
    cmd = sub.add_parser(
        "synth-benchmark",
        help="degrade a folder of ground-truth faces into a deterministic paired benchmark",
        description="Degrade every image of --gt (sorted by file name) with a degradation "
        "preset, image i with its own seed derived from (seed, i), and write OUT/lq, OUT/gt and "
        "OUT/manifest.json. Rerunning resumes: images whose recorded hashes match are kept.",
    )
    cmd.add_argument(
        "--gt", required=True, metavar="DIR", help="folder of ground-truth images (not recursive)"
    )
    cmd.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (lq/, gt/, manifest.json)"
    )
    cmd.add_argument(
        "--degradation",
        metavar="NAME",
        help="conf/degradation preset, e.g. gfpgan_v1 (required without --preset)",
    )
    cmd.add_argument(
        "--seed",
        type=int_at_least(0, 2**32),
        metavar="N",
        help="benchmark seed, 0 <= seed < 2**32 (default 0)",
    )
    cmd.add_argument(
        "--size",
        type=int_at_least(1),
        metavar="S",
        help="centre-crop to a square and resize the GT to S x S first (INTER_AREA to shrink, "
        "INTER_CUBIC to enlarge); default: keep the GT as it is",
    )
    cmd.add_argument("--preset", choices=sorted(PRESETS), help=f"a published recipe ({presets})")
    cmd.add_argument("--limit", type=int_at_least(1), metavar="N", help="only the first N images")
    cmd.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda[:K]; recorded, since the device type changes the pixels",
    )
    cmd.add_argument(
        "--batch-size",
        type=int_at_least(1),
        metavar="B",
        default=8,
        help="images per device batch (default 8); the output does not depend on it",
    )
    cmd.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable image; a preset's image count must match",
    )
    cmd.add_argument(
        "--overwrite", action="store_true", help="replace an OUT made with other settings"
    )
    cmd.set_defaults(handler=_synth_benchmark)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceprior-prepare",
        description="Build training and evaluation sets from face datasets.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_synth_benchmark(sub)
    add_subcommands(sub)
    return add_debug_flag(parser)


def _synth_settings(args: argparse.Namespace) -> tuple[SynthSettings, Preset | None]:
    """Settings from the flags, with a preset filling (and forbidding other values of) its fields."""
    preset = PRESETS[args.preset] if args.preset else None
    values = {"degradation": args.degradation, "size": args.size, "seed": args.seed}
    if preset is not None:
        for key, value in values.items():
            fixed = getattr(preset, key)
            if value is not None and value != fixed:
                raise PrepareError(
                    f"--preset {args.preset} uses --{key} {fixed}; drop --{key} {value} or the "
                    "preset"
                )
            values[key] = fixed
    if values["degradation"] is None:
        raise PrepareError("synth-benchmark needs --degradation NAME or --preset NAME")
    settings = SynthSettings(
        degradation=str(values["degradation"]),
        seed=int(values["seed"] or 0),
        size=None if values["size"] is None else int(values["size"]),
        device=args.device,
        preset=args.preset,
    )
    return settings, preset


def _report(result: SynthResult) -> None:
    removed = f", removed {result.removed} stale files" if result.removed else ""
    print(
        f"synth-benchmark: {result.succeeded}/{result.selected} images in {result.out} (written "
        f"{result.written}, kept {result.reused}, failed {len(result.failed)}{removed})"
    )
    if result.failed:
        print(f"{len(result.failed)} unusable ground-truth file(s):")
        for failure in result.failed:
            print(f"  {failure.source}: {failure.reason}")
    digest = result.manifest.get("images_sha256")
    print(f"manifest: {result.out / 'manifest.json'} (images_sha256 {digest})")


def _synth_benchmark(args: argparse.Namespace) -> int:
    settings, preset = _synth_settings(args)
    err = Console(stderr=True)
    if preset is not None:
        found = len(list_images(args.gt))
        if found != preset.count:
            message = (
                f"--preset {args.preset} expects {preset.count} images, '{args.gt}' has {found}"
            )
            if args.strict:
                raise PrepareError(message)
            log.warning("%s (continuing; --strict makes this an error)", message)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"synth-benchmark -> {args.out}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = synth_benchmark(
            args.gt,
            args.out,
            settings,
            batch_size=args.batch_size,
            limit=args.limit,
            strict=args.strict,
            overwrite=args.overwrite,
            progress=progress,
        )
    _report(result)
    if not result.succeeded:
        print("error: no ground-truth image could be used", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2: bad arguments or settings, 1: nothing usable)."""
    args = build_parser().parse_args(argv)
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return run_cli(PROG, lambda: _handle(args), args)
    finally:
        log.removeHandler(handler)


def _handle(args: argparse.Namespace) -> int:
    """Run the subcommand; a :class:`PrepareError` is its one-line message and exit code."""
    try:
        code: int = args.handler(args)
    except PrepareError as exc:
        if debugging(args):
            raise
        print_error(PROG, exc)
        return exc.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
