"""``FaceRestorer``: detect, align, restore and paste back every face of many photos in batches.

For a group of photos the restorer detects the faces of each photo, fits one similarity per face
onto the model's template (a 5-point fit, on the host), then on the device: cuts all crops of a
photo with one batched warp, restores the crops of *all* photos of the group in batches of
``batch_size``, computes the paste masks in the same batches, and warps the restored crops back
into an upscaled copy of each photo, compositing overlapping faces in detection order (highest
score first, so the most confident face ends on top).

Deterministic by default: GFP-GAN runs on its stored constant noise, cuDNN is set deterministic on
CUDA, and nothing in the pipeline draws random numbers. Restoring faces one at a time or in a
batch gives the same pixels up to floating-point summation order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.inference.detection import Face, FaceDetector, describe_detector
from faceprior.inference.devices import (
    describe_device,
    precision,
    resolve_device,
    resolve_dtype,
    set_deterministic,
    synchronize,
)
from faceprior.inference.image_io import Photo, resize_alpha
from faceprior.inference.masks import MaskMaker, make_mask
from faceprior.inference.models import FaceModel
from faceprior.inference.templates import (
    alignment_residual,
    compose,
    fit_similarity,
    get_template,
    invert_affine,
    resize_matrix,
)
from faceprior.inference.warp import align_faces, paste_faces

#: a background upsampler: ``(1, 3, H, W)`` in [0, 1] -> ``(1, 3, h, w)`` (any size; resized after)
Upsampler = Callable[[Tensor], Tensor]


@dataclass
class FaceResult:
    """One restored face.

    Attributes:
        box, score, landmarks: the detection in photo pixels (``landmarks`` ``(5, 2)``).
        matrix: photo -> crop similarity (``2 x 3``).
        residual: RMS distance (crop px) of the warped landmarks to the template.
        before, after: the aligned input crop and the restored crop, ``(S, S, 3)`` in [0, 1].
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None
    matrix: np.ndarray
    residual: float
    before: np.ndarray = field(repr=False)
    after: np.ndarray = field(repr=False)


@dataclass
class Restored:
    """The result for one photo.

    Attributes:
        image: ``(h, w, 3)`` float32 in [0, 1] (the photo upscaled, faces pasted; or the restored
            crop for aligned input).
        faces: one :class:`FaceResult` per restored face, in paste order.
        alpha: the input's alpha at the output size, or None.
        photo: the decoded input, when a :class:`Photo` was given.
        timings: seconds per stage (batched stages: this photo's share by face count).
        notes: what happened that a user should know (no face found, alpha kept, ...).
        coverage: ``(h, w)`` union of the paste masks, when asked for (``keep_coverage``).
    """

    image: np.ndarray
    faces: list[FaceResult]
    alpha: np.ndarray | None = None
    photo: Photo | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    coverage: np.ndarray | None = None


def default_batch_size(device: torch.device) -> int:
    """Crops per network call when none is given: 8 on an accelerator, 1 on the CPU.

    On the CPU the 512 px networks are compute-bound at batch 1 and larger batches only add memory
    traffic (GFP-GAN v1.4 on 2 cores: batch 8 is 0.74x the rate of batch 1); warps, masks and
    paste-back stay batched either way.
    """
    return 1 if device.type == "cpu" else 8


def _as_photo(image: np.ndarray | Photo) -> Photo:
    if isinstance(image, Photo):
        return image
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) image, got shape {arr.shape}")
    rgb = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return Photo("<array>", np.ascontiguousarray(rgb))


