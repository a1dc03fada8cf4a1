"""Validation/test metric bookkeeping shared by every restoration LightningModule.

Metrics are configured once as ``name -> torchmetrics.Metric`` and cloned into one collection per
stage and benchmark, for the restored output and for the degraded input (the "LQ input" row of the
results table). Keys are ``val/<metric>``, ``val/lq_<metric>``, ``test/<benchmark>/<metric>`` and
``test/<benchmark>/lq_<metric>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch.distributed as dist
from torch import Tensor, nn
from torchmetrics import Metric

from faceprior.metrics.base import PerImageMeanMetric


def needs_reference(metric: Metric) -> bool:
    """Full-reference metrics compare with ground truth; no-reference ones (NIQE) declare otherwise."""
    return bool(getattr(metric, "full_reference", True))


class StageMetrics(nn.Module):
    """Metric clones for one stage: the restored output and the LQ input, per benchmark name."""

    def __init__(
        self,
        metrics: Mapping[str, Metric],
        prefix: str,
        benchmarks: Iterable[str],
        record_per_image: bool = False,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.record_per_image = record_per_image
        #: per-image values (``benchmark``, ``index`` and one column per per-image metric)
        self.rows: list[dict[str, float | int | str]] = []
        self.groups = nn.ModuleDict()
        self.names: dict[str, str] = {}
        for bench in benchmarks:
            base = f"{prefix}/" if bench == "" else f"{prefix}/{bench}/"
            for kind, tag in (("restored", ""), ("lq", "lq_")):
                key = f"{bench or '_'}:{kind}"
                self.groups[key] = nn.ModuleDict({k: m.clone() for k, m in metrics.items()})
                self.names[key] = f"{base}{tag}"

    def _metrics(self, key: str) -> list[tuple[str, Metric]]:
        group = self.groups[key]
        assert isinstance(group, nn.ModuleDict)
        return [(name, m) for name, m in group.items() if isinstance(m, Metric)]

    def update(
        self,
        bench: str,
        pred: Tensor,
        lq: Tensor,
        gt: Tensor | None,
        indices: Tensor | None = None,
    ) -> None:
        """Update with images in [0, 1]; full-reference metrics are skipped when ``gt`` is None.

        With ``record_per_image``, per-image metrics also append one row per image to :attr:`rows`
        (computed once: the same values feed the running mean).
        """
        columns: dict[str, Tensor] = {}
        for kind, image in (("restored", pred), ("lq", lq)):
            tag = "" if kind == "restored" else "lq_"
            for name, metric in self._metrics(f"{bench or '_'}:{kind}"):
                if needs_reference(metric) and gt is None:
                    continue
                target = gt if needs_reference(metric) else None
                if target is not None:
                    metric.update(image, target)
                else:
                    metric.update(image)
                last = getattr(metric, "last_values", None) if self.record_per_image else None
                if isinstance(metric, PerImageMeanMetric) and last is not None:
                    columns[f"{tag}{name}"] = last.cpu()
        if columns:
            idx = indices.tolist() if indices is not None else list(range(pred.shape[0]))
            for i, index in enumerate(idx):
                row: dict[str, float | int | str] = {
                    "benchmark": bench or "val",
                    "index": int(index),
                }
                row.update({k: float(v[i]) for k, v in columns.items()})
                self.rows.append(row)

    def gathered_rows(self) -> list[dict[str, float | int | str]]:
        """Every rank's per-image rows, on every rank, sorted by benchmark and image index.

        Under DDP each rank scored its own share of the images; the rows are exchanged as Python
        objects (a collective call: every rank must call this). A row that two ranks hold (only
        possible with a padding sampler) is kept once.
        """
        rows = list(self.rows)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shards: list[list[dict[str, float | int | str]] | None] = [None] * dist.get_world_size()
            dist.all_gather_object(shards, rows)
            rows = [row for shard in shards for row in shard or []]
        unique = {(str(r["benchmark"]), int(r["index"])): r for r in rows}
        return [unique[k] for k in sorted(unique)]

    def compute(self) -> dict[str, Tensor]:
        """Every metric value that received data, keyed with its full name."""
        out: dict[str, Tensor] = {}
        for key in self.groups:
            for name, metric in self._metrics(key):
                if metric.update_called:
                    out[f"{self.names[key]}{name}"] = metric.compute()
        return out

    def reset(self) -> None:
        self.rows = []
        for key in self.groups:
            for _, metric in self._metrics(key):
                metric.reset()
