"""The restoration network seen by the pipeline, and the three ways to get one.

:class:`FaceModel` wraps any restorer as ``forward(x) -> y`` on RGB ``[-1, 1]`` crops and carries
what alignment needs: the crop side, the template and the family's call convention (GFP-GAN in
constant-noise mode, GPEN as is, a training module through its ``restore``).

:func:`load_face_model` accepts ``gfpgan`` / ``gpen`` with an official-layout file (without one:
GFPGANv1.4 / GPEN-BFR-512 from the weights directory), a registry
name (``GFPGANv1.4``, ``GPEN-BFR-512``, ...; file read from the weights directory or given), a
``.pth`` file of a registered architecture, or a Lightning ``.ckpt`` of any faceprior training
module (the EMA generator when there is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

#: architectures of :mod:`faceprior.nets` that restore faces, by family
RESTORER_ARCHS = {"GFPGANv1": "gfpgan", "GFPGANv1Clean": "gfpgan", "GPENGenerator": "gpen"}
FAMILIES = ("gfpgan", "gpen")


def family_of(net: nn.Module) -> str:
    """``gfpgan``, ``gpen``, ``module`` (a faceprior LightningModule) or ``generic``."""
    name = type(net).__name__
    if name in RESTORER_ARCHS:
        return RESTORER_ARCHS[name]
    if any(cls.__name__ == "RestorerBase" for cls in type(net).__mro__):
        return "module"
    return "generic"


def face_size_of(net: nn.Module) -> int | None:
    """The crop side a network works at, when the network says (``log_size``)."""
    log_size = getattr(net, "log_size", None)
    if isinstance(log_size, int):
        return 2**log_size
    inner = getattr(net, "eval_net", None)
    if isinstance(inner, nn.Module) and inner is not net:
        return face_size_of(inner)
    return None


class FaceModel(nn.Module):
    """A face restorer on aligned crops: ``forward(x)`` maps RGB ``[-1, 1]`` to ``[-1, 1]``.

    Args:
        net: GFPGANv1 / GFPGANv1Clean / GPENGenerator, a faceprior training module
            (``RestorerBase``), or any module ``net(x) -> y`` (or a tuple starting with ``y``).
        face_size: crop side; default: from the network (``log_size``).
        template: alignment template (``ffhq`` / ``gpen``); default: ``gpen`` for GPEN networks
            (the released GPEN-BFR files were trained on its loose crop), else ``ffhq``.
        name: shown and recorded.
        info: provenance recorded in sidecars (file, architecture, hash, ...).
        randomize_noise: GFP-GAN only: fresh StyleGAN noise per call (the official default)
            instead of the stored constant noise (deterministic; the default here).
    """

    def __init__(
        self,
        net: nn.Module,
        face_size: int | None = None,
        template: str | None = None,
        name: str = "",
        info: Mapping[str, Any] | None = None,
        randomize_noise: bool = False,
    ) -> None:
        super().__init__()
        self.net = net.eval()
        self.family = family_of(net)
        size = face_size or face_size_of(net)
        if not size:
            raise ValueError(
                f"cannot tell the face size of {type(net).__name__}; pass face_size (--face-size)"
            )
        self.face_size = int(size)
        self.template = template or ("gpen" if self.family == "gpen" else "ffhq")
        self.name = name or type(net).__name__
        self.info: dict[str, Any] = {"arch": type(net).__name__, **dict(info or {})}
        self.randomize_noise = randomize_noise

    def forward(self, x: Tensor) -> Tensor:
        if self.family == "gfpgan":
            out = self.net(x, return_rgb=False, randomize_noise=self.randomize_noise)[0]
        elif self.family == "module":
            restore = getattr(self.net, "restore")  # noqa: B009 (nn.Module attribute typing)
            out = restore(x)
        else:
            out = self.net(x)
            if isinstance(out, tuple | list):
                out = out[0]
        return out.clamp(-1.0, 1.0)

    def describe(self) -> dict[str, Any]:
        """What the sidecar records about the model."""
        return {
            "name": self.name,
            "family": self.family,
            "face_size": self.face_size,
            "template": self.template,
            "constant_noise": not self.randomize_noise if self.family == "gfpgan" else None,
            **self.info,
        }


def _restorer_matches(state_dict: Mapping[str, Tensor]) -> list[tuple[Any, dict[str, Any]]]:
    from faceprior.checkpoints.registry import identify

    return identify(state_dict, RESTORER_ARCHS)


def _file_info(path: Path) -> dict[str, Any]:
    from faceprior.checkpoints.io import sha256sum

    return {"file": str(path.resolve()), "sha256": sha256sum(path)}


def load_official_file(
    path: str | Path, name: str | None = None, family: str | None = None, key: str | None = None
) -> FaceModel:
    """A released-layout ``.pth`` (GFP-GAN ``params_ema``, GPEN bare, ...), built and loaded strictly.

    ``name`` (a registry entry) fixes the architecture; otherwise it is identified from the keys
    and shapes. ``family`` (``gfpgan`` / ``gpen``) checks that the file is what was asked for.
    """
    from faceprior.checkpoints.errors import CheckpointError
    from faceprior.checkpoints.io import load_state_dict_checked, load_state_dict_file
    from faceprior.checkpoints.registry import fitted_kwargs, get_spec

    path = Path(path).expanduser()
    extracted = load_state_dict_file(path, key=key)
    if name is not None:
        spec = get_spec(name)
        kwargs = fitted_kwargs(spec, extracted.state_dict)
    else:
        matches = _restorer_matches(extracted.state_dict)
        if not matches:
            raise CheckpointError(
                f"{path} [{extracted.describe()}] is not a GFPGANv1 / GFPGANv1Clean / GPEN-BFR "
                "network of a registered configuration (for a training run pass its .ckpt)"
            )
        by_file = [m for m in matches if m[0].filename.lower() == path.name.lower()]
        spec, kwargs = (by_file or matches)[0]
    if spec.arch not in RESTORER_ARCHS:
        raise CheckpointError(f"{spec.name} ({spec.arch}) is not a face restoration network")
    if family is not None and RESTORER_ARCHS[spec.arch] != family:
        raise CheckpointError(
            f"--model {family} but {path} holds a {spec.arch} ({RESTORER_ARCHS[spec.arch]}); "
            f"use --model {RESTORER_ARCHS[spec.arch]}"
        )
    net = spec.build(kwargs)
    load_state_dict_checked(net, extracted.state_dict, source=f"{path} [{extracted.describe()}]")
    info = {**_file_info(path), "registry_entry": spec.name, "layout": extracted.describe()}
    return FaceModel(net, name=spec.name, info=info)  # the crop side from the net


def _run_config(path: Path, config: str | Path | None, experiment: str | None) -> Any:
    """The training run's config: given, next to the run (``.hydra/config.yaml``), or composed."""
    from omegaconf import OmegaConf

    from faceprior.utils.config import CONFIG_DIR, setup_config_system

    setup_config_system()
    candidates = [Path(config)] if config else []
    candidates += [p / ".hydra" / "config.yaml" for p in (path.parent, path.parent.parent)]
    for candidate in candidates:
        if candidate.is_file():
            return OmegaConf.load(candidate), str(candidate)
    if experiment:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}"])
        GlobalHydra.instance().clear()
        return cfg, f"experiment={experiment} (composed: no .hydra/config.yaml next to {path})"
    return None, None


