"""Image decoding with the platform's documented conversions.

Every decoder returns an RGB ``uint8`` array of shape ``(H, W, 3)``:

- grayscale images are repeated over three channels;
- images with an alpha channel are composited over a white background (alpha is discarded);
- 16-bit images are scaled to 8 bits (``round(x / 257)``);
- the EXIF Orientation tag is applied, as PIL's ``ImageOps.exif_transpose`` does (JPEG, PNG, WebP;
  OpenCV's TIFF reader applies it itself);
- a truncated JPEG (no end-of-image marker), PNG (no ``IEND`` chunk) or WebP (shorter than its RIFF
  header says) and anything OpenCV cannot decode raise :class:`BadImageError` naming the file.

:func:`decode_image_bytes` is the one reader: training, the start-up screen, ``faceprior-data check``
and dataset preparation all call it, so a file that passes the check decodes the same way later.
Non-square images are centre-cropped to a square and resized by :func:`to_square`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
#: byte strings that announce an EXIF block: JPEG APP1, PNG eXIf chunk, WebP EXIF chunk
_EXIF_MARKS = (b"Exif\x00\x00", b"eXIf", b"EXIF")
_ORIENTATION_TAG = 0x0112
#: a JPEG marker: 0xFF (plus fill bytes) then a code that is not stuffing (00), a restart (D0-D7) or fill
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")
_JPEG_STANDALONE = frozenset({0x01, 0xD8})

#: EXIF orientation -> the array operation that makes the image upright (PIL's exif_transpose)
_ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


class BadImageError(ValueError):
    """A file that should be an image but cannot be used as one."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad image file {self.path}: {reason}")


def is_image_name(name: str | Path) -> bool:
    """True when the file extension is one the platform decodes."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _jpeg_complete(data: bytes) -> bool:
    """Walk the JPEG segments (skipping each by its length, so an EXIF thumbnail's end marker does
    not count) and the entropy-coded scans; True once the end-of-image marker is reached."""
    pos, end = 2, len(data)
    while pos < end:
        match = _JPEG_MARKER.search(data, pos)
        if match is None:
            return False
        code, pos = match.group(1)[0], match.end()
        if code == 0xD9:
            return True
        if code in _JPEG_STANDALONE:
            continue
        if pos + 2 > end:
            return False
        pos += int.from_bytes(data[pos : pos + 2], "big")
    return False


def _png_complete(data: bytes) -> bool:
    """Walk the PNG chunks; True when an ``IEND`` chunk lies completely inside the data."""
    pos, end = len(_PNG_SIGNATURE), len(data)
    while pos + 8 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos <= end
    return False


def truncation_reason(data: bytes) -> str | None:
    """Why the encoded bytes are an incomplete file, or ``None`` when their structure is whole.

    Decoders may return a partly grey image for a cut-off file (libjpeg only warns), so the
    container is checked before decoding: JPEG up to its end-of-image marker, PNG up to ``IEND``,
    WebP against the length in its RIFF header.
    """
    if data[:2] == b"\xff\xd8":
        return None if _jpeg_complete(data) else "truncated JPEG (no end-of-image marker)"
    if data[:8] == _PNG_SIGNATURE:
        return None if _png_complete(data) else "truncated PNG (no IEND chunk)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        expected = int.from_bytes(data[4:8], "little") + 8
        if len(data) < expected:
            return f"truncated WebP ({len(data)} of {expected} bytes)"
    return None


def exif_orientation(data: bytes) -> int:
    """The EXIF Orientation (1-8) of encoded image bytes; 1 when absent, unreadable or TIFF (whose
    orientation OpenCV applies while decoding)."""
    if data[:4] in _TIFF_MAGIC or not any(mark in data for mark in _EXIF_MARKS):
        return 1
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a malformed EXIF block: keep the stored orientation, as PIL would
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an ``(H, W, C)`` array as EXIF ``orientation`` prescribes (1 = unchanged)."""
    op = _ORIENTATIONS.get(orientation)
    return img if op is None else np.ascontiguousarray(op(img))


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
    """Decode encoded image bytes (PNG, JPEG, ...) into upright RGB uint8 ``(H, W, 3)``."""
    if not data:
        raise BadImageError(origin, "empty file")
    reason = truncation_reason(data)
    if reason is not None:
        raise BadImageError(origin, reason)
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise BadImageError(origin, "not a decodable image (corrupt, truncated or not an image)")
    return apply_orientation(_to_rgb8(img, origin), exif_orientation(data))


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into upright RGB uint8 ``(H, W, 3)``; raises :class:`BadImageError`."""
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
