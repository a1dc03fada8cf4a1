"""The degradation pipeline: an ordered mapping of named ops run on a batch on its device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from faceprior.degradation.ops import Context, DegradationOp, ResizeOp, resize
from faceprior.degradation.packing import (
    bucket_by_size,
    pack,
    resample_bilinear,
    size_groups,
)

PACKING_MODES = ("auto", "groups", "canvas")

#: Per-sample parameters as drawn by :meth:`Degradation.sample`: ``{op: {param: value}}``.
SampleParams = dict[str, dict[str, float]]


#: odd multiplier (the 32-bit golden ratio) of :func:`eval_seeds`
SEED_MULTIPLIER = 0x9E3779B1


def eval_seeds(seed: int, indices: Sequence[int] | Tensor) -> list[int]:
    """Generator seed of evaluation image ``i`` of a set seeded with ``seed``.

    ``(seed * 0x9E3779B1 + i) mod 2**32``: a torch CPU generator keeps only the low 32 bits of
    its seed, so the set's seed must be mixed into those bits (``(seed << 32) + i`` would ignore
    it). The odd multiplier maps distinct set seeds below ``2**32`` to distinct offsets and spreads
    small ones far apart; seed 0 gives image ``i`` the seed ``i``. Used for validation, the
    benchmarks degraded on the device and ``faceprior-prepare synth-benchmark``, so all three
    produce the same LQ for the same (seed, image).
    """
    values = indices.tolist() if isinstance(indices, Tensor) else list(indices)
    return [(int(seed) * SEED_MULTIPLIER + int(i)) % 2**32 for i in values]


def sample_generators(seeds: Sequence[int] | Tensor) -> list[torch.Generator]:
    """One CPU generator per sample, seeded with that sample's seed."""
    values = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
    return [torch.Generator().manual_seed(int(s)) for s in values]


@dataclass
class _Bucket:
    """Samples ``idx`` of the batch held in one tensor ``x``; sample ``j`` is valid in
    ``x[j, :, :sizes[j, 0], :sizes[j, 1]]`` (``sizes``: ``(n, 2)`` CPU long tensor)."""

    idx: Tensor
    x: Tensor
    sizes: Tensor

    @property
    def full(self) -> bool:
        h, w = self.x.shape[-2:]
        return bool((self.sizes[:, 0] == h).all()) and bool((self.sizes[:, 1] == w).all())


