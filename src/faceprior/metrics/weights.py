"""Registry of the files the network-based metrics need, and their local resolution.

Every metric weight file is looked up by registry name in one directory: an explicit
``weights_dir`` argument, else the platform weights directory of :mod:`faceprior.checkpoints`
(``$FACEPRIOR_WEIGHTS_DIR``, default ``~/.cache/faceprior/weights``). Nothing is downloaded: a
missing file raises :class:`MissingWeightsError` naming the file, its official URL (or share
page) and the directory to put it in.

A SHA-256 is registered only where it is known; torchvision-style names carry the first 8 hex
digits of the SHA-256, which are checked as well. A file that fails either check is still used,
with a warning, and the outcome is part of :meth:`ResolvedWeights.describe`, which the metrics
put into their protocol records (so a table made with a wrong file says so).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceprior.checkpoints import ENV_VAR, sha256sum, weights_dir

_TORCHVISION = "https://download.pytorch.org/models"
_BASICSR_DRIVE = "https://drive.google.com/drive/folders/13cWIQyHX3iNmZRJ5v8v3kdyrT9RBTAi9"
_VQFR_DRIVE = "https://drive.google.com/drive/folders/1k3RCSliF6PsujCMIdCD1hNM63EozlDIZ"


@dataclass(frozen=True)
class MetricWeights:
    """One file used by a metric.

    Attributes:
        name: registry name.
        filename: file name looked for in the weights directory.
        url: official direct download URL, or None when only a share page exists.
        sha256: known SHA-256 of the official file, or None when not known.
        sha256_prefix: leading hex digits of the SHA-256 encoded in the file name, if any.
        page: where a human gets the file when there is no direct URL.
        note: what the file is and who uses it.
    """

    name: str
    filename: str
    url: str | None
    sha256: str | None = None
    sha256_prefix: str | None = None
    page: str | None = None
    note: str = ""

    def source(self) -> str:
        """The direct URL, else the share page."""
        return self.url or self.page or "(no public location recorded)"


METRIC_WEIGHTS: dict[str, MetricWeights] = {
    spec.name: spec
    for spec in (
        MetricWeights(
            "vgg16", "vgg16-397923af.pth", f"{_TORCHVISION}/vgg16-397923af.pth",
            sha256_prefix="397923af", note="torchvision ImageNet VGG16: LPIPS 'vgg' backbone",
        ),
        MetricWeights(
            "alexnet", "alexnet-owt-7be5be79.pth", f"{_TORCHVISION}/alexnet-owt-7be5be79.pth",
            sha256_prefix="7be5be79", note="torchvision ImageNet AlexNet: LPIPS 'alex' backbone",
        ),
        MetricWeights(
            "squeezenet1_1", "squeezenet1_1-b8a52dc0.pth",
            f"{_TORCHVISION}/squeezenet1_1-b8a52dc0.pth", sha256_prefix="b8a52dc0",
            note="torchvision ImageNet SqueezeNet 1.1: LPIPS 'squeeze' backbone",
        ),
        MetricWeights(
            "pt_inception", "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            sha256_prefix="6726825d",
            note="pytorch-fid FID-Inception (TF 2015-12-05 weights); SHA-256 from a third-party "
            "listing, prefix matches the file name",
        ),
        MetricWeights(
            "inception_FFHQ_512", "inception_FFHQ_512-f7b384ab.pth", None,
            sha256_prefix="f7b384ab", page=_BASICSR_DRIVE,
            note="BasicSR FID statistics of 50,000 FFHQ images at 512 ({'mean', 'cov'})",
        ),
        MetricWeights(
            "arcface_resnet18", "arcface_resnet18.pth",
            "https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth",
            note="GFP-GAN ArcFace ResNet-18 (very likely the same file as VQFR's resnet18_110)",
        ),
        MetricWeights(
            "resnet18_110", "resnet18_110.pth", None, page=_VQFR_DRIVE,
            note="arcface-pytorch resnet_face18 (CASIA-WebFace) used by VQFR's Deg. script",
        ),
        MetricWeights(
            "alignment_WFLW_4HG", "alignment_WFLW_4HG.pth",
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth",
            note="FAN/AWing 4-hourglass, WFLW 98 landmarks (LMD); VQFR ships the same name",
        ),
    )
}  # fmt: skip


class MissingWeightsError(FileNotFoundError):
    """A metric weight file is not in the weights directory."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A registry entry found on disk, with its actual SHA-256 and the check outcome."""

    spec: MetricWeights
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


def get_metric_weights(name: str) -> MetricWeights:
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


def missing_message(spec: MetricWeights, folder: Path) -> str:
    """The error text for a missing file: file name, where to get it, where to put it."""
    how = f"Download {spec.url}" if spec.url else f"Get it from {spec.source()}"
    return (
        f"metric weights '{spec.name}' not found: expected the file {spec.filename} in {folder}. "
        f"{how} and put it in {folder} (or pass weights_dir=..., or set {ENV_VAR})."
    )


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
    path = folder / spec.filename
    if not path.is_file():
        raise MissingWeightsError(missing_message(spec, folder))
    digest = file_sha256(path)
    checks = []
    if spec.sha256:
        checks.append(digest == spec.sha256)
    if spec.sha256_prefix:
        checks.append(digest.startswith(spec.sha256_prefix))
    verified = all(checks) if checks else None
    if verified is False:
        warnings.warn(
            f"{path} does not match the registered SHA-256 of '{spec.name}' (got {digest}); "
            "scores computed with it are not comparable with published numbers",
            stacklevel=2,
        )
    return ResolvedWeights(spec, path, digest, verified)
