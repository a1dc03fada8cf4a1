"""Locating, downloading and loading the released weights from a local directory.

Weights are never fetched implicitly: :func:`resolve_weights` only looks in the weights directory
(``$FACEPRIOR_WEIGHTS_DIR``, default ``~/.cache/faceprior/weights``) and explains where to get a
missing file; :func:`download_weights` fetches the official URL only when called.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from torch import nn

from faceprior.checkpoints.errors import CheckpointError, DownloadError
from faceprior.checkpoints.io import load_state_dict_checked, load_state_dict_file, verify_sha256
from faceprior.checkpoints.registry import CheckpointSpec, get_spec, identify, match_kwargs

ENV_VAR = "FACEPRIOR_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = "~/.cache/faceprior/weights"


def weights_dir() -> Path:
    """The local weights directory: ``$FACEPRIOR_WEIGHTS_DIR`` or ``~/.cache/faceprior/weights``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_WEIGHTS_DIR).expanduser()


_default_weights_dir = weights_dir


def _target(spec: CheckpointSpec, directory: str | Path | None) -> tuple[Path, Path]:
    folder = Path(directory).expanduser() if directory is not None else _default_weights_dir()
    return folder, folder / spec.filename


def resolve_weights(name: str, weights_dir: str | Path | None = None) -> Path:
    """Path of a registered file in the weights directory.

    Raises:
        FileNotFoundError: naming the file, its official URL (or share page) and the directory
            to put it in.
        UnknownCheckpointError: for a name that is not registered.
    """
    spec = get_spec(name)
    folder, path = _target(spec, weights_dir)
    if path.is_file():
        return path
    how = (
        f"run `faceprior-weights download {spec.name}` or download {spec.url}"
        if spec.url
        else f"download it from {spec.source()}"
    )
    raise FileNotFoundError(
        f"weights '{spec.name}' not found: expected the file {spec.filename} in {folder}. "
        f"To get it, {how} and put it in {folder} (or set {ENV_VAR} to the folder that holds it)."
    )


def download_weights(name: str, weights_dir: str | Path | None = None, timeout: float = 60) -> Path:
    """Download a registered file from its official URL into the weights directory.

    The download goes to a temporary file first and is moved in place only when complete and,
    when a SHA-256 is registered, verified.

    Raises:
        DownloadError: when there is no direct URL or the transfer fails (e.g. no network).
    """
    spec = get_spec(name)
    folder, path = _target(spec, weights_dir)
    if spec.url is None:
        raise DownloadError(
            f"'{spec.name}' has no direct download URL; get {spec.filename} from "
            f"{spec.source()} and put it in {folder}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        if spec.sha256:
            verify_sha256(tmp, spec.sha256)
        tmp.replace(path)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(
            f"could not download '{spec.name}' from {spec.url}: {exc}. Download it manually and "
            f"put {spec.filename} in {folder}."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_pretrained(
    name: str,
    weights_dir: str | Path | None = None,
    verify_hash: bool = True,
    key: str | None = None,
) -> nn.Module:
    """Build the registered network, load its official file (strict) and return it in eval mode.

    The file may be in any supported layout; for entries with several candidate configurations
    the one that fits the file is used. Call ``.train()`` to fine-tune.
    """
    spec = get_spec(name)
    path = resolve_weights(spec.name, weights_dir)
    if verify_hash and spec.sha256:
        verify_sha256(path, spec.sha256)
    extracted = load_state_dict_file(path, key=key)
    kwargs = match_kwargs(spec, extracted.state_dict) or dict(spec.kwargs)
    model = spec.build(kwargs)
    source = f"{path} [{extracted.describe()}] (registry entry '{spec.name}')"
    load_state_dict_checked(model, extracted.state_dict, source=source)
    return model.eval()


def load_from_file(
    path: str | Path, name: str | None = None, key: str | None = None, trusted: bool = False
) -> nn.Module:
    """Build the right network for an official-layout file and load it (strict, eval mode).

    With ``name`` the registry entry decides the architecture; without it the file's keys and
    shapes are matched against every registered architecture (files renamed by users, own
    exports of a registered configuration).

    Raises:
        CheckpointError: when no registered architecture fits the file.
    """
    extracted = load_state_dict_file(path, key=key, trusted=trusted)
    if name is not None:
        spec = get_spec(name)
        kwargs = match_kwargs(spec, extracted.state_dict) or dict(spec.kwargs)
    else:
        matches = identify(extracted.state_dict)
        if not matches:
            raise CheckpointError(
                f"{path} [{extracted.describe()}] fits no registered architecture; build the "
                "network yourself and use load_state_dict_checked()"
            )
        spec, kwargs = matches[0]
    model = spec.build(kwargs)
    source = f"{path} [{extracted.describe()}] (registry entry '{spec.name}')"
    load_state_dict_checked(model, extracted.state_dict, source=source)
    return model.eval()
