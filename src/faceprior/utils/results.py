"""Per-benchmark result files of a test run: restored PNGs, mean table, per-image CSV, protocol.

:class:`BenchmarkResults` (a callback of ``faceprior-eval``, also usable in training configs)
writes, for every benchmark ``b`` of the test run, into ``<output_dir>/results``:

* ``b.md`` — the mean table (LQ input / restored / gain) followed by the protocol block;
* ``b.csv`` — one row per image (file name, index, every per-image metric, restored and LQ);
* ``b.json`` — means, the protocol and the per-image rows;

and, with ``save_images``, the 8-bit restored images as ``<output_dir>/restored/b/<name>.png``
(the source file's stem) and, for benchmarks degraded on the device (no LQ folder), the inputs as
``<output_dir>/lq/b/<name>.png``. The protocol records what a reader needs to trust or reproduce the
numbers: every metric's convention (its ``protocol()``), the weights scored (file and SHA-256; for
released models whether it is the released file), the benchmark folders and the SHA-256 of a
``manifest.json`` found next to them (written by ``faceprior-prepare synth-benchmark``), the seed,
and package versions.
"""

from __future__ import annotations

import csv
import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning import Callback

log = logging.getLogger(__name__)

PACKAGES = ("faceprior", "torch", "torchvision", "pytorch-lightning", "torchmetrics", "numpy")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the numbers depend on."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _sha256(path: Path) -> str:
    from faceprior.checkpoints.io import sha256sum

    return sha256sum(path)


def benchmark_manifest(roots: list[str | None]) -> dict[str, str] | None:
    """``{path, sha256}`` of the first ``manifest.json`` in or above a benchmark folder."""
    for root in roots:
        if not root:
            continue
        for folder in (Path(root), Path(root).parent):
            manifest = folder / "manifest.json"
            if manifest.is_file():
                return {"path": str(manifest.resolve()), "sha256": _sha256(manifest)}
    return None


