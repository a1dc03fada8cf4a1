"""Reading real photos for restoration, whatever they are, and writing the results faithfully.

:func:`read_photo` gives an upright RGB float image in ``[0, 1]`` plus what the output must keep:

- grayscale: restored as RGB, written back as one channel (the luma of the result);
- alpha (RGBA, grey+alpha, palette with transparency): composited over white for restoration,
  the alpha channel written back unchanged (resized with the image);
- 16-bit: read at full precision, written as 16-bit PNG;
- palette images: expanded to RGB(A);
- EXIF orientation: applied (the output is written upright, without the tag);
- huge photos: refused with a message above ``max_pixels`` (output pixels, upscale included),
  checked from the header before anything is decoded.

Unreadable, empty, truncated and undecodable files raise :class:`BadImageError` naming the file
and the reason (the container checks of :mod:`faceprior.data.io` are reused).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from faceprior.data.io import BadImageError, apply_orientation, exif_orientation, truncation_reason

#: default limit on output pixels (a 100-megapixel photo at upscale 1)
DEFAULT_MAX_PIXELS = 100_000_000
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Photo:
    """A decoded photo and the properties its output keeps.

    Attributes:
        path: where it came from.
        rgb: ``(H, W, 3)`` float32 in ``[0, 1]``, upright; transparent parts composited over white.
        alpha: ``(H, W)`` float32 in ``[0, 1]``, or None.
        bit_depth: 8 or 16.
        grayscale: the file had one colour channel.
        palette: the file was a palette image.
        orientation: the EXIF orientation that was applied (1: none).
        notes: what was done about any of the above, for messages and the sidecar.
    """

    path: str
    rgb: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    grayscale: bool = False
    palette: bool = False
    orientation: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def uint8(self) -> np.ndarray:
        """RGB uint8 for the detector."""
        return np.clip(np.rint(self.rgb * 255.0), 0, 255).astype(np.uint8)


def _header(data: bytes, limited: bool) -> tuple[tuple[int, int] | None, str | None]:
    """``((width, height), PIL mode)`` from the header only, or ``(None, None)``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size, img.mode
    except Image.DecompressionBombError as err:
        if not limited:  # no limit asked for: let OpenCV decode it
            return None, None
        raise BadImageError("", f"too large to open safely ({err})") from err
    except Exception:  # PIL does not know the format: OpenCV may
        return None, None


def _decode(data: bytes, origin: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is not None and img.size:
        return img
    from PIL import Image

    try:  # formats OpenCV lacks (GIF): through PIL, as RGBA, then to OpenCV's BGRA order
        with Image.open(io.BytesIO(data)) as pil:
            rgba = np.asarray(pil.convert("RGBA"))
    except Exception as err:
        raise BadImageError(origin, "not a decodable image (corrupt or not an image)") from err
    return np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])


def _to_float(img: np.ndarray, origin: str) -> tuple[np.ndarray, int]:
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0, 8
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0, 16
    if img.dtype in (np.float32, np.float64):
        return np.clip(img.astype(np.float32), 0.0, 1.0), 16
    raise BadImageError(origin, f"unsupported pixel type {img.dtype}")


def read_photo(
    path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS, upscale: float = 1.0
) -> Photo:
    """Decode a photo for restoration (see the module doc); raises :class:`BadImageError`."""
    origin = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise BadImageError(origin, f"cannot read file ({err.strerror or err})") from err
    if not data:
        raise BadImageError(origin, "empty file")
    try:
        size, mode = _header(data, max_pixels is not None)
    except BadImageError as err:
        raise BadImageError(origin, err.reason) from None
    if size is not None and max_pixels is not None:
        out_pixels = size[0] * size[1] * upscale * upscale
        if out_pixels > max_pixels:
            raise BadImageError(
                origin,
                f"{size[0]}x{size[1]} px at upscale {upscale:g} is {out_pixels / 1e6:.0f} MP, above "
                f"the limit of {max_pixels / 1e6:.0f} MP (--max-megapixels); downscale it or "
                "raise the limit",
            )
    reason = truncation_reason(data)
    if reason is not None:
        raise BadImageError(origin, reason)
    raw = _decode(data, origin)
    pixels, depth = _to_float(raw, origin)
    notes: list[str] = []
    palette = mode in ("P", "PA")
    if palette:
        notes.append("palette image: expanded to RGB")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    alpha = None
    if channels in (2, 4):
        alpha = pixels[:, :, -1].copy()
        pixels = pixels[:, :, :-1]
    grayscale = pixels.shape[2] == 1
    rgb = np.repeat(pixels, 3, axis=2) if grayscale else pixels[:, :, ::-1]
    if grayscale:
        notes.append("grayscale: restored as RGB, written as grayscale")
    if alpha is not None:
        rgb = rgb * alpha[:, :, None] + (1.0 - alpha[:, :, None])
        notes.append("alpha channel: composited over white for restoration, kept in the output")
    if depth == 16:
        notes.append("16-bit: restored in float, written as 16-bit PNG")
    orientation = exif_orientation(data)
    if orientation != 1:
        rgb = apply_orientation(rgb, orientation)
        if alpha is not None:
            alpha = apply_orientation(alpha[:, :, None], orientation)[:, :, 0]
        notes.append(f"EXIF orientation {orientation} applied (output written upright)")
    return Photo(
        origin,
        np.ascontiguousarray(rgb, dtype=np.float32),
        None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        depth,
        grayscale,
        palette,
        orientation,
        notes,
    )


def output_suffix(ext: str, photo: Photo | None) -> str:
    """The file suffix actually written: PNG when JPEG/WebP cannot keep alpha or 16 bits."""
    ext = ext.lower().lstrip(".")
    lossy = ext in ("jpg", "jpeg", "webp")
    if photo is not None and lossy and (photo.alpha is not None or photo.bit_depth == 16):
        return ".png"
    return f".{ext}"


def encode_photo(
    rgb: np.ndarray, photo: Photo | None, suffix: str = ".png", alpha: np.ndarray | None = None
) -> bytes:
    """Encode ``rgb`` ``(H, W, 3)`` in ``[0, 1]`` with the input's depth, channels and alpha."""
    pixels = np.clip(rgb, 0.0, 1.0)
    if photo is not None and photo.grayscale:
        pixels = (pixels @ LUMA)[:, :, None]
    else:
        pixels = pixels[:, :, ::-1]
    if alpha is not None:
        pixels = np.concatenate([pixels, np.clip(alpha, 0.0, 1.0)[:, :, None]], axis=2)
    if photo is not None and photo.bit_depth == 16 and suffix in (".png", ".tif", ".tiff"):
        out = np.rint(pixels * 65535.0).astype(np.uint16)
    else:
        out = np.rint(pixels * 255.0).astype(np.uint8)
    if out.shape[2] == 1:
        out = out[:, :, 0]
    ok, buf = cv2.imencode(suffix, out)
    if not ok:
        raise ValueError(f"cannot encode an image as {suffix}")
    return buf.tobytes()


def write_photo(
    path: Path, rgb: np.ndarray, photo: Photo | None = None, alpha: np.ndarray | None = None
) -> Path:
    """Write ``rgb`` to ``path`` (suffix decides the format); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_photo(rgb, photo, path.suffix.lower(), alpha))
    return path


def resize_alpha(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """The alpha channel at the output size (bicubic, clipped)."""
    if alpha.shape == (height, width):
        return alpha
    return np.clip(cv2.resize(alpha, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
