"""Batched warps on the device: photo -> aligned crops, crops -> photo, and the feathered mask.

All faces of a photo are cut out by one :func:`kornia.geometry.transform.warp_affine` call on the
photo broadcast over the faces (``expand``: no copy of the photo), and put back by one call per
chunk of faces that warps each crop (with its mask as a fourth channel) into the face's own region
of the output, not into a full-size canvas. Both follow OpenCV's pixel convention
(``align_corners=True``; kornia and ``cv2.warpAffine`` agree to 1e-5 on the same matrix).

Faces much smaller than the crop on one side are resampled from a 2^k-downscaled copy
(antialiased), so that bilinear sampling never skips pixels: a 2000 px face in a large photo is
averaged into its 512 px crop, not point-sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import warp_affine
from torch import Tensor

from faceprior.inference.templates import compose, crop_scale, invert_affine, resize_matrix

#: a bilinear warp keeps every source pixel in play down to this scale (crop px per source px)
MIN_DIRECT_SCALE = 0.5
#: smallest side of a downscaled copy used for warping
MIN_LEVEL_SIDE = 16


def _matrices(values: Sequence[np.ndarray] | np.ndarray, device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32, device=device)


def pyramid_level(scale: float, side: int) -> int:
    """How many halvings to apply to a source of shortest side ``side`` sampled at ``scale``."""
    if scale >= MIN_DIRECT_SCALE or scale <= 0:
        return 0
    level = math.floor(math.log2(1.0 / scale))
    while level > 0 and side / 2**level < MIN_LEVEL_SIDE:
        level -= 1
    return level


def _downscaled(image: Tensor, level: int) -> tuple[Tensor, np.ndarray]:
    """``image`` halved ``level`` times (antialiased) and the map from its pixels to the copy's."""
    if level == 0:
        return image, resize_matrix(1.0)
    h, w = image.shape[-2:]
    hk, wk = max(1, round(h / 2**level)), max(1, round(w / 2**level))
    small = F.interpolate(
        image, size=(hk, wk), mode="bilinear", antialias=True, align_corners=False
    )
    return small, resize_matrix(wk / w, hk / h)


def align_faces(
    image: Tensor,
    matrices: Sequence[np.ndarray] | np.ndarray,
    size: int,
    fill: Sequence[float],
    antialias: bool = True,
) -> Tensor:
    """Warp ``(1, C, H, W)`` ``image`` into one ``size`` px crop per matrix; ``(N, C, size, size)``.

    ``matrices`` map photo pixels to crop pixels; pixels outside the photo get ``fill`` (one
    value per channel, in the image's range).
    """
    mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    n, c = len(mats), image.shape[1]
    out = image.new_empty((n, c, size, size))
    if n == 0:
        return out
    side = min(image.shape[-2:])
    levels = np.array([pyramid_level(crop_scale(m), side) if antialias else 0 for m in mats])
    fill_t = torch.as_tensor(list(fill), dtype=image.dtype, device=image.device)
    for level in np.unique(levels):
        idx = np.flatnonzero(levels == level)
        src, to_level = _downscaled(image, int(level))
        local = [compose(mats[i], invert_affine(to_level)) for i in idx]
        out[torch.as_tensor(idx, device=image.device)] = warp_affine(
            src.expand(len(idx), -1, -1, -1),
            _matrices(local, image.device),
            (size, size),
            mode="bilinear",
            padding_mode="fill",
            fill_value=fill_t,
            align_corners=True,
        )
    return out


@dataclass(frozen=True)
class Region:
    """Where a pasted face lands: the output box ``[y0, y0+h) x [x0, x0+w)``."""

    x0: int
    y0: int
    w: int
    h: int

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0


def face_region(to_output: np.ndarray, size: int, height: int, width: int) -> Region:
    """The output box covered by a ``size`` px crop mapped through ``to_output`` (1 px margin)."""
    edge = np.array(
        [[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]]
    )
    pts = edge @ to_output[:, :2].T + to_output[:, 2]
    x0 = max(0, math.floor(pts[:, 0].min()) - 1)
    y0 = max(0, math.floor(pts[:, 1].min()) - 1)
    x1 = min(width, math.ceil(pts[:, 0].max()) + 2)
    y1 = min(height, math.ceil(pts[:, 1].max()) + 2)
    return Region(x0, y0, x1 - x0, y1 - y0)


