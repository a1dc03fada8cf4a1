"""Shared pieces of the metric classes: 8-bit quantisation and a per-image-mean base class.

Every metric in :mod:`faceprior.metrics` scores **saved 8-bit images** (protocol §0): float
network outputs are clipped to [0, 1] and rounded to 8 bits exactly as writing a PNG does before
any metric sees them. Dataset-level values are the mean of per-image values (never a pooled MSE);
the running sum and count are torchmetrics states reduced with ``sum`` across DDP ranks.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric


def to_uint8_range(images: Tensor) -> Tensor:
    """Return ``images`` as float64 values on the 8-bit grid [0, 255].

    ``uint8`` tensors are taken as already quantised. Floating tensors are RGB in [0, 1] and are
    quantised like a saved PNG: ``round(clamp(x, 0, 1) * 255)`` computed in float32 (round half to
    even, as ``numpy.round`` in BasicSR's ``tensor2img``).
    """
    if images.dtype == torch.uint8:
        return images.to(torch.float64)
    if not images.is_floating_point():
        raise TypeError(f"expected uint8 or floating images, got {images.dtype}")
    return torch.round(images.float().clamp(0.0, 1.0) * 255.0).to(torch.float64)


def check_images(images: Tensor, name: str, channels: int | None = 3) -> None:
    """Raise ``ValueError`` unless ``images`` is a ``(B, C, H, W)`` batch of ``channels``."""
    if images.ndim != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(images.shape)}")


def check_pair(preds: Tensor, target: Tensor) -> None:
    """Raise ``ValueError`` unless ``preds`` and ``target`` are RGB batches of the same shape."""
    check_images(preds, "preds")
    check_images(target, "target")
    if preds.shape != target.shape:
        raise ValueError(
            f"preds and target shapes differ: {tuple(preds.shape)} vs {tuple(target.shape)}"
        )


class PerImageMeanMetric(Metric):
    """Mean over all images of a per-image score, synchronised across processes.

    Subclasses implement :meth:`per_image`, which maps a batch to one float64 value per image.
    ``update`` adds those values to a float64 running sum and an image count (both reduced with
    ``sum`` across DDP ranks), so ``compute`` returns the same mean whatever the batching or the
    number of processes.

    Class attributes every metric defines: ``higher_is_better`` (torchmetrics), ``default_name``
    and ``convention`` (the reference implementation it reproduces); :attr:`metric_name` is the
    key used in logs and by the CLI.
    """

    is_differentiable = False
    full_state_update = False
    default_name: str = ""
    convention: str = ""

    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        #: the per-image values of the latest ``update`` (not a synchronised state)
        self.last_values: Tensor | None = None

    @property
    def metric_name(self) -> str:
        """Name of the metric in logs, configs and the CLI (e.g. ``psnr_y``)."""
        return self.default_name

    @abstractmethod
    def per_image(self, preds: Tensor, target: Tensor | None = None) -> Tensor:
        """Score each image of the batch; returns a float64 tensor of shape ``(B,)``."""

    def update(self, preds: Tensor, target: Tensor | None = None) -> None:
        """Accumulate the per-image values of a batch (see :meth:`per_image` for the inputs)."""
        values = self.per_image(preds, target).to(self.total.device, torch.float64)
        self.last_values = values.detach()
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        """Mean of the per-image values seen so far (NaN before any update)."""
        return self.total / self.count

    def protocol(self) -> dict[str, Any]:
        """How the value is produced (convention, settings, weight files) for result records."""
        return {"convention": self.convention, "higher_is_better": self.higher_is_better}


RANDOM_CAVEAT = (
    "randomly initialised {what} (seed {seed}, no weight file): values compare methods scored "
    "with the same seed only, never published numbers"
)


def random_caveat(network: object, what: str) -> str | None:
    """The caveat for a metric network built by a ``random_*`` factory (None for real weights)."""
    seed = getattr(network, "random_init_seed", None)
    return None if seed is None else RANDOM_CAVEAT.format(what=what, seed=seed)


class FrozenNetwork:
    """A network used by a metric, kept out of ``nn.Module`` registration.

    Metrics that run a network (LPIPS, FID, identity, landmarks) hold it in this wrapper so
    that the network's weights are not part of the metric's (and hence the LightningModule's)
    ``parameters()``, ``state_dict()`` or DDP gradient synchronisation, and ``.train()`` on the
    owner never switches it out of eval mode. :class:`NetworkMetricMixin` moves it with the
    metric on ``.to(device)``. Copies share the network (``Metric.clone`` deep-copies metrics
    once per stage and benchmark; the frozen weights need no duplicate), so moving one clone
    moves the network of all of them.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval().requires_grad_(False)

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenNetwork:
        return self

    def device(self, fallback: torch.device | None = None) -> torch.device:
        """Device of the network's first parameter or buffer (``fallback``/CPU if none)."""
        for tensor in (*self.module.parameters(), *self.module.buffers()):
            return tensor.device
        return fallback or torch.device("cpu")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the network without autograd."""
        with torch.no_grad():
            return self.module(*args, **kwargs)


class NetworkMetricMixin(Metric):
    """Moves every :class:`FrozenNetwork` attribute along with the metric (``_apply``)."""

    def _apply(self, fn: Callable[..., Any], exclude_state: Sequence[str] = "") -> nn.Module:
        out = super()._apply(fn, exclude_state)
        for value in vars(self).values():
            if isinstance(value, FrozenNetwork):
                value.module._apply(fn)
        return out