def load_training_checkpoint(
    path: str | Path,
    trusted: bool = False,
    config: str | Path | None = None,
    face_size: int | None = None,
    template: str = "ffhq",
) -> FaceModel:
    """The generator of a faceprior Lightning checkpoint (its EMA copy when the run kept one).

    The architecture is identified among the released configurations first; otherwise it is
    built from the run's config (``config``, the run folder's ``.hydra/config.yaml``, or the
    experiment recorded in the checkpoint). Faceprior's training data are FFHQ-aligned crops, so
    the template defaults to ``ffhq`` whatever the network family.
    """
    from faceprior.checkpoints.errors import CheckpointError
    from faceprior.checkpoints.io import (
        generator_state_dict,
        lightning_state_dict,
        load_state_dict_checked,
    )

    path = Path(path).expanduser()
    ckpt, state = lightning_state_dict(path, trusted)
    found = generator_state_dict(state)
    if found is None:
        heads = sorted({k.split(".", 1)[0] for k in state})
        raise CheckpointError(f"{path}: no generator (EMA or trained) in it (found {heads})")
    prefix, weights = found
    meta = ckpt.get("faceprior") or {}
    info: dict[str, Any] = {**_file_info(path), "weights": prefix, "checkpoint": dict(meta)}
    matches = _restorer_matches(weights)
    size = face_size
    if matches:
        spec, kwargs = matches[0]
        net = spec.build(kwargs)
        info["registry_arch"] = spec.signature(kwargs)
    else:
        cfg, where = _run_config(path, config, meta.get("experiment"))
        if cfg is None or "generator" not in cfg.get("model", {}):
            raise CheckpointError(
                f"{path}: the generator fits no released configuration and no run config was "
                "found (.hydra/config.yaml next to the run, or an experiment recorded in the "
                "checkpoint); pass the run's config.yaml with --config"
            )
        from hydra.utils import instantiate

        net = instantiate(cfg.model.generator)
        info["config"] = where
        size = size or face_size_of(net) or int(cfg.get("data", {}).get("size", 0) or 0) or None
    load_state_dict_checked(net, weights, source=f"{path} [{prefix}]")
    name = f"{path.stem} ({meta.get('experiment') or type(net).__name__})"
    return FaceModel(net, face_size=size, template=template, name=name, info=info)


def load_face_model(
    model: str,
    weights: str | Path | None = None,
    weights_dir: str | Path | None = None,
    trusted: bool = False,
    config: str | Path | None = None,
    face_size: int | None = None,
) -> FaceModel:
    """Resolve ``--model`` / ``--weights`` into a :class:`FaceModel` (see the module doc)."""
    from faceprior.checkpoints.weights import load_pretrained, locate_weights

    key = model.lower()
    if key in FAMILIES:
        if weights is not None:
            return load_official_file(weights, family=key)
        from faceprior.checkpoints.registry import DEFAULT_RELEASES

        model = DEFAULT_RELEASES[key]  # the family's newest release, from the weights directory
    as_path = Path(model).expanduser()
    if as_path.suffix.lower() == ".ckpt":
        return load_training_checkpoint(as_path, trusted, config, face_size)
    if as_path.is_file():
        return load_official_file(as_path)
    if weights is not None:
        return load_official_file(weights, name=model)
    from faceprior.checkpoints.registry import get_spec

    spec = get_spec(model)
    if spec.arch not in RESTORER_ARCHS:
        raise ValueError(f"{spec.name} ({spec.arch}) is not a face restoration network")
    net = load_pretrained(spec.name, weights_dir, verify_hash=False)
    path = locate_weights(spec, weights_dir)
    info = {**_file_info(path), "registry_entry": spec.name}
    return FaceModel(net, name=spec.name, info=info)  # the crop side from the net
