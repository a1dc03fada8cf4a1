"""Writing a generator as TorchScript or ONNX, and checking the written file against eager.

TorchScript is written with ``torch.jit.trace`` and checked after reloading it with
``torch.jit.load``. ONNX is written with the ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``, which needs ``onnx`` and ``onnxscript``); the
TorchScript-based exporter (``dynamo=False``) cannot export the FIR filters of the StyleGAN2
layers (a depthwise kernel whose shape it cannot infer). The ONNX file is checked with
``onnx.checker`` and run with onnxruntime when it is installed.

A graph with a dynamic batch dimension needs the batch-agnostic modulated convolutions of
:class:`faceprior.nets.GeneratorExport` (``batch_agnostic=True``); it is traced at batch 2 or more
(``torch.export`` specialises sizes 0 and 1) and checked at two batch sizes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from faceprior.export.source import ExportError

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = get_args(Format)
#: file suffixes that imply a format when ``--format`` is not given
SUFFIXES: dict[str, Format] = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}
#: the name of the graph input and output
INPUT_NAME, OUTPUT_NAME = "input", "output"
#: ONNX files above this many bytes of weights keep the weights in a side file (the protobuf limit
#: is 2 GiB)
EXTERNAL_DATA_BYTES = 1_800_000_000
INSTALL_HINT = "pip install -c constraints.txt -e '.[onnx]'"


@dataclass
class Parity:
    """The result of running an exported file next to the eager network.

    Attributes:
        runtime: what ran the file (``torch.jit.load``, ``onnxruntime 1.x (CPUExecutionProvider)``).
        batch_sizes: the batch sizes compared.
        max_abs_diff: the largest absolute difference over all outputs; None when skipped.
        skipped: why the comparison did not run (None when it ran).
    """

    runtime: str
    batch_sizes: tuple[int, ...]
    max_abs_diff: float | None = None
    skipped: str | None = None

    def ok(self, atol: float) -> bool:
        """True when the comparison ran and stayed within ``atol`` (or was skipped)."""
        return self.max_abs_diff is None or self.max_abs_diff <= atol

    def line(self, fmt: str, atol: float) -> str:
        """One printable line: ``parity onnx (runtime), batch 2, 3: max |diff| = ... OK``."""
        sizes = ", ".join(str(b) for b in self.batch_sizes)
        head = f"parity {fmt} ({self.runtime}) vs eager, batch {sizes}"
        if self.max_abs_diff is None:
            return f"{head}: skipped ({self.skipped})"
        verdict = "OK" if self.ok(atol) else "FAILED"
        return f"{head}: max abs diff {self.max_abs_diff:.3e} (atol {atol:.0e}) {verdict}"


def format_for(path: str | Path, fmt: str | None) -> Format:
    """The export format: ``fmt`` if given (validated), else implied by the file suffix."""
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise ExportError(
                f"unsupported format {fmt!r}: faceprior-export writes {' or '.join(FORMATS)}"
            )
        return FORMATS[FORMATS.index(fmt.lower())]
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ExportError(
            f"cannot tell the format from {Path(path).name!r}: pass --format onnx|torchscript "
            f"(or use a suffix: {', '.join(SUFFIXES)})"
        )
    return SUFFIXES[suffix]


def example_inputs(size: int, batch_sizes: Sequence[int], seed: int = 0) -> list[Tensor]:
    """Reproducible faces in [-1, 1], one ``(B, 3, size, size)`` tensor per batch size."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 3, size, size, generator=gen) * 2 - 1 for b in batch_sizes]


def _eager(module: nn.Module, inputs: Sequence[Tensor]) -> list[Tensor]:
    with torch.no_grad():
        return [module(x) for x in inputs]


def _max_diff(got: Sequence[Tensor], want: Sequence[Tensor]) -> float:
    return max(float((g.float() - w.float()).abs().max()) for g, w in zip(got, want, strict=True))


def export_torchscript(module: nn.Module, example: Tensor, path: str | Path) -> Path:
    """Trace ``module`` at ``example`` and save it with ``torch.jit.save``."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit.trace is deprecated in torch 2.9+
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return path


def check_torchscript(path: str | Path, module: nn.Module, inputs: Sequence[Tensor]) -> Parity:
    """Reload ``path`` with ``torch.jit.load`` and compare it with ``module`` on ``inputs``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        got = [loaded(x) for x in inputs]
    sizes = tuple(x.shape[0] for x in inputs)
    return Parity("torch.jit.load", sizes, _max_diff(got, _eager(module, inputs)))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        return False


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if not _installed(m)]


def require_onnx_exporter() -> None:
    """Raise :class:`ExportError` naming what to install when torch's ONNX exporter cannot run."""
    missing = _missing("onnx", "onnxscript")
    if missing:
        raise ExportError(
            f"ONNX export needs the optional packages {', '.join(missing)} (torch's ONNX exporter "
            f"uses onnx and onnxscript): {INSTALL_HINT}"
        )


def export_onnx(
    module: nn.Module,
    example: Tensor,
    path: str | Path,
    opset: int | None = None,
    dynamic_batch: bool = False,
) -> Path:
    """Export ``module`` at ``example`` with the ``torch.export``-based ONNX exporter.

    ``dynamic_batch`` makes the batch dimension symbolic (``module`` must then be batch-agnostic
    and ``example`` have at least 2 samples). Weights go to ``<path>.data`` only for very large
    models. The file is checked with ``onnx.checker``.
    """
    require_onnx_exporter()
    if dynamic_batch and example.shape[0] < 2:
        raise ExportError("a dynamic-batch ONNX graph is traced at batch 2 or more")
    import onnx

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    size += sum(b.numel() * b.element_size() for b in module.buffers())
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            verbose=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_shapes=shapes,
            external_data=size > EXTERNAL_DATA_BYTES,
        )
    onnx.checker.check_model(str(path))
    return path


def onnx_opset(path: str | Path) -> int | None:
    """The default-domain opset of an ONNX file (None when onnx is not installed)."""
    if _missing("onnx"):
        return None
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def check_onnx(path: str | Path, module: nn.Module, inputs: Sequence[Tensor]) -> Parity:
    """Run ``path`` with onnxruntime (CPU) and compare it with ``module`` on ``inputs``.

    Skipped, with the reason, when onnxruntime is not installed.
    """
    sizes = tuple(x.shape[0] for x in inputs)
    if _missing("onnxruntime"):
        return Parity("onnxruntime", sizes, skipped=f"onnxruntime is not installed: {INSTALL_HINT}")
    import onnxruntime as ort

    version = importlib.metadata.version("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    got = [torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0]) for x in inputs]
    runtime = f"onnxruntime {version}, CPUExecutionProvider"
    return Parity(runtime, sizes, _max_diff(got, _eager(module, inputs)))


def export(
    module: nn.Module,
    fmt: Format,
    path: str | Path,
    example: Tensor,
    opset: int | None = None,
    dynamic_batch: bool = False,
) -> Path:
    """Write ``module`` (a :class:`~faceprior.nets.GeneratorExport`) in ``fmt``."""
    if fmt == "torchscript":
        return export_torchscript(module, example, path)
    return export_onnx(module, example, path, opset, dynamic_batch)


def check(path: str | Path, fmt: Format, module: nn.Module, inputs: Sequence[Tensor]) -> Parity:
    """Run the written file in its runtime next to ``module``."""
    if fmt == "torchscript":
        return check_torchscript(path, module, inputs)
    return check_onnx(path, module, inputs)
