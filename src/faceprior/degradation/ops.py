"""Degradation operations.

Every op draws its parameters *per sample* from that sample's own ``torch.Generator`` (``sample``) and
applies them to a batch of same-sized images on the device (``degrade``). Ops that change the image size
subclass :class:`ResizeOp`; the pipeline then groups samples by size. Images are float RGB in [0, 1].
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

    def sample(self, gen: torch.Generator) -> dict[str, float]:
        """Draw this op's parameters for one sample."""
        raise NotImplementedError

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        """Apply to ``x`` (a group of samples with indices ``idx`` in the batch)."""
        raise NotImplementedError


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


def _sample_noise(
    shape: Sequence[int], seeds: Tensor, device: torch.device, gray: Tensor
) -> Tensor:
    """Standard normal noise, one generator per sample; gray samples share noise over channels."""
    out = []
    for seed, is_gray in zip(seeds.tolist(), gray.tolist(), strict=True):
        g = torch.Generator(device=device).manual_seed(int(seed))
        c, h, w = shape
        n = torch.randn((1 if is_gray else c, h, w), generator=g, device=device)
        out.append(n.expand(c, h, w))
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


class JPEG(DegradationOp):
    """JPEG compression with per-sample integer quality.

    ``impl="differentiable"`` uses Kornia's differentiable JPEG model (4:2:0, IJG tables; works on any
    device, batched); ``impl="codec"`` runs the real libjpeg codec through ``torchvision.io`` (GPU
    nvJPEG when the tensor is on CUDA), one image at a time, and is not differentiable.
    ``impl="auto"`` picks the differentiable model on CUDA and the codec on CPU, where libjpeg is
    several times faster than the model.
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

    def degrade(self, x: Tensor, p: dict[str, Tensor], ctx: Context, idx: Tensor) -> Tensor:
        quality = p["quality"].to(x.device, x.dtype)
        x = x.clamp(0, 1)
        impl = self.impl
        if impl == "auto":
            impl = "differentiable" if x.is_cuda else "codec"
        if impl == "differentiable":
            from kornia.enhance import jpeg_codec_differentiable

            out = jpeg_codec_differentiable(x, quality)
        else:
            from torchvision.io import decode_jpeg, encode_jpeg

            outs = []
            for i in range(x.shape[0]):
                u8 = (x[i] * 255.0).round().to(torch.uint8)
                data = encode_jpeg(u8, quality=int(quality[i]))
                outs.append(decode_jpeg(data, device=x.device).to(x.dtype) / 255.0)
            out = torch.stack(outs)
        keep = p["applied"].to(x.device).view(-1, 1, 1, 1) > 0
        return torch.where(keep, out, x)


class ColorShift(DegradationOp):
    """Per-channel additive shift in ``[-shift, shift]`` (8-bit units), with probability ``prob``."""

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
        from torchvision.transforms import functional as TF

        outs = []
        for i in range(x.shape[0]):
            img = x[i]
            if p["applied"][i] > 0:
                code = int(p["order"][i])
                for fn_id in ((code >> 6) & 3, (code >> 4) & 3, (code >> 2) & 3, code & 3):
                    if fn_id == 0:
                        img = TF.adjust_brightness(img, float(p["brightness"][i]))
                    elif fn_id == 1:
                        img = TF.adjust_contrast(img, float(p["contrast"][i]))
                    elif fn_id == 2:
                        img = TF.adjust_saturation(img, float(p["saturation"][i]))
                    else:
                        img = TF.adjust_hue(img, float(p["hue"][i]))
            outs.append(img)
        return torch.stack(outs)


def to_gray(x: Tensor) -> Tensor:
    """OpenCV's RGB→gray weights (0.299, 0.587, 0.114), repeated over three channels."""
    y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return y.expand(-1, 3, -1, -1).contiguous()


class Grayscale(DegradationOp):
    """Convert to gray with probability ``prob``; ``gt_too`` also turns the ground truth gray."""

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
