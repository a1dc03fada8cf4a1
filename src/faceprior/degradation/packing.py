"""Packed canvases: samples of different sizes in one tensor, placed top-left and edge padded.

After a per-sample random resize every sample has its own size. Instead of one group (and one kernel
launch per op) per distinct size, the pipeline can place the samples in a few shared canvases: sample
``j`` of a canvas occupies ``x[j, :, :h_j, :w_j]`` and the rest is padding. Resizing into and out of
canvases is a separable bilinear resampling with per-sample index tables
(:func:`resample_bilinear`), which reproduces ``F.interpolate(mode="bilinear", align_corners=False,
antialias=False)`` and OpenCV's ``INTER_LINEAR`` for every sample at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Size = tuple[int, int]


def bucket_by_size(sizes: Sequence[Size], max_waste: float = 2.0) -> list[list[int]]:
    """Group sample positions so that every canvas wastes at most ``max_waste`` × a member's area.

    Samples are taken largest first; a sample joins the open canvas while ``canvas_h · canvas_w <=
    max_waste · h · w`` (the canvas grows to the maximum height and width of its members), else it
    opens a new one. ``max_waste=1`` gives one canvas per distinct size (plain grouping),
    ``float("inf")`` a single canvas. Members of each canvas are returned in batch order.
    """
    if max_waste < 1.0:
        raise ValueError(f"max_waste must be >= 1, got {max_waste}")
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i][0] * sizes[i][1], -sizes[i][0], i))
    buckets: list[list[int]] = []
    current: list[int] = []
    ch = cw = 0
    for i in order:
        h, w = sizes[i]
        nh, nw = max(ch, h), max(cw, w)
        if current and nh * nw > max_waste * h * w:
            buckets.append(sorted(current))
            current, nh, nw = [], h, w
        current.append(i)
        ch, cw = nh, nw
    if current:
        buckets.append(sorted(current))
    return buckets


def _axis_tables(
    src: Tensor, dst: Tensor, out: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample source indices ``(i0, i1)`` and weights ``lam`` (each ``(n, out)``) along one axis.

    Output position ``o`` of a sample with ``dst`` valid outputs reads source coordinate
    ``(min(o, dst - 1) + 0.5) · src / dst - 0.5`` clamped at 0, i.e. positions past the sample's own
    size repeat its last row/column (edge padding). Computed in float64 (OpenCV computes the scale
    in double precision).
    """
    s64 = src.to(device=device, dtype=torch.float64).view(-1, 1)
    d64 = dst.to(device=device, dtype=torch.float64).view(-1, 1)
    o = torch.arange(out, device=device, dtype=torch.float64).view(1, -1)
    o = torch.minimum(o, d64 - 1)
    coord = ((o + 0.5) * (s64 / d64) - 0.5).clamp_min(0.0)
    last = src.to(device).view(-1, 1).long() - 1
    i0 = torch.minimum(coord.floor().long(), last)
    i1 = torch.minimum(i0 + 1, last)
    lam = coord - i0.to(torch.float64)
    return i0, i1, lam


