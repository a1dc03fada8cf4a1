"""Eye and mouth crops for the facial-component discriminators (ROI Align on per-image boxes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

#: Order of the boxes the DataModule delivers (``batch["boxes"]``: ``(B, 3, 4)``).
COMPONENT_ORDER = ("left_eye", "right_eye", "mouth")

#: GFP-GAN's crop sides at 512 px.
DEFAULT_SIZES = {"left_eye": 80, "right_eye": 80, "mouth": 120}


def component_sizes(
    image_size: int, sizes: Mapping[str, int] = DEFAULT_SIZES, reference_size: int = 512
) -> dict[str, int]:
    """Crop sides for ``image_size`` images: the 512-px sides scaled with the resolution (>= 4 px)."""
    return {k: max(4, round(v * image_size / reference_size)) for k, v in sizes.items()}


def crop_components(images: Tensor, boxes: Tensor, sizes: Mapping[str, int]) -> dict[str, Tensor]:
    """``name -> (B, C, s, s)`` crops of ``images`` for each component in ``sizes``.

    ``boxes`` is ``(B, 3, 4)`` ``[x1, y1, x2, y2]`` in pixels, ordered as :data:`COMPONENT_ORDER`.
    Uses ``torchvision.ops.roi_align`` with ``spatial_scale=1``, adaptive sampling and
    ``aligned=False``, as GFP-GAN does.
    """
    from torchvision.ops import roi_align

    if boxes.ndim != 3 or boxes.shape[1:] != (3, 4):
        raise ValueError(
            f"component boxes must be (B, 3, 4) [x1, y1, x2, y2] for {COMPONENT_ORDER}, "
            f"got {tuple(boxes.shape)}"
        )
    batch = images.shape[0]
    ids = torch.arange(batch, device=images.device, dtype=images.dtype).view(batch, 1)
    boxes = boxes.to(images.device, images.dtype)
    out: dict[str, Tensor] = {}
    for name, side in sizes.items():
        k = COMPONENT_ORDER.index(name)
        rois = torch.cat([ids, boxes[:, k]], dim=1)
        out[name] = roi_align(
            images, rois, output_size=side, spatial_scale=1.0, sampling_ratio=-1, aligned=False
        )
    return out


def paired_crops(
    fake: Tensor,
    real: Tensor,
    boxes: Tensor,
    names: Sequence[str],
    base_sizes: Mapping[str, int],
    reference_size: int = 512,
) -> dict[str, tuple[Tensor, Tensor]]:
    """``name -> (fake crop, real crop)`` for the components in ``names``, sides scaled to the image."""
    sizes = component_sizes(real.shape[-1], {k: base_sizes[k] for k in names}, reference_size)
    fake_crops = crop_components(fake, boxes, sizes)
    real_crops = crop_components(real, boxes, sizes)
    return {k: (fake_crops[k], real_crops[k]) for k in sizes}
