"""Building the generator to export: a registry name, an official-layout file or a training run.

Three kinds of ``--model``:

* a registry name of a restoration network (``GFPGANv1``, ``GFPGANCleanv1-NoCE-C2``,
  ``GFPGANv1.3``, ``GFPGANv1.4``, ``GPEN-BFR-512``, ``GPEN-BFR-256``): its official file is read
  from the weights directory (or ``weights``);
* a family, ``gfpgan`` or ``gpen``, with an official-layout file (``weights``): the architecture
  is the registry entry whose keys and shapes fit the file, or ``arch``, or a configuration file;
* a faceprior training checkpoint (``.ckpt``): the generator's EMA weights (the trained weights
  when the run had no EMA), built from the run's ``.hydra/config.yaml`` (``model.generator``),
  ``config``, ``arch`` or the registry entry that fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

import faceprior.nets
from faceprior.checkpoints import (
    DEFAULT_RELEASES,
    REGISTRY,
    CheckpointSpec,
    UnknownCheckpointError,
    fitted_kwargs,
    get_spec,
    identify,
    load_state_dict_checked,
    load_state_dict_file,
    locate_weights,
    resolve_weights,
)
from faceprior.checkpoints.errors import CheckpointError
from faceprior.checkpoints.io import EMA_PREFIX, generator_state_dict, lightning_state_dict
from faceprior.nets.export import ExportableGenerator
from faceprior.nets.gfpgan import GFPGANv1, GFPGANv1Clean
from faceprior.nets.gpen import GPENGenerator

#: exportable architectures (class names in :mod:`faceprior.nets`) by family
FAMILIES: dict[str, tuple[str, ...]] = {
    "gfpgan": ("GFPGANv1", "GFPGANv1Clean"),
    "gpen": ("GPENGenerator",),
}
_ARCHS = {arch for archs in FAMILIES.values() for arch in archs}


class ExportError(ValueError):
    """The requested network cannot be built or exported; the message says why and what to do."""


@dataclass
class LoadedGenerator:
    """A generator ready to export, with where it came from.

    Attributes:
        net: the network in eval mode.
        arch: its class name.
        kwargs: its constructor arguments.
        size: the face size it restores (input = output resolution).
        source: one line describing the weights (file, layout, registry entry).
        notes: further lines worth printing (e.g. which weights of a checkpoint were used).
    """

    net: ExportableGenerator
    arch: str
    kwargs: dict[str, Any]
    size: int
    source: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``Arch(k=v, ...)``."""
        return f"{self.arch}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


def exportable_specs() -> list[CheckpointSpec]:
    """Registry entries of the restoration generators that can be exported."""
    return [spec for spec in REGISTRY.values() if spec.arch in _ARCHS]


def _choices(what: str) -> str:
    names = ", ".join(spec.name for spec in exportable_specs())
    if what == "--arch":
        return f"a registry name ({names}) or a class name ({', '.join(sorted(_ARCHS))})"
    return f"gfpgan, gpen, a registry name ({names}), a .ckpt training checkpoint or a .pth file"


def _exportable_spec(name: str, what: str) -> CheckpointSpec:
    by_class = [spec for spec in exportable_specs() if spec.arch.lower() == name.lower()]
    if by_class:  # a class name: its first registered configuration
        return by_class[0]
    try:
        spec = get_spec(name)
    except UnknownCheckpointError as exc:
        raise ExportError(f"unknown {what} {name!r}; expected {_choices(what)}") from exc
    if spec.arch not in _ARCHS:
        raise ExportError(
            f"{what} {name!r} is a {spec.arch}, not a restoration generator; export supports "
            f"{', '.join(s.name for s in exportable_specs())}"
        )
    return spec


def _build(
    arch: str, kwargs: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: str
) -> ExportableGenerator:
    cls = getattr(faceprior.nets, arch, None)
    if arch not in _ARCHS or cls is None:
        raise ExportError(
            f"{source}: architecture {arch} cannot be exported; export supports "
            f"{', '.join(sorted(_ARCHS))} (GFP-GAN v1 / clean, GPEN)"
        )
    try:
        net: nn.Module = cls(**dict(kwargs))
    except TypeError as exc:
        raise ExportError(f"cannot build {arch} from {dict(kwargs)}: {exc}") from exc
    load_state_dict_checked(net, state_dict, source=source)
    assert isinstance(net, GFPGANv1 | GFPGANv1Clean | GPENGenerator)
    return net.eval()


