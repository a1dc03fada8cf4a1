"""What a checkpoint file is, before Lightning loads it: one-line answers for wrong files.

Every training checkpoint records, under :data:`METADATA_KEY`, the LightningModule class, the
experiment, the task and the faceprior version (:func:`checkpoint_metadata`).
:func:`describe_checkpoint` reads a file cheaply (magic bytes first, then ``torch.load`` with
``mmap``) and raises :class:`CheckpointFileError` — one line naming the file and what it is — for
anything that is not a Lightning checkpoint: a missing or empty file, a truncated archive, a text
file, a network weights file. :func:`verify_checkpoint` also compares the metadata with the run
about to load it.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import faceprior
from faceprior.checkpoints.errors import CheckpointFileError, CheckpointNotFoundError

log = logging.getLogger(__name__)

#: top-level checkpoint entry holding :func:`checkpoint_metadata`
METADATA_KEY = "faceprior"
#: present in every checkpoint Lightning writes
LIGHTNING_KEY = "pytorch-lightning_version"
ZIP_MAGIC = b"PK\x03\x04"
#: pickle protocols 2-5 (torch's legacy format starts with a protocol-2 pickle)
PICKLE_MAGIC = tuple(bytes([0x80, p]) for p in (2, 3, 4, 5))
WEIGHTS_HINT = (
    "use model.init_weights={path} to start training from it, or model=official weights=<name> "
    "to evaluate released weights"
)


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class, as recorded in the metadata."""
    return f"{cls.__module__}.{cls.__qualname__}"


def checkpoint_metadata(
    module: object, experiment: str | None, task_name: str | None
) -> dict[str, str | None]:
    """The :data:`METADATA_KEY` entry of a checkpoint of ``module``."""
    return {
        "module_class": qualified_name(type(module)),
        "experiment": experiment,
        "task_name": task_name,
        "version": faceprior.__version__,
    }


def _short(name: str | None) -> str:
    return name.rpartition(".")[2] if name else "Lightning"


def experiment_phrase(experiment: str | None) -> str:
    """``experiment=<name>``, or what a run without an experiment is called."""
    return f"experiment={experiment}" if experiment else "a run without experiment="


@dataclass(frozen=True)
class CheckpointInfo:
    """A Lightning checkpoint file and what its metadata says (``None``: not recorded)."""

    path: Path
    lightning_version: str
    has_metadata: bool
    module_class: str | None = None
    experiment: str | None = None
    task_name: str | None = None
    version: str | None = None
    iteration: int | None = None

    @property
    def module_name(self) -> str:
        """The class name without its module (``GFPGANModule``)."""
        return _short(self.module_class)

    def origin(self) -> str:
        """``a GFPGANModule checkpoint from experiment=gfpgan_tiny``."""
        if not self.has_metadata:
            return "a Lightning checkpoint without faceprior metadata"
        source = experiment_phrase(self.experiment)
        return f"a {self.module_name} checkpoint from {source}"


