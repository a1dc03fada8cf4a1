"""Degradation operations.

Every op draws its parameters *per sample* from that sample's own ``torch.Generator`` (``sample``) and
applies them to a batch of same-sized images on the device (``degrade``), or to a packed canvas of
samples of different sizes (``degrade_packed``, see :mod:`faceprior.degradation.packing`). Ops that
change the image size subclass :class:`ResizeOp` and are run by the pipeline. Images are float RGB in
[0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceprior.degradation.kernels import (
    KERNEL_TYPES,
    bivariate_kernels,
    filter2d_fft,
    motion_kernels,
)
from faceprior.degradation.packing import edge_pad, size_groups

Range = tuple[float, float]


def _range(name: str, value: Sequence[float], low: float | None = None) -> Range:
    """Validate a ``[min, max]`` pair from the config and return it as floats."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a [min, max] pair of numbers, got {value!r}") from err
    if lo > hi:
        raise ValueError(f"{name} must satisfy min <= max, got [{lo}, {hi}]")
    if low is not None and lo < low:
        raise ValueError(f"{name} must be >= {low}, got [{lo}, {hi}]")
    return lo, hi


def _prob(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    """One draw from U[lo, hi) using ``gen``."""
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))


def draw_seed(gen: torch.Generator) -> int:
    """A 62-bit seed for a generator that will draw noise on the device."""
    return int(torch.randint(0, 2**62, (), generator=gen))


@dataclass
class Context:
    """State shared by the ops of one pipeline call."""

    gt: Tensor  # the (possibly modified) ground truth, (B, C, H, W)
    size: tuple[int, int]  # original (H, W)
    extras: dict[str, Tensor] = field(default_factory=dict)


class DegradationOp(nn.Module):
    """Base class: ``sample`` per-sample parameters, ``degrade`` a batch with them."""

    #: The op maps every pixel through the same per-sample function (no neighbours, no image
    #: statistics, no random field), so it can run on a packed canvas unchanged.
    pointwise: bool = False

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        """Draw this op's parameters for one sample."""
        raise NotImplementedError

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        """Apply to ``x`` (a group of samples with indices ``idx`` in the batch)."""
        raise NotImplementedError

    def degrade_packed(
        self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor, sizes: Tensor
    ) -> Tensor:
        """Apply to a packed canvas: sample ``j`` is valid in ``x[j, :, :h_j, :w_j]``.

        ``sizes`` is the ``(n, 2)`` CPU tensor of valid ``(h, w)``; only the valid regions of the
        result are used. The default runs :meth:`degrade` on the whole canvas for pointwise ops and
        otherwise on each group of same-sized samples cropped out of it (exactly the ``groups``
        result). Ops that need neither override it with a batched version.
        """
        if self.pointwise:
            return self.degrade(x, p, ctx, idx)
        out = x.clone()
        for (h, w), members in size_groups(sizes).items():
            sel = torch.tensor(members)
            sub = x[sel.to(x.device), :, :h, :w]
            res = self.degrade(sub, {k: v[sel] for k, v in p.items()}, ctx, idx[sel])
            out[sel.to(x.device), :, :h, :w] = res
        return out


class ResizeOp(DegradationOp):
    """An op that changes the image size; ``target_size`` gives the per-sample output size."""

    mode: str = "bilinear"
    antialias: bool = False

    def target_size(
        self, p: dict[str, float], in_size: tuple[int, int], ctx: Context
    ) -> tuple[int, int]:
        raise NotImplementedError

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        raise TypeError("resize ops are run by the pipeline")


