"""Official checkpoint I/O: layouts, strict loading with readable errors, registry, weights dir.

Typical use::

    from faceprior.checkpoints import load_pretrained, export_checkpoint
    net = load_pretrained("GFPGANv1.4")          # from $FACEPRIOR_WEIGHTS_DIR, strict, eval()
    export_checkpoint(my_net, "out.pth", "params_ema")   # back to the official layout
"""

from faceprior.checkpoints.errors import (
    CheckpointError,
    ChecksumError,
    DownloadError,
    StateDictMismatchError,
    UnknownCheckpointError,
)
from faceprior.checkpoints.io import (
    StateDictDiff,
    convert_checkpoint,
    diff_state_dict,
    export_checkpoint,
    export_training_checkpoint,
    load_pretrained_decoder,
    load_state_dict_checked,
    load_state_dict_file,
    read_checkpoint,
    sha256sum,
    verify_sha256,
)
from faceprior.checkpoints.layouts import (
    LAYOUTS,
    ExtractedStateDict,
    extract_state_dict,
    strip_module_prefix,
    wrap_state_dict,
)
from faceprior.checkpoints.registry import (
    REGISTRY,
    CheckpointSpec,
    expected_shapes,
    get_spec,
    identify,
    list_specs,
    match_kwargs,
)
from faceprior.checkpoints.weights import (
    ENV_VAR,
    download_weights,
    load_from_file,
    load_pretrained,
    resolve_weights,
    weights_dir,
)

__all__ = [
    "ENV_VAR",
    "LAYOUTS",
    "REGISTRY",
    "CheckpointError",
    "CheckpointSpec",
    "ChecksumError",
    "DownloadError",
    "ExtractedStateDict",
    "StateDictDiff",
    "StateDictMismatchError",
    "UnknownCheckpointError",
    "convert_checkpoint",
    "diff_state_dict",
    "download_weights",
    "expected_shapes",
    "export_checkpoint",
    "export_training_checkpoint",
    "extract_state_dict",
    "get_spec",
    "identify",
    "list_specs",
    "load_from_file",
    "load_pretrained",
    "load_pretrained_decoder",
    "load_state_dict_checked",
    "load_state_dict_file",
    "match_kwargs",
    "read_checkpoint",
    "resolve_weights",
    "sha256sum",
    "strip_module_prefix",
    "verify_sha256",
    "weights_dir",
    "wrap_state_dict",
]
