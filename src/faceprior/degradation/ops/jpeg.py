"""JPEG compression: the real codec on every device, or Kornia's differentiable model on request.

Codec back ends (``impl="codec"``), all through ``torchvision.io``:

- CPU tensors: libjpeg (the library ``cv2.imencode`` also wraps; 4:2:0 chroma subsampling), one
  image at a time at its own size (torchvision's list API is a loop on the CPU as well).
- CUDA tensors, ``cuda_codec="nvjpeg"``: nvJPEG, batched. Per call: one ``encode_jpeg`` list call
  per distinct quality (the encoder takes one quality per call), **one** device-to-host copy of all
  bitstreams concatenated (a few KB per image: the decoder only reads bitstreams from host memory),
  and one batched ``decode_jpeg(..., device=cuda)``. Pixels never leave the device. What remains
  inside torchvision 0.29.1 (not avoidable from Python): its encoder loops over the list in C++ and
  synchronises its private stream twice per image, and its decoder parses each header on the host.
  torchvision's nvJPEG encoder always writes **4:4:4** (no chroma subsampling), unlike libjpeg's
  4:2:0, so its output is not the official codec's (measure the gap with
  ``scripts/bench_jpeg_gpu.py``).
- CUDA tensors, ``cuda_codec="libjpeg"``: the CPU codec on the host, bit-identical to the CPU path:
  one device-to-host copy of all 8-bit images, libjpeg per image, one host-to-device copy back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from faceprior.degradation.ops.base import Context, DegradationOp, _prob, _range, uniform
from faceprior.degradation.packing import edge_pad

JpegImpl = Literal["codec", "differentiable"]
QualityRounding = Literal["round", "truncate"]
CudaCodec = Literal["nvjpeg", "libjpeg"]
JPEG_IMPLS: tuple[str, ...] = get_args(JpegImpl)
QUALITY_ROUNDINGS: tuple[str, ...] = get_args(QualityRounding)
CUDA_CODECS: tuple[str, ...] = get_args(CudaCodec)


def jpeg_extent(side: int) -> int:
    """Padded side for the differentiable JPEG model: a multiple of 16 with >= 3 px of edge padding.

    Kornia's model subsamples chroma with a 4-tap filter and upsamples it bilinearly, so pixels near
    the last MCU read one chroma sample / pixel beyond it. With at least 3 padding pixels before the
    end of the padded extent, the valid pixels no longer depend on what lies past it, so a sample
    gives the same result alone, in a same-size group or in a larger packed canvas.
    """
    return -(-(int(side) + 3) // 16) * 16


def to_uint8(img: Tensor) -> Tensor:
    """An image in [0, 1] as 8-bit levels (round to nearest), on its own device."""
    return (img * 255.0).round().to(torch.uint8)


def _libjpeg(u8: Tensor, quality: int) -> Tensor:
    """One 8-bit CPU ``(C, h, w)`` image through libjpeg: encode at ``quality``, decode."""
    from torchvision.io import decode_jpeg, encode_jpeg

    data = encode_jpeg(u8, quality=int(quality))
    assert isinstance(data, Tensor)
    decoded = decode_jpeg(data)
    assert isinstance(decoded, Tensor)
    return decoded


def libjpeg_roundtrip(images: Sequence[Tensor], qualities: Sequence[int]) -> list[Tensor]:
    """Encode and decode each CPU ``(C, h, w)`` image in [0, 1] with libjpeg at its own quality."""
    return [
        _libjpeg(to_uint8(img), q).to(img.dtype) / 255.0
        for img, q in zip(images, qualities, strict=True)
    ]


def host_libjpeg_roundtrip(images: Sequence[Tensor], qualities: Sequence[int]) -> list[Tensor]:
    """:func:`libjpeg_roundtrip` for device tensors, with one copy of all 8-bit images to the host
    and one copy of all decoded images back (instead of two per image); same result."""
    device, dtype = images[0].device, images[0].dtype
    shapes = [tuple(img.shape) for img in images]
    sizes = [img.numel() for img in images]
    host = torch.cat([to_uint8(img).flatten() for img in images]).cpu().split(sizes)
    decoded = [
        _libjpeg(t.view(s), q).flatten() for t, s, q in zip(host, shapes, qualities, strict=True)
    ]
    back = torch.cat(decoded).to(device)
    return [t.view(s).to(dtype) / 255.0 for t, s in zip(back.split(sizes), shapes, strict=True)]


def nvjpeg_roundtrip(images: Sequence[Tensor], qualities: Sequence[int]) -> list[Tensor]:
    """Encode and decode CUDA ``(3, h, w)`` images in [0, 1] with nvJPEG, batched (module docstring)."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    device, dtype = images[0].device, images[0].dtype
    u8 = [to_uint8(img).contiguous() for img in images]
    by_quality: dict[int, list[int]] = {}
    for i, q in enumerate(qualities):
        by_quality.setdefault(int(q), []).append(i)
    # torchvision's encoder runs on a private stream; make sure the 8-bit images are ready
    # (pytorch/vision#8587: older releases could read them early)
    torch.cuda.current_stream(device).synchronize()
    encoded: list[Tensor | None] = [None] * len(u8)
    for quality, members in by_quality.items():
        streams = encode_jpeg([u8[i] for i in members], quality=quality)
        for i, stream in zip(members, cast(list[Tensor], streams), strict=True):
            encoded[i] = stream
    chunks = [t for t in encoded if t is not None]
    lengths = [int(t.numel()) for t in chunks]
    # The one device-to-host copy: decode_jpeg only reads bitstreams from host memory. The copy
    # also drains the current stream, so the decoder (which writes on its own stream into freshly
    # allocated blocks) cannot overwrite memory that queued kernels still read
    # (pytorch/vision#9606).
    host = torch.cat(chunks).cpu()
    decoded = decode_jpeg(list(host.split(lengths)), mode=ImageReadMode.RGB, device=device)
    return [d.to(dtype) / 255.0 for d in cast(list[Tensor], decoded)]