class Degradation(nn.Module):
    """Synthesise low-quality inputs from ground-truth faces, batched, with per-sample parameters.

    ``ops`` is an ordered mapping ``name -> op`` (the order of the config file); an op can be removed
    from the command line with ``~degradation.ops.NAME`` or tuned with ``degradation.ops.NAME.ARG=...``.
    Sample ``i`` draws all its parameters from a generator seeded with ``seeds[i]``, so a sample's
    degradation depends only on its seed, not on the batch it is in or on the device.

    ``forward(gt, seeds)`` takes float RGB in [0, 1] of shape ``(B, 3, H, W)`` and returns
    ``(lq, gt, params)``: ``gt`` can differ from the input when an op also changes the ground truth
    (e.g. gray GT), and ``params`` maps ``"op.param"`` to a ``(B,)`` tensor of the drawn values.
    ``apply_params(gt, params)`` runs the same pipeline with given per-sample parameters (the dicts
    that ``sample`` returns), e.g. to compare with a reference implementation (not named ``apply``:
    that is ``nn.Module.apply(fn)``, which parents call recursively on their children).

    **Per-sample sizes.** The official pipelines resize every image with ``cv2.resize(INTER_LINEAR)``
    to ``(int(w // r), int(h // r))`` with its own continuous ``r``, so after the downscale no two
    samples need share a size. The alternatives that batch trivially change the degradation
    distribution: one ``r`` per batch correlates the samples of a batch (and with batch 12 the model
    sees ~12x fewer distinct scales per step), and a size-preserving zoom (``grid_sample`` of the
    whole image by ``1/r`` inside the original frame) keeps every pixel count equal, so the noise
    and JPEG blocks no longer act at the LQ resolution, which is what makes them hard. Both are
    therefore avoided; each sample keeps its exact LQ size, and ``packing`` chooses how samples of
    different sizes are batched after a resize op:

    - ``"groups"``: one sub-batch per distinct size (``F.interpolate`` per group). With continuous
      ``r`` almost every sample is its own group, so every later op (noise, JPEG, ...) runs once per
      sample: cheap on a CPU, but ~B small kernel launches per op on a GPU.
    - ``"canvas"``: samples are placed top-left in shared canvases with edge (replicate) padding,
      bucketed by size so that a canvas is at most ``max_waste`` times a member's area (a handful of
      canvases per batch whatever its size). The downscale into the canvases and the resize back are
      one batched separable bilinear resampling per canvas
      (:func:`~faceprior.degradation.packing.resample_bilinear`) that reproduces
      ``F.interpolate(bilinear, align_corners=False, antialias=False)`` / ``INTER_LINEAR`` per sample
      (clamped source coordinates, so padding is never read). Pointwise ops run on the canvas as
      is; noise is drawn per sample at its own LQ size from its own seed; the JPEG model sees every
      sample edge padded to whole MCUs as libjpeg pads partial ones (the real codec runs per sample
      on its own crop); other ops run on same-size crops. A sample's output therefore does not
      depend on its batch mates, and equals the ``groups`` output up to float rounding (before an
      8-bit rounding; after one, rare 1-level flips).
    - ``"auto"`` (default): ``canvas`` on CUDA, ``groups`` on CPU, the faster of the two where
      measured (docs/benchmarks.md).
    """

    def __init__(
        self,
        ops: Mapping[str, DegradationOp] | None = None,
        packing: str = "auto",
        max_waste: float = 2.0,
    ) -> None:
        super().__init__()
        ops = dict(ops or {})
        for name, op in ops.items():
            if not isinstance(op, DegradationOp):
                raise TypeError(
                    f"degradation.ops.{name} must be a DegradationOp (a `_target_` in "
                    f"faceprior.degradation), got {type(op).__name__}"
                )
        if packing not in PACKING_MODES:
            raise ValueError(f"packing must be one of {PACKING_MODES}, got {packing!r}")
        if float(max_waste) < 1.0:
            raise ValueError(f"max_waste must be >= 1 (canvas area / sample area), got {max_waste}")
        self.ops = nn.ModuleDict(ops)
        self.packing = packing
        self.max_waste = float(max_waste)

    def __len__(self) -> int:
        return len(self.ops)

    def _op(self, name: str) -> DegradationOp:
        op = self.ops[name]
        assert isinstance(op, DegradationOp)
        return op

    def packing_for(self, device: torch.device) -> str:
        """The packing mode used for a batch on ``device`` (``auto`` resolved)."""
        if self.packing == "auto":
            return "canvas" if device.type == "cuda" else "groups"
        return self.packing

    def sample(self, seeds: Sequence[int] | Tensor) -> list[SampleParams]:
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
        if len(seeds) != gt.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for a batch of {gt.shape[0]}")
        return self.apply_params(gt, self.sample(seeds))

    @torch.no_grad()
    def apply_params(
        self, gt: Tensor, params: Sequence[SampleParams]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Degrade ``gt`` with fixed per-sample parameters (one :meth:`sample` dict per sample).

        Returns ``(lq, gt, params)`` as :meth:`forward` does.
        """
        if gt.ndim != 4 or gt.shape[1] != 3:
            raise ValueError(f"expected ground truth of shape (B, 3, H, W), got {tuple(gt.shape)}")
        batch = gt.shape[0]
        if len(params) != batch:
            raise ValueError(f"got {len(params)} parameter dicts for a batch of {batch}")
        for i, d in enumerate(params):
            if set(d) != set(self.ops):
                raise ValueError(
                    f"parameters of sample {i} are for ops {sorted(d)}, the pipeline has "
                    f"{list(self.ops)}"
                )
        packing = self.packing_for(gt.device)
        gt = gt.clone()
        ctx = Context(gt=gt, size=(gt.shape[-2], gt.shape[-1]))
        h, w = ctx.size
        buckets = [
            _Bucket(torch.arange(batch), gt.clone(), torch.tensor([[h, w]] * batch).view(-1, 2))
        ]
        collated: dict[str, Tensor] = {}
        for name in self.ops:
            per_sample = [d[name] for d in params]
            p_all = self._collate(per_sample)
            collated.update({f"{name}.{k}": v for k, v in p_all.items()})
            op = self._op(name)
            if isinstance(op, ResizeOp):
                buckets = self._resize(op, buckets, per_sample, ctx, packing)
                continue
            out = []
            for b in buckets:
                p = {k: v[b.idx] for k, v in p_all.items()}
                if b.full:
                    x = op.degrade(b.x, p, ctx, b.idx)
                else:
                    x = op.degrade_packed(b.x, p, ctx, b.idx, b.sizes)
                out.append(_Bucket(b.idx, x, b.sizes))
            buckets = out
        return self._merge(buckets, batch), ctx.gt, collated

    # -- resizing ----------------------------------------------------------------------------------
    def _resize(
        self,
        op: ResizeOp,
        buckets: list[_Bucket],
        drawn: list[dict[str, float]],
        ctx: Context,
        packing: str,
    ) -> list[_Bucket]:
        targets: dict[int, tuple[int, int]] = {}
        for b in buckets:
            for i, (h, w) in zip(b.idx.tolist(), b.sizes.tolist(), strict=True):
                targets[i] = op.target_size(drawn[i], (h, w), ctx)
        if packing == "groups":
            return self._resize_groups(op, buckets, targets)
        return self._resize_canvas(op, buckets, targets)

    @staticmethod
    def _resize_groups(
        op: ResizeOp, buckets: list[_Bucket], targets: dict[int, tuple[int, int]]
    ) -> list[_Bucket]:
        """One output group per target size; ``F.interpolate`` per (source size, target size)."""
        by_target: dict[tuple[int, int], tuple[list[Tensor], list[Tensor]]] = {}
        for b in buckets:
            dev = b.x.device
            for (h, w), members in size_groups(b.sizes).items():
                sel = torch.tensor(members)
                src = b.x if b.full else b.x[sel.to(dev), :, :h, :w]
                idx = b.idx[sel]
                per_target: dict[tuple[int, int], list[int]] = {}
                for j, i in enumerate(idx.tolist()):
                    per_target.setdefault(targets[i], []).append(j)
                for size, local in per_target.items():
                    loc = torch.tensor(local)
                    part = src if len(local) == src.shape[0] else src[loc.to(dev)]
                    ids, xs = by_target.setdefault(size, ([], []))
                    ids.append(idx[loc])
                    xs.append(resize(part, size, op.mode, op.antialias))
        out = []
        for size, (ids, xs) in by_target.items():
            indices = torch.cat(ids)
            sizes = torch.tensor([list(size)] * len(indices)).view(-1, 2)
            out.append(_Bucket(indices, xs[0] if len(xs) == 1 else torch.cat(xs), sizes))
        return out

    def _resize_canvas(
        self, op: ResizeOp, buckets: list[_Bucket], targets: dict[int, tuple[int, int]]
    ) -> list[_Bucket]:
        """Resize into canvases bucketed by target size (``max_waste``), batched per canvas."""
        order = sorted(targets)
        groups = bucket_by_size([targets[i] for i in order], self.max_waste)
        where = {
            int(i): (k, j) for k, b in enumerate(buckets) for j, i in enumerate(b.idx.tolist())
        }
        out = []
        for members in groups:
            batch_idx = [order[m] for m in members]
            dst = torch.tensor([list(targets[i]) for i in batch_idx]).view(-1, 2)
            canvas = (int(dst[:, 0].max()), int(dst[:, 1].max()))
            parts: list[tuple[list[int], Tensor]] = []
            for k, b in enumerate(buckets):
                local = [where[i][1] for i in batch_idx if where[i][0] == k]
                if not local:
                    continue
                sel = torch.tensor(local)
                whole = len(local) == b.x.shape[0] and local == sorted(local)
                part_dst = torch.tensor([list(targets[int(b.idx[j])]) for j in local]).view(-1, 2)
                if op.mode == "bilinear" and not op.antialias:
                    resized = resample_bilinear(
                        b.x, b.sizes[sel], part_dst, canvas, index=None if whole else sel
                    )
                else:  # other resamplers: per exact size, then packed
                    resized = pack(
                        [
                            resize(b.x[j : j + 1, :, :sh, :sw], (th, tw), op.mode, op.antialias)[0]
                            for j, (sh, sw), (th, tw) in zip(
                                local, b.sizes[sel].tolist(), part_dst.tolist(), strict=True
                            )
                        ],
                        canvas,
                    )
                parts.append(([int(b.idx[j]) for j in local], resized))
            idx = torch.tensor([i for ids, _ in parts for i in ids])
            x = parts[0][1] if len(parts) == 1 else torch.cat([t for _, t in parts])
            out.append(
                _Bucket(idx, x, torch.tensor([list(targets[int(i)]) for i in idx]).view(-1, 2))
            )
        return out

    @staticmethod
    def _merge(buckets: list[_Bucket], batch: int) -> Tensor:
        shapes = {tuple(b.sizes[j].tolist()) for b in buckets for j in range(len(b.idx))}
        if len(shapes) != 1:
            raise ValueError(
                f"degradation ends with samples of different sizes {sorted(shapes)}: add a "
                "ResizeBack op after the random resize"
            )
        h, w = shapes.pop()
        parts = [b.x if b.full else b.x[..., :h, :w] for b in buckets]
        if len(buckets) == 1:
            idx, x = buckets[0].idx, parts[0]
            return (
                x if torch.equal(idx, torch.arange(batch)) else x[torch.argsort(idx).to(x.device)]
            )
        idx = torch.cat([b.idx for b in buckets])
        x = torch.cat(parts)
        return x[torch.argsort(idx).to(x.device)]
