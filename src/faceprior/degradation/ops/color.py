"""Colour ops: channel shift, brightness/contrast/saturation/hue jitter, gray, 8-bit quantisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from faceprior.degradation.ops.base import Context, DegradationOp, _prob, _range, uniform


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
    """``torchvision`` ``rgb_to_grayscale`` weights (0.2989, 0.587, 0.114), one channel.

    Hand-written for exact torchvision parity: its luma weights are not OpenCV's/Kornia's.
    """
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: Tensor, b: Tensor, ratio: Tensor) -> Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp(0, 1)


def _rgb2hsv(x: Tensor) -> Tensor:
    """``torchvision``'s RGB→HSV (same formulas), batched.

    Hand-written for exact torchvision parity: Kornia's ``adjust_hue`` (hue in radians) is up to
    1.3e-6 off torchvision's ``adjust_hue``, this is bit-identical.
    """
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
    """``torchvision.transforms.functional.adjust_{name}`` with one factor per sample of ``x``.

    Hand-written for torchvision parity (GFP-GAN's ``color_jitter_pt`` calls torchvision): Kornia's
    ``adjust_brightness`` is additive, its ``adjust_contrast`` does not blend with the mean and its
    ``adjust_saturation`` works in HSV (max differences 1.0, 0.25, 0.41 on random images).
    """
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
    """OpenCV's RGB→gray (weights 0.299, 0.587, 0.114), repeated over three channels.

    Kornia's ``rgb_to_grayscale``: within 6e-8 of ``cv2.cvtColor(COLOR_RGB2GRAY)`` on float32 (the
    three-term sum written out here was within 1.2e-7).
    """
    from kornia.color import rgb_to_grayscale

    y: Tensor = rgb_to_grayscale(x)
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
