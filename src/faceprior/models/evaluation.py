"""Validation/test metric bookkeeping shared by every restoration LightningModule.

Metrics are configured once as ``name -> torchmetrics.Metric`` and cloned into one collection per
stage and benchmark, for the restored output and for the degraded input (the "LQ input" row of the
results table). Keys are ``val/<metric>``, ``val/lq_<metric>``, ``test/<benchmark>/<metric>`` and
``test/<benchmark>/lq_<metric>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import Tensor, nn
from torchmetrics import Metric


def needs_reference(metric: Metric) -> bool:
    """Full-reference metrics compare with ground truth; no-reference ones (NIQE) declare otherwise."""
    return bool(getattr(metric, "full_reference", True))


class StageMetrics(nn.Module):
    """Metric clones for one stage: the restored output and the LQ input, per benchmark name."""

    def __init__(
        self, metrics: Mapping[str, Metric], prefix: str, benchmarks: Iterable[str]
    ) -> None:
        super().__init__()
        self.prefix = prefix
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

    def update(self, bench: str, pred: Tensor, lq: Tensor, gt: Tensor | None) -> None:
        """Update with images in [0, 1]; full-reference metrics are skipped when ``gt`` is None."""
        for kind, image in (("restored", pred), ("lq", lq)):
            for _, metric in self._metrics(f"{bench or '_'}:{kind}"):
                if needs_reference(metric):
                    if gt is not None:
                        metric.update(image, gt)
                else:
                    metric.update(image)

    def compute(self) -> dict[str, Tensor]:
        """Every metric value that received data, keyed with its full name."""
        out: dict[str, Tensor] = {}
        for key in self.groups:
            for name, metric in self._metrics(key):
                if metric.update_called:
                    out[f"{self.names[key]}{name}"] = metric.compute()
        return out

    def reset(self) -> None:
        for key in self.groups:
            for _, metric in self._metrics(key):
                metric.reset()
