"""Evaluation sets: a name, how the low-quality input is obtained, and where the images are."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    missing folder. An ``optional`` benchmark whose folders are not configured (e.g. ``val_folder``
    with ``data.val_root=null``) is left out of the run (:func:`unset_optional`).
    """

    def __init__(
        self,
        name: str,
        kind: str = "degrade",
        gt_root: str | None = None,
        lq_root: str | None = None,
        seed: int = 2024,
        prepare: str | None = None,
        optional: bool = False,
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
        self.optional = bool(optional)

    def roots(self) -> dict[str, str]:
        """The folders this benchmark reads, by config key (``gt_root``, ``lq_root``)."""
        values = {"gt_root": self.gt_root, "lq_root": self.lq_root}
        return {k: str(values[k]) for k in required_roots(self.kind) if values[k]}

    def missing(self) -> str | None:
        """``gt_root '...' and lq_root '...' do not exist`` for the folders that are not there."""
        gone = [f"{k} '{v}'" for k, v in self.roots().items() if not Path(v).exists()]
        if not gone:
            return None
        return f"{' and '.join(gone)} {'does' if len(gone) == 1 else 'do'} not exist"

    def check(self) -> None:
        """Raise ``FileNotFoundError`` naming each configured folder that is not there, and how to
        make it."""
        missing = self.missing()
        if missing:
            raise FileNotFoundError(
                f"benchmark '{self.name}': {missing} (config benchmarks.{self.name}). "
                f"{self.prepare or DEFAULT_PREPARE}"
            )

    def __repr__(self) -> str:
        return f"Benchmark(name={self.name!r}, kind={self.kind!r}, gt_root={self.gt_root!r}, lq_root={self.lq_root!r})"


def required_roots(kind: object) -> tuple[str, ...]:
    """The folder keys a benchmark of ``kind`` reads."""
    return {"degrade": ("gt_root",), "paired": ("gt_root", "lq_root"), "lq_only": ("lq_root",)}.get(
        str(kind), ()
    )


def unset_optional(config: Mapping[str, Any]) -> bool:
    """Whether a benchmark config is ``optional`` and lacks a folder its kind reads.

    Such a benchmark is dropped from the run (with a warning) instead of failing: it is the data's
    default benchmark, and the data has no folder for it.
    """
    if not config.get("optional"):
        return False
    return any(not config.get(key) for key in required_roots(config.get("kind", "degrade")))
