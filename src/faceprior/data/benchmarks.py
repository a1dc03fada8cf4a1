"""Evaluation sets: a name, how the low-quality input is obtained, and where the images are."""

from __future__ import annotations

from pathlib import Path

BENCHMARK_KINDS = ("degrade", "paired", "lq_only")
#: what to do about a missing folder when the benchmark config does not say
DEFAULT_PREPARE = (
    "Point it at an existing folder, or build a deterministic paired set from ground-truth faces: "
    "`faceprior-prepare synth-benchmark --gt GT_DIR --degradation gfpgan_v1 --out DIR` "
    "(then lq_root=DIR/lq, gt_root=DIR/gt)."
)


class Benchmark:
    """A named evaluation set.

    ``kind`` is ``degrade`` (ground truth degraded on the device, deterministically per image index
    with ``seed``), ``paired`` (LQ and GT folders matched by file stem) or ``lq_only`` (real inputs
    without ground truth: only no-reference metrics apply). ``prepare`` says how to obtain the
    folders (download or ``faceprior-prepare`` command); :meth:`check` puts it in the error for a
    missing folder.
    """

    def __init__(
        self,
        name: str,
        kind: str = "degrade",
        gt_root: str | None = None,
        lq_root: str | None = None,
        seed: int = 2024,
        prepare: str | None = None,
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
        self.prepare = prepare

    def check(self) -> None:
        """Raise ``FileNotFoundError`` naming each configured folder that is not there, and how to
        make it."""
        roots = {
            "gt_root": self.gt_root,
            "lq_root": self.lq_root if self.kind != "degrade" else None,
        }
        missing = [f"{k} '{v}'" for k, v in roots.items() if v and not Path(v).exists()]
        if missing:
            raise FileNotFoundError(
                f"benchmark '{self.name}': {' and '.join(missing)} "
                f"{'does' if len(missing) == 1 else 'do'} not exist "
                f"(config benchmarks.{self.name}). {self.prepare or DEFAULT_PREPARE}"
            )

    def __repr__(self) -> str:
        return f"Benchmark(name={self.name!r}, kind={self.kind!r}, gt_root={self.gt_root!r}, lq_root={self.lq_root!r})"
