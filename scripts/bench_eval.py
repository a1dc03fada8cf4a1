"""Throughput of a full paper-metric evaluation of a folder: batched (the project's way) vs one image
at a time (how the reference scripts work).

Usage::

    python scripts/bench_eval.py                                   # 8 synthetic 512x512 pairs
    python scripts/bench_eval.py --device cuda --count 256 --batch-size 16
    python scripts/bench_eval.py --folder results/restored --gt data/celeba_test/gt --count 64

Both modes score the same pairs with the same metric instances, PNG decoding included:

* **batched**: :func:`faceprior.metrics.scoring.score_pairs`, the loop of ``faceprior-metrics``
  (``score_folders``): ``--batch-size`` images per batch, every metric's ``per_image`` on the
  device, FID features accumulated, one Fréchet step at the end;
* **one at a time** (the baseline): each pair read on its own and every metric ``update``-d with a
  batch of one, then ``compute`` — the loop of BasicSR's / VQFR's metric scripts.

The metric set is the paper's (``conf/metrics/paper.yaml``: PSNR, SSIM, LPIPS, FID, NIQE,
identity distance, landmark distance). With ``--weights auto`` (default) every network metric whose
weight files are missing falls back to the randomly initialised networks of
``conf/metrics/random_init.yaml`` (LPIPS ``random_seed``, ``random_fid_inception``,
``random_arcface``; LMD: a seeded random facexlib FAN-4HG): timings do not depend on the weight
values, but such metric values are not comparable with published numbers (the output says which
metrics ran on random weights). Without the FFHQ-512 statistics file, FID uses statistics of the GT
folder computed once beforehand with the same network (``--fid-reference stats``, untimed, like the
paper's precomputed file; one Inception pass per restored image) or the GT images themselves
(``--fid-reference gt``, as ``random_init.yaml``: a second Inception pass per image).

Prints the machine, a table of seconds and images/s per mode with the speed-up over the baseline,
a per-metric breakdown (``--no-breakdown`` to skip; on CUDA it synchronises after every metric
call), the projected time of ``--target-images`` images (3,000 = CelebA-Test) at the batched rate
against the ``--target-minutes`` goal (3 min on one modern GPU), and whether both modes give the
same means (``--rtol``). Exits with 1 when they do not.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchmetrics import Metric

from faceprior.metrics.base import PerImageMeanMetric
from faceprior.metrics.fid import FID
from faceprior.metrics.folders import ImagePair, load_batches, pair_folders, read_rgb
from faceprior.metrics.frechet import save_reference_stats
from faceprior.metrics.scoring import score_pairs
from faceprior.metrics.weights import MissingWeightsError
from faceprior.utils.config import CONFIG_DIR

#: the paper metric set, in the order of ``conf/metrics/paper.yaml``
PAPER_METRICS = ("psnr", "ssim", "niqe", "lpips", "fid", "idd", "lmd")
NETWORK_METRICS = frozenset({"lpips", "fid", "idd", "lmd"})
RANDOM_NOTE = {
    "lpips": "VGG16 backbone, random_seed 0 (random_init.yaml)",
    "fid": "random_fid_inception(seed 0) (random_init.yaml)",
    "idd": "random_arcface(seed 0) (random_init.yaml)",
    "lmd": "facexlib FAN-4HG, torch seed 0 (not in random_init.yaml)",
}


# -- machine ---------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device) -> list[str]:
    """Lines naming the hardware and software the numbers were taken on."""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch "
        f"threads), load average {load} (1/5/15 min) at start",
        f"torch {torch.__version__}, python {platform.python_version()}, {platform.platform()}",
    ]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(
            f"device: {torch.cuda.get_device_name(device)} ({props.total_memory / 2**30:.0f} GiB), "
            f"CUDA {torch.version.cuda}"
        )
    else:
        lines.append("device: CPU")
    return lines


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (CUDA) so wall-clock timings are meaningful."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- images ----------------------------------------------------------------------------------------
def write_synthetic_pairs(folder: Path, count: int, size: int, seed: int = 0) -> list[ImagePair]:
    """``count`` synthetic faces (GT) and degraded copies (blur + noise, "restored") as PNGs."""
    from faceprior.data.synthetic import render_face

    gt_dir, restored_dir = folder / "gt", folder / "restored"
    gt_dir.mkdir(parents=True, exist_ok=True)
    restored_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        # drawn at a quarter of the size (fast) and enlarged: face-like structure at any size
        face = render_face(seed, i, max(32, size // 4)).image
        gt = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
        blurred = cv2.GaussianBlur(gt, (0, 0), 1.5).astype(np.float32)
        noisy = blurred + rng.normal(0.0, 4.0, size=(size, size, 3)).astype(np.float32)
        restored = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        cv2.imwrite(str(gt_dir / f"{i:08d}.png"), gt[:, :, ::-1])
        cv2.imwrite(str(restored_dir / f"{i:08d}.png"), restored[:, :, ::-1])
    return pair_folders(restored_dir, gt_dir).pairs


# -- metrics ---------------------------------------------------------------------------------------
def _config(name: str) -> DictConfig:
    cfg = OmegaConf.load(CONFIG_DIR / "metrics" / f"{name}.yaml")
    assert isinstance(cfg, DictConfig)
    return cfg


def _random_fan(seed: int = 0) -> torch.nn.Module:
    from facexlib.alignment.awing_arch import FAN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FAN(num_modules=4, num_landmarks=98, device="cpu").eval()


def _random_metric(name: str, fid_reference: str | None) -> Metric:
    if name == "lmd":
        from faceprior.metrics import LandmarkDistance

        return LandmarkDistance(network=_random_fan(0))
    cfg = _config("random_init")[name]
    if name == "fid" and fid_reference is not None:
        metric: Metric = instantiate(cfg, reference_stats=fid_reference)
    else:
        metric = instantiate(cfg)
    return metric


def gt_reference_stats(pairs: Sequence[ImagePair], path: Path, batch_size: int) -> Path:
    """Statistics of the GT images under the random FID-Inception (the random set's "FFHQ file")."""
    fid = _random_metric("fid", None)
    assert isinstance(fid, FID)
    for batch in load_batches(pairs, batch_size):
        assert batch.gt is not None
        fid.update(reference_features=fid.features(batch.gt))
    mean, cov = fid.gaussian("ref")
    return save_reference_stats(path, mean, cov, "GT folder (random FID-Inception)", len(pairs))


def build_metrics(
    names: Sequence[str],
    weights: str,
    fid_reference: str | None,
    pairs: Sequence[ImagePair],
    work_dir: Path,
    batch_size: int,
) -> tuple[dict[str, Metric], dict[str, str]]:
    """The metrics (paper config where its files exist and ``weights`` allows) and, per metric
    on random networks, what they are."""
    paper = _config("paper")
    metrics: dict[str, Metric] = {}
    random: dict[str, str] = {}
    for name in names:
        if name not in NETWORK_METRICS or weights != "random":
            try:
                metrics[name] = instantiate(paper[name])
                continue
            except MissingWeightsError:
                if weights == "paper":
                    raise
            except Exception as err:  # hydra wraps the error of the target
                if weights == "paper" or not isinstance(err.__cause__, MissingWeightsError):
                    raise
        reference = None
        if name == "fid" and fid_reference == "stats":
            reference = str(gt_reference_stats(pairs, work_dir / "fid_gt_stats.npz", batch_size))
        metrics[name] = _random_metric(name, reference)
        random[name] = RANDOM_NOTE[name]
        if name == "fid":
            random[name] += (
                "; reference: GT-folder statistics precomputed with it (untimed)"
                if reference
                else "; reference: the GT images (a second Inception pass per image)"
            )
    return metrics, random


# -- timing ----------------------------------------------------------------------------------------
@dataclass
class Clock:
    """Seconds spent inside wrapped metric calls, per label."""

    device: torch.device
    seconds: dict[str, float] = field(default_factory=dict)

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            synchronize(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            synchronize(self.device)
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
            return out

        return timed


def instrument(metrics: dict[str, Metric], clock: Clock) -> None:
    """Route each metric's work through the clock: ``per_image`` (what both modes call for the
    per-image metrics) or, for FID, ``update`` (features) and ``compute`` (the Fréchet step)."""
    for name, metric in metrics.items():
        if isinstance(metric, FID):
            metric.update = clock.wrap(name, metric.update)  # type: ignore[method-assign]
            metric.compute = clock.wrap(f"{name} Fréchet", metric.compute)  # type: ignore[method-assign]
        elif isinstance(metric, PerImageMeanMetric):
            metric.per_image = clock.wrap(name, metric.per_image)  # type: ignore[method-assign]


def reset(metrics: dict[str, Metric], clock: Clock | None) -> None:
    for metric in metrics.values():
        metric.reset()
    if clock is not None:
        clock.seconds.clear()


def run_batched(
    pairs: Sequence[ImagePair], metrics: dict[str, Metric], device: torch.device, batch_size: int
) -> dict[str, float | None]:
    """The project's loop (``faceprior-metrics``): batches on the device, then the means."""
    means, _ = score_pairs(pairs, metrics, device, batch_size)
    return means


def run_one_at_a_time(
    pairs: Sequence[ImagePair], metrics: dict[str, Metric], device: torch.device
) -> dict[str, float | None]:
    """The reference scripts' loop: read one pair, update every metric with it; compute at the end."""
    for pair in pairs:
        restored = read_rgb(pair.restored)[None].to(device)
        gt = read_rgb(pair.gt)[None].to(device) if pair.gt is not None else None
        for metric in metrics.values():
            metric.update(restored, gt)
    means: dict[str, float | None] = {}
    for name, metric in metrics.items():
        value = float(metric.compute())
        means[name] = value if not math.isnan(value) else None
    return means


def timed(fn: Callable[[], dict[str, float | None]], device: torch.device) -> tuple[Any, float]:
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def agree(a: float | None, b: float | None, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--count", type=int, default=None, help="image pairs (default 8; all with --folder)"
    )
    p.add_argument("--size", type=int, default=512, help="synthetic image size (px)")
    p.add_argument(
        "--folder", type=Path, default=None, help="restored images (instead of synthetic)"
    )
    p.add_argument("--gt", type=Path, default=None, help="ground truth of --folder")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (batched mode)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--metrics", default=",".join(PAPER_METRICS), help="comma-separated subset")
    p.add_argument(
        "--weights",
        choices=("auto", "paper", "random"),
        default="auto",
        help="network metrics: paper weights, random init, or paper where available (default)",
    )
    p.add_argument(
        "--fid-reference",
        choices=("stats", "gt"),
        default="stats",
        help="random-init FID: GT statistics precomputed once (default) or the GT images",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed warm-up batches (batched) and images (one at a time) first; 0: none",
    )
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-metric timings")
    p.add_argument("--target-images", type=int, default=3000)
    p.add_argument("--target-minutes", type=float, default=3.0)
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance of the means")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance of the means")
    p.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    args = p.parse_args(argv)
    if args.count is not None and args.count < 2:
        p.error("--count must be at least 2 (FID needs two images)")
    if (args.folder is None) != (args.gt is None):
        p.error("--folder and --gt go together (the paper metrics compare with ground truth)")
    return args


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables; 1 when the two modes disagree."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(names) - set(PAPER_METRICS))
    if unknown:
        print(f"unknown metric(s) {unknown}; choose from {', '.join(PAPER_METRICS)}")
        return 2
    print("\n".join(describe_machine(device)))

    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        if args.folder is not None:
            pairs = pair_folders(args.folder, args.gt).pairs
            pairs = pairs[: args.count] if args.count else pairs
            source = f"{args.folder} vs {args.gt}"
        else:
            pairs = write_synthetic_pairs(work, args.count or 8, args.size)
            source = "synthetic faces (GT) and blurred + noisy copies (restored), PNG"
        height, width = read_rgb(pairs[0].restored).shape[1:]
        print(f"images: {len(pairs)} pairs of {width}x{height}, {source}")
        metrics, random = build_metrics(
            names, args.weights, args.fid_reference, pairs, work, args.batch_size
        )
        metrics = {name: metric.to(device) for name, metric in metrics.items()}
        setup = time.perf_counter() - start
        print(f"metrics: {', '.join(metrics)} (setup and images: {setup:.1f} s, untimed)")
        if random:
            print(
                "weights: RANDOMLY INITIALISED feature networks (weight files not found or "
                "--weights random); timings do not depend on the weight values, the metric values "
                "are not comparable with published numbers:"
            )
            for name, note in random.items():
                print(f"  {name}: {note}")
        else:
            print("weights: the paper's weight files (conf/metrics/paper.yaml)")
        if "niqe" in metrics:
            print("note: NIQE always runs on the CPU (float32 numpy/scipy reference numerics)")

        clock = None if args.no_breakdown else Clock(device)
        if args.warmup > 0:  # lazy initialisation, cuDNN autotuning, allocator warm-up
            # at least 2 images: FID's covariance needs them
            warm = pairs[: max(2, args.batch_size * args.warmup)]
            run_batched(warm, metrics, device, args.batch_size)
            reset(metrics, None)
            run_one_at_a_time(warm[: max(2, args.warmup)], metrics, device)
            reset(metrics, None)
        if clock is not None:
            instrument(metrics, clock)

        batched, t_batched = timed(
            lambda: run_batched(pairs, metrics, device, args.batch_size), device
        )
        split_batched = dict(clock.seconds) if clock else {}
        reset(metrics, clock)
        single, t_single = timed(lambda: run_one_at_a_time(pairs, metrics, device), device)
        split_single = dict(clock.seconds) if clock else {}

    n = len(pairs)
    print("\n| mode | batch | seconds | images/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| one at a time (reference scripts, baseline) | 1 | {t_single:.2f} | "
        f"{n / t_single:.3f} | 1.00x |"
    )
    print(
        f"| batched (faceprior score_pairs) | {args.batch_size} | {t_batched:.2f} | "
        f"{n / t_batched:.3f} | {t_single / t_batched:.2f}x |"
    )

    if clock is not None:
        print("\n| part | batched s | ms / image | one at a time s | speed-up |")
        print("|---|---:|---:|---:|---:|")
        labels = list(dict.fromkeys([*split_batched, *split_single]))
        for label in [*labels, "other (PNG decoding, transfers, bookkeeping)"]:
            if label in labels:
                b, s = split_batched.get(label, 0.0), split_single.get(label, 0.0)
            else:
                b = t_batched - sum(split_batched.values())
                s = t_single - sum(split_single.values())
            per = "–" if label.endswith("Fréchet") else f"{1e3 * b / n:.1f}"
            ratio = f"{s / b:.2f}x" if b > 0 else "–"
            print(f"| {label} | {b:.2f} | {per} | {s:.2f} | {ratio} |")

    once = split_batched.get("fid Fréchet", 0.0)
    per_image = (t_batched - once) / n
    projected = args.target_images * per_image + once
    verdict = "within" if projected <= 60 * args.target_minutes else "over"
    print(
        f"\nprojected for {args.target_images} images at the batched rate: "
        f"{projected / 60:.1f} min ({per_image * 1e3:.0f} ms/image"
        + (f" + {once:.1f} s Fréchet step once" if once else "")
        + f"); target <= {args.target_minutes:g} min on one modern GPU: {verdict} "
        f"on this {'GPU' if device.type == 'cuda' else 'CPU'}"
    )

    print("\n| metric | batched | one at a time | abs. diff | agree |")
    print("|---|---:|---:|---:|---|")
    ok = True
    for name in metrics:
        a, b = batched.get(name), single.get(name)
        same = agree(a, b, args.rtol, args.atol)
        ok &= same
        diff = "–" if a is None or b is None else f"{abs(a - b):.2e}"
        print(f"| {name} | {_fmt(a)} | {_fmt(b)} | {diff} | {'yes' if same else 'NO'} |")
    print(
        f"\nbatched and one-at-a-time means {'agree' if ok else 'DIFFER'} "
        f"(rtol {args.rtol:g}, atol {args.atol:g})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