def metric_protocols(module: pl.LightningModule) -> dict[str, Any]:
    """Each test metric's recorded conventions (``protocol()`` or ``convention``)."""
    out: dict[str, Any] = {}
    for name, metric in dict(getattr(module, "test_metric_specs", {}) or {}).items():
        proto = getattr(metric, "protocol", None)
        if callable(proto):
            out[name] = proto()
        else:
            out[name] = getattr(metric, "convention", type(metric).__name__)
    return out


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8, rounded as the metrics quantise."""
    return (
        (image.detach().float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()
    )


class BenchmarkResults(Callback):
    """Write ``results/<benchmark>.{md,csv,json}`` (and restored PNGs) after ``trainer.test``.

    With a W&B logger, each benchmark also becomes a ``wandb.Table`` (``test/<benchmark>/images``:
    file name, LQ | restored | GT image cells and the per-image metrics of the first
    ``table_images`` images), the means go to the run summary, and the ``results/`` folder is logged
    as a ``results`` artifact. At the start of training, every validation metric is declared with
    ``define_metric`` so the run summary keeps its best value (``max`` or ``min`` by the metric's
    direction) rather than the last one.

    Args:
        output_dir: the run folder.
        save_images: save the 8-bit restored images under ``restored/<benchmark>/``.
        seed: the run's seed (recorded).
        weights: what was scored when the module does not say (e.g. the checkpoint path).
        table_images: images per benchmark in the W&B table (0: no table).
        log_artifact: log ``results/`` as a W&B artifact after testing.
    """

    def __init__(
        self,
        output_dir: str,
        save_images: bool = True,
        seed: int | None = None,
        weights: str | None = None,
        table_images: int = 16,
        log_artifact: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.save_images = save_images
        self.seed = seed
        self.weights = weights
        self.table_images = int(table_images)
        self.log_artifact = bool(log_artifact)
        #: benchmark -> [(name, lq, restored, gt or None)] for the W&B table (first images only)
        self._table: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]] = {}
        #: (benchmark, index) -> source file stem
        self._names: dict[tuple[str, int], str] = {}

    # -- restored images -------------------------------------------------------------------------
    def _name(self, trainer: pl.Trainer, dataloader_idx: int, index: int) -> str:
        name = f"{index:08d}"
        loaders = trainer.test_dataloaders
        loader = loaders[dataloader_idx] if isinstance(loaders, list | tuple) else loaders
        dataset = getattr(loader, "dataset", None)
        source = getattr(getattr(dataset, "inner", dataset), "source", None)
        if source is not None and hasattr(source, "name"):
            name = Path(str(source.name(index))).stem
        return name

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        bench = str(batch.get("benchmark", "test"))
        indices = batch.get("index")
        n = int(batch["lq"].shape[0])
        index_list = [int(i) for i in indices] if indices is not None else list(range(n))
        for index in index_list:
            if (bench, index) not in self._names:
                self._names[(bench, index)] = self._name(trainer, dataloader_idx, index)
        if not isinstance(outputs, dict) or "pred" not in outputs:
            return
        pred = outputs["pred"]
        kept = self._table.setdefault(bench, [])
        gt = batch.get("gt")
        for i, index in enumerate(index_list):
            if len(kept) >= self.table_images or self._wandb(trainer) is None:
                break
            gt_i = _to_uint8(gt[i]) if gt is not None else None
            kept.append(
                (self._names[(bench, index)], _to_uint8(batch["lq"][i]), _to_uint8(pred[i]), gt_i)
            )
        if not self.save_images:
            return
        import cv2

        folder = self.output_dir / "restored" / bench
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(index_list):
            rgb = _to_uint8(pred[i])
            cv2.imwrite(str(folder / f"{self._names[(bench, index)]}.png"), rgb[:, :, ::-1])
        if self._lq_root(trainer, bench) is None:
            # degraded on the device: keep the inputs too (the comparison page shows them)
            lq_dir = self.output_dir / "lq" / bench
            lq_dir.mkdir(parents=True, exist_ok=True)
            for i, index in enumerate(index_list):
                rgb = _to_uint8(batch["lq"][i])
                cv2.imwrite(str(lq_dir / f"{self._names[(bench, index)]}.png"), rgb[:, :, ::-1])

    @staticmethod
    def _lq_root(trainer: pl.Trainer, bench: str) -> str | None:
        benchmarks = dict(getattr(getattr(trainer, "datamodule", None), "benchmarks", {}) or {})
        spec = benchmarks.get(bench)
        return getattr(spec, "lq_root", None) if spec is not None else "unknown"

    @staticmethod
    def _wandb(trainer: pl.Trainer) -> Any:
        from pytorch_lightning.loggers import WandbLogger

        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    def _log_wandb(
        self, trainer: pl.Trainer, bench: str, rows: list[dict[str, Any]], means: dict[str, float]
    ) -> None:
        logger = self._wandb(trainer)
        if logger is None:
            return
        import wandb

        by_name = {str(r.get("name")): r for r in rows}
        metric_cols = sorted({k for r in rows for k in r} - {"benchmark", "name", "index"})
        columns = ["name", "lq", "restored", "gt", *metric_cols]
        data = []
        for name, lq, pred, gt in self._table.get(bench, []):
            row = by_name.get(name, {})
            images = [
                wandb.Image(lq),
                wandb.Image(pred),
                wandb.Image(gt) if gt is not None else None,
            ]
            data.append([name, *images, *(row.get(c) for c in metric_cols)])
        if data:
            logger.log_table(key=f"test/{bench}/images", columns=columns, data=data)
        for key, value in means.items():
            logger.experiment.summary[f"test/{bench}/{key}"] = value

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Declare the validation metrics' summaries (best, by direction) on the W&B run."""
        logger = self._wandb(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        for name, metric in dict(getattr(pl_module, "metric_specs", {}) or {}).items():
            higher = getattr(metric, "higher_is_better", None)
            if higher is not None:
                summary = "max" if higher else "min"
                logger.experiment.define_metric(f"val/{name}", summary=summary)

    def _log_artifact(self, trainer: pl.Trainer, out: Path) -> None:
        logger = self._wandb(trainer)
        if logger is None or not self.log_artifact:
            return
        import wandb

        run = logger.experiment
        artifact = wandb.Artifact(f"results-{run.id}", type="results")
        artifact.add_dir(str(out))
        run.log_artifact(artifact)

    # -- tables ------------------------------------------------------------------------------------
    def _gather_names(self) -> None:
        """Every rank's (benchmark, index) -> file stem map, merged (a collective under DDP)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shards: list[dict[tuple[str, int], str] | None] = [None] * dist.get_world_size()
            dist.all_gather_object(shards, self._names)
            for shard in shards:
                self._names.update(shard or {})

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._gather_names()  # every rank takes part; only rank 0 writes
        if not trainer.is_global_zero:
            return
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
        }
        rows = list(getattr(pl_module, "last_test_rows", []) or [])
        dm = getattr(trainer, "datamodule", None)
        benchmarks = dict(getattr(dm, "benchmarks", {}) or {})
        names = list(benchmarks) or sorted({k.split("/")[1] for k in metrics if k.count("/") == 2})
        weights = dict(getattr(pl_module, "weights_info", {}) or {})
        if not weights:
            ckpt = trainer.ckpt_path or self.weights
            weights = {"checkpoint": ckpt}
            if ckpt and Path(ckpt).is_file():
                weights["sha256"] = _sha256(Path(ckpt))
        out = self.output_dir / "results"
        out.mkdir(parents=True, exist_ok=True)
        for bench in names:
            spec = benchmarks.get(bench)
            roots = [getattr(spec, "lq_root", None), getattr(spec, "gt_root", None)]
            saved_lq = self.output_dir / "lq" / bench
            lq_saved = roots[0] is None and saved_lq.is_dir()
            protocol = {
                "benchmark": {
                    "name": bench,
                    "kind": getattr(spec, "kind", None),
                    "lq_root": str(saved_lq) if lq_saved else roots[0],
                    "lq_saved_by_run": lq_saved,
                    "gt_root": roots[1],
                    "seed": getattr(spec, "seed", None),
                    "manifest": benchmark_manifest(roots),
                },
                "weights": weights,
                "metrics": metric_protocols(pl_module),
                "images": "8-bit quantised, metrics averaged per image",
                "seed": self.seed,
                "packages": package_versions(),
            }
            bench_rows = [r for r in rows if r.get("benchmark") == bench]
            means = self._write(out, bench, metrics, bench_rows, protocol)
            self._log_wandb(trainer, bench, bench_rows, means)
        self._log_artifact(trainer, out)
        log.info("wrote per-benchmark results to %s", out)

    def _write(
        self,
        out: Path,
        bench: str,
        metrics: dict[str, float],
        rows: list[dict[str, Any]],
        protocol: dict[str, Any],
    ) -> dict[str, float]:
        prefix = f"test/{bench}/"
        means = {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
        names = sorted({k.removeprefix("lq_") for k in means})
        lines = [
            f"# {bench}",
            "",
            "| | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for label, tag in (("LQ input", "lq_"), ("restored", "")):
            if any(f"{tag}{n}" in means for n in names):
                cells = [
                    f"{means[f'{tag}{n}']:.4f}" if f"{tag}{n}" in means else "—" for n in names
                ]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if protocol["benchmark"]["kind"] == "lq_only":
            lines += ["", "No ground truth: only no-reference metrics are computed for this set."]
        lines += [
            "",
            "## Protocol",
            "",
            "```json",
            json.dumps(protocol, indent=2, default=str),
            "```",
        ]
        (out / f"{bench}.md").write_text("\n".join(lines) + "\n")
        for row in rows:
            index = int(row.get("index", -1))
            row["name"] = self._names.get((bench, index), f"{index:08d}")
        columns = list(dict.fromkeys(["benchmark", "name", "index", *(k for r in rows for k in r)]))
        with (out / f"{bench}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        payload = {"benchmark": bench, "means": means, "protocol": protocol, "per_image": rows}
        (out / f"{bench}.json").write_text(json.dumps(payload, indent=2, default=str))
        return means
