"""LPIPS (Zhang et al. 2018) with the PyPI ``lpips`` package, weights resolved locally.

Protocol §5: GFP-GAN/VQFR tables use ``lpips.LPIPS(net='vgg', version='0.1')`` on RGB inputs
scaled to [-1, 1] at full resolution; GPEN's training validation uses ``net='alex'``. The linear
heads ship inside the ``lpips`` package; the ImageNet backbone (torchvision ``vgg16`` /
``alexnet`` / ``squeezenet1_1`` file) is read from the weights directory instead of being
downloaded. ``random_backbone=True`` keeps a randomly initialised backbone (plumbing tests
only: the scores are meaningless and the protocol record says so).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from faceprior.metrics.base import (
    RANDOM_CAVEAT,
    FrozenNetwork,
    NetworkMetricMixin,
    PerImageMeanMetric,
    check_pair,
    to_uint8_range,
)
from faceprior.metrics.weights import ResolvedWeights, file_sha256, resolve_metric_weights

#: LPIPS network name -> metric weights registry name of its torchvision backbone
BACKBONES = {"vgg": "vgg16", "alex": "alexnet", "squeeze": "squeezenet1_1"}


def _load_backbone(model: nn.Module, weights: ResolvedWeights) -> None:
    """Copy torchvision ``features.*`` weights into the ``lpips`` backbone slices."""
    source = torch.load(weights.path, map_location="cpu", weights_only=True)
    backbone = model.get_submodule("net")
    target = backbone.state_dict()
    mapped, missing = {}, []
    for key in target:  # "slice{k}.{layer index}.{param}" <- "features.{layer index}.{param}"
        _, index, param = key.split(".")
        name = f"features.{index}.{param}"
        if name in source:
            mapped[key] = source[name]
        else:
            missing.append(name)
    if missing:
        raise ValueError(
            f"{weights.path} is not a torchvision {weights.spec.name} state dict: "
            f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}"
        )
    backbone.load_state_dict(mapped)


def build_lpips(
    net: str = "vgg", weights_dir: str | Path | None = None, random_backbone: bool = False
) -> tuple[nn.Module, ResolvedWeights | None]:
    """Build ``lpips.LPIPS(net, version='0.1')`` without network access.

    Returns the model (eval mode, frozen) and the resolved backbone file (None when random).

    Raises:
        MissingWeightsError: the backbone file is not in the weights directory.
    """
    if net not in BACKBONES:
        raise ValueError(f"net must be one of {sorted(BACKBONES)}, got {net!r}")
    weights = None if random_backbone else resolve_metric_weights(BACKBONES[net], weights_dir)
    import lpips  # deferred: imports torchvision models

    with warnings.catch_warnings():  # torchvision's deprecation notes about `pretrained=`
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if weights is not None:
        _load_backbone(model, weights)
    return model.eval().requires_grad_(False), weights


def _heads_file(net: str) -> Path:
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"


class LPIPS(NetworkMetricMixin, PerImageMeanMetric):
    """LPIPS v0.1 distance of 8-bit quantised RGB images scaled to [-1, 1]; lower is better.

    ``update(preds, target)`` takes RGB ``(B, 3, H, W)`` floats in [0, 1] (quantised like a saved
    PNG) or ``uint8``; images are scored at their full resolution. The network runs in float32
    on the metric's device.

    Args:
        net: ``'vgg'`` (GFP-GAN/VQFR tables) or ``'alex'`` (GPEN validation) or ``'squeeze'``.
        weights_dir: folder holding the torchvision backbone file (default: platform weights
            directory, ``$FACEPRIOR_WEIGHTS_DIR``).
        random_backbone: do not load ImageNet weights (tests/plumbing only).
    """

    higher_is_better = False
    default_name = "lpips"
    convention = "lpips 0.1.4 LPIPS(version='0.1'), RGB in [-1, 1], full resolution"

    def __init__(
        self,
        net: str = "vgg",
        weights_dir: str | Path | None = None,
        random_backbone: bool = False,
        random_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # a random backbone is drawn from its own seed: the same network in every run and stage
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_seed)
            model, self._weights = build_lpips(net, weights_dir, random_backbone)
        self.net = net
        self.random_seed = int(random_seed)
        self._network = FrozenNetwork(model)

    def per_image(self, preds: Tensor, target: Tensor | None = None) -> Tensor:
        """Per-image LPIPS, ``(B,)`` float64."""
        if target is None:
            raise ValueError("LPIPS is a full-reference metric: pass a target batch")
        check_pair(preds, target)
        device = self._network.device()
        x, y = (
            (to_uint8_range(t).to(device, torch.float32) / 255.0 - 0.5) / 0.5
            for t in (preds, target)
        )
        return self._network(x, y).reshape(-1).to(torch.float64)

    def protocol(self) -> dict[str, Any]:
        """Convention plus the backbone file and the packaged linear heads (SHA-256)."""
        record = super().protocol()
        record["net"] = self.net
        record["backbone"] = self._weights.describe() if self._weights else "random (untrained)"
        heads = _heads_file(self.net)
        record["heads"] = {"file": f"lpips/weights/v0.1/{heads.name}", "sha256": file_sha256(heads)}
        if self._weights is None:
            record["caveat"] = RANDOM_CAVEAT.format(
                what=f"{self.net} backbone", seed=self.random_seed
            )
        return record
