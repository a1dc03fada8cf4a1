"""Fréchet distance between Gaussians and the reference-statistics files FID is measured against.

``frechet_distance`` is ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` in float64.
The trace of the matrix square root is the sum of the square roots of the eigenvalues of a
symmetric matrix with the spectrum of ``S1 S2``: ``L^T S1 L`` with ``S2 = L L^T`` (Cholesky), or
``S1^(1/2) S2 S1^(1/2)`` when ``S2`` is singular (fewer samples than dimensions). Both agree
with pytorch-fid's ``scipy.linalg.sqrtm`` route to ~1e-8 relative or better (also rank-deficient)
and are several times faster at 2048 dimensions.

Statistics files: BasicSR's ``{'name', 'mean', 'cov'}`` dictionaries saved with ``torch.save``
(numpy arrays or tensors), or ``.npz`` files with ``mean``/``cov`` or pytorch-fid's
``mu``/``sigma`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from scipy import linalg

from faceprior.metrics.weights import file_sha256


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in size: {mu1.shape} vs {mu2.shape}")
    try:
        factor = linalg.cholesky(sigma2, lower=True)
        middle = factor.T @ sigma1 @ factor
    except linalg.LinAlgError:  # singular sigma2: symmetric square root of sigma1 instead
        eigval, eigvec = linalg.eigh((sigma1 + sigma1.T) / 2)
        root1 = (eigvec * np.sqrt(np.clip(eigval, 0, None))) @ eigvec.T
        middle = root1 @ sigma2 @ root1
    spectrum = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(spectrum, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def gaussian_of(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, covariance)`` of ``(N, D)`` features as pytorch-fid: ``np.cov(rowvar=False)``."""
    x = np.asarray(features, np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


@dataclass(frozen=True)
class ReferenceStats:
    """Mean and covariance of a reference set's features, with where they came from."""

    mean: np.ndarray
    cov: np.ndarray
    name: str
    sha256: str | None = None
    path: str | None = None
    num_images: int | None = None

    def describe(self) -> dict[str, Any]:
        """Protocol record of the reference statistics."""
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "num_images": self.num_images,
            "dim": int(self.mean.shape[0]),
        }


def _numpy_pickle_globals() -> list[Any]:
    """numpy objects allowed when reading BasicSR's pickled statistics (old and new names)."""
    core = np._core.multiarray  # type: ignore[attr-defined]
    allowed: list[Any] = [np.ndarray, np.dtype, core._reconstruct, core.scalar]
    allowed += [type(np.dtype(t)) for t in ("f8", "f4", "i8", "i4")]
    allowed += [
        (core._reconstruct, "numpy.core.multiarray._reconstruct"),
        (core.scalar, "numpy.core.multiarray.scalar"),
    ]
    return allowed


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def load_reference_stats(path: str | Path, name: str | None = None) -> ReferenceStats:
    """Read reference statistics (``.pth``/``.pt`` BasicSR dict, or ``.npz``).

    Args:
        path: the statistics file.
        name: reference set name to report; default: the file's ``name`` entry or its stem.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"FID reference statistics not found: {path}")
    if path.suffix == ".npz":
        with np.load(path) as data:
            entries: dict[str, Any] = {k: data[k] for k in data.files}
    else:
        with torch.serialization.safe_globals(_numpy_pickle_globals()):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a dict with 'mean' and 'cov', got {type(loaded)}")
        entries = loaded
    mean = entries.get("mean", entries.get("mu"))
    cov = entries.get("cov", entries.get("sigma"))
    if mean is None or cov is None:
        raise ValueError(f"{path}: needs 'mean'/'cov' (or 'mu'/'sigma'); has {sorted(entries)}")
    stored_name = entries.get("name")
    count = entries.get("num_images", entries.get("num_sample"))
    return ReferenceStats(
        mean=_as_array(mean).ravel(),
        cov=_as_array(cov),
        name=name or (str(stored_name) if stored_name is not None else path.stem),
        sha256=file_sha256(path),
        path=str(path),
        num_images=int(count) if count is not None else None,
    )


def save_reference_stats(
    path: str | Path, mean: np.ndarray, cov: np.ndarray, name: str, num_images: int
) -> Path:
    """Write statistics readable by BasicSR (``.pth``: numpy ``mean``/``cov``) or ``.npz``
    (atomically: an interrupted run never leaves a truncated statistics file)."""
    from faceprior.checkpoints.atomic import atomic_write  # lightning_fabric: only when saving

    path = Path(path).expanduser()
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    if path.suffix == ".npz":

        def write_npz(fh: IO[bytes]) -> None:
            np.savez(fh, mean=mean, cov=cov, mu=mean, sigma=cov, name=name, num_images=num_images)

        return atomic_write(path, write_npz)
    stats = {"name": name, "mean": mean, "cov": cov, "num_images": num_images}
    return atomic_write(path, lambda fh: torch.save(stats, fh))
