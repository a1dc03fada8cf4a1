"""``faceprior-weights``: list, verify, convert, export, download the registered files
(and write random-init stand-ins).

Every file a configuration can need is registered once (:data:`faceprior.checkpoints.WEIGHTS`):
network checkpoints, loss networks and metric files. ``list`` shows them all, ``download`` and
``verify --name`` take any registered name; ``convert`` and ``export`` work on network files;
``random NAME FILE`` writes a randomly initialised network in NAME's official layout, so that
loading code and pipelines can be smoke-tested where the released files cannot be downloaded.

Exit status: 0 success, 1 verification/download failure (or an unexpected error), 2 bad usage
or unreadable file. Errors are one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from faceprior.checkpoints.errors import CheckpointError, ChecksumError, DownloadError
from faceprior.checkpoints.io import (
    EXPORT_LAYOUTS,
    EXPORT_PARTS,
    convert_checkpoint,
    diff_state_dict,
    export_checkpoint,
    export_training_checkpoint,
    load_state_dict_file,
)
from faceprior.checkpoints.io import sha256sum as file_sha256
from faceprior.checkpoints.layouts import LAYOUTS, ExtractedStateDict
from faceprior.checkpoints.registry import (
    PURPOSES,
    CheckpointSpec,
    WeightsFile,
    expected_shapes,
    get_weights,
    identify,
    list_weights,
    signature,
)
from faceprior.checkpoints.weights import download_weights, locate_weights, weights_dir
from faceprior.clitools import add_debug_flag, run_cli


def _hash_cell(spec: WeightsFile) -> str:
    if spec.sha256:
        return spec.sha256[:12]
    return f"{spec.sha256_prefix}*" if spec.sha256_prefix else "-"


def _present_cell(spec: WeightsFile, folder: Path) -> str:
    found = locate_weights(spec, folder).is_file()
    if spec.bundled is not None:
        return "bundled" if found else "MISSING"
    return "yes" if found else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser() if args.dir else weights_dir()
    print(f"weights directory: {folder}")
    specs = list_weights(args.purpose)
    rows = [("name", "for", "architecture", "file", "layout", "sha256", "present")]
    for spec in specs:
        net = spec if isinstance(spec, CheckpointSpec) else None
        rows.append((
            spec.name,
            ",".join(spec.purposes),
            net.arch if net else "-",
            spec.filename,
            net.layout if net else "-",
            _hash_cell(spec),
            _present_cell(spec, folder),
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def show(row: tuple[str, ...]) -> None:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())

    show(rows[0])
    for row, spec in zip(rows[1:], specs):
        show(row)
        if args.long:
            print(f"    from: {spec.source()}")
            if spec.bundled:
                print(f"    installed as: {spec.bundled}")
            print(f"    config: {', '.join(spec.config_keys) or '(no config key; Python API)'}")
            if spec.note:
                print(f"    note: {spec.note}")
    missing = [s for s in specs if s.bundled is None and not locate_weights(s, folder).is_file()]
    if missing:
        print(
            f"{len(missing)} of {len(specs)} files missing in {folder}; `faceprior-weights list "
            "--long` shows where to get each, `faceprior-weights download NAME` fetches those "
            "with a direct URL."
        )
    return 0


def _check_against(
    extracted: ExtractedStateDict, arch: str, candidates: list[dict[str, Any]], label: str
) -> int:
    """Compare the file with each candidate configuration; print the verdict."""
    sd = extracted.state_dict
    for kwargs in candidates:
        if not diff_state_dict(expected_shapes(arch, kwargs), sd).ok:
            continue
        print(f"OK: keys and shapes fit {label} = {signature(arch, kwargs)}")
        return 0
    diff = diff_state_dict(expected_shapes(arch, candidates[0]), sd)
    print(f"MISMATCH: the file does not fit {label}:\n{diff.summary()}")
    for spec, kwargs in identify(sd):
        print(f"Hint: it fits registry entry '{spec.name}' = {spec.signature(kwargs)}")
    return 1


def _hash_verdict(spec: WeightsFile, sha: str) -> int:
    """Print how the file's SHA-256 compares with the registry; 1 on a mismatch."""
    verdict = spec.check_digest(sha)
    if verdict is None:
        checked = "keys and shapes only" if isinstance(spec, CheckpointSpec) else "nothing"
        print(f"hash: no SHA-256 registered for '{spec.name}'; checked {checked}")
        return 0
    if verdict:
        what = "the registry" if spec.sha256 else f"the prefix {spec.sha256_prefix} of the name"
        print(f"hash: OK (matches {what})")
        return 0
    registered = spec.sha256 or f"{spec.sha256_prefix}..."
    print(f"hash: MISMATCH (registry has {registered})")
    return 1


