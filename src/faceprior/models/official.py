"""Released models (GFP-GAN, GPEN) evaluated by registry name, with the platform's test loop.

``faceprior-eval model=official model.weights=GFPGANv1.4`` builds the registered architecture,
loads the released file from the weights directory (strict) and scores it on the configured
benchmarks exactly as a trained checkpoint would be scored (same metrics, results files, per-image
CSV). GFP-GAN runs with its stored constant noise by default (deterministic; the official
``GFPGANer`` draws fresh noise per call). Inputs whose side differs from the network's (e.g. 512 px
benchmarks with GPEN-BFR-256) are resized into the network and the output back, as the official
inference scripts do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from faceprior.models.base import RestorerBase

log = logging.getLogger(__name__)

#: how the file's hash is checked against the registry: error, warning, or not at all
VERIFY_CHOICES = ("strict", "warn", "off")


class OfficialRestorer(RestorerBase):
    """A released restoration network, for evaluation only.

    Args:
        weights: registry name (``GFPGANv1.4``, ``GFPGANv1.3``, ``GFPGANv1``, ``GPEN-BFR-512``,
            ``GPEN-BFR-256``, ...; ``faceprior-weights list --for network``).
        weights_dir: folder holding the file under its official name.
        verify: when the registry knows the released file's SHA-256: ``strict`` (a differing
            file is an error), ``warn`` (the default: say so loudly) or ``off``. The file's own
            hash is always recorded in the results protocol.
        randomize_noise: GFP-GAN only: fresh StyleGAN noise per call (official ``GFPGANer``)
            instead of the stored constant noise.
        resize_mode: interpolation for inputs of another size than the network's.
    """

    #: evaluation needs no training checkpoint (read by ``faceprior-eval``)
    needs_checkpoint = False

    def __init__(
        self,
        weights: str,
        weights_dir: str | None = None,
        metrics: Mapping[str, Metric] | None = None,
        test_metrics: Mapping[str, Metric] | None = None,
        verify: str = "warn",
        randomize_noise: bool = False,
        resize_mode: str = "bilinear",
    ) -> None:
        super().__init__(metrics=metrics, test_metrics=test_metrics)
        if verify not in VERIFY_CHOICES:
            raise ValueError(f"model.verify must be one of {VERIFY_CHOICES}, got {verify!r}")
        from faceprior.checkpoints.io import sha256sum
        from faceprior.checkpoints.registry import get_spec
        from faceprior.checkpoints.weights import load_pretrained, resolve_weights

        spec = get_spec(weights)
        path = resolve_weights(spec.name, weights_dir)
        digest = sha256sum(path)
        # None: the registry knows no published hash, so only the file's own hash is recorded
        released = None if spec.sha256 is None else digest.lower() == spec.sha256.lower()
        if released is None:
            log.info(
                "model.weights=%s: no published SHA-256 to compare; %s has %s",
                weights,
                path,
                digest,
            )
        elif not released:
            message = (
                f"model.weights={weights}: {path} is not the released file (sha256 {digest}, "
                f"released {spec.sha256}); results are not comparable with published numbers"
            )
            if verify == "strict":
                raise ValueError(message)
            if verify == "warn":
                log.warning(message)
        self.net = load_pretrained(spec.name, weights_dir, verify_hash=False)
        kwargs = dict(spec.kwargs)
        self.net_size = int(kwargs.get("out_size", kwargs.get("size", 0)) or 0)
        self.family = "gpen" if spec.arch.startswith("GPEN") else "gfpgan"
        self.randomize_noise = randomize_noise
        self.resize_mode = resize_mode
        #: what the results protocol records about the weights
        self.weights_info: dict[str, Any] = {
            "name": spec.name,
            "file": str(Path(path).resolve()),
            "sha256": digest,
            "released_file": released,
            "arch": spec.arch,
            "kwargs": kwargs,
        }

    def _resize(self, x: Tensor, size: int) -> Tensor:
        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        align = False if self.resize_mode in ("bilinear", "bicubic") else None
        return F.interpolate(x, size=(size, size), mode=self.resize_mode, align_corners=align)

    def restore(self, lq: Tensor) -> Tensor:
        side = lq.shape[-1]
        x = self._resize(lq, self.net_size) if self.net_size else lq
        if self.family == "gpen":
            out: Tensor = self.net(x)[0]
        else:
            out = self.net(x, return_rgb=False, randomize_noise=self.randomize_noise)[0]
        return self._resize(out, side)

    def training_step(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "model=official evaluates released weights; train with a training module "
            "(e.g. experiment=gfpgan_finetune or experiment=gpen_finetune)"
        )