def _head(path: Path, size: int = 512) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def _text_start(head: bytes) -> str | None:
    """The first line of ``head`` when it reads as text, else ``None``."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not just a character cut at the end of the sample
            return None
        text = head[: err.start].decode("utf-8")
    if not text or any(not (c.isprintable() or c in "\t\r\n\f") for c in text):
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:40] + ("..." if len(line) > 40 else "")


def _check_bytes(path: Path) -> bool:
    """Cheap checks before unpickling; returns True for the zip format (``mmap`` possible)."""
    if not path.exists():
        raise CheckpointNotFoundError(f"ckpt_path '{path}' does not exist")
    if path.is_dir():
        raise CheckpointFileError(path, "a directory, not a checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointFileError(
            path, "an empty file (0 bytes), not a checkpoint: an interrupted save?"
        )
    head = _head(path)
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            raise CheckpointFileError(
                path,
                f"a truncated or damaged checkpoint ({size} bytes, the zip archive has no end "
                "record): an interrupted save or copy?",
            ) from None
        if not any(n.endswith("data.pkl") for n in names):
            raise CheckpointFileError(path, "a zip archive, not a PyTorch checkpoint")
        return True
    if head.startswith(PICKLE_MAGIC):
        return False
    start = _text_start(head)
    if start is not None:
        raise CheckpointFileError(path, f"a text file, not a checkpoint (it starts with {start!r})")
    raise CheckpointFileError(path, f"not a PyTorch checkpoint (it starts with bytes {head[:8]!r})")


def load_trusted(path: str | Path) -> Any:
    """``torch.load`` a file that passed the byte checks, on the CPU, memory-mapped when possible.

    Unpickles arbitrary objects (``weights_only=False``), as Lightning does when it resumes.
    """
    path = Path(path)
    zipped = _check_bytes(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=zipped)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointFileError(path, f"an unreadable PyTorch file ({first})") from err
    except (ImportError, AttributeError) as err:
        raise CheckpointFileError(
            path, f"a pickle of objects this installation cannot rebuild ({err})"
        ) from err


def _not_lightning(path: Path, ckpt: Any) -> CheckpointFileError:
    """The error for a readable file that is not a Lightning checkpoint."""
    if not isinstance(ckpt, Mapping):
        return CheckpointFileError(path, f"a pickled {type(ckpt).__name__}, not a checkpoint")
    keys = [str(k) for k in ckpt]
    official = [k for k in ("params_ema", "params") if k in ckpt]
    tensors = sum(isinstance(v, torch.Tensor) for v in ckpt.values())
    if official:
        what = f"a network weights file ({'/'.join(official)} layout)"
    elif tensors:
        what = f"a plain state dict of {tensors} tensor(s), a network weights file"
    elif "state_dict" in ckpt:
        what = "a state_dict file without Lightning's training state"
    else:
        what = ""
    if what:
        hint = WEIGHTS_HINT.format(path=path)
        return CheckpointFileError(path, f"{what}, not a training checkpoint; {hint}")
    shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
    return CheckpointFileError(path, f"a dict with keys [{shown}], not a Lightning checkpoint")


def _iteration(ckpt: Mapping[str, Any]) -> int | None:
    for key in ("iteration", "global_step"):
        value = ckpt.get(key)
        if value is not None:
            return int(value)
    return None


def describe_checkpoint(path: str | Path) -> CheckpointInfo:
    """What ``path`` holds; raises :class:`CheckpointFileError` unless a Lightning checkpoint.

    A missing file raises :class:`CheckpointNotFoundError` (a ``FileNotFoundError``).
    """
    path = Path(path).expanduser()
    ckpt = load_trusted(path)
    if not isinstance(ckpt, Mapping) or LIGHTNING_KEY not in ckpt:
        raise _not_lightning(path, ckpt)
    meta = ckpt.get(METADATA_KEY)
    meta = meta if isinstance(meta, Mapping) else None
    return CheckpointInfo(
        path=path,
        lightning_version=str(ckpt[LIGHTNING_KEY]),
        has_metadata=meta is not None,
        module_class=(meta or {}).get("module_class"),
        experiment=(meta or {}).get("experiment"),
        task_name=(meta or {}).get("task_name"),
        version=(meta or {}).get("version"),
        iteration=_iteration(ckpt),
    )


def mismatch(info: CheckpointInfo, module_class: str | None, experiment: str | None) -> str | None:
    """Why ``info`` does not belong to a run of ``module_class`` and ``experiment`` (or ``None``)."""
    if not info.has_metadata:
        return None
    if module_class and info.module_class and info.module_class != module_class:
        return f"not a {_short(module_class)} checkpoint"
    if (info.experiment or None) != (experiment or None):
        return f"not one of {experiment_phrase(experiment)}"
    return None


def verify_checkpoint(
    path: str | Path,
    module_class: str | None,
    experiment: str | None,
    app: str = "faceprior-train",
    strict: bool = True,
) -> CheckpointInfo:
    """:func:`describe_checkpoint`, then check that the file belongs to this run.

    A checkpoint of another module class or experiment raises :class:`CheckpointFileError`
    ("... is a GFPGANModule checkpoint from experiment=gfpgan_tiny; use `faceprior-eval
    experiment=gfpgan_tiny ckpt_path=...`"); with ``strict=False`` an experiment that differs
    (same module class) is only a warning. A checkpoint without metadata loads with a warning.
    """
    info = describe_checkpoint(path)
    if not info.has_metadata:
        log.warning(
            "%s has no faceprior metadata (written by an older version): its module class and "
            "experiment cannot be checked",
            info.path,
        )
        return info
    reason = mismatch(info, module_class, experiment)
    if reason is None:
        return info
    exp_arg = f"experiment={info.experiment} " if info.experiment else ""
    what = f"{info.origin()}, {reason}; use `{app} {exp_arg}ckpt_path={info.path}`"
    same_class = not module_class or info.module_class in (None, module_class)
    if strict or not same_class:
        hint = " (or ckpt_verify=false to load it anyway)" if same_class else ""
        raise CheckpointFileError(info.path, what + hint)
    log.warning("'%s' is %s; loading it anyway (ckpt_verify=false)", info.path, what)
    return info
