"""Locating, downloading and loading the registered files from a local directory.

Files are never fetched implicitly: :func:`resolve_weights` only looks in the weights directory
(``$FACEPRIOR_WEIGHTS_DIR``, default ``~/.cache/faceprior/weights``), or in the installing
package for bundled files, and explains where to get a missing file; :func:`download_weights`
fetches the official URL only when called. Every name of :data:`~faceprior.checkpoints.WEIGHTS`
works here (networks, loss networks, metric files); loading a network needs a network entry.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from torch import nn

from faceprior.checkpoints.errors import CheckpointError, ChecksumError, DownloadError
from faceprior.checkpoints.io import (
    load_state_dict_checked,
    load_state_dict_file,
    sha256sum,
    verify_sha256,
)
from faceprior.checkpoints.registry import (
    WeightsFile,
    fitted_kwargs,
    get_spec,
    get_weights,
    identify,
)

ENV_VAR = "FACEPRIOR_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = "~/.cache/faceprior/weights"


def weights_dir() -> Path:
    """The local weights directory: ``$FACEPRIOR_WEIGHTS_DIR`` or ``~/.cache/faceprior/weights``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_WEIGHTS_DIR).expanduser()


_default_weights_dir = weights_dir


def _folder(directory: str | Path | None) -> Path:
    return Path(directory).expanduser() if directory is not None else _default_weights_dir()


def bundled_path(spec: WeightsFile) -> Path | None:
    """Where the installed package keeps a bundled file (None: not bundled, package missing)."""
    if spec.bundled is None:
        return None
    package, _, relative = spec.bundled.partition("/")
    found = importlib.util.find_spec(package)  # locates the package without importing it
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / relative


def locate_weights(name: str | WeightsFile, weights_dir: str | Path | None = None) -> Path:
    """Where a registered file is expected: its bundled copy, else ``<weights dir>/<filename>``.

    The file may not exist; :func:`resolve_weights` checks.
    """
    spec = get_weights(name) if isinstance(name, str) else name
    if spec.bundled is not None:
        return bundled_path(spec) or Path(spec.bundled)
    return _folder(weights_dir) / spec.filename


def resolve_weights(name: str, weights_dir: str | Path | None = None) -> Path:
    """Path of a registered file (network, loss or metric), checked to exist.

    Raises:
        FileNotFoundError: naming the file, its official URL (or share page) and the directory
            to put it in (for a bundled file: the package that should have installed it).
        UnknownCheckpointError: for a name that is not registered.
    """
    spec = get_weights(name)
    path = locate_weights(spec, weights_dir)
    if path.is_file():
        return path
    raise FileNotFoundError(missing_weights_message(spec, path.parent))


def missing_weights_message(spec: WeightsFile, folder: Path) -> str:
    """The text for a missing registered file: its name, where to get it and where to put it."""
    if spec.bundled is not None:
        return (
            f"weights '{spec.name}' not found: {spec.filename} should have been installed with "
            f"the package as {spec.bundled}; reinstall it (original source: {spec.source()})."
        )
    if spec.url:
        how = f"run `faceprior-weights download {spec.name}` or download {spec.url}"
    elif "://" in spec.source():
        how = f"download it from {spec.source()}"
    else:  # not released: how to make it
        how = spec.source()
    return (
        f"weights '{spec.name}' not found: expected the file {spec.filename} in {folder}. "
        f"To get it, {how} and put it in {folder} (or set {ENV_VAR} to the folder that holds it)."
    )


def _verify_download(spec: WeightsFile, path: Path) -> None:
    """Full SHA-256 check where registered, else the file-name prefix where there is one."""
    if spec.sha256:
        verify_sha256(path, spec.sha256)
    elif spec.sha256_prefix:
        digest = sha256sum(path)
        if not digest.startswith(spec.sha256_prefix.lower()):
            raise ChecksumError(
                f"SHA-256 mismatch for {spec.filename}: expected it to start with "
                f"{spec.sha256_prefix}, got {digest}"
            )


def download_weights(name: str, weights_dir: str | Path | None = None, timeout: float = 60) -> Path:
    """Download a registered file from its official URL into the weights directory.

    The download goes to a temporary file first and is moved in place only when complete and,
    when a SHA-256 (or a hash prefix in the file name) is registered, verified.

    Raises:
        DownloadError: when there is no direct URL, the file is bundled with a package, or the
            transfer fails (e.g. no network).
        ChecksumError: when the downloaded file fails the registered hash.
    """
    spec = get_weights(name)
    folder = _folder(weights_dir)
    path = folder / spec.filename
    if spec.bundled is not None:
        raise DownloadError(
            f"'{spec.name}' is installed with a package ({spec.bundled}); nothing to download"
        )
    if spec.url is None:
        where = spec.source()
        where = f"get {spec.filename} from {where}" if "://" in where else where
        raise DownloadError(
            f"'{spec.name}' has no direct download URL; {where} and put it in {folder}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        _verify_download(spec, tmp)
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
    kwargs = fitted_kwargs(spec, extracted.state_dict)
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
        kwargs = fitted_kwargs(spec, extracted.state_dict)
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
