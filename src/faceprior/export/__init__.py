"""Exporting the restoration generators (GFP-GAN v1 / clean, GPEN) as TorchScript or ONNX.

Typical use::

    from faceprior.export import load_generator, export, check, example_inputs
    from faceprior.nets import GeneratorExport

    loaded = load_generator("GFPGANv1.4")                  # from $FACEPRIOR_WEIGHTS_DIR
    module = GeneratorExport(loaded.net, batch_agnostic=True).eval()
    (x,) = example_inputs(loaded.size, [2])
    path = export(module, "onnx", "gfpgan.onnx", x, dynamic_batch=True)
    print(check(path, "onnx", GeneratorExport(loaded.net), example_inputs(512, [2, 3])).line(
        "onnx", 1e-4))

The command line is ``faceprior-export`` (:mod:`faceprior.export.cli`).
"""

from faceprior.export.formats import (
    FORMATS,
    Format,
    Parity,
    check,
    check_onnx,
    check_torchscript,
    example_inputs,
    export,
    export_onnx,
    export_torchscript,
    format_for,
)
from faceprior.export.source import (
    ExportError,
    LoadedGenerator,
    config_generator,
    exportable_specs,
    load_generator,
)

__all__ = [
    "FORMATS",
    "ExportError",
    "Format",
    "LoadedGenerator",
    "Parity",
    "check",
    "check_onnx",
    "check_torchscript",
    "config_generator",
    "example_inputs",
    "export",
    "export_onnx",
    "export_torchscript",
    "exportable_specs",
    "format_for",
    "load_generator",
]
