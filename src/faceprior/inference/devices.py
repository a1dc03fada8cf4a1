"""Device and precision for inference: what was asked for, or an error; never a quiet fallback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class DeviceError(RuntimeError):
    """A requested device that this machine does not have."""


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU: the choice is printed by the CLI), or exactly ``spec``.

    Raises:
        DeviceError: for a CUDA / MPS device that is not available (never replaced by the CPU).
    """
    if isinstance(spec, torch.device):
        device = spec
    elif spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(spec)
        except RuntimeError as err:
            raise DeviceError(f"--device {spec!r} is not a device name ({err})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "with" if torch.backends.cuda.is_built() else "without"
            raise DeviceError(
                f"--device {spec} requested but CUDA is not available (torch {torch.__version__} "
                f"built {built} CUDA, 0 devices visible); use --device cpu explicitly"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {spec} requested but only {count} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"--device {spec} requested but MPS is not available")
    return device


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """``float32`` / ``bfloat16`` / ``float16`` (or the dtype itself)."""
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise ValueError(f"unsupported inference dtype {name}")
        return name
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {name!r}") from None


@contextlib.contextmanager
def precision(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Autocast the network call to ``dtype`` (weights stay float32); a no-op for float32."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_deterministic(device: torch.device) -> None:
    """Deterministic cuDNN kernels, no autotuning (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def describe_device(device: torch.device) -> str:
    """``cpu (N threads)`` or the GPU's name."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({torch.get_num_threads()} threads)"