def _loaded(
    arch: str, kwargs: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: str
) -> LoadedGenerator:
    net = _build(arch, kwargs, state_dict, source)
    return LoadedGenerator(net, arch, dict(kwargs), 2**net.log_size, source)


def _require_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise ExportError(f"weights file not found: {path}. {hint}")
    return path


def config_generator(path: str | Path, size: int | None = None) -> tuple[str, dict[str, Any]]:
    """``(arch, kwargs)`` of the generator a configuration file describes.

    ``path`` is a run's ``.hydra/config.yaml`` (``model.generator`` is used) or a generator
    config with ``_target_`` (``conf/model/generator/*.yaml``); a ``${data.size}`` in the latter
    is filled with ``size``.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path).expanduser()
    if not path.is_file():
        raise ExportError(f"configuration file not found: {path}")
    cfg = OmegaConf.load(path)
    node: Any = None
    if isinstance(cfg, DictConfig):
        if "_target_" in cfg:
            root = OmegaConf.create({"data": {"size": "???" if size is None else size}})
            root.generator = cfg
            node = root.generator
        elif OmegaConf.select(cfg, "model.generator") is not None:
            node = cfg.model.generator
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ExportError(f"{path} holds no generator config (model.generator or a _target_)")
    try:
        resolved = OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as exc:
        if size is None and "data.size" in str(exc):
            raise ExportError(
                f"{path} takes the face size from ${{data.size}}: pass --size"
            ) from exc
        raise ExportError(f"cannot resolve the generator config of {path}: {exc}") from exc
    assert isinstance(resolved, dict)
    target = str(resolved.pop("_target_"))
    arch = target.rpartition(".")[2]
    if arch not in _ARCHS:
        raise ExportError(
            f"{path}: generator {target} cannot be exported; export supports "
            f"{', '.join(sorted(_ARCHS))} (GFP-GAN v1 / clean, GPEN)"
        )
    return arch, {str(k): v for k, v in resolved.items()}


def _fitting(
    state_dict: Mapping[str, Tensor], archs: tuple[str, ...] | set[str], source: str
) -> tuple[CheckpointSpec, dict[str, Any]]:
    found = identify(state_dict, _ARCHS)
    matches = [(spec, kw) for spec, kw in found if spec.arch in archs]
    if not matches:
        others = [spec.name for spec, _ in found]
        fits = f" (it fits '{others[0]}': pass --model {others[0]})" if others else ""
        raise ExportError(
            f"{source} fits no registered {'/'.join(sorted(archs))} configuration{fits}; name the "
            "architecture with --arch (a registry name) or --config (a generator or run config)"
        )
    return matches[0]


def load_official_file(
    path: str | Path,
    family: str | None = None,
    arch: str | None = None,
    config: str | Path | None = None,
    size: int | None = None,
    trusted: bool = False,
) -> LoadedGenerator:
    """Build the generator an official-layout file (``params_ema``, bare, ``g_ema``) holds."""
    path = Path(path).expanduser()
    hint = (
        "Pass an official-layout file (e.g. GFPGANv1.4.pth, GPEN-BFR-512.pth) or write one with "
        "`faceprior-weights export`."
    )
    extracted = load_state_dict_file(_require_file(path, hint), trusted=trusted)
    source = f"{path} [{extracted.describe()}]"
    archs = FAMILIES[family] if family else _ARCHS
    if config is not None:
        arch_name, kwargs = config_generator(config, size)
        return _loaded(arch_name, kwargs, extracted.state_dict, source)
    if arch is not None:
        spec = _exportable_spec(arch, "--arch")
        kwargs = fitted_kwargs(spec, extracted.state_dict)
    else:
        spec, kwargs = _fitting(extracted.state_dict, set(archs), source)
    if family and spec.arch not in archs:
        raise ExportError(f"--model {family} with --arch {spec.name} ({spec.arch}): not a {family}")
    return _loaded(spec.arch, kwargs, extracted.state_dict, f"{source} (as '{spec.name}')")


def load_registry_name(
    name: str, weights: str | Path | None = None, weights_dir: str | Path | None = None
) -> LoadedGenerator:
    """The registered network ``name`` from its official file (``weights`` or the weights dir)."""
    spec = _exportable_spec(name, "model")
    if weights is None:
        try:
            path = resolve_weights(spec.name, weights_dir)
        except FileNotFoundError as exc:
            raise ExportError(str(exc)) from exc
    else:
        path = _require_file(
            Path(weights).expanduser(),
            f"'{spec.name}' is the official {spec.filename} from {spec.source()} "
            f"(default location: {locate_weights(spec, weights_dir)}).",
        )
    extracted = load_state_dict_file(path)
    kwargs = fitted_kwargs(spec, extracted.state_dict)
    source = f"{path} [{extracted.describe()}] (registry entry '{spec.name}')"
    return _loaded(spec.arch, kwargs, extracted.state_dict, source)


def load_training_checkpoint(
    path: str | Path,
    arch: str | None = None,
    config: str | Path | None = None,
    size: int | None = None,
    trusted: bool = False,
) -> LoadedGenerator:
    """The generator of a faceprior training checkpoint: its EMA weights (else the trained ones)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExportError(f"checkpoint file not found: {path}")
    try:
        _, state = lightning_state_dict(path, trusted)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    found = generator_state_dict(state)
    if found is None:
        heads = sorted({k.split(".", 1)[0] for k in state})
        raise ExportError(f"{path}: no generator weights (top-level modules: {heads})")
    prefix, weights = found
    notes = (
        [f"weights: the EMA generator ({prefix}.*)"]
        if prefix == EMA_PREFIX
        else [f"weights: the trained generator ({prefix}.*); the run kept no EMA copy"]
    )
    source = f"{path} (training checkpoint)"
    run_config = path.parent.parent / ".hydra" / "config.yaml"
    if config is None and arch is None and run_config.is_file():
        config = run_config
    if config is not None:
        arch_name, kwargs = config_generator(config, size)
        notes.append(f"architecture: model.generator of {config}")
    elif arch is not None:
        spec = _exportable_spec(arch, "--arch")
        arch_name, kwargs = spec.arch, fitted_kwargs(spec, weights)
        notes.append(f"architecture: registry entry '{spec.name}' (--arch)")
    else:
        spec, kwargs = _fitting(weights, _ARCHS, f"{source}, which has no {run_config},")
        arch_name = spec.arch
        notes.append(f"architecture: fits registry entry '{spec.name}'")
    loaded = _loaded(arch_name, kwargs, weights, source)
    loaded.notes.extend(notes)
    return loaded


