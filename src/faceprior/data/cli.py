"""``faceprior-data``: prepare and check datasets.

Commands::

    faceprior-data synth OUT [--count N] [--size S] [--seed K]   # synthetic faces + component file
    faceprior-data lmdb FOLDER OUT.lmdb                           # pack an image folder into an LMDB
    faceprior-data check FOLDER|DB.lmdb [--workers N]              # decode every image as training does

Errors are printed as one line (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from faceprior.data.io import BadImageError
from faceprior.data.screening import find_bad_records, screen_source
from faceprior.data.sources import FolderSource, open_source, write_lmdb
from faceprior.data.synthetic import write_synthetic_split

PROG = "faceprior-data"


def _at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0], parents=[debug])
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser(
        "synth", parents=[debug], help="write procedurally generated synthetic faces"
    )
    synth.add_argument(
        "out", help="output folder (images/, eye_mouth_landmarks.pth, manifest.json)"
    )
    synth.add_argument("--count", type=_at_least(1), default=100, help="number of faces (100)")
    synth.add_argument("--size", type=_at_least(1), default=512, help="image side in pixels (512)")
    synth.add_argument("--seed", type=int, default=0, help="stream seed (default 0)")
    lmdb = sub.add_parser(
        "lmdb", parents=[debug], help="pack an image folder into a BasicSR-layout LMDB"
    )
    lmdb.add_argument("folder")
    lmdb.add_argument("out")
    lmdb.add_argument("--compress-level", type=_at_least(0, 9), default=1, help="PNG level 0-9")
    check = sub.add_parser(
        "check", parents=[debug], help="decode every image as training does; list the bad ones"
    )
    check.add_argument("folder", help="image folder or LMDB")
    check.add_argument("--workers", type=_at_least(1), default=None, help="threads (CPU count)")
    return parser


def _report_subfolders(source: FolderSource) -> None:
    """Say which subfolders contribute images (the folder is read recursively)."""
    counts = source.subfolders()
    if counts:
        listed = ", ".join(f"{name}/ ({n})" for name, n in sorted(counts.items())[:10])
        more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
        print(
            f"note: {sum(counts.values())} image(s) lie in {len(counts)} subfolder(s), "
            f"included because folders are read recursively: {listed}{more}"
        )


def _report_shared_stems(source: FolderSource) -> None:
    """Say which file stems several images share (LQ pairs and landmarks are matched by stem)."""
    by_stem: dict[str, list[str]] = {}
    for path in source.files:
        by_stem.setdefault(path.stem, []).append(path.relative_to(source.root).as_posix())
    shared = {stem: paths for stem, paths in sorted(by_stem.items()) if len(paths) > 1}
    if shared:
        stem, paths = next(iter(shared.items()))
        print(
            f"note: {len(shared)} file stem(s) are shared by several images (LQ partners and "
            f"eye/mouth landmarks are matched by stem), e.g. '{stem}': {', '.join(paths)}"
        )


def check(root: str, workers: int | None = None) -> int:
    """``faceprior-data check``: one line per unusable file, a summary; 1 when any was found."""
    source = open_source(root)
    found = find_bad_records(source, workers=workers, progress=True)
    bad: list[BadImageError] = sorted(
        [*source.rejected, *(err for _, err in found)], key=lambda e: e.path
    )
    for err in bad:
        print(f"unusable: {err.path}: {err.reason}")
    if isinstance(source, FolderSource):
        _report_subfolders(source)
        _report_shared_stems(source)
    usable = len(source) - len(found)
    print(f"{usable} usable image(s), {len(bad)} unusable file(s) in {root}")
    return 1 if bad else 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "synth":
        root = write_synthetic_split(args.out, args.count, args.size, args.seed, progress=True)
        print(f"wrote {args.count} synthetic {args.size}x{args.size} faces to {root / 'images'}")
        return 0
    if args.command == "lmdb":
        source = FolderSource(args.folder)
        screen_source(source, verify=True, strict=False, progress=True)
        out = write_lmdb(source.files, args.out, compress_level=args.compress_level)
        print(f"packed {len(source.files)} images into {out}")
        return 0
    return check(args.folder, args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    debug = getattr(args, "debug", False)
    try:
        return _run(args)
    except Exception as err:
        if debug:
            raise
        message = " ".join(str(err).split("\n")) or type(err).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
