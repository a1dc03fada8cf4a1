"""``faceprior-export``: a restoration generator as TorchScript or ONNX, checked against eager.

Examples::

    faceprior-export --model GFPGANv1.4 --format onnx --out gfpgan_v1.4.onnx --dynamic-batch
    faceprior-export --model gpen --weights GPEN-BFR-512.pth --format torchscript --out gpen.pt
    faceprior-export --model logs/train/runs/<run>/checkpoints/last.ckpt --out restorer.onnx

The exported graph maps a batch of faces ``(B, 3, S, S)`` in [-1, 1] (RGB) to the restored
faces, same shape and range; GFP-GAN runs with its stored (constant) noise. After writing, the
file is run in its runtime (``torch.jit.load`` / onnxruntime) next to the eager network and the
largest absolute difference is printed; the exit status is 1 when it exceeds ``--atol``, 2 on
an error (unknown model, missing file, unsupported format, failed export).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import torch

from faceprior.checkpoints import CheckpointError
from faceprior.export.formats import (
    FORMATS,
    INPUT_NAME,
    OUTPUT_NAME,
    check,
    example_inputs,
    export,
    format_for,
    onnx_opset,
    require_onnx_exporter,
)
from faceprior.export.source import ExportError, LoadedGenerator, exportable_specs, load_generator
from faceprior.nets.export import GeneratorExport

PROG = "faceprior-export"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    names = ", ".join(spec.name for spec in exportable_specs())
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a GFP-GAN (v1, clean) or GPEN generator as TorchScript or ONNX "
        "(constant noise) and check the file against the eager network.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help=f"gfpgan | gpen (with --weights; without it GFPGANv1.4 / GPEN-BFR-512 from the "
        f"weights dir), a registry name ({names}), a training checkpoint (.ckpt) or an "
        "official-layout file (.pth)",
    )
    parser.add_argument("--weights", help="official-layout weights file (.pth)")
    parser.add_argument(
        "--arch",
        help="architecture for --weights / .ckpt: a registry name or class name (default: the "
        "registered configuration that fits the file; for a .ckpt, the run's config)",
    )
    parser.add_argument(
        "--config",
        help="generator config (conf/model/generator/*.yaml) or a run's .hydra/config.yaml "
        "describing the architecture",
    )
    parser.add_argument("--weights-dir", help="weights directory (default: $FACEPRIOR_WEIGHTS_DIR)")
    parser.add_argument("--trusted", action="store_true", help="allow pickled objects in files")
    parser.add_argument("--format", help=f"{' | '.join(FORMATS)} (default: from the --out suffix)")
    parser.add_argument("--out", required=True, help="file to write (.onnx, .pt)")
    parser.add_argument(
        "--size", type=int, help="face size S (default and only choice: the network's size)"
    )
    parser.add_argument("--batch", type=int, default=1, help="batch size to trace with (1)")
    parser.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="any batch size at run time (batch-agnostic modulated convolutions; traced at "
        "batch max(2, --batch), checked at batch 1 and --batch + 1)",
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the written file next to eager and compare (default: on)",
    )
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="largest allowed abs difference (1e-4)"
    )
    return parser


def _size(loaded: LoadedGenerator, size: int | None) -> int:
    if size is not None and size != loaded.size:
        raise ExportError(
            f"--size {size} does not fit {loaded.arch}, which restores {loaded.size}x"
            f"{loaded.size} faces (GFP-GAN and GPEN have a fixed input size)"
        )
    return loaded.size


def run(args: argparse.Namespace) -> int:
    """Export as ``args`` say and print what was done; returns the exit status."""
    fmt = format_for(args.out, args.format)
    if args.batch < 1:
        raise ExportError(f"--batch must be >= 1, got {args.batch}")
    if args.opset is not None and fmt != "onnx":
        raise ExportError("--opset applies to --format onnx only")
    if fmt == "onnx":
        require_onnx_exporter()  # before spending time on loading the network
    start = time.perf_counter()
    loaded = load_generator(
        args.model, args.weights, args.arch, args.config, args.weights_dir, args.size, args.trusted
    )
    size = _size(loaded, args.size)
    print(f"model: {loaded.describe()}")
    print(f"from: {loaded.source}")
    for note in loaded.notes:
        print(note)
    reference = GeneratorExport(loaded.net).eval()
    module = GeneratorExport(loaded.net, batch_agnostic=args.dynamic_batch).eval()
    trace_batch = max(args.batch, 2) if args.dynamic_batch else args.batch
    (example,) = example_inputs(size, [trace_batch])
    try:
        path = export(module, fmt, args.out, example, args.opset, args.dynamic_batch)
    except (ExportError, OSError):
        raise
    except Exception as exc:  # the exporters raise many kinds; name the step that failed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"{fmt} export failed: {type(exc).__name__}: {first}") from exc
    batch = "any" if args.dynamic_batch else str(trace_batch)
    extra = f", opset {onnx_opset(path)}" if fmt == "onnx" else ""
    print(
        f"wrote {fmt}: {path} ({path.stat().st_size / 2**20:.1f} MiB{extra}); "
        f"{INPUT_NAME} (B, 3, {size}, {size}) in [-1, 1] -> {OUTPUT_NAME}, same shape; "
        f"batch {batch}; constant noise; {time.perf_counter() - start:.1f} s"
    )
    if not args.check:
        print("parity: not checked (--no-check)")
        return 0
    # a dynamic graph is checked at batch sizes it was not traced with: 1 and one more
    sizes = [1, trace_batch + 1] if args.dynamic_batch else [trace_batch]
    parity = check(path, fmt, reference, example_inputs(size, sizes, seed=1))
    print(parity.line(fmt, args.atol))
    return 0 if parity.ok(args.atol) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``faceprior-export``."""
    args = build_parser().parse_args(argv)
    try:
        with torch.no_grad():
            return run(args)
    except (ExportError, CheckpointError, FileNotFoundError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
