"""Where the configs live and the custom OmegaConf resolvers they use."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

from faceprior.utils.schemas import register_schemas

#: The config tree. ``src/faceprior/conf`` links to the repository's ``conf/``; wheels carry a copy.
CONFIG_DIR = (Path(__file__).resolve().parent.parent / "conf").resolve()


def _uid() -> str:
    return secrets.token_hex(3)


def _ensure_dir(path: str) -> str:
    """Create ``path`` (and parents) and return it; for files opened before any run dir exists."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def _default(value: object, fallback: object) -> object:
    """``value`` unless it is null, else ``fallback`` (``oc.select`` returns a null value as is)."""
    return fallback if value is None else value


def _sweep_group() -> str:
    """The sweep folder's name inside a multirun job (its W&B group), else ``""`` (no group)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra app
        return ""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return ""
    return Path(str(hydra_cfg.sweep.dir)).name


def register_resolvers() -> None:
    """Register the resolvers the configs use.

    ``${faceprior.uid:}`` is a random id, cached per composed config (and carried from a sweep's master
    config to its jobs), so every job of a multirun shares the sweep directory while two runs started
    in the same second never collide. ``${faceprior.ensure_dir:PATH}`` creates a folder (the Optuna
    database's) before the sweep starts. ``${faceprior.cwd:}`` is the launch directory; unlike
    ``${hydra:runtime.cwd}`` it also resolves before Hydra's runtime config exists (sweep dirs).
    ``${faceprior.sweep_group:}`` is the sweep folder's name in a multirun job and ``""`` otherwise:
    the W&B group, so a sweep's jobs are grouped together. ``${faceprior.default:VALUE,FALLBACK}`` is
    ``VALUE`` unless it is null (e.g. ``data.synthetic.root`` when the data is not synthetic).
    """
    if not OmegaConf.has_resolver("faceprior.uid"):
        OmegaConf.register_new_resolver("faceprior.uid", _uid, use_cache=True)
    if not OmegaConf.has_resolver("faceprior.cwd"):
        OmegaConf.register_new_resolver("faceprior.cwd", os.getcwd)
    if not OmegaConf.has_resolver("faceprior.sweep_group"):
        OmegaConf.register_new_resolver("faceprior.sweep_group", _sweep_group)
    if not OmegaConf.has_resolver("faceprior.default"):
        OmegaConf.register_new_resolver("faceprior.default", _default)
    if not OmegaConf.has_resolver("faceprior.ensure_dir"):
        OmegaConf.register_new_resolver("faceprior.ensure_dir", _ensure_dir)


def setup_config_system() -> None:
    """Resolvers and schemas: call before composing any faceprior config."""
    register_resolvers()
    register_schemas()
