"""Official checkpoint I/O and the one registry of weight files (networks, losses, metrics).

Typical use::

    from faceprior.checkpoints import load_pretrained, export_checkpoint, resolve_weights
    net = load_pretrained("GFPGANv1.4")          # from $FACEPRIOR_WEIGHTS_DIR, strict, eval()
    export_checkpoint(my_net, "out.pth", "params_ema")   # back to the official layout
    resolve_weights("vgg19")                     # path of any registered file, or a clear error
"""

from faceprior.checkpoints.errors import (
    CheckpointError,
    CheckpointFileError,
    CheckpointNotFoundError,
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
    DEFAULT_RELEASES,
    PURPOSES,
    REGISTRY,
    WEIGHTS,
    CheckpointSpec,
    Purpose,
    WeightsFile,
    expected_shapes,
    fitted_kwargs,
    get_spec,
    get_weights,
    identify,
    list_specs,
    list_weights,
    match_kwargs,
)
from faceprior.checkpoints.verify import CheckpointInfo, describe_checkpoint, verify_checkpoint
from faceprior.checkpoints.weights import (
    ENV_VAR,
    download_weights,
    load_from_file,
    load_pretrained,
    locate_weights,
    resolve_weights,
    weights_dir,
)

__all__ = [
    "DEFAULT_RELEASES",
    "ENV_VAR",
    "LAYOUTS",
    "PURPOSES",
    "REGISTRY",
    "WEIGHTS",
    "CheckpointError",
    "CheckpointFileError",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "CheckpointSpec",
    "ChecksumError",
    "DownloadError",
    "ExtractedStateDict",
    "Purpose",
    "StateDictDiff",
    "StateDictMismatchError",
    "UnknownCheckpointError",
    "WeightsFile",
    "convert_checkpoint",
    "describe_checkpoint",
    "diff_state_dict",
    "download_weights",
    "expected_shapes",
    "export_checkpoint",
    "export_training_checkpoint",
    "extract_state_dict",
    "fitted_kwargs",
    "get_spec",
    "get_weights",
    "identify",
    "list_specs",
    "list_weights",
    "load_from_file",
    "load_pretrained",
    "load_pretrained_decoder",
    "load_state_dict_checked",
    "load_state_dict_file",
    "locate_weights",
    "match_kwargs",
    "read_checkpoint",
    "resolve_weights",
    "sha256sum",
    "strip_module_prefix",
    "verify_checkpoint",
    "verify_sha256",
    "weights_dir",
    "wrap_state_dict",
]
