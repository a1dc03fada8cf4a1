"""The container layouts official checkpoints come in, and conversion between them.

``params_ema`` / ``params``: BasicSR / GFP-GAN (``{'params_ema': state_dict}``; a training file
may hold both). ``g_ema``: rosinality / GPEN ``train_simple.py`` training checkpoints
(``{'g': ..., 'd': ..., 'g_ema': ...}``). ``bare``: the state dict itself (GPEN-BFR-*.pth,
arcface_resnet18.pth, model_ir_se50.pth). Any of them may carry DataParallel ``module.``
prefixes, which are removed on reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from faceprior.checkpoints.errors import CheckpointError

#: Layouts this package reads and writes.
LAYOUTS = ("params_ema", "params", "bare", "g_ema")
#: Wrapper keys looked for, in order, when no key is given (GFP-GAN's own rule: params_ema first).
WRAPPER_PRIORITY = ("params_ema", "params", "g_ema")
_PREFIX = "module."


@dataclass(frozen=True)
class ExtractedStateDict:
    """A state dict read from a checkpoint, with where it was found."""

    state_dict: dict[str, Tensor]
    layout: str
    prefix_removed: bool = False

    def describe(self) -> str:
        """Human-readable layout, e.g. ``params_ema`` or ``bare (module. prefix removed)``."""
        suffix = f" ({_PREFIX} prefix removed)" if self.prefix_removed else ""
        return f"{self.layout}{suffix}"


def is_state_dict(obj: Any) -> bool:
    """True for a non-empty mapping of ``str`` to tensors."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def strip_module_prefix(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], bool]:
    """Remove DataParallel/DDP ``module.`` prefixes when EVERY key has one (repeatedly)."""
    sd = dict(state_dict)
    removed = False
    while sd and all(k.startswith(_PREFIX) for k in sd):
        sd = {k[len(_PREFIX) :]: v for k, v in sd.items()}
        removed = True
    return sd, removed


def extract_state_dict(obj: Any, key: str | None = None) -> ExtractedStateDict:
    """Find the network state dict inside a loaded checkpoint object.

    Args:
        obj: what ``torch.load`` returned.
        key: take ``obj[key]`` (e.g. ``'params'``, ``'g_ema'``, ``'d'``); by default the first of
            ``params_ema``, ``params``, ``g_ema`` that exists, else the object itself if it is a
            bare state dict.

    Raises:
        CheckpointError: naming the top-level keys when no state dict is found.
    """
    if key is not None and key != "bare":
        if not isinstance(obj, Mapping) or key not in obj:
            found = list(obj.keys()) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"key {key!r} not found in the checkpoint; top level: {found}")
        candidate, layout = obj[key], key
    elif is_state_dict(obj):
        candidate, layout = obj, "bare"
    elif key == "bare":
        raise CheckpointError("the checkpoint is not a bare state dict (mapping of tensors)")
    else:
        wrapper = next((k for k in WRAPPER_PRIORITY if isinstance(obj, Mapping) and k in obj), None)
        if wrapper is None:
            top = list(obj.keys())[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(
                "no network state dict found: expected a bare state dict or one of the keys "
                f"{list(WRAPPER_PRIORITY)}; top level has {top}. Pass key=... to pick one."
            )
        candidate, layout = obj[wrapper], wrapper
    if not is_state_dict(candidate):
        raise CheckpointError(f"entry {layout!r} is not a state dict (mapping of names to tensors)")
    sd, removed = strip_module_prefix(candidate)
    return ExtractedStateDict(sd, layout, removed)


def wrap_state_dict(state_dict: Mapping[str, Tensor], layout: str) -> dict[str, Any]:
    """Put a state dict into the container of ``layout`` (see ``LAYOUTS``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}")
    sd = dict(state_dict)
    return sd if layout == "bare" else {layout: sd}
