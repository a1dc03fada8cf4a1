"""``faceprior-weights``: list, verify, convert, export and download checkpoints.

Exit status: 0 success, 1 verification/download failure, 2 bad usage or unreadable file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faceprior.checkpoints.errors import CheckpointError, DownloadError
from faceprior.checkpoints.io import (
    convert_checkpoint,
    diff_state_dict,
    export_training_checkpoint,
    load_state_dict_file,
)
from faceprior.checkpoints.io import sha256sum as file_sha256
from faceprior.checkpoints.layouts import LAYOUTS, ExtractedStateDict
from faceprior.checkpoints.registry import (
    CheckpointSpec,
    expected_shapes,
    get_spec,
    identify,
    list_specs,
)
from faceprior.checkpoints.weights import download_weights, weights_dir


def _cmd_list(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser() if args.dir else weights_dir()
    print(f"weights directory: {folder}")
    rows = [("name", "architecture", "file", "layout", "sha256", "present")]
    for spec in list_specs():
        present = "yes" if (folder / spec.filename).is_file() else "-"
        sha = spec.sha256[:12] if spec.sha256 else "-"
        rows.append((spec.name, spec.arch, spec.filename, spec.layout, sha, present))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _check_against(
    extracted: ExtractedStateDict, arch: str, candidates: list[dict[str, Any]], label: str
) -> int:
    """Compare the file with each candidate configuration; print the verdict."""
    sd = extracted.state_dict
    for kwargs in candidates:
        if not diff_state_dict(expected_shapes(arch, kwargs), sd).ok:
            continue
        sig = CheckpointSpec("", arch, kwargs, "", None, "bare").signature()
        print(f"OK: keys and shapes fit {label} = {sig}")
        return 0
    diff = diff_state_dict(expected_shapes(arch, candidates[0]), sd)
    print(f"MISMATCH: the file does not fit {label}:\n{diff.summary()}")
    for spec, kwargs in identify(sd):
        print(f"Hint: it fits registry entry '{spec.name}' = {spec.signature(kwargs)}")
    return 1


def _cmd_verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    extracted = load_state_dict_file(path, key=args.key, trusted=args.trusted)
    sha = file_sha256(path)
    numel = sum(v.numel() for v in extracted.state_dict.values())
    print(f"file: {path}")
    print(f"sha256: {sha}")
    print(f"layout: {extracted.describe()}; {len(extracted.state_dict)} tensors, {numel:,} values")
    if args.name:
        spec = get_spec(args.name)
        status = 0
        if spec.sha256 is None:
            print(f"hash: no SHA-256 registered for '{spec.name}'; checked keys and shapes only")
        elif spec.sha256.lower() == sha:
            print("hash: OK (matches the registry)")
        else:
            print(f"hash: MISMATCH (registry has {spec.sha256})")
            status = 1
        if extracted.layout != spec.layout:
            print(f"note: the official file uses layout '{spec.layout}'")
        if spec.note:
            print(f"note: {spec.note}")
        fits = _check_against(extracted, spec.arch, spec.candidate_kwargs(), f"'{spec.name}'")
        return status or fits
    if args.arch:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
        return _check_against(extracted, args.arch, [kwargs], args.arch)
    matches = identify(extracted.state_dict)
    if not matches:
        print("no registered architecture fits this file (use --arch/--kwargs for custom configs)")
        return 1
    for spec, kwargs in matches:
        print(f"fits registry entry '{spec.name}' = {spec.signature(kwargs)}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    extracted = convert_checkpoint(args.src, args.dst, args.to, key=args.key, trusted=args.trusted)
    print(f"converted {args.src} [{extracted.describe()}] -> {args.dst} [{args.to}]")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    path, counts = export_training_checkpoint(args.ckpt, args.dst, trusted=args.trusted)
    print(
        f"exported {args.ckpt} -> {path} [params: {counts['params']} tensors, "
        f"params_ema: {counts['params_ema']} tensors]"
    )
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    path = download_weights(args.name, args.dir, timeout=args.timeout)
    print(f"downloaded '{args.name}' to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``faceprior-weights``."""
    parser = argparse.ArgumentParser(
        prog="faceprior-weights", description="Official GFP-GAN / GPEN checkpoint tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered official checkpoints")
    p.add_argument("--dir", help="weights directory (default: $FACEPRIOR_WEIGHTS_DIR)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("verify", help="check a file's layout, hash, keys and shapes")
    p.add_argument("file")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--name", help="registry entry to check against (hash, keys, shapes)")
    group.add_argument("--arch", help="faceprior.nets class to check against (custom configs)")
    p.add_argument("--kwargs", help="JSON constructor arguments for --arch")
    p.add_argument("--key", help="take the state dict from this top-level key")
    p.add_argument("--trusted", action="store_true", help="allow arbitrary pickled objects")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("convert", help="rewrite a checkpoint in another layout")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--to", required=True, choices=LAYOUTS, help="target layout")
    p.add_argument("--key", help="take the state dict from this top-level key")
    p.add_argument("--trusted", action="store_true", help="allow arbitrary pickled objects")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "export",
        help="write a training checkpoint's generator as an official params/params_ema file",
    )
    p.add_argument("ckpt", help="faceprior Lightning checkpoint (.ckpt)")
    p.add_argument("dst", help="output .pth")
    p.add_argument("--trusted", action="store_true", help="allow arbitrary pickled objects")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("download", help="fetch a file from its official URL (needs network)")
    p.add_argument("name")
    p.add_argument("--dir", help="weights directory (default: $FACEPRIOR_WEIGHTS_DIR)")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    p.set_defaults(func=_cmd_download)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, DownloadError) else 2
    return status


if __name__ == "__main__":
    sys.exit(main())
