"""Registry of the released official checkpoints: architecture, arguments, file, origin.

A SHA-256 is recorded only when it is known from a trustworthy source; ``None`` means "not
recorded" (the file is then checked by keys and shapes only). Classes are referenced by name
and imported from :mod:`faceprior.nets` only when a network is built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

from faceprior.checkpoints.errors import UnknownCheckpointError

_GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases/download"
_GPEN_MODELS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models"
_GFPGAN_DRIVE = "https://drive.google.com/drive/folders/17rLiFzcUMoQuhLnptDsKolegHWwJOnHu"

_GFPGAN_V1 = {
    "out_size": 512,
    "num_style_feat": 512,
    "channel_multiplier": 1,
    "resample_kernel": [1, 3, 3, 1],
    "decoder_load_path": None,
    "fix_decoder": True,
    "num_mlp": 8,
    "lr_mlp": 0.01,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 1,
    "sft_half": True,
}
_GFPGAN_CLEAN = {
    "out_size": 512,
    "num_style_feat": 512,
    "channel_multiplier": 2,
    "decoder_load_path": None,
    "fix_decoder": False,
    "num_mlp": 8,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 1,
    "sft_half": True,
}


@dataclass(frozen=True)
class CheckpointSpec:
    """One released file.

    Attributes:
        name: registry name (the file name without ``.pth``).
        arch: class name in :mod:`faceprior.nets`.
        kwargs: constructor arguments (official names).
        filename: file name to look for in the weights directory.
        url: official direct download URL, or None when the file is only on a share page.
        layout: container layout of the official file (see ``layouts.LAYOUTS``).
        sha256: known SHA-256 of the official file, or None.
        page: where a human gets the file (release page, share folder).
        note: caveats (unverified configuration, ...).
        alternatives: other candidate constructor arguments, tried in order when ``kwargs``
            does not fit the file (for configurations the official sources leave open).
    """

    name: str
    arch: str
    kwargs: Mapping[str, Any]
    filename: str
    url: str | None
    layout: str
    sha256: str | None = None
    page: str | None = None
    note: str = ""
    alternatives: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def candidate_kwargs(self) -> list[dict[str, Any]]:
        """``kwargs`` followed by the alternatives."""
        return [dict(self.kwargs), *(dict(a) for a in self.alternatives)]

    def signature(self, kwargs: Mapping[str, Any] | None = None) -> str:
        """``Arch(k=v, ...)`` for ``kwargs`` (default: the registered ones)."""
        args = ", ".join(f"{k}={v!r}" for k, v in (kwargs or self.kwargs).items())
        return f"{self.arch}({args})"

    def build(self, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
        """Instantiate the network (on the current default device; wrap in
        ``with torch.device('meta')`` for a free shape-only build)."""
        import faceprior.nets

        cls = getattr(faceprior.nets, self.arch, None)
        if not isinstance(cls, type) or not issubclass(cls, nn.Module):
            raise ValueError(f"unknown architecture {self.arch!r}: not a faceprior.nets network")
        try:
            module: nn.Module = cls(**dict(kwargs or self.kwargs))
        except TypeError as exc:
            raise ValueError(f"cannot build {self.signature(kwargs)}: {exc}") from exc
        return module

    def source(self) -> str:
        """Where to get the file: the direct URL, else the share page."""
        return self.url or self.page or "(no public location recorded)"


def _specs() -> list[CheckpointSpec]:
    gfpgan_d = (
        "File name as used by third-party training code; published only in the GFP-GAN Google "
        "Drive / Weiyun share (no direct URL); layout assumed 'params' (BasicSR)."
    )
    return [
        CheckpointSpec(
            "GFPGANv1", "GFPGANv1", _GFPGAN_V1, "GFPGANv1.pth",
            f"{_GFPGAN_RELEASES}/v0.1.0/GFPGANv1.pth", "params_ema",
            note="Paper model (with colourisation); original FIR architecture.",
        ),
        CheckpointSpec(
            "GFPGANCleanv1-NoCE-C2", "GFPGANv1Clean", _GFPGAN_CLEAN, "GFPGANCleanv1-NoCE-C2.pth",
            f"{_GFPGAN_RELEASES}/v0.2.0/GFPGANCleanv1-NoCE-C2.pth", "params_ema",
            note="GFP-GAN v1.2 (no colourisation), clean architecture.",
        ),
        CheckpointSpec(
            "GFPGANv1.3", "GFPGANv1Clean", _GFPGAN_CLEAN, "GFPGANv1.3.pth",
            f"{_GFPGAN_RELEASES}/v1.3.0/GFPGANv1.3.pth", "params_ema",
        ),
        CheckpointSpec(
            "GFPGANv1.4", "GFPGANv1Clean", _GFPGAN_CLEAN, "GFPGANv1.4.pth",
            f"{_GFPGAN_RELEASES}/v1.3.0/GFPGANv1.4.pth", "params_ema",
        ),
        CheckpointSpec(
            "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k", "StyleGAN2Generator",
            {"out_size": 512, "num_style_feat": 512, "num_mlp": 8, "channel_multiplier": 1,
             "resample_kernel": [1, 3, 3, 1], "lr_mlp": 0.01, "narrow": 1},
            "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
            f"{_GFPGAN_RELEASES}/v0.1.0/StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
            "params_ema", note="StyleGAN2 prior for GFPGANv1 training (decoder_load_path).",
        ),
        CheckpointSpec(
            "arcface_resnet18", "ArcFaceResNet18",
            {"block": "IRBlock", "layers": [2, 2, 2, 2], "use_se": False},
            "arcface_resnet18.pth", f"{_GFPGAN_RELEASES}/v0.1.0/arcface_resnet18.pth", "bare",
            note="GFP-GAN identity-loss network.",
        ),
        CheckpointSpec(
            "GFPGANv1_net_d", "StyleGAN2Discriminator",
            {"out_size": 512, "channel_multiplier": 1, "resample_kernel": [1, 3, 3, 1],
             "stddev_group": 4, "narrow": 1},
            "GFPGANv1_net_d.pth", None, "params", page=_GFPGAN_DRIVE, note=gfpgan_d,
        ),
        *(
            CheckpointSpec(
                f"GFPGANv1_net_d_{part}", "FacialComponentDiscriminator", {},
                f"GFPGANv1_net_d_{part}.pth", None, "params", page=_GFPGAN_DRIVE, note=gfpgan_d,
            )
            for part in ("left_eye", "right_eye", "mouth")
        ),
        CheckpointSpec(
            "GPEN-BFR-512", "GPENGenerator",
            {"size": 512, "style_dim": 512, "n_mlp": 8, "channel_multiplier": 2, "narrow": 1},
            "GPEN-BFR-512.pth", f"{_GPEN_MODELS}/GPEN-BFR-512.pth", "bare",
        ),
        CheckpointSpec(
            "GPEN-BFR-256", "GPENGenerator",
            {"size": 256, "style_dim": 512, "n_mlp": 8, "channel_multiplier": 1, "narrow": 0.5},
            "GPEN-BFR-256.pth", f"{_GPEN_MODELS}/GPEN-BFR-256.pth", "bare",
        ),
        CheckpointSpec(
            "GPEN-BFR-512-D", "GPENDiscriminator",
            {"size": 512, "channel_multiplier": 2, "narrow": 1},
            "GPEN-BFR-512-D.pth", f"{_GPEN_MODELS}/GPEN-BFR-512-D.pth", "bare",
            note="Configuration assumed equal to the generator's (unverified).",
        ),
        CheckpointSpec(
            "GPEN-BFR-256-D", "GPENDiscriminator",
            {"size": 256, "channel_multiplier": 1, "narrow": 1},
            "GPEN-BFR-256-D.pth", f"{_GPEN_MODELS}/GPEN-BFR-256-D.pth", "bare",
            note="narrow=1 per yangxy/GPEN#117; channel_multiplier unknown, 1 and 2 are tried.",
            alternatives=({"size": 256, "channel_multiplier": 2, "narrow": 1},),
        ),
        CheckpointSpec(
            "model_ir_se50", "IRSE50",
            {"input_size": 112, "num_layers": 50, "drop_ratio": 0.6, "mode": "ir_se"},
            "model_ir_se50.pth", f"{_GPEN_MODELS}/model_ir_se50.pth", "bare",
            note="GPEN identity-loss network (IR-SE-50 ArcFace).",
        ),
    ]  # fmt: skip


#: Released checkpoints by name.
REGISTRY: dict[str, CheckpointSpec] = {spec.name: spec for spec in _specs()}


def list_specs() -> list[CheckpointSpec]:
    """All registered checkpoints, in registry order."""
    return list(REGISTRY.values())


def get_spec(name: str) -> CheckpointSpec:
    """Look up a registry entry by name (case-insensitive, ``.pth`` suffix allowed)."""
    key = name.removesuffix(".pth").lower()
    for spec in REGISTRY.values():
        if spec.name.lower() == key:
            return spec
    raise UnknownCheckpointError(
        f"unknown checkpoint {name!r}; registered names: {', '.join(REGISTRY)}"
    )


@lru_cache(maxsize=64)
def _shapes_cached(arch: str, kwargs_json: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    spec = CheckpointSpec("", arch, json.loads(kwargs_json), "", None, "bare")
    with torch.device("meta"):
        module = spec.build()
    return tuple((k, tuple(v.shape)) for k, v in module.state_dict().items())


def expected_shapes(arch: str, kwargs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Ordered ``{key: shape}`` of ``arch(**kwargs)``'s state dict, built on the meta device."""
    return dict(_shapes_cached(arch, json.dumps(dict(kwargs), sort_keys=True)))


def _fits(expected: Mapping[str, tuple[int, ...]], state_dict: Mapping[str, Tensor]) -> bool:
    return len(expected) == len(state_dict) and all(
        k in state_dict and tuple(state_dict[k].shape) == s for k, s in expected.items()
    )


def match_kwargs(spec: CheckpointSpec, state_dict: Mapping[str, Tensor]) -> dict[str, Any] | None:
    """The first candidate configuration of ``spec`` whose keys and shapes fit exactly."""
    for kwargs in spec.candidate_kwargs():
        if _fits(expected_shapes(spec.arch, kwargs), state_dict):
            return kwargs
    return None


def identify(state_dict: Mapping[str, Tensor]) -> list[tuple[CheckpointSpec, dict[str, Any]]]:
    """Registry entries (with the fitting configuration) whose architecture fits ``state_dict``."""
    found = []
    for spec in REGISTRY.values():
        kwargs = match_kwargs(spec, state_dict)
        if kwargs is not None:
            found.append((spec, kwargs))
    return found
