"""Forward latency of the restoration generators in fp32 and bf16 on the current device.

Networks (randomly initialised; latency does not depend on the weights), built at each requested
resolution with the channel configuration of the released 512 models:

- ``GFPGANv1``       (paper model, FIR resampling, channel_multiplier=1)
- ``GFPGANv1Clean``  (v1.3 / v1.4, bilinear, channel_multiplier=2)
- ``GPENGenerator``  (GPEN-BFR-512 configuration: style_dim 512, n_mlp 8, channel_multiplier 2)

GFP-GAN is called as the official inference does (``return_rgb=False``, fresh noise); GPEN as
``net(x)``. "bf16" runs the fp32 model under ``torch.autocast(device, torch.bfloat16)``. TF32 is
disabled on CUDA unless ``--tf32`` so that "fp32" means fp32.

Examples::

    python scripts/bench_nets.py                                   # 512, batch 1 and 8
    python scripts/bench_nets.py --sizes 512 --batches 1 --repeats 2 --warmup 1   # quick CPU run
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from faceprior.nets import GFPGANv1, GFPGANv1Clean, GPENGenerator

NETS: dict[str, Callable[[int], nn.Module]] = {
    "GFPGANv1": lambda size: GFPGANv1(out_size=size, channel_multiplier=1),
    "GFPGANv1Clean": lambda size: GFPGANv1Clean(out_size=size, channel_multiplier=2),
    "GPEN": lambda size: GPENGenerator(size, 512, 8, channel_multiplier=2),
}


def describe_device(device: torch.device) -> str:
    """One line naming the hardware and software the numbers were taken on."""
    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        hw = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"{hw}; torch {torch.__version__}; python {platform.python_version()}"


@contextlib.contextmanager
def precision(device: torch.device, dtype: str) -> Iterator[None]:
    """No-op for fp32, bf16 autocast otherwise."""
    if dtype == "fp32":
        yield
    else:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (CUDA) so wall-clock timings are meaningful."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(
    net: nn.Module, x: torch.Tensor, dtype: str, warmup: int, repeats: int
) -> list[float]:
    """Seconds per forward pass for ``repeats`` timed runs after ``warmup`` untimed ones."""
    call_kwargs = {} if isinstance(net, GPENGenerator) else {"return_rgb": False}
    times = []
    with torch.inference_mode(), precision(x.device, dtype):
        for i in range(warmup + repeats):
            synchronize(x.device)
            start = time.perf_counter()
            net(x, **call_kwargs)
            synchronize(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def run(
    names: Sequence[str],
    sizes: Sequence[int],
    batches: Sequence[int],
    dtypes: Sequence[str],
    device: torch.device,
    warmup: int,
    repeats: int,
) -> list[tuple[str, int, int, str, float, float]]:
    """Benchmark every combination; returns rows (net, size, batch, dtype, ms, images/s)."""
    rows = []
    for name in names:
        for size in sizes:
            torch.manual_seed(0)
            net = NETS[name](size).eval().to(device)
            for batch in batches:
                x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
                for dtype in dtypes:
                    median = statistics.median(time_forward(net, x, dtype, warmup, repeats))
                    rows.append((name, size, batch, dtype, median * 1e3, batch / median))
                    print(
                        f"  {name} {size}px batch {batch} {dtype}: {median * 1e3:.1f} ms",
                        flush=True,
                    )
            del net
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--sizes", nargs="+", type=int, default=[512])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=10, help="timed forward passes (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes first")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA for fp32 runs")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print a Markdown table."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    print(f"device: {describe_device(device)}")
    rows = run(args.nets, args.sizes, args.batches, args.dtypes, device, args.warmup, args.repeats)
    print(f"\nmedian of {args.repeats} runs after {args.warmup} warm-up runs\n")
    print("| network | size | batch | dtype | ms / forward | images / s |")
    print("|---|---:|---:|---|---:|---:|")
    for name, size, batch, dtype, ms, ips in rows:
        print(f"| {name} | {size} | {batch} | {dtype} | {ms:.1f} | {ips:.2f} |")


if __name__ == "__main__":
    main()