def _verify_plain_file(path: Path, spec: WeightsFile) -> int:
    """A registered file that is not a network checkpoint: hash only."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    sha = file_sha256(path)
    print(f"file: {path}")
    print(f"sha256: {sha}")
    status = _hash_verdict(spec, sha)
    if spec.note:
        print(f"note: {spec.note}")
    return status


def _cmd_verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    spec = get_weights(args.name) if args.name else None
    if spec is not None and not isinstance(spec, CheckpointSpec):
        return _verify_plain_file(path, spec)
    extracted = load_state_dict_file(path, key=args.key, trusted=args.trusted)
    sha = file_sha256(path)
    numel = sum(v.numel() for v in extracted.state_dict.values())
    print(f"file: {path}")
    print(f"sha256: {sha}")
    print(f"layout: {extracted.describe()}; {len(extracted.state_dict)} tensors, {numel:,} values")
    if spec is not None:
        status = _hash_verdict(spec, sha)
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
    for match, kwargs in matches:
        print(f"fits registry entry '{match.name}' = {match.signature(kwargs)}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    extracted = convert_checkpoint(args.src, args.dst, args.to, key=args.key, trusted=args.trusted)
    print(f"converted {args.src} [{extracted.describe()}] -> {args.dst} [{args.to}]")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    path, counts = export_training_checkpoint(
        args.ckpt, args.dst, trusted=args.trusted, layout=args.layout, part=args.part
    )
    entries = ", ".join(f"{k}: {n} tensors" for k, n in counts.items())
    print(f"exported {args.ckpt} ({args.part}, {args.layout} layout) -> {path} [{entries}]")
    return 0


def _cmd_random(args: argparse.Namespace) -> int:
    spec = get_weights(args.name)
    if not isinstance(spec, CheckpointSpec):
        raise ValueError(
            f"'{args.name}' is a {'/'.join(spec.purposes)} file, not a network checkpoint"
        )
    dst = Path(args.dst).expanduser()
    if dst.exists() and not args.force:
        raise FileExistsError(f"{dst} exists; pass --force to replace it")
    torch.manual_seed(args.seed)
    net = spec.build(dict(spec.kwargs))
    export_checkpoint(net, dst, spec.layout)
    count = len(net.state_dict())
    print(
        f"wrote a randomly initialised '{spec.name}' ({spec.arch}, {spec.layout} layout, seed "
        f"{args.seed}, {count} tensors) -> {dst}"
    )
    print("note: random weights, for offline smoke tests of loading and pipelines; not a model")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    path = download_weights(args.name, args.dir, timeout=args.timeout)
    print(f"downloaded '{args.name}' to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``faceprior-weights``."""
    parser = argparse.ArgumentParser(
        prog="faceprior-weights",
        description="Registered weight files (networks, loss networks, metric files) and "
        "official GFP-GAN / GPEN checkpoint tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list every registered file and whether it is present")
    p.add_argument("--dir", help="weights directory (default: $FACEPRIOR_WEIGHTS_DIR)")
    p.add_argument(
        "--for", dest="purpose", choices=PURPOSES, help="only the files serving this purpose"
    )
    p.add_argument(
        "--long", action="store_true", help="also show source, config keys and notes per file"
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("verify", help="check a file's hash (and layout, keys, shapes)")
    p.add_argument("file")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--name", help="registry entry to check against (hash; keys and shapes for networks)"
    )
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
        help="write a training checkpoint's generator (or discriminator) in an official layout",
    )
    p.add_argument("ckpt", help="faceprior Lightning checkpoint (.ckpt)")
    p.add_argument("dst", help="output .pth")
    p.add_argument(
        "--layout",
        choices=EXPORT_LAYOUTS,
        default="gfpgan",
        help="gfpgan: params + params_ema (GFP-GAN, decoder priors); bare: the EMA generator's "
        "state dict (GPEN-BFR-512.pth); gpen_train: GPEN train_simple --pretrain {g, d, g_ema, "
        "g_optim, d_optim}",
    )
    p.add_argument(
        "--part",
        choices=EXPORT_PARTS,
        default="generator",
        help="generator (default) or discriminator (bare state dict)",
    )
    p.add_argument("--trusted", action="store_true", help="allow arbitrary pickled objects")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "random",
        help="write a randomly initialised network under a registered name's layout (offline "
        "smoke tests)",
    )
    p.add_argument("name", help="a registered network (`faceprior-weights list --for network`)")
    p.add_argument("dst", help="output .pth")
    p.add_argument("--seed", type=int, default=0, help="torch seed of the initialisation (0)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_random)

    p = sub.add_parser(
        "download", help="fetch a registered file from its official URL (needs network)"
    )
    p.add_argument("name", help="any registered name (`faceprior-weights list`)")
    p.add_argument("--dir", help="weights directory (default: $FACEPRIOR_WEIGHTS_DIR)")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    p.set_defaults(func=_cmd_download)
    return add_debug_flag(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors as one line, ``--debug`` for tracebacks)."""
    args = build_parser().parse_args(argv)
    codes = (
        (DownloadError, 1),
        (ChecksumError, 1),
        (CheckpointError, 2),
        (OSError, 2),
        (ValueError, 2),
    )
    return run_cli("faceprior-weights", lambda: int(args.func(args)), args, codes)


if __name__ == "__main__":
    sys.exit(main())
