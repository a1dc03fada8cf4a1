"""Image decoding with the platform's documented conversions.

Every decoder returns an RGB ``uint8`` array of shape ``(H, W, 3)``:

- grayscale images are repeated over three channels;
- images with an alpha channel are composited over a white background (alpha is discarded);
- 16-bit images are scaled to 8 bits (``round(x / 257)``);
- anything OpenCV cannot decode raises :class:`BadImageError` naming the file.

Non-square images are centre-cropped to a square and resized by :func:`to_square`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


class BadImageError(ValueError):
    """A file that should be an image but cannot be used as one."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad image file {self.path}: {reason}")


def is_image_name(name: str | Path) -> bool:
    """True when the file extension is one the platform decodes."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb8(img: np.ndarray, origin: str) -> np.ndarray:
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise BadImageError(origin, f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3:
        raise BadImageError(origin, f"unexpected array shape {img.shape}")
    channels = img.shape[2]
    if channels == 1:
        return np.repeat(img, 3, axis=2)
    if channels == 3:
        return np.ascontiguousarray(img[:, :, ::-1])
    if channels == 4:
        bgr = img[:, :, :3].astype(np.float32)
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        composite = bgr * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(np.round(composite).astype(np.uint8)[:, :, ::-1])
    raise BadImageError(origin, f"unsupported channel count {channels}")


def decode_image_bytes(data: bytes, origin: str) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...) into RGB uint8 ``(H, W, 3)``."""
    if not data:
        raise BadImageError(origin, "empty file")
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise BadImageError(origin, "not a decodable image (corrupt, truncated or not an image)")
    return _to_rgb8(img, origin)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into RGB uint8 ``(H, W, 3)``; raises :class:`BadImageError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadImageError(path, f"cannot read file ({err.strerror or err})") from err
    if not is_image_name(path):
        raise BadImageError(path, f"not an image file (extension '{path.suffix}')")
    return decode_image_bytes(data, str(path))


def to_square(img: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Centre-crop to a square and resize to ``size``.

    Returns the image, the scale factor applied after cropping and the ``(x0, y0)`` crop offset, so
    that coordinates in the file can be mapped to the output: ``(x - x0) * scale``.
    """
    h, w = img.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    if side != h or side != w:
        img = img[y0 : y0 + side, x0 : x0 + side]
    scale = size / side
    if side != size:
        interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        img = cv2.resize(img, (size, size), interpolation=interp)
    return np.ascontiguousarray(img), scale, (x0, y0)
