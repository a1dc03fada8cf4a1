"""One registry of every file a configuration can need: networks, loss networks, metric files.

Each :class:`WeightsFile` records the file name, where it comes from, what it is for and which
configuration keys make a run need it. Entries that faceprior can build and load strictly are
:class:`CheckpointSpec` (a ``WeightsFile`` that also names the architecture, its arguments and
the container layout); :data:`REGISTRY` holds those, :data:`WEIGHTS` holds everything.

A SHA-256 is recorded only when it is known from a trustworthy source; ``None`` means "not
recorded" (networks are then checked by keys and shapes only). torchvision-style file names
carry the first hex digits of the SHA-256, kept as ``sha256_prefix``. Classes are referenced by
name and imported from :mod:`faceprior.nets` only when a network is built.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from faceprior.checkpoints.errors import UnknownCheckpointError

#: what a file is for: a network to restore with (or start from), a loss network, a metric file
Purpose = Literal["network", "loss", "metric"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)

_GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases/download"
_GPEN_MODELS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models"
_GFPGAN_DRIVE = "https://drive.google.com/drive/folders/17rLiFzcUMoQuhLnptDsKolegHWwJOnHu"
_TORCHVISION = "https://download.pytorch.org/models"
_BASICSR_DRIVE = "https://drive.google.com/drive/folders/13cWIQyHX3iNmZRJ5v8v3kdyrT9RBTAi9"
_VQFR_DRIVE = "https://drive.google.com/drive/folders/1k3RCSliF6PsujCMIdCD1hNM63EozlDIZ"
_LPIPS_REPO = "https://github.com/richzhang/PerceptualSimilarity"
_NIQE_RELEASE = "http://live.ece.utexas.edu/research/quality/niqe_release.zip"

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
class WeightsFile:
    """One file that some configuration needs.

    Attributes:
        name: registry name.
        filename: file name looked for in the weights directory.
        url: official direct download URL, or None when only a share page exists.
        sha256: known SHA-256 of the official file, or None when not known.
        sha256_prefix: leading hex digits of the SHA-256 encoded in the file name, if any.
        page: where a human gets the file when there is no direct URL.
        note: what the file is and who uses it.
        purposes: what the file is for (see :data:`Purpose`).
        config_keys: configuration keys that make a run need the file: a key holding its path or
            name, ``key=value`` when that value of the key selects it, or a whole metric entry.
        bundled: ``<package>/<path>`` of a copy installed with a Python package (then the
            weights directory is not consulted and nothing needs downloading).
    """

    name: str
    filename: str
    url: str | None
    sha256: str | None = None
    sha256_prefix: str | None = None
    page: str | None = None
    note: str = ""
    purposes: tuple[Purpose, ...] = ()
    config_keys: tuple[str, ...] = ()
    bundled: str | None = None

    def source(self) -> str:
        """Where to get the file: the direct URL, else the share page."""
        return self.url or self.page or "(no public location recorded)"

    def check_digest(self, digest: str) -> bool | None:
        """Whether a SHA-256 agrees with the registered hash and prefix; None: nothing to check."""
        digest = digest.lower()
        checks = []
        if self.sha256:
            checks.append(digest == self.sha256.lower())
        if self.sha256_prefix:
            checks.append(digest.startswith(self.sha256_prefix.lower()))
        return all(checks) if checks else None


def build_network(arch: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Instantiate ``faceprior.nets.<arch>(**kwargs)`` with readable errors."""
    import faceprior.nets

    cls = getattr(faceprior.nets, arch, None)
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise ValueError(f"unknown architecture {arch!r}: not a faceprior.nets network")
    try:
        module: nn.Module = cls(**dict(kwargs))
    except TypeError as exc:
        raise ValueError(f"cannot build {signature(arch, kwargs)}: {exc}") from exc
    return module


def signature(arch: str, kwargs: Mapping[str, Any]) -> str:
    """A configuration written as a call: ``Arch(k=v, ...)``."""
    return f"{arch}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


