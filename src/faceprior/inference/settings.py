"""Typed settings of ``faceprior-restore`` and how they become a :class:`FaceRestorer`.

:class:`RestoreSettings` holds every option with its default; :func:`build_restorer` loads the
model, the detector and the mask from it. Both are usable without the CLI (a Hydra ``_target_``
can point at :func:`build_restorer` with the settings' fields as keyword arguments).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any

from faceprior.inference.detection import (
    DETECTOR_ALIASES,
    DETECTOR_FILES,
    FaceFilter,
    RetinaFaceDetector,
    detector_weights,
)
from faceprior.inference.devices import resolve_device
from faceprior.inference.models import load_face_model
from faceprior.inference.restorer import FaceRestorer, Upsampler


@dataclass
class RestoreSettings:
    """Every option of ``faceprior-restore`` (see ``faceprior-restore --help``)."""

    model: str = "GFPGANv1.4"
    weights: str | None = None
    weights_dir: str | None = None
    config: str | None = None
    trusted: bool = False
    face_size: int | None = None
    template: str | None = None
    aligned: bool = False
    detector: str = "auto"
    detector_weights: str | None = None
    det_threshold: float = 0.97
    min_face: float = 0.0
    min_eye_distance: float = 5.0
    det_max_side: int = 1280
    only_center_face: bool = False
    upscale: float = 2.0
    weight: float = 1.0
    batch_size: int | None = None
    mask: str = "feather"
    parse_weights: str | None = None
    bg_upsampler: str = "bicubic"
    device: str = "auto"
    dtype: str = "float32"
    deterministic: bool = True
    ext: str = "png"
    crops: bool = True
    compare: bool = True
    max_megapixels: float = 100.0
    recursive: bool = False
    group_images: int = 8

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RestoreSettings:
        """The settings from a mapping (e.g. ``vars(args)``), unknown keys ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def choose_detector(name: str, weights: str | None) -> str:
    """``auto``: RetinaFace-R50 when its file is there, else MobileNet-0.25; else the name given.

    Raises:
        FileNotFoundError: when neither file is found (both names and where to get them).
    """
    if name != "auto":
        return DETECTOR_ALIASES.get(name, name)
    errors = []
    for model in DETECTOR_FILES:
        try:
            detector_weights(model, weights)
            return model
        except FileNotFoundError as err:
            errors.append(str(err))
    raise FileNotFoundError("no face detector weights found:\n  " + "\n  ".join(errors))


def load_upsampler(spec: str) -> Upsampler | None:
    """``bicubic`` (None: plain resize) or ``package.module:name`` of a callable / module class."""
    if spec in ("bicubic", "none", ""):
        return None
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"--bg-upsampler {spec!r}: use 'bicubic' or 'package.module:callable'")
    obj = getattr(importlib.import_module(module_name), attr)
    hook = obj() if isinstance(obj, type) else obj
    if not callable(hook):
        raise ValueError(f"--bg-upsampler {spec!r} is not callable")
    return hook


def build_restorer(settings: RestoreSettings) -> FaceRestorer:
    """Load the model, detector and mask named by ``settings``."""
    device = resolve_device(settings.device)
    model = load_face_model(
        settings.model,
        settings.weights,
        settings.weights_dir,
        trusted=settings.trusted,
        config=settings.config,
        face_size=settings.face_size,
    )
    detector = None
    if not settings.aligned:
        name = choose_detector(settings.detector, settings.detector_weights)
        detector = RetinaFaceDetector(
            settings.detector_weights,
            name,
            device,
            max_side=settings.det_max_side or None,
            filter=FaceFilter(
                settings.det_threshold,
                settings.min_face,
                settings.min_eye_distance,
                settings.only_center_face,
            ),
        )
    return FaceRestorer(
        model,
        detector,
        upscale=settings.upscale,
        weight=settings.weight,
        batch_size=settings.batch_size,
        aligned=settings.aligned,
        template=settings.template,
        mask=settings.mask,
        parse_weights=settings.parse_weights,
        bg_upsampler=load_upsampler(settings.bg_upsampler),
        device=device,
        dtype=settings.dtype,
        deterministic=settings.deterministic,
        face_size=settings.face_size,
    )


def max_pixels(settings: RestoreSettings) -> int | None:
    """The output-pixel limit (None: no limit)."""
    return None if settings.max_megapixels <= 0 else int(settings.max_megapixels * 1e6)