class RandomBlur(DegradationOp):
    """Mixed Gaussian-family blur with per-sample kernel type, widths and rotation.

    ``kernel_list``/``kernel_prob`` choose among :data:`KERNEL_TYPES`; isotropic kernels use
    ``sigma_y = sigma_x`` and no rotation. Generalized/plateau kernels draw their shape ``β`` half of
    the time below 1 and half above, within ``beta_gaussian``/``beta_plateau``.

    ``reference_size``: when set, ``kernel_size`` and the sigmas are given for images of that side and
    are scaled to the actual image side (e.g. the 512-px GFP-GAN ranges applied to 64-px faces blur
    as much *relative to the face* as they do at 512). Sampled parameters are recorded at the
    reference scale. ``None`` (default) uses the values as given, in pixels.
    """

    def __init__(
        self,
        kernel_size: int = 41,
        kernel_list: Sequence[str] = ("iso", "aniso"),
        kernel_prob: Sequence[float] = (0.5, 0.5),
        sigma_x: Sequence[float] = (0.1, 10.0),
        sigma_y: Sequence[float] = (0.1, 10.0),
        rotation: Sequence[float] = (-math.pi, math.pi),
        beta_gaussian: Sequence[float] = (0.5, 4.0),
        beta_plateau: Sequence[float] = (1.0, 2.0),
        prob: float = 1.0,
        reference_size: int | None = None,
    ) -> None:
        super().__init__()
        if int(kernel_size) % 2 != 1 or int(kernel_size) < 3:
            raise ValueError(f"kernel_size must be an odd integer >= 3, got {kernel_size}")
        if reference_size is not None and int(reference_size) < 1:
            raise ValueError(f"reference_size must be a positive image side, got {reference_size}")
        self.reference_size = None if reference_size is None else int(reference_size)
        unknown = [k for k in kernel_list if k not in KERNEL_TYPES]
        if unknown:
            raise ValueError(
                f"kernel_list has unknown kernel types {unknown}; valid: {KERNEL_TYPES}"
            )
        if len(kernel_prob) != len(kernel_list) or abs(sum(kernel_prob) - 1.0) > 1e-6:
            raise ValueError(
                f"kernel_prob must have one probability per kernel_list entry summing to 1, "
                f"got {list(kernel_prob)} for {list(kernel_list)}"
            )
        self.kernel_size = int(kernel_size)
        self.kernel_list = [str(k) for k in kernel_list]
        self.kernel_prob = torch.tensor([float(p) for p in kernel_prob], dtype=torch.float64)
        self.sigma_x = _range("sigma_x", sigma_x, low=1e-3)
        self.sigma_y = _range("sigma_y", sigma_y, low=1e-3)
        self.rotation = _range("rotation", rotation)
        self.beta_gaussian = _range("beta_gaussian", beta_gaussian, low=1e-3)
        self.beta_plateau = _range("beta_plateau", beta_plateau, low=1e-3)
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        applied = uniform(gen, 0, 1) < self.prob
        choice = int(torch.multinomial(self.kernel_prob, 1, generator=gen))
        name = self.kernel_list[choice]
        sx = uniform(gen, *self.sigma_x)
        iso = name.endswith("iso") and not name.endswith("aniso")
        sy = sx if iso else uniform(gen, *self.sigma_y)
        theta = 0.0 if iso else uniform(gen, *self.rotation)
        beta = 1.0
        if name.startswith("generalized"):
            lo, hi = self.beta_gaussian
            beta = uniform(gen, lo, 1.0) if uniform(gen, 0, 1) < 0.5 else uniform(gen, 1.0, hi)
        elif name.startswith("plateau"):
            lo, hi = self.beta_plateau
            beta = uniform(gen, lo, 1.0) if uniform(gen, 0, 1) < 0.5 else uniform(gen, 1.0, hi)
        return {
            "applied": float(applied),
            "kind": float(KERNEL_TYPES.index(name)),
            "sigma_x": sx,
            "sigma_y": sy,
            "theta": theta,
            "beta": beta,
        }

    def scale_for(self, side: int) -> float:
        """Factor from the reference scale to an image of ``side`` pixels (1 without a reference)."""
        return 1.0 if self.reference_size is None else side / self.reference_size

    def kernels(self, p: dict[str, Tensor], scale: float = 1.0) -> Tensor:
        """The ``(B, k, k)`` kernels for sampled parameters ``p``, spatially scaled by ``scale``."""
        half = (
            max(1, math.ceil((self.kernel_size // 2) * scale))
            if scale != 1.0
            else self.kernel_size // 2
        )
        return bivariate_kernels(
            2 * half + 1,
            p["sigma_x"] * scale,
            p["sigma_y"] * scale,
            p["theta"],
            p["kind"].long(),
            p["beta"],
        )

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        scale = self.scale_for(min(x.shape[-2:]))
        blurred = filter2d_fft(x, self.kernels(p, scale).to(x.device))
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, blurred, x)


class MotionBlur(DegradationOp):
    """Linear motion blur: per-sample angle (degrees) and direction, applied with ``prob``."""

    def __init__(
        self,
        kernel_size: int = 15,
        angle: Sequence[float] = (-180.0, 180.0),
        direction: Sequence[float] = (-1.0, 1.0),
        prob: float = 1.0,
    ) -> None:
        super().__init__()
        if int(kernel_size) % 2 != 1 or int(kernel_size) < 3:
            raise ValueError(f"kernel_size must be an odd integer >= 3, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.angle = _range("angle", angle)
        self.direction = _range("direction", direction)
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {
            "applied": float(uniform(gen, 0, 1) < self.prob),
            "angle": uniform(gen, *self.angle),
            "direction": uniform(gen, *self.direction),
        }

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        k = motion_kernels(self.kernel_size, p["angle"], p["direction"]).to(x.device)
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, filter2d_fft(x, k), x)


class RandomResize(ResizeOp):
    """Downscale by a per-sample factor ``r`` to ``(int(h // r), int(w // r))``.

    With the defaults this is OpenCV's ``INTER_LINEAR`` resize (bilinear, half-pixel centres, no
    antialiasing), the resampler of the GFP-GAN training pipeline.
    """

    def __init__(
        self, scale: Sequence[float] = (0.8, 8.0), mode: str = "bilinear", antialias: bool = False
    ) -> None:
        super().__init__()
        self.scale = _range("scale", scale, low=1e-3)
        if mode not in ("bilinear", "bicubic", "area", "nearest"):
            raise ValueError(f"mode must be bilinear, bicubic, area or nearest, got {mode!r}")
        self.mode = mode
        self.antialias = bool(antialias)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {"scale": uniform(gen, *self.scale)}

    def target_size(
        self, p: dict[str, float], in_size: tuple[int, int], ctx: Context
    ) -> tuple[int, int]:
        r = p["scale"]
        return max(1, int(in_size[0] // r)), max(1, int(in_size[1] // r))


class ResizeBack(ResizeOp):
    """Resize every sample back to the original ground-truth size."""

    def __init__(self, mode: str = "bilinear", antialias: bool = False) -> None:
        super().__init__()
        if mode not in ("bilinear", "bicubic", "area", "nearest"):
            raise ValueError(f"mode must be bilinear, bicubic, area or nearest, got {mode!r}")
        self.mode = mode
        self.antialias = bool(antialias)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {}

    def target_size(
        self, p: dict[str, float], in_size: tuple[int, int], ctx: Context
    ) -> tuple[int, int]:
        return ctx.size


def noise_field(
    seed: int, shape: Sequence[int], gray: bool = False, device: torch.device | str | None = None
) -> Tensor:
    """The standard normal noise ``(C, H, W)`` of one sample, float32.

    Drawn from a generator on ``device`` seeded with ``seed`` at the sample's own size, so it does not
    depend on the other samples of the batch; a gray sample draws one channel and repeats it.
    """
    c, h, w = (int(v) for v in shape)
    g = torch.Generator(device=device if device is not None else "cpu").manual_seed(int(seed))
    n = torch.randn((1 if gray else c, h, w), generator=g, device=device)
    return n.expand(c, h, w)


def _sample_noise(
    shape: Sequence[int], seeds: Tensor, device: torch.device, gray: Tensor
) -> Tensor:
    """Standard normal noise, one generator per sample; gray samples share noise over channels."""
    out = [
        noise_field(int(seed), shape, bool(is_gray), device)
        for seed, is_gray in zip(seeds.tolist(), gray.tolist(), strict=True)
    ]
    return torch.stack(out)


class GaussianNoise(DegradationOp):
    """Additive Gaussian noise, ``sigma`` in 8-bit units (per-sample), colour or gray, then clip."""

    def __init__(
        self,
        sigma: Sequence[float] = (0.0, 20.0),
        gray_prob: float = 0.0,
        prob: float = 1.0,
        clip: bool = True,
    ) -> None:
        super().__init__()
        self.sigma = _range("sigma", sigma, low=0.0)
        self.gray_prob = _prob("gray_prob", gray_prob)
        self.prob = _prob("prob", prob)
        self.clip = bool(clip)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {
            "applied": float(uniform(gen, 0, 1) < self.prob),
            "sigma": uniform(gen, *self.sigma),
            "gray": float(uniform(gen, 0, 1) < self.gray_prob),
            "seed": float(draw_seed(gen) >> 11),  # exact in float64
        }

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        noise = _sample_noise(x.shape[1:], p["seed"].long(), x.device, p["gray"] > 0)
        return self._add(x, noise, p)

    def degrade_packed(
        self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor, sizes: Tensor
    ) -> Tensor:
        # Each sample's noise is drawn at its own size from its own seed (as in ``degrade``), then
        # the whole canvas is updated at once.
        noise = torch.zeros(x.shape, device=x.device)
        c = x.shape[1]
        seeds, gray = p["seed"].long().tolist(), (p["gray"] > 0).tolist()
        for j, (h, w) in enumerate(sizes.tolist()):
            noise[j, :, :h, :w] = noise_field(seeds[j], (c, h, w), gray[j], x.device)
        return self._add(x, noise, p)

    def _add(self, x: Tensor, noise: Tensor, p: dict[str, Tensor]) -> Tensor:
        sigma = (p["sigma"] * p["applied"]).to(x.device, x.dtype).view(-1, 1, 1, 1) / 255.0
        out = x + noise.to(x.dtype) * sigma
        return out.clamp(0, 1) if self.clip else out


class PoissonNoise(DegradationOp):
    """Poisson (shot) noise: intensities become photon counts with ``255 / scale`` photons per unit.

    ``scale`` is drawn per sample from ``scale``; larger is noisier. Gray samples share the noise over
    the channels (computed on the luma).
    """

    def __init__(
        self,
        scale: Sequence[float] = (0.05, 3.0),
        gray_prob: float = 0.0,
        prob: float = 1.0,
        clip: bool = True,
    ) -> None:
        super().__init__()
        self.scale = _range("scale", scale, low=1e-6)
        self.gray_prob = _prob("gray_prob", gray_prob)
        self.prob = _prob("prob", prob)
        self.clip = bool(clip)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {
            "applied": float(uniform(gen, 0, 1) < self.prob),
            "scale": uniform(gen, *self.scale),
            "gray": float(uniform(gen, 0, 1) < self.gray_prob),
            "seed": float(draw_seed(gen) >> 11),
        }

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        outs = []
        for i in range(x.shape[0]):
            if p["applied"][i] <= 0:
                outs.append(x[i])
                continue
            g = torch.Generator(device=x.device).manual_seed(int(p["seed"][i]))
            img = x[i]
            if p["gray"][i] > 0:
                img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).unsqueeze(0)
            photons = 255.0 / float(p["scale"][i])
            noisy = torch.poisson(img.clamp_min(0) * photons, generator=g) / photons
            noise = (noisy - img).expand_as(x[i])
            outs.append(x[i] + noise)
        out = torch.stack(outs)
        return out.clamp(0, 1) if self.clip else out


def jpeg_extent(side: int) -> int:
    """Padded side for the differentiable JPEG model: a multiple of 16 with >= 3 px of edge padding.

    Kornia's model subsamples chroma with a 4-tap filter and upsamples it bilinearly, so pixels near
    the last MCU read one chroma sample / pixel beyond it. With at least 3 padding pixels before the
    end of the padded extent, the valid pixels no longer depend on what lies past it, so a sample
    gives the same result alone, in a same-size group or in a larger packed canvas.
    """
    return -(-(int(side) + 3) // 16) * 16


class JPEG(DegradationOp):
    """JPEG compression with per-sample integer quality.

    ``impl="differentiable"`` uses Kornia's differentiable JPEG model (4:2:0, IJG tables; works on any
    device, batched); images are edge padded to :func:`jpeg_extent` first (libjpeg also pads partial
    MCUs by edge replication). ``impl="codec"`` runs the real libjpeg codec through
    ``torchvision.io`` (GPU nvJPEG when the tensor is on CUDA), one image at a time at its own size,
    and is not differentiable. ``impl="auto"`` picks the differentiable model on CUDA and the codec on
    CPU, where libjpeg is several times faster than the model.
    """

    def __init__(
        self, quality: Sequence[float] = (60.0, 100.0), impl: str = "auto", prob: float = 1.0
    ):
        super().__init__()
        self.quality = _range("quality", quality, low=1.0)
        if self.quality[1] > 100:
            raise ValueError(f"quality must be within [1, 100], got {list(self.quality)}")
        if impl not in ("auto", "differentiable", "codec"):
            raise ValueError(f"impl must be 'auto', 'differentiable' or 'codec', got {impl!r}")
        self.impl = impl
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {
            "applied": float(uniform(gen, 0, 1) < self.prob),
            "quality": float(int(uniform(gen, *self.quality))),
        }

    def resolved_impl(self, x: Tensor) -> str:
        """``differentiable`` or ``codec`` for a tensor on ``x``'s device."""
        if self.impl == "auto":
            return "differentiable" if x.is_cuda else "codec"
        return self.impl

    @staticmethod
    def _codec(img: Tensor, quality: int) -> Tensor:
        """One ``(C, h, w)`` image in [0, 1] through libjpeg (8-bit rounding, encode, decode)."""
        from torchvision.io import decode_jpeg, encode_jpeg

        u8 = (img * 255.0).round().to(torch.uint8)
        data = encode_jpeg(u8, quality=quality)  # nvJPEG for a CUDA tensor
        # decode_jpeg reads the bytes from host memory (and decodes on ``device``)
        return decode_jpeg(data.cpu(), device=img.device).to(img.dtype) / 255.0

    @staticmethod
    def _model(x: Tensor, quality: Tensor, extent: tuple[int, int]) -> Tensor:
        """Kornia's model on ``x`` edge padded to ``extent`` (multiples of 16), cropped back."""
        from kornia.enhance import jpeg_codec_differentiable

        h, w = x.shape[-2:]
        xp = F.pad(x, (0, extent[1] - w, 0, extent[0] - h), mode="replicate")
        out: Tensor = jpeg_codec_differentiable(xp, quality)
        return out[..., :h, :w]

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        quality = p["quality"].to(x.device, x.dtype)
        x = x.clamp(0, 1)
        if self.resolved_impl(x) == "differentiable":
            h, w = x.shape[-2:]
            out = self._model(x, quality, (jpeg_extent(h), jpeg_extent(w)))
        else:
            qualities = p["quality"].tolist()
            out = torch.stack([self._codec(x[i], int(qualities[i])) for i in range(x.shape[0])])
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, out, x)

    def degrade_packed(
        self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor, sizes: Tensor
    ) -> Tensor:
        x = x.clamp(0, 1)
        if self.resolved_impl(x) == "differentiable":
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
            # The real codec runs per image anyway: at each sample's own size (libjpeg's own MCU
            # padding), written back into the canvas.
            out = x.clone()
            qualities = p["quality"].tolist()
            for j, (h, w) in enumerate(sizes.tolist()):
                out[j, :, :h, :w] = self._codec(x[j, :, :h, :w], int(qualities[j]))
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, out, x)


class ColorShift(DegradationOp):
    """Per-channel additive shift in ``[-shift, shift]`` (8-bit units), with probability ``prob``."""

    pointwise = True

    def __init__(self, shift: float = 20.0, prob: float = 0.3) -> None:
        super().__init__()
        self.shift = float(shift)
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        applied = uniform(gen, 0, 1) < self.prob
        vals = [uniform(gen, -self.shift, self.shift) for _ in range(3)] if applied else [0.0] * 3
        return {"applied": float(applied), "r": vals[0], "g": vals[1], "b": vals[2]}

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        shift = torch.stack([p["r"], p["g"], p["b"]], dim=1).to(x.device, x.dtype) / 255.0
        out = (x + shift.view(-1, 3, 1, 1)).clamp(0, 1)
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, out, x)


class ColorJitter(DegradationOp):
    """Brightness, contrast, saturation and hue jitter in a per-sample random order, with ``prob``.

    Factors follow ``torchvision.transforms.functional.adjust_*`` semantics.
    """

    def __init__(
        self,
        brightness: Sequence[float] = (0.5, 1.5),
        contrast: Sequence[float] = (0.5, 1.5),
        saturation: Sequence[float] = (0.0, 1.5),
        hue: Sequence[float] = (-0.1, 0.1),
        prob: float = 0.3,
    ) -> None:
        super().__init__()
        self.brightness = _range("brightness", brightness, low=0.0)
        self.contrast = _range("contrast", contrast, low=0.0)
        self.saturation = _range("saturation", saturation, low=0.0)
        self.hue = _range("hue", hue)
        if not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"hue must be within [-0.5, 0.5], got {list(self.hue)}")
        self.prob = _prob("prob", prob)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        applied = uniform(gen, 0, 1) < self.prob
        order = torch.randperm(4, generator=gen).tolist()
        return {
            "applied": float(applied),
            "order": float(order[0] * 64 + order[1] * 16 + order[2] * 4 + order[3]),
            "brightness": uniform(gen, *self.brightness),
            "contrast": uniform(gen, *self.contrast),
            "saturation": uniform(gen, *self.saturation),
            "hue": uniform(gen, *self.hue),
        }

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        if not bool((p["applied"] > 0).any()):
            return x
        return self.degrade_batched(x, p) if x.is_cuda else self.degrade_per_image(x, p)

    @staticmethod
    def degrade_per_image(x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """``torchvision`` ``adjust_*`` image by image (GFP-GAN's ``color_jitter_pt``); CPU default."""
        from torchvision.transforms import functional as TF

        fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        outs = []
        for i in range(x.shape[0]):
            img = x[i]
            if p["applied"][i] > 0:
                code = int(p["order"][i])
                for fn_id in ((code >> 6) & 3, (code >> 4) & 3, (code >> 2) & 3, code & 3):
                    img = fns[fn_id](img, float(p[_JITTER[fn_id]][i]))
            outs.append(img)
        return torch.stack(outs)

    @staticmethod
    def degrade_batched(x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """Same result, batched: at each of the four positions of the order, every adjustment runs
        once on the samples that have it there (at most 16 calls whatever the batch size); the
        CUDA default, where per-image calls cost dozens of small kernel launches per sample."""
        applied = p["applied"] > 0
        code = p["order"].long()
        out = x.clone()
        for shift in (6, 4, 2, 0):
            fn = (code >> shift) & 3
            for fn_id, name in enumerate(_JITTER):
                members = torch.nonzero(applied & (fn == fn_id)).flatten()
                if members.numel() == 0:
                    continue
                sel = members.to(x.device)
                out[sel] = adjust_color(out[sel], name, p[name][members])
        return out


_JITTER = ("brightness", "contrast", "saturation", "hue")


def _tv_gray(x: Tensor) -> Tensor:
    """``torchvision`` ``rgb_to_grayscale`` weights (0.2989, 0.587, 0.114), one channel."""
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: Tensor, b: Tensor, ratio: Tensor) -> Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp(0, 1)


def _rgb2hsv(x: Tensor) -> Tensor:
    """``torchvision``'s RGB→HSV (same formulas), batched."""
    r, g, b = x.unbind(dim=-3)
    maxc = torch.max(x, dim=-3).values
    minc = torch.min(x, dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc = (maxc - r) / cr_divisor
    gc = (maxc - g) / cr_divisor
    bc = (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv2rgb(x: Tensor) -> Tensor:
    """``torchvision``'s HSV→RGB (same formulas), batched."""
    h, s, v = x.unbind(dim=-3)
    i = torch.floor(h * 6.0)
    f = (h * 6.0) - i
    i = i.to(dtype=torch.int32)
    p = torch.clamp((v * (1.0 - s)), 0.0, 1.0)
    q = torch.clamp((v * (1.0 - s * f)), 0.0, 1.0)
    t = torch.clamp((v * (1.0 - s * (1.0 - f))), 0.0, 1.0)
    i = i % 6
    mask = i.unsqueeze(dim=-3) == torch.arange(6, device=i.device).view(-1, 1, 1)
    a1 = torch.stack((v, q, p, p, t, v), dim=-3)
    a2 = torch.stack((t, v, v, q, p, p), dim=-3)
    a3 = torch.stack((p, p, t, v, v, q), dim=-3)
    a4 = torch.stack((a1, a2, a3), dim=-4)
    return torch.einsum("...ijk, ...xijk -> ...xjk", mask.to(dtype=x.dtype), a4)


def adjust_color(x: Tensor, name: str, factor: Tensor) -> Tensor:
    """``torchvision.transforms.functional.adjust_{name}`` with one factor per sample of ``x``."""
    f = factor.to(x.device, x.dtype).view(-1, 1, 1, 1)
    if name == "brightness":
        return _blend(x, torch.zeros_like(x), f)
    if name == "contrast":
        return _blend(x, _tv_gray(x).mean(dim=(-3, -2, -1), keepdim=True), f)
    if name == "saturation":
        return _blend(x, _tv_gray(x), f)
    if name == "hue":
        hsv = _rgb2hsv(x)
        h = (hsv[:, 0] + f.view(-1, 1, 1)) % 1.0
        return _hsv2rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=-3))
    raise ValueError(f"unknown colour adjustment {name!r}; valid: {_JITTER}")


def to_gray(x: Tensor) -> Tensor:
    """OpenCV's RGB→gray weights (0.299, 0.587, 0.114), repeated over three channels."""
    y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return y.expand(-1, 3, -1, -1).contiguous()


class Grayscale(DegradationOp):
    """Convert to gray with probability ``prob``; ``gt_too`` also turns the ground truth gray."""

    pointwise = True

    def __init__(self, prob: float = 0.01, gt_too: bool = False) -> None:
        super().__init__()
        self.prob = _prob("prob", prob)
        self.gt_too = bool(gt_too)

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {"applied": float(uniform(gen, 0, 1) < self.prob)}

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        if self.gt_too:
            sel = idx.to(ctx.gt.device)
            ctx.gt[sel] = torch.where(keep, to_gray(ctx.gt[sel]), ctx.gt[sel])
        return torch.where(keep, to_gray(x), x)


class Quantize(DegradationOp):
    """Round to 8-bit levels and clip: ``clamp(round(255·x), 0, 255) / 255``."""

    pointwise = True

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        return {}

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        return (x * 255.0).round().clamp(0, 255) / 255.0


def resize(x: Tensor, size: tuple[int, int], mode: str, antialias: bool) -> Tensor:
    """``F.interpolate`` with half-pixel centres (``align_corners=False``) for the modes that take it."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode in ("nearest", "area"):
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=antialias)