@dataclass(frozen=True, kw_only=True)
class CheckpointSpec(WeightsFile):
    """A released network file that faceprior can build and load strictly.

    Attributes (besides those of :class:`WeightsFile`):
        arch: class name in :mod:`faceprior.nets`.
        kwargs: constructor arguments (official names).
        layout: container layout of the official file (see ``layouts.LAYOUTS``).
        alternatives: other candidate constructor arguments, tried in order when ``kwargs``
            does not fit the file (for configurations the official sources leave open).
    """

    arch: str
    kwargs: Mapping[str, Any]
    layout: str
    alternatives: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def candidate_kwargs(self) -> list[dict[str, Any]]:
        """``kwargs`` followed by the alternatives."""
        return [dict(self.kwargs), *(dict(a) for a in self.alternatives)]

    def signature(self, kwargs: Mapping[str, Any] | None = None) -> str:
        """``Arch(k=v, ...)`` for ``kwargs`` (default: the registered ones)."""
        return signature(self.arch, kwargs or self.kwargs)

    def build(self, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
        """Instantiate the network (on the current default device; wrap in
        ``with torch.device('meta')`` for a free shape-only build)."""
        return build_network(self.arch, kwargs or self.kwargs)


def _network_specs() -> list[CheckpointSpec]:
    gfpgan_d = (
        "File name as used by third-party training code; published only in the GFP-GAN Google "
        "Drive / Weiyun share (no direct URL); layout assumed 'params' (BasicSR)."
    )
    init = ("model.init_weights",)
    return [
        CheckpointSpec(
            "GFPGANv1", "GFPGANv1.pth", f"{_GFPGAN_RELEASES}/v0.1.0/GFPGANv1.pth",
            arch="GFPGANv1", kwargs=_GFPGAN_V1, layout="params_ema", purposes=("network",),
            config_keys=init, note="Paper model (with colourisation); original FIR architecture.",
        ),
        CheckpointSpec(
            "GFPGANCleanv1-NoCE-C2", "GFPGANCleanv1-NoCE-C2.pth",
            f"{_GFPGAN_RELEASES}/v0.2.0/GFPGANCleanv1-NoCE-C2.pth",
            arch="GFPGANv1Clean", kwargs=_GFPGAN_CLEAN, layout="params_ema", purposes=("network",),
            config_keys=init, note="GFP-GAN v1.2 (no colourisation), clean architecture.",
        ),
        CheckpointSpec(
            "GFPGANv1.3", "GFPGANv1.3.pth", f"{_GFPGAN_RELEASES}/v1.3.0/GFPGANv1.3.pth",
            arch="GFPGANv1Clean", kwargs=_GFPGAN_CLEAN, layout="params_ema", purposes=("network",),
            config_keys=init,
        ),
        CheckpointSpec(
            "GFPGANv1.4", "GFPGANv1.4.pth", f"{_GFPGAN_RELEASES}/v1.3.0/GFPGANv1.4.pth",
            arch="GFPGANv1Clean", kwargs=_GFPGAN_CLEAN, layout="params_ema", purposes=("network",),
            config_keys=init,
        ),
        CheckpointSpec(
            "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k",
            "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
            f"{_GFPGAN_RELEASES}/v0.1.0/StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
            arch="StyleGAN2Generator",
            kwargs={"out_size": 512, "num_style_feat": 512, "num_mlp": 8, "channel_multiplier": 1,
                    "resample_kernel": [1, 3, 3, 1], "lr_mlp": 0.01, "narrow": 1},
            layout="params_ema", purposes=("network",),
            config_keys=("model.decoder_prior",),
            note="StyleGAN2 prior for GFPGANv1 training (official decoder_load_path).",
        ),
        CheckpointSpec(
            "arcface_resnet18", "arcface_resnet18.pth",
            f"{_GFPGAN_RELEASES}/v0.1.0/arcface_resnet18.pth",
            arch="ArcFaceResNet18", kwargs={"block": "IRBlock", "layers": [2, 2, 2, 2], "use_se": False},
            layout="bare", purposes=("loss", "metric"),
            config_keys=("model.generator_losses.identity.weights_path",
                         "metrics.idd.weights=arcface_resnet18"),
            note="GFP-GAN identity-loss network and the ID-distance metric's ArcFace ResNet-18 "
            "(very likely the same file as VQFR's resnet18_110).",
        ),
        CheckpointSpec(
            "GFPGANv1_net_d", "GFPGANv1_net_d.pth", None,
            arch="StyleGAN2Discriminator",
            kwargs={"out_size": 512, "channel_multiplier": 1, "resample_kernel": [1, 3, 3, 1],
                    "stddev_group": 4, "narrow": 1},
            layout="params", page=_GFPGAN_DRIVE, purposes=("network",), note=gfpgan_d,
        ),
        *(
            CheckpointSpec(
                f"GFPGANv1_net_d_{part}", f"GFPGANv1_net_d_{part}.pth", None,
                arch="FacialComponentDiscriminator", kwargs={}, layout="params",
                page=_GFPGAN_DRIVE, purposes=("network",), note=gfpgan_d,
            )
            for part in ("left_eye", "right_eye", "mouth")
        ),
        CheckpointSpec(
            "GPEN-BFR-512", "GPEN-BFR-512.pth", f"{_GPEN_MODELS}/GPEN-BFR-512.pth",
            arch="GPENGenerator",
            kwargs={"size": 512, "style_dim": 512, "n_mlp": 8, "channel_multiplier": 2, "narrow": 1},
            layout="bare", purposes=("network",),
            config_keys=("model.init_weights",),
        ),
        CheckpointSpec(
            "GPEN-BFR-256", "GPEN-BFR-256.pth", f"{_GPEN_MODELS}/GPEN-BFR-256.pth",
            arch="GPENGenerator",
            kwargs={"size": 256, "style_dim": 512, "n_mlp": 8, "channel_multiplier": 1, "narrow": 0.5},
            layout="bare", purposes=("network",),
        ),
        CheckpointSpec(
            "GPEN-BFR-512-D", "GPEN-BFR-512-D.pth", f"{_GPEN_MODELS}/GPEN-BFR-512-D.pth",
            arch="GPENDiscriminator", kwargs={"size": 512, "channel_multiplier": 2, "narrow": 1},
            layout="bare", purposes=("network",),
            config_keys=("model.discriminator_prior",),
            note="Configuration assumed equal to the generator's (unverified).",
        ),
        CheckpointSpec(
            "GPEN-BFR-256-D", "GPEN-BFR-256-D.pth", f"{_GPEN_MODELS}/GPEN-BFR-256-D.pth",
            arch="GPENDiscriminator", kwargs={"size": 256, "channel_multiplier": 1, "narrow": 1},
            layout="bare", purposes=("network",),
            note="narrow=1 per yangxy/GPEN#117; channel_multiplier unknown, 1 and 2 are tried.",
            alternatives=({"size": 256, "channel_multiplier": 2, "narrow": 1},),
        ),
        CheckpointSpec(
            "model_ir_se50", "model_ir_se50.pth", f"{_GPEN_MODELS}/model_ir_se50.pth",
            arch="IRSE50",
            kwargs={"input_size": 112, "num_layers": 50, "drop_ratio": 0.6, "mode": "ir_se"},
            layout="bare", purposes=("loss",),
            config_keys=("model.generator_losses.identity.weights_path",),
            note="GPEN identity-loss network (IR-SE-50 ArcFace).",
        ),
    ]  # fmt: skip


def _file_specs() -> list[WeightsFile]:
    lpips_heads = (
        "LPIPS v0.1 linear heads for the '{net}' backbone; installed with the lpips package"
    )
    return [
        WeightsFile(
            "stylegan2_concat_ffhq512", "stylegan2_concat_ffhq512.pth", None,
            page="not released: train it with `faceprior-train experiment=gpen_prior_ffhq512`, then "
            "`faceprior-weights export <run>/checkpoints/last.ckpt stylegan2_concat_ffhq512.pth`",
            purposes=("network",), config_keys=("model.decoder_prior",),
            note="GPEN stage-1 prior (concatenating StyleGAN2, params_ema layout) that "
            "experiment=gpen_paper_ffhq512 reads; experiment=gpen_two_stage makes and hands it over",
        ),
        WeightsFile(
            "vgg19", "vgg19-dcbb9e9d.pth", f"{_TORCHVISION}/vgg19-dcbb9e9d.pth",
            sha256_prefix="dcbb9e9d", purposes=("loss",),
            config_keys=("model.generator_losses.perceptual.weights_path",),
            note="torchvision ImageNet VGG19: perceptual and style losses",
        ),
        WeightsFile(
            "vgg16", "vgg16-397923af.pth", f"{_TORCHVISION}/vgg16-397923af.pth",
            sha256_prefix="397923af", purposes=("metric",), config_keys=("metrics.lpips.net=vgg",),
            note="torchvision ImageNet VGG16: LPIPS 'vgg' backbone",
        ),
        WeightsFile(
            "alexnet", "alexnet-owt-7be5be79.pth", f"{_TORCHVISION}/alexnet-owt-7be5be79.pth",
            sha256_prefix="7be5be79", purposes=("metric",), config_keys=("metrics.lpips.net=alex",),
            note="torchvision ImageNet AlexNet: LPIPS 'alex' backbone",
        ),
        WeightsFile(
            "squeezenet1_1", "squeezenet1_1-b8a52dc0.pth",
            f"{_TORCHVISION}/squeezenet1_1-b8a52dc0.pth", sha256_prefix="b8a52dc0",
            purposes=("metric",), config_keys=("metrics.lpips.net=squeeze",),
            note="torchvision ImageNet SqueezeNet 1.1: LPIPS 'squeeze' backbone",
        ),
        *(
            WeightsFile(
                f"lpips_{net}", f"{net}.pth", None, page=_LPIPS_REPO, purposes=("metric",),
                config_keys=(f"metrics.lpips.net={net}",), bundled=f"lpips/weights/v0.1/{net}.pth",
                note=lpips_heads.format(net=net),
            )
            for net in ("vgg", "alex", "squeeze")
        ),
        WeightsFile(
            "pt_inception", "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            sha256_prefix="6726825d", purposes=("metric",), config_keys=("metrics.fid",),
            note="pytorch-fid FID-Inception (TF 2015-12-05 weights); SHA-256 from a third-party "
            "listing, prefix matches the file name",
        ),
        WeightsFile(
            "inception_FFHQ_512", "inception_FFHQ_512-f7b384ab.pth", None,
            sha256_prefix="f7b384ab", page=_BASICSR_DRIVE, purposes=("metric",),
            config_keys=("metrics.fid.reference_stats=inception_FFHQ_512",),
            note="BasicSR FID statistics of 50,000 FFHQ images at 512 ({'mean', 'cov'})",
        ),
        WeightsFile(
            "resnet18_110", "resnet18_110.pth", None, page=_VQFR_DRIVE, purposes=("metric",),
            config_keys=("metrics.idd.weights=resnet18_110",),
            note="arcface-pytorch resnet_face18 (CASIA-WebFace) used by VQFR's Deg. script",
        ),
        WeightsFile(
            "alignment_WFLW_4HG", "alignment_WFLW_4HG.pth",
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth",
            purposes=("metric",), config_keys=("metrics.lmd",),
            note="FAN/AWing 4-hourglass, WFLW 98 landmarks (LMD); VQFR ships the same name",
        ),
        WeightsFile(
            "niqe_pris_params", "niqe_pris_params.npz", None,
            sha256="2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
            page=_NIQE_RELEASE, purposes=("metric",), config_keys=("metrics.niqe",),
            bundled="faceprior/metrics/data/niqe_pris_params.npz",
            note="NIQE pristine model (BasicSR's .npz of the official modelparameters.mat); "
            "package data of faceprior, see faceprior/metrics/data/README.md",
        ),
    ]  # fmt: skip


#: Network checkpoints that faceprior builds and loads, by name.
REGISTRY: dict[str, CheckpointSpec] = {spec.name: spec for spec in _network_specs()}
#: the release a bare family name (``--model gfpgan`` / ``--model gpen``) stands for
DEFAULT_RELEASES: dict[str, str] = {"gfpgan": "GFPGANv1.4", "gpen": "GPEN-BFR-512"}

#: Every registered file (the networks first), by name.
WEIGHTS: dict[str, WeightsFile] = {
    **REGISTRY,
    **{spec.name: spec for spec in _file_specs()},
}


def list_specs() -> list[CheckpointSpec]:
    """All registered network checkpoints, in registry order."""
    return list(REGISTRY.values())


def list_weights(purpose: Purpose | None = None) -> list[WeightsFile]:
    """Every registered file (or those serving ``purpose``), in registry order."""
    return [w for w in WEIGHTS.values() if purpose is None or purpose in w.purposes]


def _find(name: str) -> WeightsFile | None:
    key = name.removesuffix(".pth").lower()
    for spec in WEIGHTS.values():
        by_file = spec.bundled is None and spec.filename.lower() == name.lower()
        if spec.name.lower() == key or by_file:
            return spec
    return None


def get_weights(name: str) -> WeightsFile:
    """Look up any registered file by name or file name (case-insensitive, ``.pth`` allowed)."""
    spec = _find(name)
    if spec is None:
        raise UnknownCheckpointError(
            f"unknown weights {name!r}; registered names: {', '.join(WEIGHTS)}"
        )
    return spec


def get_spec(name: str) -> CheckpointSpec:
    """Look up a network checkpoint by name (case-insensitive, ``.pth`` suffix allowed)."""
    spec = _find(name)
    if isinstance(spec, CheckpointSpec):
        return spec
    if spec is not None:
        raise UnknownCheckpointError(
            f"'{spec.name}' is a registered {'/'.join(spec.purposes)} file, not a network "
            f"checkpoint that faceprior builds; network checkpoints: {', '.join(REGISTRY)}"
        )
    raise UnknownCheckpointError(
        f"unknown checkpoint {name!r}; registered names: {', '.join(REGISTRY)}"
    )


@lru_cache(maxsize=64)
def _shapes_cached(arch: str, kwargs_json: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    with torch.device("meta"):
        module = build_network(arch, json.loads(kwargs_json))
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


def fitted_kwargs(spec: CheckpointSpec, state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """The configuration of ``spec`` to build for ``state_dict``: the candidate that fits its keys
    and shapes, else the entry's default (whose strict load then names what differs)."""
    return match_kwargs(spec, state_dict) or dict(spec.kwargs)


def identify(
    state_dict: Mapping[str, Tensor], archs: Collection[str] | None = None
) -> list[tuple[CheckpointSpec, dict[str, Any]]]:
    """Registry entries (with the fitting configuration) whose architecture fits ``state_dict``,
    among the architectures ``archs`` (class names) when given."""
    found = []
    for spec in REGISTRY.values():
        if archs is not None and spec.arch not in archs:
            continue
        kwargs = match_kwargs(spec, state_dict)
        if kwargs is not None:
            found.append((spec, kwargs))
    return found
