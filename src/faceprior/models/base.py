"""Evaluation shared by every restoration LightningModule: validation, test, previews, per-image rows."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch import Tensor
from torchmetrics import Metric

from faceprior.models.evaluation import StageMetrics
from faceprior.utils.distributed import destroy_process_group_at_exit


def to_model_range(x: Tensor) -> Tensor:
    """[0, 1] images (data) -> [-1, 1] (networks)."""
    return x * 2.0 - 1.0


def to_image_range(x: Tensor) -> Tensor:
    """[-1, 1] network output -> [0, 1], clamped."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


class RestorerBase(pl.LightningModule):
    """Validation and test loops over ``metrics`` for any module that implements :meth:`restore`.

    Logs ``val/<m>``, ``val/lq_<m>`` and ``test/<benchmark>/[lq_]<m>``; keeps the first validation
    batch in :attr:`val_preview` (for the image-grid callback) and writes one CSV row per test image
    (``test_per_image.csv`` in the trainer's root directory) for the per-image metrics. Under DDP
    the rows of all ranks are gathered, so the file and :attr:`last_test_rows` hold every image.
    """

    def __init__(
        self,
        metrics: Mapping[str, Metric] | None = None,
        test_metrics: Mapping[str, Metric] | None = None,
        **kwargs: Any,
    ) -> None:
        # cooperative: the remaining keyword arguments go to the next base (the training core)
        super().__init__(**kwargs)
        self.metric_specs = dict(metrics or {})
        # e.g. cheap metrics while training, the paper's set at test time
        self.test_metric_specs = (
            dict(test_metrics) if test_metrics is not None else self.metric_specs
        )
        self.val_metrics = StageMetrics(self.metric_specs, "val", [""])
        self.test_metrics: StageMetrics | None = None
        self.val_preview: dict[str, Tensor] | None = None
        #: per-image rows of the last test run (kept for result writers after the reset)
        self.last_test_rows: list[dict[str, float | int | str]] = []

    def restore(self, lq: Tensor) -> Tensor:
        """Evaluation restoration of ``lq`` in [-1, 1]; returns [-1, 1]."""
        raise NotImplementedError

    def forward(self, lq: Tensor) -> Tensor:
        """Restore ``lq`` in [0, 1]; returns [0, 1] (clamped)."""
        return to_image_range(self.restore(to_model_range(lq)))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        destroy_process_group_at_exit()  # also with a datamodule of the user's own
        if stage == "test" and self.test_metrics is None:
            dm = getattr(self.trainer, "datamodule", None)
            names = list(getattr(dm, "benchmarks", {}) or {}) or ["test"]
            self.test_metrics = StageMetrics(
                self.test_metric_specs, "test", names, record_per_image=True
            )

    def _evaluate(self, metrics: StageMetrics, batch: dict[str, Any], bench: str) -> Tensor:
        pred = self(batch["lq"])
        metrics.update(bench, pred, batch["lq"], batch.get("gt"), batch.get("index"))
        return pred

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred = self._evaluate(self.val_metrics, batch, "")
        if batch_idx == 0:
            self.val_preview = {"lq": batch["lq"][:8], "pred": pred[:8]}
            if "gt" in batch:
                self.val_preview["gt"] = batch["gt"][:8]

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), sync_dist=False)
        self.val_metrics.reset()

    def test_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        """Score one batch; returns the restored images in [0, 1] (for result writers)."""
        assert self.test_metrics is not None
        pred = self._evaluate(self.test_metrics, batch, str(batch.get("benchmark", "test")))
        return {"pred": pred.detach()}

    def on_test_epoch_end(self) -> None:
        assert self.test_metrics is not None
        self.log_dict(self.test_metrics.compute(), sync_dist=False, add_dataloader_idx=False)
        rows = self.test_metrics.gathered_rows()  # all ranks' rows (collective under DDP)
        self.last_test_rows = rows
        if rows and self.trainer.is_global_zero:
            path = Path(self.trainer.default_root_dir) / "test_per_image.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            columns = list(dict.fromkeys(k for row in rows for k in row))
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
        self.test_metrics.reset()
