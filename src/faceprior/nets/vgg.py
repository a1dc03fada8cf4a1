"""VGG19 feature extractor for perceptual and style losses (features before ReLU)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

#: torchvision's VGG19 ``features`` indices of every named layer.
_VGG19_NAMES = [
    "conv1_1",
    "relu1_1",
    "conv1_2",
    "relu1_2",
    "pool1",
    "conv2_1",
    "relu2_1",
    "conv2_2",
    "relu2_2",
    "pool2",
    "conv3_1",
    "relu3_1",
    "conv3_2",
    "relu3_2",
    "conv3_3",
    "relu3_3",
    "conv3_4",
    "relu3_4",
    "pool3",
    "conv4_1",
    "relu4_1",
    "conv4_2",
    "relu4_2",
    "conv4_3",
    "relu4_3",
    "conv4_4",
    "relu4_4",
    "pool4",
    "conv5_1",
    "relu5_1",
    "conv5_2",
    "relu5_2",
    "conv5_3",
    "relu5_3",
    "conv5_4",
    "relu5_4",
    "pool5",
]
VGG19_LAYER_INDEX = {name: i for i, name in enumerate(_VGG19_NAMES)}


class VGG19FeatureExtractor(nn.Module):
    """Frozen VGG19 returning the activations of selected layers.

    Layer names follow ``conv{block}_{n}`` / ``relu{block}_{n}`` / ``pool{block}``; ``conv*`` outputs
    are features *before* ReLU (the GFP-GAN/ESRGAN convention). The network is truncated after the
    deepest requested layer. Inputs are RGB in [-1, 1] when ``range_norm`` (else [0, 1]) and are
    normalised with the ImageNet mean/std when ``use_input_norm``. The trunk starts randomly
    initialised; pretrained weights are loaded from a state dict with :meth:`load_torchvision_state`
    (networks never open files: :func:`faceprior.checkpoints.load_vgg19_weights` reads the file).

    Args:
        layers: names of the layers to return.
        use_input_norm: normalise with ImageNet statistics.
        range_norm: map inputs from [-1, 1] to [0, 1] first.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"),
        use_input_norm: bool = True,
        range_norm: bool = True,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYER_INDEX]
        if unknown or not layers:
            raise ValueError(
                f"unknown VGG19 layers {unknown}; valid names: {list(VGG19_LAYER_INDEX)}"
            )
        from torchvision.models.vgg import cfgs, make_layers

        self.layers = list(layers)
        # Only the convolutional trunk: the 120M-parameter classifier is never built.
        features = make_layers(cfgs["E"], batch_norm=False)
        last = max(VGG19_LAYER_INDEX[name] for name in layers)
        self.features = features[: last + 1]
        for i, module in enumerate(self.features):
            if isinstance(module, nn.ReLU):
                self.features[i] = nn.ReLU(inplace=False)
        self.features.eval()
        self.requires_grad_(False)
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer(
            "mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False
        )
        self._wanted = {VGG19_LAYER_INDEX[name]: name for name in layers}

    def trunk_state(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The entries of a torchvision ``vgg19`` state dict that belong to the kept trunk.

        Keys are torchvision's (``features.<i>.weight``); the classifier and the layers past the
        truncation point are dropped, the result is keyed as :attr:`features`.
        """
        kept = len(self.features)
        return {
            k.removeprefix("features."): v
            for k, v in state.items()
            if k.startswith("features.") and int(k.split(".")[1]) < kept
        }

    def load_torchvision_state(self, state: Mapping[str, Tensor]) -> None:
        """Load torchvision ``vgg19`` weights into the kept trunk (strict for the kept layers)."""
        self.features.load_state_dict(self.trunk_state(state), strict=True)

    def train(self, mode: bool = True) -> VGG19FeatureExtractor:
        """The extractor always stays in eval mode."""
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._wanted:
                out[self._wanted[i]] = x
        return out
