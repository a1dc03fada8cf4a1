"""The metric files of the weights registry, and their local resolution with hash checks.

The files themselves are registered once, in :data:`faceprior.checkpoints.WEIGHTS`, next to the
networks (ArcFace serves the identity loss and the ID-distance metric from one entry);
:data:`METRIC_WEIGHTS` is the part of it the metrics use. Every metric file is looked up by
registry name in one directory: an explicit ``weights_dir`` argument, else the platform weights
directory (``$FACEPRIOR_WEIGHTS_DIR``, default ``~/.cache/faceprior/weights``); files bundled
with a package are read from the package. Nothing is downloaded: a missing file raises
:class:`MissingWeightsError` naming the file, its official URL (or share page) and the directory
to put it in.

A file that fails its registered SHA-256 (or the hash prefix in its name) is still used, with a
warning, and the outcome is part of :meth:`ResolvedWeights.describe`, which the metrics put into
their protocol records (so a table made with a wrong file says so).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceprior.checkpoints import WeightsFile, list_weights, sha256sum, weights_dir
from faceprior.checkpoints.weights import locate_weights, missing_weights_message

#: a registry entry used by a metric (same type as every other registered file)
MetricWeights = WeightsFile

#: Registry entries serving a metric, by name (a view of ``faceprior.checkpoints.WEIGHTS``).
METRIC_WEIGHTS: dict[str, WeightsFile] = {spec.name: spec for spec in list_weights("metric")}


class MissingWeightsError(FileNotFoundError):
    """A metric weight file is not in the weights directory."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A registry entry found on disk, with its actual SHA-256 and the check outcome."""

    spec: WeightsFile
    path: Path
    sha256: str
    verified: bool | None  # None: nothing registered to check against

    def describe(self) -> dict[str, Any]:
        """Protocol record: name, file, path, SHA-256 and verification outcome."""
        return {
            "name": self.spec.name,
            "file": self.spec.filename,
            "path": str(self.path),
            "sha256": self.sha256,
            "verified": self.verified,
        }


def get_metric_weights(name: str) -> WeightsFile:
    """Registry entry by name; ``KeyError`` lists the known names."""
    try:
        return METRIC_WEIGHTS[name]
    except KeyError:
        raise KeyError(
            f"unknown metric weights {name!r}; known: {sorted(METRIC_WEIGHTS)}"
        ) from None


def metric_weights_dir(directory: str | Path | None = None) -> Path:
    """``directory`` if given, else the platform weights directory."""
    return Path(directory).expanduser() if directory is not None else weights_dir()


def missing_message(spec: WeightsFile, folder: Path) -> str:
    """The error text for a missing metric file (the registry's one message for all weights)."""
    return missing_weights_message(spec, folder)


@functools.lru_cache(maxsize=32)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256sum(path)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, cached per (path, size, modification time) within the process."""
    stat = Path(path).stat()
    return _cached_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def resolve_metric_weights(name: str, weights_dir: str | Path | None = None) -> ResolvedWeights:
    """Find a registered metric file locally and check it against the known hashes.

    Raises:
        MissingWeightsError: the file is not in the directory (message names file, URL, folder).
    """
    spec = get_metric_weights(name)
    folder = metric_weights_dir(weights_dir)
    path = locate_weights(spec, folder)
    if not path.is_file():
        raise MissingWeightsError(missing_message(spec, folder))
    digest = file_sha256(path)
    verified = spec.check_digest(digest)
    if verified is False:
        warnings.warn(
            f"{path} does not match the registered SHA-256 of '{spec.name}' (got {digest}); "
            "scores computed with it are not comparable with published numbers",
            stacklevel=2,
        )
    return ResolvedWeights(spec, path, digest, verified)
