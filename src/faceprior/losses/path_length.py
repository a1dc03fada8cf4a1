"""StyleGAN2 path-length regularisation of the generator (lazy, as in GPEN's trainer).

The penalty asks that a fixed-size step in W moves the image by a fixed amount in every
direction: for random image-space directions ``y`` (Gaussian, scaled by ``1/sqrt(H·W)``), the
length ``‖J_wᵀ y‖`` of the Jacobian-vector product should stay near its running mean ``a``:
``E[(‖J_wᵀ y‖ − a)²]``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn


def _world_size() -> int:
    """Number of processes of the default group (1 when ``torch.distributed`` is not in use)."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


class PathLengthPenalty(nn.Module):
    """Lazy path-length penalty with a running mean of the path lengths.

    ``forward(images, latents)`` takes generated ``images`` ``(B, C, H, W)`` and the W+ latents
    ``(B, n_latent, D)`` they were synthesised from (``latents`` must be part of the graph, e.g.
    returned by the generator with ``return_latents=True``) and returns
    ``(weight · interval · penalty, logs)``, the term a recipe backpropagates in its own lazy
    regularisation step every ``interval`` iterations. The math follows rosinality's
    ``g_path_regularize`` (used unchanged by GPEN's ``train_simple.py``):

    * ``lengths_b = sqrt(mean_l Σ_d grad_{b,l,d}²)`` with ``grad = ∂Σ(images · noise)/∂latents``;
    * ``a_new = a + decay · (mean_b lengths_b − a)``; the batch mean is NOT detached, so, as in
      the official code, the gradient also flows through the running-mean update;
    * ``penalty = mean_b (lengths_b − a_new)²``; ``a_new`` (detached) becomes the stored mean.

    The gradient is computed in float32 with autocast disabled: the penalty is a squared
    difference of small quantities and the running mean accumulates over the whole run, so half
    precision would be both noisy and biased. The images are cast up (keeping the graph); the
    generator's own forward is whatever precision the caller ran it in.

    The running mean is the persistent buffer ``mean_path_length`` (saved in checkpoints, so a
    resumed run continues with the same target). Under DDP with ``sync_mean`` the VALUE of the
    batch mean used for the update is the mean over ranks while the gradient stays the local one,
    so every rank keeps the same running mean; a single process computes exactly the official
    formula. (Without the sync each rank would drift to its own running mean.)

    ``batch_shrink``: StyleGAN2 regularises on a smaller batch, ``B // batch_shrink`` samples
    (:meth:`path_batch`). GPEN's ``train_simple.py`` computes that shrunk batch size but never
    uses it (the regularisation step regenerates the full batch) and its preset uses 1; the
    caller decides how many samples to generate and passes them here. The returned term carries
    ``0 · images[0, 0, 0, 0]`` (the official trick that keeps every generator output in the graph,
    so DDP sees all parameters used).

    Args:
        weight: regularisation weight (``path_regularize``, 2 in StyleGAN2 / GPEN).
        interval: lazy-regularisation interval (``g_reg_every``); the term is scaled by it.
        decay: running-mean decay in ``(0, 1]``.
        batch_shrink: divisor of the batch for the regularisation samples (>= 1).
        sync_mean: average the batch mean over DDP ranks before updating the running mean.
    """

    mean_path_length: Tensor

    def __init__(
        self,
        weight: float = 2.0,
        interval: int = 4,
        decay: float = 0.01,
        batch_shrink: int = 2,
        sync_mean: bool = True,
    ) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"model.path_length.weight must be >= 0, got {weight}")
        if int(interval) != interval or interval < 1:
            raise ValueError(f"model.path_length.interval must be an integer >= 1, got {interval}")
        if not 0 < decay <= 1:
            raise ValueError(f"model.path_length.decay must be in (0, 1], got {decay}")
        if int(batch_shrink) != batch_shrink or batch_shrink < 1:
            raise ValueError(
                f"model.path_length.batch_shrink must be an integer >= 1, got {batch_shrink}"
            )
        self.weight = float(weight)
        self.interval = int(interval)
        self.decay = float(decay)
        self.batch_shrink = int(batch_shrink)
        self.sync_mean = bool(sync_mean)
        self.register_buffer("mean_path_length", torch.zeros((), dtype=torch.float32))

    def path_batch(self, batch: int) -> int:
        """Number of samples to generate for the regularisation step of a ``batch``-sized step."""
        return max(1, batch // self.batch_shrink)

    def _synced(self, batch_mean: Tensor) -> Tensor:
        """``batch_mean`` with the value of its mean over ranks and the local gradient."""
        world = _world_size()
        if not self.sync_mean or world <= 1:
            return batch_mean
        total = batch_mean.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return batch_mean + (total / world - batch_mean).detach()

    def forward(self, images: Tensor, latents: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted lazy penalty and logs; updates ``mean_path_length`` in place."""
        if images.dim() != 4 or latents.dim() != 3:
            raise ValueError(
                "path-length penalty expects images (B, C, H, W) and latents (B, n_latent, D), "
                f"got {tuple(images.shape)} and {tuple(latents.shape)}"
            )
        with torch.autocast(device_type=images.device.type, enabled=False):
            img = images.float()
            height, width = img.shape[-2:]
            noise = torch.randn_like(img) / math.sqrt(height * width)
            (grad,) = torch.autograd.grad((img * noise).sum(), latents, create_graph=True)
            lengths = torch.sqrt(grad.float().pow(2).sum(2).mean(1))
            batch_mean = self._synced(lengths.mean())
            running = self.mean_path_length.detach().clone()
            path_mean = running + self.decay * (batch_mean - running)
            penalty = (lengths - path_mean).pow(2).mean()
            term = self.weight * self.interval * penalty + 0 * img[0, 0, 0, 0]
        with torch.no_grad():
            self.mean_path_length.copy_(path_mean.detach())
        logs = {
            "path_penalty": penalty.detach(),
            "path_length": lengths.mean().detach(),
            "mean_path_length": self.mean_path_length.detach().clone(),
        }
        return term, logs
