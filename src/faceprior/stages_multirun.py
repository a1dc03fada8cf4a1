"""The comparison of a multirun whose jobs each ran some stages of one multi-stage experiment.

``faceprior-train -m experiment=gfpgan_vs_gpen_tiny stage=unet,gfpgan,gpen`` runs one job per
stage (in parallel with ``hydra/launcher=local_parallel`` or ``slurm``); each job writes
``<sweep dir>/<job>/<stage>`` and a ``stages.json``. :class:`CompareAfterMultirun` is a Hydra
callback: when the launcher returns (all jobs ended), it finds the stages the jobs ran and writes
``<sweep dir>/compare`` with the experiment's ``compare`` settings, in the order of ``stages``.
A stage whose job failed is left out with a warning; with fewer than one stage nothing is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from faceprior.stages import compare_runs

log = logging.getLogger("faceprior")


def stage_runs(sweep_dir: Path) -> dict[str, Path]:
    """Stage name -> its output folder, over the numbered job folders of a sweep (newest wins)."""
    found: dict[str, Path] = {}
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    for job in jobs:
        summary = job / "stages.json"
        if not summary.is_file():
            continue
        for name, entry in json.loads(summary.read_text()).items():
            if isinstance(entry, dict) and "output_dir" in entry:
                found[name] = Path(entry["output_dir"])
    return found


def compare_sweep_stages(config: DictConfig, sweep_dir: Path) -> dict[str, str] | None:
    """Write ``sweep_dir/compare`` for the stages the jobs ran; returns the files (None: nothing)."""
    settings = config.get("compare")
    stages = [str(k) for k in (config.get("stages") or {})]
    if settings is None or not stages:
        return None
    names = list(settings.get("names") or stages)
    if len(names) != len(stages):
        raise ValueError(f"compare.names has {len(names)} names for the stages {stages}")
    ran = stage_runs(sweep_dir)
    missing = [s for s in stages if s not in ran]
    if missing:
        log.warning("multirun comparison: no results of stage(s) %s (failed or not run)", missing)
    kept = [(s, n) for s, n in zip(stages, names, strict=True) if s in ran]
    if not kept:
        return None
    files = compare_runs(
        [ran[s] for s, _ in kept], [n for _, n in kept], settings, sweep_dir / "compare"
    )
    log.info("multirun comparison of %s: %s", ", ".join(n for _, n in kept), files.get("md"))
    return files


class CompareAfterMultirun(Callback):
    """Hydra callback: compare the stages of a multirun's jobs once every job has ended."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if sweep_dir.is_dir():
            compare_sweep_stages(config, sweep_dir)
