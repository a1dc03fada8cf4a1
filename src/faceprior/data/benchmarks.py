"""Evaluation sets: a name, how the low-quality input is obtained, and where the images are."""

from __future__ import annotations

BENCHMARK_KINDS = ("degrade", "paired", "lq_only")


class Benchmark:
    """A named evaluation set.

    ``kind`` is ``degrade`` (ground truth degraded on the device, deterministically per image index
    with ``seed``), ``paired`` (LQ and GT folders matched by file stem) or ``lq_only`` (real inputs
    without ground truth: only no-reference metrics apply).
    """

    def __init__(
        self,
        name: str,
        kind: str = "degrade",
        gt_root: str | None = None,
        lq_root: str | None = None,
        seed: int = 2024,
    ) -> None:
        if kind not in BENCHMARK_KINDS:
            raise ValueError(
                f"benchmark '{name}': kind must be one of {BENCHMARK_KINDS}, got {kind!r}"
            )
        if kind in ("degrade", "paired") and not gt_root:
            raise ValueError(f"benchmark '{name}' of kind '{kind}' needs gt_root")
        if kind in ("paired", "lq_only") and not lq_root:
            raise ValueError(f"benchmark '{name}' of kind '{kind}' needs lq_root")
        self.name = name
        self.kind = kind
        self.gt_root = gt_root
        self.lq_root = lq_root
        self.seed = int(seed)

    def __repr__(self) -> str:
        return f"Benchmark(name={self.name!r}, kind={self.kind!r}, gt_root={self.gt_root!r}, lq_root={self.lq_root!r})"
