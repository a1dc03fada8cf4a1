"""Config values checked before anything is built, each problem naming its key.

* **Types by signature.** Every ``_target_`` node's values are compared with the type hints of the
  class or function it names (imported, never called): ``model.optimizers.generator.lr=abc`` is
  reported as a string where ``torch.optim.Adam`` takes a number, instead of a ``TypeError`` from
  inside the optimiser hours later. Only clear cases are judged: numbers, booleans, strings,
  ``Literal`` choices and sequences of them; any other hint is left to the class.
* **Ranges of data.*** (:func:`faceprior.data.dataset.validate_data_options`).
* **The global batch and the devices**: ``data.batch_size`` must split evenly over
  ``trainer.devices x trainer.num_nodes`` — checked here, before DDP processes are started.
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from faceprior.preflight.files import walk
from faceprior.preflight.report import Need

#: hints a value can be judged against; anything else is left to the class
_NUMBERS = (int, float, complex)
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def accepts(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` (from the config) fits ``hint``; None when that cannot be judged."""
    if hint is Any or hint is object or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        verdicts = [accepts(a, value) for a in args]
        if any(v is True for v in verdicts):
            return True
        return False if all(v is False for v in verdicts) else None
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if value is None:
        return None  # a default of None is common where the hint forgets Optional
    if origin in _SEQUENCES or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            return False if isinstance(value, str | int | float | bool) else None
        if not args:
            return True
        items = args[:1] if len(args) == 1 or args[-1] is Ellipsis else args
        if len(items) > 1 and len(items) != len(value):
            return False
        verdicts = [accepts(items[min(i, len(items) - 1)], v) for i, v in enumerate(value)]
        if any(v is False for v in verdicts):
            return False
        return True if all(v is True for v in verdicts) else None
    if hint is bool:
        if isinstance(value, bool):
            return True
        return False if isinstance(value, str | list | tuple | dict) else None
    if hint in _NUMBERS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True
        # a string where a number belongs: the case that fails deep inside (`'<=' not supported`)
        return False if isinstance(value, str | list | tuple | dict) else None
    if hint is str or hint is Path or hint is os.PathLike:
        return True if isinstance(value, str) else None
    if isinstance(hint, type) and hint.__module__.startswith("torch") and hint.__name__ == "Tensor":
        return False if isinstance(value, str | bool | list | dict) else None
    return None


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_describe(a) for a in typing.get_args(hint))
    if hint is float or hint is int or hint is complex:
        return f"a number ({hint.__name__})"
    if hint is bool:
        return "true or false"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return _hint_name(hint)


def _signature(target: str) -> tuple[str, dict[str, Any]] | None:
    """The callable's name and its parameters' hints, or None when it cannot be imported."""
    import hydra

    try:
        obj = hydra.utils.get_object(target)
    except Exception:  # an unimportable target fails in instantiate with Hydra's message
        return None
    func = getattr(obj, "__init__") if isinstance(obj, type) else obj  # noqa: B009
    try:
        params = inspect.signature(obj).parameters
        hints = typing.get_type_hints(func)
    except Exception:  # hints that do not evaluate here: nothing to judge
        return None
    named = {
        name: hints.get(name, inspect.Parameter.empty)
        for name, p in params.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return target, named


def type_needs(cfg: DictConfig) -> Iterator[Need]:
    """A problem for each value of a ``_target_`` node that its callable's hints rule out."""
    cache: dict[str, tuple[str, dict[str, Any]] | None] = {}
    for key, node in walk(cfg):
        target = node.get("_target_") if "_target_" in node else None
        if not isinstance(target, str):
            continue
        if target not in cache:
            cache[target] = _signature(target)
        found = cache[target]
        if found is None:
            continue
        name, hints = found
        for param, hint in hints.items():
            if param not in node or param.startswith("_") or OmegaConf.is_missing(node, param):
                continue
            try:
                raw = node[param]
            except Exception:  # unresolvable: reported with the files
                continue
            if isinstance(raw, DictConfig):
                continue
            value = (
                OmegaConf.to_container(raw, resolve=True) if isinstance(raw, ListConfig) else raw
            )
            if accepts(hint, value) is False:
                full = f"{key}.{param}" if key else param
                yield Need(
                    full,
                    "value",
                    f"{value!r} does not fit {name}({param}: {_hint_name(hint)})",
                    ok=False,
                    fix=f"expected {_describe(hint)}",
                )


def world_size(trainer: DictConfig) -> int | None:
    """Processes the trainer config starts (``devices x num_nodes``); None when only Lightning
    can tell (``auto`` on an accelerator)."""
    devices = trainer.get("devices", 1)
    nodes = trainer.get("num_nodes", 1) or 1
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, ListConfig | list | tuple):
        count = len(devices)
    elif isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        count = devices
    elif str(trainer.get("accelerator", "auto")) == "cpu":
        count = 1
    elif devices in (-1, "auto"):
        import torch

        if not torch.cuda.is_available():
            return None
        count = torch.cuda.device_count()
    else:
        return None
    return count * int(nodes)


def batch_need(cfg: DictConfig) -> Need | None:
    """``data.batch_size`` must split over the devices (checked before any process starts)."""
    data, trainer = cfg.get("data"), cfg.get("trainer")
    if not isinstance(data, DictConfig) or not isinstance(trainer, DictConfig):
        return None
    batch = data.get("batch_size")
    world = world_size(trainer)
    if not isinstance(batch, int) or world is None or world <= 1 or batch % world == 0:
        return None
    up = (batch // world + 1) * world
    return Need(
        "data.batch_size",
        "value",
        f"data.batch_size={batch} is the global batch and must be divisible by the number of "
        f"devices ({world} = trainer.devices x trainer.num_nodes)",
        ok=False,
        fix=f"e.g. data.batch_size={up}" + (f" or {up - world}" if up - world > 0 else ""),
    )


def data_range_needs(cfg: DictConfig) -> Iterator[Need]:
    """``data.*`` ranges (as the DataModule checks them, before anything is generated)."""
    from faceprior.data.dataset import validate_data_options

    data = cfg.get("data")
    if not isinstance(data, DictConfig):
        return
    names = (
        "size",
        "crop_size",
        "flip_prob",
        "eye_enlarge_ratio",
        "num_workers",
        "val_batch_size",
        "prefetch_factor",
    )
    try:
        options = {n: data[n] for n in names if n in data}
        if "size" in options:
            validate_data_options(**options)
        batch = data.get("batch_size")
        if isinstance(batch, int) and batch < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch}")
    except Exception as err:
        message = str(err)
        match = re.match(r"(data\.[\w.]+)", message)
        yield Need(match.group(1) if match else "data", "value", message, ok=False)
