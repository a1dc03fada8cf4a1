"""``faceprior-data``: prepare datasets.

Commands::

    faceprior-data synth OUT [--count N] [--size S] [--seed K]   # synthetic faces + component file
    faceprior-data lmdb FOLDER OUT.lmdb                           # pack an image folder into an LMDB
    faceprior-data check FOLDER                                    # list unreadable/non-image files
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from faceprior.data.screening import screen_source
from faceprior.data.sources import FolderSource, write_lmdb
from faceprior.data.synthetic import write_synthetic_split


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceprior-data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write procedurally generated synthetic faces")
    synth.add_argument(
        "out", help="output folder (images/, eye_mouth_landmarks.pth, manifest.json)"
    )
    synth.add_argument("--count", type=int, default=100, help="number of faces (default 100)")
    synth.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    synth.add_argument("--seed", type=int, default=0, help="stream seed (default 0)")
    lmdb = sub.add_parser("lmdb", help="pack an image folder into a BasicSR-layout LMDB")
    lmdb.add_argument("folder")
    lmdb.add_argument("out")
    lmdb.add_argument("--compress-level", type=int, default=1)
    check = sub.add_parser("check", help="report files that training would skip")
    check.add_argument("folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "synth":
        root = write_synthetic_split(args.out, args.count, args.size, args.seed, progress=True)
        print(f"wrote {args.count} synthetic {args.size}x{args.size} faces to {root / 'images'}")
    elif args.command == "lmdb":
        source = FolderSource(args.folder)
        screen_source(source, verify=True, strict=False)
        out = write_lmdb(source.files, args.out, compress_level=args.compress_level)
        print(f"packed {len(source.files)} images into {out}")
    else:
        source = FolderSource(args.folder)
        bad = screen_source(source, verify=True, strict=False)
        print(f"{len(source.files)} usable image(s), {bad} unusable file(s) in {args.folder}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
