"""The degradation pipeline: an ordered mapping of named ops run on a batch on its device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from faceprior.degradation.ops import Context, DegradationOp, ResizeOp, resize


def sample_generators(seeds: Sequence[int] | Tensor) -> list[torch.Generator]:
    """One CPU generator per sample, seeded with that sample's seed."""
    values = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
    return [torch.Generator().manual_seed(int(s)) for s in values]


class Degradation(nn.Module):
    """Synthesise low-quality inputs from ground-truth faces, batched, with per-sample parameters.

    ``ops`` is an ordered mapping ``name -> op`` (the order of the config file); an op can be removed
    from the command line with ``~degradation.ops.NAME`` or tuned with ``degradation.ops.NAME.ARG=...``.
    Sample ``i`` draws all its parameters from a generator seeded with ``seeds[i]``, so a sample's
    degradation depends only on its seed, not on the batch it is in or on the device.

    ``forward(gt, seeds)`` takes float RGB in [0, 1] of shape ``(B, 3, H, W)`` and returns
    ``(lq, gt, params)``: ``gt`` can differ from the input when an op also changes the ground truth
    (e.g. gray GT), and ``params`` maps ``"op.param"`` to a ``(B,)`` tensor of the drawn values.
    """

    def __init__(self, ops: Mapping[str, DegradationOp] | None = None) -> None:
        super().__init__()
        ops = dict(ops or {})
        for name, op in ops.items():
            if not isinstance(op, DegradationOp):
                raise TypeError(
                    f"degradation.ops.{name} must be a DegradationOp (a `_target_` in "
                    f"faceprior.degradation), got {type(op).__name__}"
                )
        self.ops = nn.ModuleDict(ops)

    def __len__(self) -> int:
        return len(self.ops)

    def _op(self, name: str) -> DegradationOp:
        op = self.ops[name]
        assert isinstance(op, DegradationOp)
        return op

    def sample(self, seeds: Sequence[int] | Tensor) -> list[dict[str, dict[str, float]]]:
        """Per-sample parameter dicts ``[{op: {param: value}}]``, drawn in op order."""
        out = []
        for gen in sample_generators(seeds):
            out.append({name: self._op(name).sample(gen) for name in self.ops})
        return out

    @staticmethod
    def _collate(per_sample: list[dict[str, float]]) -> dict[str, Tensor]:
        if not per_sample or not per_sample[0]:
            return {}
        return {
            k: torch.tensor([s[k] for s in per_sample], dtype=torch.float64) for k in per_sample[0]
        }

    @torch.no_grad()
    def forward(
        self, gt: Tensor, seeds: Sequence[int] | Tensor
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if gt.ndim != 4 or gt.shape[1] != 3:
            raise ValueError(f"expected ground truth of shape (B, 3, H, W), got {tuple(gt.shape)}")
        batch = gt.shape[0]
        if len(seeds) != batch:
            raise ValueError(f"got {len(seeds)} seeds for a batch of {batch}")
        gt = gt.clone()
        drawn = self.sample(seeds)
        ctx = Context(gt=gt, size=(gt.shape[-2], gt.shape[-1]))
        # Groups of samples that currently share a size: (indices into the batch, images).
        groups: list[tuple[Tensor, Tensor]] = [(torch.arange(batch), gt.clone())]
        params: dict[str, Tensor] = {}
        for name in self.ops:
            p_all = self._collate([d[name] for d in drawn])
            params.update({f"{name}.{k}": v for k, v in p_all.items()})
            op = self._op(name)
            if isinstance(op, ResizeOp):
                groups = self._resize_groups(op, groups, [d[name] for d in drawn], ctx)
            else:
                groups = [
                    (idx, op.degrade(x, {k: v[idx] for k, v in p_all.items()}, ctx, idx))
                    for idx, x in groups
                ]
        return self._merge(groups, batch), ctx.gt, params

    @staticmethod
    def _resize_groups(
        op: ResizeOp,
        groups: list[tuple[Tensor, Tensor]],
        drawn: list[dict[str, float]],
        ctx: Context,
    ) -> list[tuple[Tensor, Tensor]]:
        # (target size, source size) -> members; samples sharing both are resized together.
        buckets: dict[tuple[int, int], dict[tuple[int, int], list[tuple[int, Tensor]]]] = {}
        for idx, x in groups:
            in_size = (x.shape[-2], x.shape[-1])
            for j, i in enumerate(idx.tolist()):
                size = op.target_size(drawn[i], in_size, ctx)
                buckets.setdefault(size, {}).setdefault(in_size, []).append((i, x[j : j + 1]))
        out = []
        for size, by_source in buckets.items():
            indices: list[int] = []
            parts: list[Tensor] = []
            for members in by_source.values():
                indices.extend(i for i, _ in members)
                parts.append(
                    resize(torch.cat([t for _, t in members]), size, op.mode, op.antialias)
                )
            out.append((torch.tensor(indices), torch.cat(parts)))
        return out

    @staticmethod
    def _merge(groups: list[tuple[Tensor, Tensor]], batch: int) -> Tensor:
        sizes = {tuple(x.shape[-2:]) for _, x in groups}
        if len(sizes) != 1:
            raise ValueError(
                f"degradation ends with samples of different sizes {sorted(sizes)}: add a ResizeBack "
                "op after the random resize"
            )
        if len(groups) == 1:
            idx, x = groups[0]
            return x[torch.argsort(idx)] if not torch.equal(idx, torch.arange(batch)) else x
        idx = torch.cat([i for i, _ in groups])
        x = torch.cat([t for _, t in groups])
        return x[torch.argsort(idx).to(x.device)]