def bicubic_resize(image: Tensor, height: int, width: int) -> Tensor:
    """Resize ``(1, C, H, W)`` to ``(height, width)``: bicubic up, antialiased down, clamped."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(
        image, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    ).clamp(0.0, 1.0)


class FaceRestorer:
    """Restore the faces of real photos and paste them back.

    Args:
        model: a :class:`FaceModel` (or any restoration module; wrapped with ``face_size``).
        detector: a face detector (see :mod:`faceprior.inference.detection`); needed unless
            ``aligned``.
        upscale: output scale of the photo (the official default is 2).
        weight: fidelity blend of each crop, ``weight * restored + (1 - weight) * input``; 1 keeps
            the restored face, 0 the input.
        batch_size: crops per network call (across photos); default
            :func:`default_batch_size` (8 on a GPU, 1 on the CPU, where larger batches of
            512 px crops are slower: see docs/benchmarks.md).
        aligned: inputs are already aligned crops: resized to the model's size, restored, not
            pasted.
        template: alignment template (``ffhq`` / ``gpen``); default: the model's.
        mask: ``feather``, ``parse`` (with ``parse_weights``), or a mask maker.
        parse_weights: ParseNet file or folder for ``mask='parse'``.
        bg_upsampler: background hook (callable / ``nn.Module``), default: bicubic resize only.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ... (a missing device is an error).
        dtype: ``float32``, ``bfloat16`` or ``float16`` for the network (autocast).
        deterministic: deterministic kernels (CUDA) and constant GFP-GAN noise.
        face_size: crop side for a plain module that does not say.
        paste_chunk: faces per inverse-warp call.
    """

    def __init__(
        self,
        model: FaceModel | nn.Module,
        detector: FaceDetector | None = None,
        upscale: float = 2.0,
        weight: float = 1.0,
        batch_size: int | None = None,
        aligned: bool = False,
        template: str | None = None,
        mask: str | MaskMaker = "feather",
        parse_weights: str | None = None,
        bg_upsampler: Upsampler | None = None,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "float32",
        deterministic: bool = True,
        face_size: int | None = None,
        paste_chunk: int = 16,
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        if upscale <= 0:
            raise ValueError(f"upscale must be > 0, got {upscale}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if detector is None and not aligned:
            raise ValueError("a detector is needed unless the inputs are aligned crops")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.deterministic = deterministic
        if deterministic:
            set_deterministic(self.device)
        if not isinstance(model, FaceModel):
            model = FaceModel(model, face_size=face_size)
        model.randomize_noise = model.randomize_noise and not deterministic
        self.model = model.to(self.device).eval()
        self.detector = detector
        self.upscale = float(upscale)
        self.weight = float(weight)
        self.batch_size = int(batch_size or default_batch_size(self.device))
        self.aligned = aligned
        self.template = get_template(template or model.template)
        self.mask: MaskMaker = (
            make_mask(mask, parse_weights, self.device) if isinstance(mask, str) else mask
        )
        self.bg_upsampler = bg_upsampler
        if isinstance(bg_upsampler, nn.Module):
            bg_upsampler.to(self.device).eval()
        self.paste_chunk = paste_chunk

    @property
    def face_size(self) -> int:
        return self.model.face_size

    def describe(self) -> dict[str, Any]:
        """Settings for the log line and the sidecars."""
        mask_info = getattr(self.mask, "describe", None)
        return {
            "model": self.model.describe(),
            "template": self.template.name,
            "fit": self.template.fit,
            "mask": mask_info() if callable(mask_info) else {"kind": self.mask.name},
            "detector": None if self.aligned else describe_detector(self.detector),
            "aligned": self.aligned,
            "upscale": self.upscale,
            "weight": self.weight,
            "batch_size": self.batch_size,
            "device": describe_device(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "deterministic": self.deterministic,
            "background": type(self.bg_upsampler).__name__ if self.bg_upsampler else "bicubic",
        }

    # -- stages -------------------------------------------------------------------------------
    def _clock(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def detect(self, photo: Photo) -> list[Face]:
        """The faces of ``photo`` (the detector's filters applied)."""
        assert self.detector is not None
        return list(self.detector(photo.uint8()))

    def _tensor(self, photo: Photo) -> Tensor:
        rgb = torch.from_numpy(photo.rgb).to(self.device, non_blocking=True)
        return rgb.permute(2, 0, 1)[None].contiguous()

    def _fit(self, faces: Sequence[Face]) -> tuple[np.ndarray, list[float]]:
        points = self.template.scaled(self.face_size)
        mats = [fit_similarity(f.landmarks, points, self.template.fit) for f in faces]
        res = [alignment_residual(f.landmarks, m, points) for f, m in zip(faces, mats)]
        return np.asarray(mats, dtype=np.float64).reshape(-1, 2, 3), res

    @torch.inference_mode()
    def restore_crops(self, crops: Tensor) -> Tensor:
        """Restore ``(N, 3, S, S)`` crops in [0, 1] in batches; returns [0, 1] float32."""
        outs = []
        for start in range(0, crops.shape[0], self.batch_size):
            x = crops[start : start + self.batch_size]
            with precision(self.device, self.dtype):
                y = self.model(x * 2.0 - 1.0)
            y = (y.float() + 1.0) / 2.0
            if self.weight < 1.0:
                y = self.weight * y + (1.0 - self.weight) * x
            outs.append(y.clamp(0.0, 1.0))
        return torch.cat(outs) if outs else crops.new_empty((0, 3, self.face_size, self.face_size))

    @torch.inference_mode()
    def masks(self, faces: Tensor) -> Tensor:
        """Paste masks ``(N, 1, S, S)`` of restored crops, in batches."""
        parts = [
            self.mask(faces[i : i + self.batch_size]).float()
            for i in range(0, faces.shape[0], self.batch_size)
        ]
        return torch.cat(parts) if parts else faces.new_empty((0, 1, *faces.shape[-2:]))

    def background(self, image: Tensor, height: int, width: int) -> Tensor:
        """The photo at the output size: the upsampler hook's result (or the photo), resized."""
        bg = image
        if self.bg_upsampler is not None:
            with torch.inference_mode():
                bg = self.bg_upsampler(image).float()
        return bicubic_resize(bg, height, width)

    # -- pipeline -----------------------------------------------------------------------------
    def restore(self, image: np.ndarray | Photo, keep_coverage: bool = False) -> Restored:
        """Restore one photo (RGB ``uint8`` / float array, or a :class:`Photo`)."""
        return self.restore_batch([image], keep_coverage=keep_coverage)[0]

    @torch.inference_mode()
    def restore_batch(
        self,
        images: Sequence[np.ndarray | Photo],
        faces: Sequence[Sequence[Face]] | None = None,
        keep_coverage: bool = False,
    ) -> list[Restored]:
        """Restore several photos, all their faces through the network together.

        ``faces`` (one list per photo) skips detection.
        """
        photos = [_as_photo(img) for img in images]
        if self.aligned:
            return self._restore_aligned(photos)
        timings: list[dict[str, float]] = [{} for _ in photos]
        found: list[list[Face]] = []
        for i, photo in enumerate(photos):
            t0 = time.perf_counter()
            found.append(list(faces[i]) if faces is not None else self.detect(photo))
            timings[i]["detect"] = time.perf_counter() - t0
        tensors, matrices, residuals, crops = [], [], [], []
        for i, photo in enumerate(photos):
            t0 = self._clock()
            tensor = self._tensor(photo)
            mats, res = self._fit(found[i])
            fill = [c / 255.0 for c in self.template.border]
            crops.append(align_faces(tensor, mats, self.face_size, fill))
            tensors.append(tensor)
            matrices.append(mats)
            residuals.append(res)
            timings[i]["align"] = self._clock() - t0
        all_crops = torch.cat(crops)
        t0 = self._clock()
        restored = self.restore_crops(all_crops)
        t_restore = self._clock() - t0
        t0 = self._clock()
        masks = self.masks(restored)
        t_mask = self._clock() - t0
        total = max(1, all_crops.shape[0])
        results, start = [], 0
        for i, photo in enumerate(photos):
            n = len(found[i])
            share = n / total
            timings[i]["restore"] = t_restore * share
            timings[i]["mask"] = t_mask * share
            sl = slice(start, start + n)
            start += n
            results.append(
                self._paste(
                    photo, tensors[i], found[i], matrices[i], residuals[i],
                    all_crops[sl], restored[sl], masks[sl], timings[i], keep_coverage,
                )
            )  # fmt: skip
        return results

    def _paste(
        self,
        photo: Photo,
        tensor: Tensor,
        faces: list[Face],
        mats: np.ndarray,
        residuals: list[float],
        crops: Tensor,
        restored: Tensor,
        masks: Tensor,
        timings: dict[str, float],
        keep_coverage: bool,
    ) -> Restored:
        h, w = photo.height, photo.width
        ho, wo = max(1, round(h * self.upscale)), max(1, round(w * self.upscale))
        t0 = self._clock()
        canvas = self.background(tensor, ho, wo)[0].clone()
        timings["background"] = self._clock() - t0
        t0 = self._clock()
        to_output = [compose(resize_matrix(wo / w, ho / h), invert_affine(m)) for m in mats]
        coverage = torch.zeros((ho, wo), device=self.device) if keep_coverage else None
        paste_faces(canvas, restored, masks, to_output, self.paste_chunk, coverage)
        image = canvas.permute(1, 2, 0).float().cpu().numpy()
        timings["paste"] = self._clock() - t0
        before = crops.permute(0, 2, 3, 1).float().cpu().numpy()
        after = restored.permute(0, 2, 3, 1).float().cpu().numpy()
        results = [
            FaceResult(f.box, f.score, f.landmarks, m, r, b, a)
            for f, m, r, b, a in zip(faces, mats, residuals, before, after)
        ]
        notes = list(photo.notes)
        if not faces:
            notes.append(
                f"no face found: the photo is written upscaled x{self.upscale:g} without restoration"
            )
        alpha = None if photo.alpha is None else resize_alpha(photo.alpha, ho, wo)
        cov = None if coverage is None else coverage.cpu().numpy()
        return Restored(image, results, alpha, photo, timings, notes, cov)

    def _restore_aligned(self, photos: list[Photo]) -> list[Restored]:
        s = self.face_size
        crops = []
        timings: list[dict[str, float]] = []
        for photo in photos:
            t0 = self._clock()
            crops.append(bicubic_resize(self._tensor(photo), s, s))
            timings.append({"align": self._clock() - t0})
        batch = torch.cat(crops)
        t0 = self._clock()
        restored = self.restore_crops(batch)
        t_restore = (self._clock() - t0) / max(1, len(photos))
        out = []
        for i, photo in enumerate(photos):
            timings[i]["restore"] = t_restore
            before = batch[i].permute(1, 2, 0).cpu().numpy()
            after = restored[i].permute(1, 2, 0).cpu().numpy()
            scale = resize_matrix(s / photo.width, s / photo.height)
            box = (0.0, 0.0, float(photo.width), float(photo.height))
            face = FaceResult(box, 1.0, None, scale, 0.0, before, after)
            alpha = None if photo.alpha is None else resize_alpha(photo.alpha, s, s)
            notes = [*photo.notes, f"aligned input: resized to {s} px and restored, not pasted"]
            out.append(Restored(after, [face], alpha, photo, timings[i], notes))
        return out