class JPEG(DegradationOp):
    """JPEG compression with a per-sample integer quality.

    ``impl="codec"`` (default) runs a real JPEG codec on the tensor's device (module docstring;
    ``cuda_codec`` picks nvJPEG or host libjpeg for CUDA tensors); it is not differentiable.
    ``impl="differentiable"`` runs Kornia's differentiable JPEG model (4:2:0, IJG tables, batched, any
    device) on images edge padded to :func:`jpeg_extent` (libjpeg also pads partial MCUs by edge
    replication). ``impl="auto"`` (formerly: the model on CUDA, the codec on CPU) is rejected.

    ``quality_rounding`` maps the continuous draw ``q ~ U[quality)`` to the integer quality the codec
    takes: ``"round"`` to nearest (so both ends of the range get half weight), as OpenCV <= 4.5.4
    did with the float that BasicSR / GFP-GAN pass to ``cv2.imencode``; ``"truncate"`` (default)
    ``int(q)`` (the upper end is never drawn), as GPEN's and CodeFormer's current code do.
    """

    def __init__(
        self,
        quality: Sequence[float] = (60.0, 100.0),
        impl: JpegImpl = "codec",
        prob: float = 1.0,
        quality_rounding: QualityRounding = "truncate",
        cuda_codec: CudaCodec = "nvjpeg",
    ) -> None:
        super().__init__()
        self.quality = _range("quality", quality, low=1.0)
        if self.quality[1] > 100:
            raise ValueError(f"quality must be within [1, 100], got {list(self.quality)}")
        if impl == "auto":
            raise ValueError(
                "impl='auto' was removed (it chose the differentiable model on CUDA and the codec "
                f"on CPU); set impl to one of {JPEG_IMPLS}: 'codec' (real JPEG on every device, the "
                "default) or 'differentiable' (Kornia's model)"
            )
        if impl not in JPEG_IMPLS:
            raise ValueError(f"impl must be one of {JPEG_IMPLS}, got {impl!r}")
        if quality_rounding not in QUALITY_ROUNDINGS:
            raise ValueError(
                f"quality_rounding must be one of {QUALITY_ROUNDINGS}, got {quality_rounding!r}"
            )
        if cuda_codec not in CUDA_CODECS:
            raise ValueError(f"cuda_codec must be one of {CUDA_CODECS}, got {cuda_codec!r}")
        self.impl: JpegImpl = impl
        self.quality_rounding: QualityRounding = quality_rounding
        self.cuda_codec: CudaCodec = cuda_codec
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        applied = uniform(gen, 0, 1) < self.prob
        q = uniform(gen, *self.quality)
        # Python's round() rounds half to even like OpenCV's cvRound; ties have probability 0 anyway
        quality = round(q) if self.quality_rounding == "round" else int(q)
        return {"applied": float(applied), "quality": float(quality)}

    def codec(self, images: Sequence[Tensor], qualities: Sequence[int]) -> list[Tensor]:
        """Real-codec round trip of ``(3, h, w)`` images in [0, 1] (sizes may differ) on their device."""
        if not images[0].is_cuda:
            return libjpeg_roundtrip(images, qualities)
        if self.cuda_codec == "libjpeg":
            return host_libjpeg_roundtrip(images, qualities)
        return nvjpeg_roundtrip(images, qualities)

    @staticmethod
    def _model(x: Tensor, quality: Tensor, extent: tuple[int, int]) -> Tensor:
        """Kornia's model on ``x`` edge padded to ``extent`` (multiples of 16), cropped back."""
        from kornia.enhance import jpeg_codec_differentiable

        h, w = x.shape[-2:]
        xp = F.pad(x, (0, extent[1] - w, 0, extent[0] - h), mode="replicate")
        out: Tensor = jpeg_codec_differentiable(xp, quality)
        return out[..., :h, :w]

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        x = x.clamp(0, 1)
        if self.impl == "differentiable":
            h, w = x.shape[-2:]
            quality = p["quality"].to(x.device, x.dtype)
            out = self._model(x, quality, (jpeg_extent(h), jpeg_extent(w)))
        else:
            qualities = [int(q) for q in p["quality"].tolist()]
            out = torch.stack(self.codec(list(x.unbind(0)), qualities))
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, out, x)

    def degrade_packed(
        self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor, sizes: Tensor
    ) -> Tensor:
        x = x.clamp(0, 1)
        if self.impl == "differentiable":
            # One model call for the canvas: re-establish the edge padding (earlier ops leave the
            # padding unspecified), extend the canvas to every member's extent, run, crop.
            hc, wc = x.shape[-2:]
            extent = (
                max(jpeg_extent(int(sizes[:, 0].max())), -(-hc // 16) * 16),
                max(jpeg_extent(int(sizes[:, 1].max())), -(-wc // 16) * 16),
            )
            quality = p["quality"].to(x.device, x.dtype)
            out = self._model(edge_pad(x, sizes), quality, extent)
        else:
            # The real codec sees each sample at its own size (libjpeg's own MCU padding); the
            # crops go through the codec together and are written back into the canvas.
            hw = [(int(h), int(w)) for h, w in sizes.tolist()]
            crops = [x[j, :, :h, :w] for j, (h, w) in enumerate(hw)]
            qualities = [int(q) for q in p["quality"].tolist()]
            out = x.clone()
            for j, ((h, w), dec) in enumerate(zip(hw, self.codec(crops, qualities), strict=True)):
                out[j, :, :h, :w] = dec
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, out, x)
