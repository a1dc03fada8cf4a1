"""Paste-back masks in crop space: a feathered square, or face parsing (facexlib ParseNet).

A mask maker is called on the restored crops ``(N, 3, S, S)`` in ``[0, 1]`` and returns
``(N, 1, S, S)`` in ``[0, 1]``, computed as one batch on the crops' device; the restorer warps it
back with the faces. Which kind is used is chosen explicitly (``mask='feather'`` or
``mask='parse'`` with a local ParseNet file), printed and written to every sidecar; a missing
parser file is an error, never a quiet switch to the other kind.

The parsing mask follows facexlib's recipe (labels background, hat, ear-ring, neck, cloth dropped;
Gaussian blur sigma 11 px twice at 512 px) but multiplies by the feathered square instead of
zeroing a 10 px border, which leaves a hard step wherever hair or skin reaches the crop edge
(xinntao/facexlib PR #32).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from torch import Tensor, nn

from faceprior.inference.warp import (
    FEATHER_INSET,
    FEATHER_SIGMA,
    feather_mask,
    gaussian_kernel_size,
)

PARSENET_FILE = "parsing_parsenet.pth"
PARSENET_URL = "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth"
#: ParseNet labels left out of the face mask: background, hat, ear-ring, neck, cloth (facexlib)
PARSE_DROPPED = (0, 14, 16, 17, 18)
#: facexlib's blur: sigma 11 px at 512, applied twice (= one blur of sigma 11 * sqrt(2))
PARSE_SIGMA_512 = 11.0 * math.sqrt(2.0)
PARSE_SIZE = 512


class MaskMaker(Protocol):
    """What the restorer needs of a paste mask."""

    name: str

    def __call__(self, faces: Tensor) -> Tensor: ...


class FeatherMask:
    """The crop square eroded by ``inset`` and Gaussian-feathered by ``sigma`` (fractions of S)."""

    name = "feather"

    def __init__(self, inset: float = FEATHER_INSET, sigma: float = FEATHER_SIGMA) -> None:
        if not 0 <= inset < 0.5 or sigma <= 0:
            raise ValueError(
                f"feather mask needs 0 <= inset < 0.5 and sigma > 0, got {inset}, {sigma}"
            )
        self.inset, self.sigma = inset, sigma

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "inset": self.inset, "sigma": self.sigma}

    def __call__(self, faces: Tensor) -> Tensor:
        mask = feather_mask(faces.shape[-1], faces.device, self.inset, self.sigma)
        return mask.expand(faces.shape[0], -1, -1, -1)


def parsenet_weights(path: str | Path | None) -> Path:
    """The local ParseNet file: ``path``, ``<path>/parsing_parsenet.pth`` or the weights dir's."""
    if path is None:
        from faceprior.checkpoints.weights import weights_dir

        candidates = [weights_dir() / "facexlib" / PARSENET_FILE, weights_dir() / PARSENET_FILE]
    else:
        p = Path(path).expanduser()
        candidates = [p / PARSENET_FILE] if p.is_dir() else [p]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"face parsing weights not found: expected {' or '.join(map(str, candidates))}. Download "
        f"{PARSENET_FILE} from {PARSENET_URL} (nothing is downloaded automatically), or use the "
        "feathered mask (--mask feather)."
    )


def load_parsenet(path: Path, device: torch.device) -> nn.Module:
    """facexlib's ``ParseNet(512, 512, 19)`` with a local state dict (strict)."""
    from facexlib.parsing.parsenet import ParseNet

    net = ParseNet(in_size=PARSE_SIZE, out_size=PARSE_SIZE, parsing_ch=19)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    return net.eval().to(device)


class ParseMask:
    """Face-parsing paste mask from facexlib's ParseNet (local weights), feathered at the edge.

    Args:
        weights: the ParseNet file or its folder.
        device: where the parser runs (move with :meth:`to`).
        feather: the square that fades the mask out before the crop edge.
    """

    name = "parse"

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        feather: FeatherMask | None = None,
    ) -> None:
        self.weights = parsenet_weights(weights)
        self.device = torch.device(device)
        self.net = load_parsenet(self.weights, self.device)
        self.feather = feather or FeatherMask()

    def to(self, device: torch.device) -> ParseMask:
        self.device = device
        self.net = self.net.to(device)
        return self

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "weights": str(self.weights), "dropped_labels": PARSE_DROPPED}

    @torch.inference_mode()
    def labels(self, faces: Tensor) -> Tensor:
        """ParseNet's label map ``(N, 512, 512)`` of crops in ``[0, 1]``."""
        x = faces.float()
        if x.shape[-1] != PARSE_SIZE:
            x = F.interpolate(
                x, size=(PARSE_SIZE, PARSE_SIZE), mode="bilinear", align_corners=False
            )
        logits = self.net(x * 2.0 - 1.0)[0]
        return logits.argmax(dim=1)

    def __call__(self, faces: Tensor) -> Tensor:
        labels = self.labels(faces)
        keep = torch.ones_like(labels, dtype=torch.float32)
        for label in PARSE_DROPPED:
            keep[labels == label] = 0.0
        sigma = PARSE_SIGMA_512
        k = gaussian_kernel_size(sigma)
        soft = gaussian_blur2d(keep[:, None], (k, k), (sigma, sigma), border_type="constant")
        size = faces.shape[-1]
        if size != PARSE_SIZE:
            soft = F.interpolate(soft, size=(size, size), mode="bilinear", antialias=True)
        return (soft * self.feather(faces)).clamp(0.0, 1.0)


def make_mask(kind: str, weights: str | Path | None, device: torch.device) -> MaskMaker:
    """``feather`` or ``parse`` (which needs a local ParseNet file)."""
    if kind == "feather":
        return FeatherMask()
    if kind == "parse":
        return ParseMask(weights, device)
    raise ValueError(f"unknown mask {kind!r}; choose 'feather' or 'parse'")