def _shrink(layers: Tensor, level: int) -> tuple[Tensor, np.ndarray]:
    """Crops (and masks) downscaled by ``2**level`` for pasting small faces, with their map."""
    if level == 0:
        return layers, resize_matrix(1.0)
    size = layers.shape[-1]
    small = max(1, size // 2**level)
    out = F.interpolate(layers, size=(small, small), mode="bilinear", antialias=True)
    return out, resize_matrix(small / size)


def paste_faces(
    canvas: Tensor,
    faces: Tensor,
    masks: Tensor,
    to_output: Sequence[np.ndarray] | np.ndarray,
    chunk: int = 16,
    coverage: Tensor | None = None,
) -> Tensor:
    """Blend each crop into ``canvas`` ``(C, H, W)`` in order, in place; returns ``canvas``.

    ``faces`` ``(N, C, S, S)`` and ``masks`` ``(N, 1, S, S)`` are warped back through
    ``to_output`` (crop -> output pixels), a chunk of faces per warp call, and composited one
    after the other (``out = m * face + (1 - m) * out``), so a later face covers an earlier one
    where both masks are high. ``coverage`` ``(H, W)``, if given, accumulates ``1 - prod(1 - m)``.
    """
    mats = np.asarray(to_output, dtype=np.float64).reshape(-1, 2, 3)
    _, height, width = canvas.shape
    size = faces.shape[-1]
    layers_all = torch.cat([faces.to(canvas.dtype), masks.to(canvas.dtype)], dim=1)
    c = canvas.shape[0]
    for start in range(0, len(mats), chunk):
        ids = list(range(start, min(start + chunk, len(mats))))
        regions = [face_region(mats[i], size, height, width) for i in ids]
        levels = [pyramid_level(crop_scale(mats[i]), size) for i in ids]
        warped: dict[int, Tensor] = {}
        for level in sorted(set(levels)):
            sel = [j for j, lv in enumerate(levels) if lv == level and not regions[j].empty]
            if not sel:
                continue
            src, to_small = _shrink(layers_all[[ids[j] for j in sel]], level)
            hmax = max(regions[j].h for j in sel)
            wmax = max(regions[j].w for j in sel)
            local = []
            for j in sel:
                shift = np.array([[1.0, 0, -regions[j].x0], [0, 1.0, -regions[j].y0]])
                local.append(compose(shift, compose(mats[ids[j]], invert_affine(to_small))))
            out = warp_affine(
                src, _matrices(local, canvas.device), (hmax, wmax), align_corners=True
            )
            for k, j in enumerate(sel):
                warped[j] = out[k]
        for j in range(len(ids)):  # composite in the given order
            if j not in warped:
                continue
            r = regions[j]
            layer = warped[j][:, : r.h, : r.w]
            m = layer[c:].clamp(0.0, 1.0)
            region = canvas[:, r.y0 : r.y0 + r.h, r.x0 : r.x0 + r.w]
            region.add_(m * (layer[:c] - region))
            if coverage is not None:
                cov = coverage[r.y0 : r.y0 + r.h, r.x0 : r.x0 + r.w]
                cov.add_(m[0] * (1.0 - cov))
    return canvas


#: feathered mask: inner square inset and Gaussian width, as fractions of the crop side. At 512 px
#: the square is inset 25.6 px and blurred with sigma 8 px: the Gaussian tail at the crop edge
#: (3.2 sigma, 7e-4) is subtracted so the mask is exactly 0 there and 1 on the face; facexlib's
#: square mask uses about the same edge (side / 20).
FEATHER_INSET = 0.05
FEATHER_SIGMA = 1.0 / 64.0


def gaussian_kernel_size(sigma: float) -> int:
    """Odd kernel side covering +-3 sigma."""
    return 2 * math.ceil(3.0 * sigma) + 1


@lru_cache(maxsize=16)
def _feather_cached(size: int, inset: float, sigma: float, device: str) -> Tensor:
    mask = torch.zeros((1, 1, size, size), device=device)
    px = round(inset * size)
    mask[..., px : size - px, px : size - px] = 1.0  # the crop square, eroded by `px`
    s = sigma * size
    k = gaussian_kernel_size(s)
    soft = gaussian_blur2d(mask, (k, k), (s, s), border_type="constant")
    # what the Gaussian tail leaves on the crop's border is taken off, so the border is exactly 0
    rim = torch.cat([soft[..., 0, :], soft[..., -1, :], soft[..., :, 0], soft[..., :, -1]], -1)
    edge = float(rim.max())
    return ((soft - edge) / (1.0 - edge)).clamp(0.0, 1.0)


def feather_mask(
    size: int,
    device: torch.device | str = "cpu",
    inset: float = FEATHER_INSET,
    sigma: float = FEATHER_SIGMA,
) -> Tensor:
    """The crop-space paste mask ``(1, 1, size, size)``: an eroded square, Gaussian-feathered.

    Its steepest slope is ``1 / (sigma * size * sqrt(2 pi))`` per crop pixel (a blurred step);
    warped back, the feather scales with the face, so small and large faces blend alike.
    """
    return _feather_cached(int(size), float(inset), float(sigma), str(torch.device(device)))
