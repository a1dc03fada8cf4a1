"""Small helpers of the GAN LightningModules: lazy-regularisation folding, grad norms, weight init."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.optim import Optimizer


def fold_lazy_regularization(optimizer: Optimizer, interval: int) -> Optimizer:
    """Scale ``lr`` by ``k/(k+1)`` and raise Adam betas to that power (``k`` = reg. interval)."""
    ratio = interval / (interval + 1)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * ratio
        if "betas" in group:
            group["betas"] = tuple(b**ratio for b in group["betas"])
    return optimizer


def load_generator_weights(net: nn.Module, path: str) -> None:
    """Load an official-layout generator file strictly (``params_ema`` preferred)."""
    from faceprior.checkpoints.io import load_file_into

    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"model.init_weights: '{file}' does not exist (expected an official GFP-GAN generator "
            "file such as GFPGANv1.4.pth; `faceprior-weights list` shows where to get one)"
        )
    load_file_into(net, file, f"model.init_weights {file}")


def grad_norm(params: Iterable[nn.Parameter]) -> Tensor | None:
    """Global L2 norm of the gradients (None when no parameter has one)."""
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else None