def load_generator(
    model: str,
    weights: str | Path | None = None,
    arch: str | None = None,
    config: str | Path | None = None,
    weights_dir: str | Path | None = None,
    size: int | None = None,
    trusted: bool = False,
) -> LoadedGenerator:
    """Build the generator ``--model`` names (see the module docstring), weights loaded strictly.

    Raises:
        ExportError: unknown name, missing file (naming it and where to get it), a network that
            is not an exportable generator, or a file no known configuration fits.
    """
    family = model.lower()
    if family in FAMILIES:
        if weights is None:
            return load_registry_name(DEFAULT_RELEASES[family], weights_dir=weights_dir)
        return load_official_file(weights, family, arch, config, size, trusted)
    path = Path(model).expanduser()
    registered = any(
        model.lower() in (s.name.lower(), s.filename.lower()) for s in REGISTRY.values()
    )
    is_file = path.suffix.lower() in {".ckpt", ".pth", ".pt"} or "/" in model or path.is_file()
    if is_file and not (registered and not path.is_file()):
        if weights is not None:
            raise ExportError(
                f"--weights goes with --model gfpgan|gpen|NAME; --model {model} is a file already"
            )
        if path.suffix.lower() == ".ckpt":
            return load_training_checkpoint(path, arch, config, size, trusted)
        return load_official_file(path, None, arch, config, size, trusted)
    return load_registry_name(model, weights, weights_dir)
