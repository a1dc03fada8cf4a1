"""``faceprior-fid-stats``: FID reference statistics (mean, covariance) of an image folder.

Example (FFHQ at 512, as BasicSR's ``inception_FFHQ_512`` file)::

    faceprior-fid-stats data/ffhq512 --out ffhq512_stats.pth --name FFHQ_512 --num-images 50000

Features are the FID metric's (pytorch-fid FID-Inception from the weights directory, images
read with OpenCV as 8-bit, [-1, 1] RGB, bilinear 299). ``.pth`` output is BasicSR's format
(``{'name', 'mean', 'cov', 'num_images'}`` with numpy arrays); ``.npz`` has ``mean``/``cov`` and
pytorch-fid's ``mu``/``sigma``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from faceprior.clitools import add_debug_flag, debugging, print_error, run_cli
from faceprior.metrics.fid import FID
from faceprior.metrics.folders import PairingError, load_batches, pair_folders
from faceprior.metrics.frechet import save_reference_stats
from faceprior.metrics.weights import MissingWeightsError, file_sha256

PROG = "faceprior-fid-stats"


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``faceprior-fid-stats``."""
    parser = argparse.ArgumentParser(
        prog="faceprior-fid-stats", description="Compute FID reference statistics of a folder."
    )
    parser.add_argument("folder", type=Path, help="folder of reference images")
    parser.add_argument("--out", type=Path, required=True, help="output .pth (BasicSR) or .npz")
    parser.add_argument("--name", default=None, help="reference set name (default: folder name)")
    parser.add_argument("--num-images", type=int, default=None, help="use the first N images")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch")
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help="folder with pt_inception-2015-12-05-6726825d.pth (default: the platform weights dir)",
    )
    return add_debug_flag(parser)


def compute_folder_stats(
    folder: Path,
    out: Path,
    name: str,
    metric: FID,
    batch_size: int = 16,
    num_images: int | None = None,
    console: Console | None = None,
) -> Path:
    """Accumulate ``metric``'s features over the folder's images and save their statistics."""
    pairs = pair_folders(folder, None).pairs[:num_images]
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 images for a covariance, found {len(pairs)}")
    with Progress(console=console or Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"features of {folder.name}", total=len(pairs))
        for batch in load_batches(pairs, batch_size):
            metric.update(batch.restored.to(metric.pred_sum.device))
            bar.advance(task, len(batch.stems))
    mean, cov = metric.gaussian("pred")
    return save_reference_stats(out, mean, cov, name=name, num_images=len(pairs))


def write_stats(
    folder: Path,
    out: Path,
    *,
    name: str | None = None,
    num_images: int | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    weights_dir: Path | None = None,
    metric: FID | None = None,
    console: Console | None = None,
    prog: str = PROG,
    debug: bool = False,
) -> int:
    """Build the FID metric (unless ``metric`` is given), save the folder's statistics to ``out``
    and print where; returns the exit code (2 for input errors and missing weights, printed as one
    line ``PROG: error: ...``; ``FACEPRIOR_DEBUG=1`` raises them)."""
    console = console or Console(stderr=True)
    try:
        if metric is None:
            metric = FID(weights_dir=weights_dir)
        metric = metric.to(device)
        path = compute_folder_stats(
            folder, out, name or folder.name, metric, batch_size, num_images, console
        )
    except (PairingError, MissingWeightsError, OSError, ValueError) as err:
        if debug or debugging():
            raise
        if isinstance(err, MissingWeightsError):
            err = MissingWeightsError(f"{err} (--weights-dir DIR)")
        print_error(prog, err)
        return 2
    print(f"wrote {path} ({int(metric.pred_count)} images, sha256 {file_sha256(path)})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for input errors)."""
    args = build_parser().parse_args(argv)
    return run_cli(PROG, lambda: _write(args), args)


def _write(args: argparse.Namespace) -> int:
    return write_stats(
        args.folder,
        args.out,
        name=args.name,
        num_images=args.num_images,
        device=args.device,
        batch_size=args.batch_size,
        weights_dir=args.weights_dir,
        debug=args.debug,
    )


if __name__ == "__main__":
    sys.exit(main())