def resample_bilinear(
    x: Tensor,
    src_sizes: Tensor,
    dst_sizes: Tensor,
    out_hw: Size | None = None,
    index: Tensor | None = None,
) -> Tensor:
    """Bilinear resize of every sample of a canvas to its own size, into a canvas.

    ``x`` is ``(N, C, H, W)``; output sample ``j`` reads source sample ``index[j]`` (default: ``j``),
    valid in ``[:src_h_j, :src_w_j]``, so a subset of a batch is resized without copying it first.
    The result is ``(n, C, out_h, out_w)`` (default: the largest destination size) with sample ``j``
    resized to ``dst_sizes[j]`` at the top left and edge padding elsewhere. Per sample this equals
    ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` (half-pixel centres, clamped source
    coordinates, scale in double precision) to float rounding, and
    ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)`` up to its float32 scale.
    Two gathers and a lerp per axis for the whole canvas. Hand-written: ``kornia.geometry.resize``
    wraps ``F.interpolate`` (one output size per call, scale in float32), so it offers neither.
    """
    n = dst_sizes.shape[0] if index is None else index.shape[0]
    c = x.shape[1]
    src_sizes = src_sizes.view(n, 2)
    dst_sizes = dst_sizes.view(n, 2)
    if out_hw is None:
        out_hw = (int(dst_sizes[:, 0].max()), int(dst_sizes[:, 1].max()))
    oh, ow = out_hw
    dev = x.device
    y0, y1, ly = _axis_tables(src_sizes[:, 0], dst_sizes[:, 0], oh, dev)
    x0, x1, lx = _axis_tables(src_sizes[:, 1], dst_sizes[:, 1], ow, dev)
    work = x if x.is_floating_point() else x.float()
    if index is None:
        wi = work.shape[-1]
        rows_a = work.gather(2, y0.view(n, 1, oh, 1).expand(n, c, oh, wi))
        rows_b = work.gather(2, y1.view(n, 1, oh, 1).expand(n, c, oh, wi))
        rows = torch.lerp(rows_a, rows_b, ly.to(work.dtype).view(n, 1, oh, 1))
        cols_a = rows.gather(3, x0.view(n, 1, 1, ow).expand(n, c, oh, ow))
        cols_b = rows.gather(3, x1.view(n, 1, 1, ow).expand(n, c, oh, ow))
        return torch.lerp(cols_a, cols_b, lx.to(work.dtype).view(n, 1, 1, ow))
    # rows of the selected samples by advanced indexing: (n, oh, C, W), no copy of whole images
    bi = index.to(dev).view(n, 1)
    rows = torch.lerp(work[bi, :, y0], work[bi, :, y1], ly.to(work.dtype).view(n, oh, 1, 1))
    cols_a = rows.gather(3, x0.view(n, 1, 1, ow).expand(n, oh, c, ow))
    cols_b = rows.gather(3, x1.view(n, 1, 1, ow).expand(n, oh, c, ow))
    out = torch.lerp(cols_a, cols_b, lx.to(work.dtype).view(n, 1, 1, ow))
    return out.permute(0, 2, 1, 3).contiguous()


def edge_pad(x: Tensor, sizes: Tensor) -> Tensor:
    """Overwrite the padding of a canvas with its samples' edge pixels (replicate padding)."""
    n, c, h, w = x.shape
    sizes = sizes.view(n, 2)
    if bool((sizes[:, 0] == h).all()) and bool((sizes[:, 1] == w).all()):
        return x
    dev = x.device
    hs = sizes[:, 0].to(dev).view(n, 1)
    ws = sizes[:, 1].to(dev).view(n, 1)
    rows = torch.minimum(torch.arange(h, device=dev).view(1, h), hs - 1)
    cols = torch.minimum(torch.arange(w, device=dev).view(1, w), ws - 1)
    x = x.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w))
    return x.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def pack(images: Sequence[Tensor], out_hw: Size | None = None) -> Tensor:
    """Stack ``(C, h_j, w_j)`` images top-left into an edge-padded ``(n, C, H, W)`` canvas."""
    if out_hw is None:
        out_hw = (max(t.shape[-2] for t in images), max(t.shape[-1] for t in images))
    oh, ow = out_hw
    padded = [
        F.pad(t[None], (0, ow - t.shape[-1], 0, oh - t.shape[-2]), mode="replicate")
        if tuple(t.shape[-2:]) != (oh, ow)
        else t[None]
        for t in images
    ]
    return torch.cat(padded)


def size_groups(sizes: Tensor) -> dict[Size, list[int]]:
    """Positions of the samples of each distinct ``(h, w)`` in ``sizes`` (``(n, 2)``)."""
    groups: dict[Size, list[int]] = {}
    for j, (h, w) in enumerate(sizes.tolist()):
        groups.setdefault((int(h), int(w)), []).append(j)
    return groups
