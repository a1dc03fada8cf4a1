"""Five-point face templates, the similarity fit onto them, and the pixel geometry around it.

Coordinates are OpenCV's: ``(x, y)`` with the centre of pixel ``(i, j)`` at ``(j, i)``; an affine
matrix is the ``2 x 3`` map from source to destination pixels (what ``cv2.warpAffine`` and
``kornia.geometry.transform.warp_affine`` take). Landmarks are ordered left eye, right eye, nose,
left mouth corner, right mouth corner, as RetinaFace returns them.

Two templates ship, each stated at 512 px and scaled linearly for other face sizes:

- ``ffhq``: GFP-GAN's FFHQ-512 template (facexlib ``FaceRestoreHelper``), fitted by a partial
  affine (rotation + uniform scale + translation) with LMedS, as facexlib does; the crop border is
  filled with the grey facexlib uses.
- ``gpen``: GPEN's looser template (96x112 ArcFace points made square, 25 % inner padding), fitted
  by least squares (Umeyama, GPEN's ``warp_and_crop_face``); the border is black as in GPEN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Fit = Literal["lmeds", "least_squares"]

#: size at which the template points are stated
TEMPLATE_SIZE = 512


@dataclass(frozen=True)
class FaceTemplate:
    """Where the five landmarks sit in an aligned crop, and how to fit them.

    Attributes:
        name: registry key (``ffhq``, ``gpen``).
        points: ``(x, y)`` of the five landmarks in a 512 px crop.
        fit: ``lmeds`` (robust partial affine, OpenCV) or ``least_squares`` (Umeyama similarity).
        border: RGB fill of crop pixels that fall outside the photo (0-255).
    """

    name: str
    points: tuple[tuple[float, float], ...]
    fit: Fit
    border: tuple[int, int, int]

    def scaled(self, size: int) -> np.ndarray:
        """The points for a ``size`` px crop, ``(5, 2)`` float64."""
        return np.asarray(self.points, dtype=np.float64) * (size / TEMPLATE_SIZE)


FFHQ = FaceTemplate(
    "ffhq",
    (
        (192.98138, 239.94708),
        (318.90277, 240.1936),
        (256.63416, 314.01935),
        (201.26117, 371.41043),
        (313.08905, 371.15118),
    ),
    fit="lmeds",
    border=(132, 133, 135),  # facexlib's BGR (135, 133, 132)
)
GPEN = FaceTemplate(
    "gpen",
    (
        (202.0407, 242.8840),
        (309.4302, 242.2900),
        (256.0768, 303.9592),
        (211.9598, 366.8282),
        (300.8911, 366.3363),
    ),
    fit="least_squares",
    border=(0, 0, 0),
)
TEMPLATES: dict[str, FaceTemplate] = {t.name: t for t in (FFHQ, GPEN)}


def get_template(name: str | FaceTemplate) -> FaceTemplate:
    """A template by name (``ffhq`` or ``gpen``), or the template itself."""
    if isinstance(name, FaceTemplate):
        return name
    try:
        return TEMPLATES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown face template {name!r}; choose one of {sorted(TEMPLATES)}"
        ) from None


def fit_least_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``src -> dst`` without reflection (Umeyama 1991); ``2 x 3``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    flip = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[1, 1] = -1.0
    rot = u @ flip @ vt
    var = (s**2).sum() / len(src)
    scale = float((sig * np.diag(flip)).sum() / var) if var > 0 else 1.0
    out = np.empty((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def fit_similarity(landmarks: np.ndarray, template: np.ndarray, fit: Fit) -> np.ndarray:
    """The ``2 x 3`` similarity that maps the photo's ``landmarks`` onto ``template``."""
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if fit == "least_squares":
        return fit_least_squares(landmarks, template)
    matrix, _ = cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)
    if matrix is None:  # degenerate points (all equal): LMedS gives up, least squares does not
        return fit_least_squares(landmarks, template)
    return np.asarray(matrix, dtype=np.float64)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points through a ``2 x 3`` matrix."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def alignment_residual(landmarks: np.ndarray, matrix: np.ndarray, template: np.ndarray) -> float:
    """RMS distance (crop pixels) between the warped landmarks and the template points."""
    diff = apply_affine(matrix, landmarks) - np.asarray(template, dtype=np.float64)
    return float(np.sqrt((diff**2).sum(1).mean()))


def to_3x3(matrix: np.ndarray) -> np.ndarray:
    """The homogeneous ``3 x 3`` form of a ``2 x 3`` affine matrix."""
    out = np.eye(3)
    out[:2] = matrix
    return out


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``2 x 3`` affine matrix."""
    return np.linalg.inv(to_3x3(matrix))[:2]


def resize_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """The ``2 x 3`` map between pixel grids of a resize by ``(sx, sy)`` (pixel centres kept).

    A pixel centre ``x`` of the original lands at ``sx * (x + 0.5) - 0.5`` in the resized image,
    the convention of ``cv2.resize`` and ``F.interpolate(align_corners=False)``.
    """
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, (sx - 1.0) / 2.0], [0.0, sy, (sy - 1.0) / 2.0]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer ∘ inner`` of two ``2 x 3`` affine matrices (``inner`` applied first)."""
    return (to_3x3(outer) @ to_3x3(inner))[:2]


def crop_scale(matrix: np.ndarray) -> float:
    """Crop pixels per photo pixel of a similarity (its uniform scale)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
