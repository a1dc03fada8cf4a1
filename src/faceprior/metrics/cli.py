"""``faceprior-metrics``: score a folder of restored faces, optionally against ground truth.

Example::

    faceprior-metrics results/celeba_test --gt data/celeba_test/gt \\
        --metrics psnr,ssim,lpips,fid,idd,lmd --fid-stats inception_FFHQ_512 --out r.json

Files are paired by name stem and read with OpenCV as 8-bit images. Network weights are looked
up in ``--weights-dir``, else ``$FACEPRIOR_WEIGHTS_DIR`` (default ``~/.cache/faceprior/weights``).
Errors are one line on stderr (``--debug`` shows the traceback). The JSON output is
``{"mean": {metric: value}, "per_image": {stem: {metric: value}}, "protocol": {...}}``; PSNR of
identical images is ``Infinity`` (as BasicSR) and undefined values are ``null``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from faceprior.checkpoints.weights import DEFAULT_WEIGHTS_DIR, ENV_VAR
from faceprior.clitools import add_debug_flag, run_cli
from faceprior.metrics.folders import PairingError, list_images
from faceprior.metrics.scoring import (
    METRIC_NAMES,
    ScoringOptions,
    default_metrics,
    score_folders,
)
from faceprior.metrics.weights import MissingWeightsError

PROG = "faceprior-metrics"
_HIGHER_IS_BETTER = {"psnr", "ssim", "psnr_y", "ssim_y"}


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``faceprior-metrics``."""
    parser = argparse.ArgumentParser(
        prog="faceprior-metrics",
        description="Score restored face images with the papers' metric conventions.",
    )
    parser.add_argument("restored_dir", type=Path, help="folder of restored images")
    parser.add_argument("--gt", type=Path, default=None, help="folder of ground-truth images")
    parser.add_argument(
        "--metrics",
        default=None,
        help=f"comma-separated subset of {','.join(METRIC_NAMES)} (default: all with --gt, "
        "else niqe, plus fid with --fid-stats)",
    )
    parser.add_argument("--crop-border", type=int, default=0, help="pixels cropped per side")
    parser.add_argument(
        "--fid-stats",
        default=None,
        help="FID reference statistics file (.pth {'mean','cov'} or .npz) or registry name "
        "(inception_FFHQ_512); default with --gt: the GT folder",
    )
    parser.add_argument("--out", type=Path, default=None, help="write results JSON here")
    parser.add_argument("--per-image", type=Path, default=None, help="write per-image CSV here")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch")
    parser.add_argument(
        "--skip-unpaired", action="store_true", help="ignore unpaired/mismatched files"
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help=f"folder with the metric weights (default: ${ENV_VAR} or {DEFAULT_WEIGHTS_DIR})",
    )
    return add_debug_flag(parser)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_table(results: dict[str, Any], console: Console) -> None:
    """Print the mean of every metric with its direction."""
    table = Table(title=f"{results['protocol']['num_images']} images")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("better")
    for name, value in results["mean"].items():
        table.add_row(name, _fmt(value), "higher" if name in _HIGHER_IS_BETTER else "lower")
    console.print(table)
    fid = results["protocol"]["metrics"].get("fid")
    if fid is not None:
        ref = fid["reference"]
        console.print(f"fid reference: {ref['name']} (sha256 {ref.get('sha256')})")


def write_per_image_csv(results: dict[str, Any], path: Path) -> None:
    """One row per image stem, one column per per-image metric."""
    rows = results["per_image"]
    columns = sorted({key for row in rows.values() for key in row}, key=_column_order)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stem", *columns])
        for stem, row in rows.items():
            writer.writerow([stem, *(row.get(c, "") for c in columns)])


def _column_order(name: str) -> int:
    return METRIC_NAMES.index(name) if name in METRIC_NAMES else len(METRIC_NAMES)


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Score the folders as requested by parsed arguments; writes the optional outputs."""
    metrics = (
        [m.strip() for m in args.metrics.split(",") if m.strip()]
        if args.metrics
        else default_metrics(args.gt is not None, args.fid_stats)
    )
    options = ScoringOptions(
        metrics=metrics,
        crop_border=args.crop_border,
        fid_stats=args.fid_stats,
        device=args.device,
        batch_size=args.batch_size,
        skip_unpaired=args.skip_unpaired,
        weights_dir=args.weights_dir,
    )
    total = len(list_images(args.restored_dir))
    with Progress(console=console, transient=True, disable=total < 50) as bar:
        task = bar.add_task("scoring", total=total)
        results = score_folders(args.restored_dir, args.gt, options, lambda n: bar.advance(task, n))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    if args.per_image is not None:
        write_per_image_csv(results, args.per_image)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for usage/input errors, 1 for others; one
    line on stderr, ``--debug`` for the traceback)."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    found: dict[str, Any] = {}

    def score() -> int:
        try:
            found.update(run(args, console))
        except MissingWeightsError as err:  # name this command's own flag too
            if args.weights_dir is not None:
                raise
            raise MissingWeightsError(f"{err} ({PROG}: --weights-dir DIR)") from err
        return 0

    codes = ((PairingError, 2), (MissingWeightsError, 2), (OSError, 2), (ValueError, 2))
    status = run_cli(PROG, score, args, codes)
    if status:
        return status
    results = found
    print_table(results, Console())
    for skipped in results["protocol"]["skipped"]:
        console.print(f"skipped: {skipped}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
