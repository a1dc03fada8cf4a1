"""Face detection for in-the-wild photos: facexlib's RetinaFace from a local file, and a stand-in.

A detector is any callable ``detector(image) -> list[Face]`` on an RGB ``uint8`` ``(H, W, 3)``
array with a ``name`` attribute (:class:`FaceDetector`). :class:`RetinaFaceDetector` wraps
facexlib's RetinaFace (ResNet-50 or MobileNet-0.25): the weights are read from a local file and
never downloaded; photos larger than ``max_side`` are detected on a downscaled copy and the boxes
and landmarks mapped back to full resolution. :class:`KnownFaces` returns given landmarks (tests,
benchmarks, or landmarks from another tool).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from faceprior.inference.templates import apply_affine, resize_matrix

#: facexlib's RetinaFace variants: file name (the basename of facexlib's URL) and its URL
DETECTOR_FILES: dict[str, tuple[str, str]] = {
    "retinaface_resnet50": (
        "detection_Resnet50_Final.pth",
        "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
    ),
    "retinaface_mobile0.25": (
        "detection_mobilenet0.25_Final.pth",
        "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
    ),
}
DETECTOR_ALIASES = {
    "resnet50": "retinaface_resnet50",
    "mobile0.25": "retinaface_mobile0.25",
    "mobilenet0.25": "retinaface_mobile0.25",
}


@dataclass(frozen=True)
class Face:
    """One detected face in photo pixels.

    Attributes:
        box: ``(x0, y0, x1, y1)``.
        score: detector confidence.
        landmarks: ``(5, 2)``: left eye, right eye, nose, left and right mouth corner.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)

    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))

    def short_side(self) -> float:
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def mapped(self, matrix: np.ndarray) -> Face:
        """The face with box and landmarks mapped by a ``2 x 3`` scale/translation matrix."""
        corners = apply_affine(matrix, np.array(self.box).reshape(2, 2)).reshape(-1)
        box = (float(corners[0]), float(corners[1]), float(corners[2]), float(corners[3]))
        return Face(box, self.score, apply_affine(matrix, self.landmarks))


class FaceDetector(Protocol):
    """What the restorer needs of a detector."""

    name: str

    def __call__(self, image: np.ndarray) -> list[Face]: ...


def center_face(faces: Sequence[Face], height: int, width: int) -> list[Face]:
    """The face whose box centre is nearest the photo centre (facexlib's ``only_center_face``)."""
    if not faces:
        return []
    centre = np.array([width / 2.0, height / 2.0])

    def distance(face: Face) -> float:
        mid = np.array([(face.box[0] + face.box[2]) / 2.0, (face.box[1] + face.box[3]) / 2.0])
        return float(np.linalg.norm(mid - centre))

    return [min(faces, key=distance)]


@dataclass
class FaceFilter:
    """Keep faces above score and size limits; optionally only the central one.

    Attributes:
        threshold: minimum detector score (GFP-GAN uses 0.97, GPEN 0.9).
        min_size: minimum short side of the box, photo pixels.
        min_eye_distance: minimum distance between the eyes, photo pixels (GFP-GAN: 5; drops
            profile views and specks).
        only_center_face: keep the face nearest the centre.
    """

    threshold: float = 0.97
    min_size: float = 0.0
    min_eye_distance: float = 5.0
    only_center_face: bool = False

    def __call__(self, faces: Sequence[Face], height: int, width: int) -> list[Face]:
        kept = [
            f
            for f in faces
            if f.score >= self.threshold
            and f.short_side() >= self.min_size
            and f.eye_distance() >= self.min_eye_distance
        ]
        kept.sort(key=lambda f: -f.score)
        return center_face(kept, height, width) if self.only_center_face else kept


def detector_weights(model: str, path: str | Path | None) -> Path:
    """The local RetinaFace file for ``model``: ``path`` itself, or ``<path>/<official name>``.

    Raises:
        FileNotFoundError: naming the expected file, the folder looked in and the official URL.
    """
    filename, url = DETECTOR_FILES[model]
    if path is None:
        from faceprior.checkpoints.weights import weights_dir

        candidates = [weights_dir() / "facexlib" / filename, weights_dir() / filename]
    else:
        p = Path(path).expanduser()
        candidates = [p / filename] if p.is_dir() or not p.suffix else [p]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = " or ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"face detector weights not found: expected {where}. Download {filename} from {url} "
        "(nothing is downloaded automatically) and pass its file or folder with "
        "--detector-weights, or put it in $FACEPRIOR_WEIGHTS_DIR/facexlib/."
    )


def _load_retinaface(model: str, path: Path, device: torch.device) -> torch.nn.Module:
    """Build facexlib's RetinaFace and load ``path`` (facexlib's own loader when the name fits)."""
    from facexlib.detection import init_detection_model
    from facexlib.detection.retinaface import RetinaFace

    if path.name == DETECTOR_FILES[model][0]:
        # facexlib resolves `<model_rootpath>/<basename of its URL>` and downloads only when
        # that file is missing; it exists here, so nothing is fetched.
        net: torch.nn.Module = init_detection_model(
            model, half=False, device=device, model_rootpath=str(path.parent)
        )
        return net
    net = RetinaFace(network_name=model.removeprefix("retinaface_"), half=False, device=device)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net.load_state_dict(state, strict=True)
    return net.eval().to(device)


class RetinaFaceDetector:
    """facexlib RetinaFace on a local weights file, with score/size filters and downscaling.

    Args:
        weights: the ``.pth`` file or a folder holding it under its official name (default:
            ``$FACEPRIOR_WEIGHTS_DIR/facexlib/``).
        model: ``retinaface_resnet50`` (the official tools' default) or ``retinaface_mobile0.25``
            (also ``resnet50`` / ``mobile0.25``).
        device: where the detector runs.
        max_side: photos whose longer side exceeds it are detected on a copy resized to it
            (area interpolation); results are mapped back to the full-resolution photo.
            ``None``: always at full size.
        nms_threshold: RetinaFace's box-overlap suppression.
        filter: score / size / centre-face selection (:class:`FaceFilter`).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        model: str = "retinaface_resnet50",
        device: str | torch.device = "cpu",
        max_side: int | None = 1280,
        nms_threshold: float = 0.4,
        filter: FaceFilter | None = None,
    ) -> None:
        model = DETECTOR_ALIASES.get(model, model)
        if model not in DETECTOR_FILES:
            raise ValueError(f"unknown detector {model!r}; choose one of {sorted(DETECTOR_FILES)}")
        self.model = model
        self.name = model
        self.weights = detector_weights(model, weights)
        self.device = torch.device(device)
        self.max_side = max_side
        self.nms_threshold = nms_threshold
        self.filter = filter or FaceFilter()
        self.net: Any = _load_retinaface(model, self.weights, self.device)
        #: scale of the last photo's detection copy (1: full size)
        self.last_scale = 1.0

    def describe(self) -> dict[str, Any]:
        """Settings recorded in the sidecar."""
        return {
            "name": self.name,
            "weights": str(self.weights),
            "max_side": self.max_side,
            "nms_threshold": self.nms_threshold,
            **{k: getattr(self.filter, k) for k in vars(self.filter)},
        }

    def raw(self, image: np.ndarray) -> list[Face]:
        """Every candidate above a low floor (0.5), in full-resolution photo pixels."""
        h, w = image.shape[:2]
        scale = 1.0
        small = image
        if self.max_side is not None and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        self.last_scale = scale
        bgr = np.ascontiguousarray(small[:, :, ::-1]).astype(np.float32)
        floor = min(0.5, self.filter.threshold)
        with torch.inference_mode():
            dets = self.net.detect_faces(
                bgr, conf_threshold=floor, nms_threshold=self.nms_threshold
            )
        # pixel centres of the detection copy -> of the photo (identity at full size)
        back = resize_matrix(w / small.shape[1], h / small.shape[0])
        faces = []
        for det in np.asarray(dets).reshape(-1, 15):
            face = Face(
                (float(det[0]), float(det[1]), float(det[2]), float(det[3])),
                float(det[4]),
                np.asarray(det[5:15], dtype=np.float64).reshape(5, 2),
            )
            faces.append(face.mapped(back))
        return faces

    def __call__(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        return self.filter(self.raw(image), h, w)


class KnownFaces:
    """A detector that returns landmarks known in advance (tests, benchmarks, external tools).

    Args:
        landmarks: ``(N, 5, 2)`` per photo, or a callable ``image -> (N, 5, 2)``; boxes are the
            landmarks' bounding box grown to a face-sized square.
    """

    name = "known_landmarks"

    def __init__(self, landmarks: np.ndarray | Callable[[np.ndarray], np.ndarray]) -> None:
        self.landmarks = landmarks

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def __call__(self, image: np.ndarray) -> list[Face]:
        pts = self.landmarks(image) if callable(self.landmarks) else self.landmarks
        faces = []
        for lm in np.asarray(pts, dtype=np.float64).reshape(-1, 5, 2):
            centre = lm.mean(0)
            half = 1.6 * float(np.linalg.norm(lm[0] - lm[1])) + 1.0
            x, y = float(centre[0]), float(centre[1])
            faces.append(Face((x - half, y - half, x + half, y + half), 1.0, lm))
        return faces


def describe_detector(detector: object) -> dict[str, Any]:
    """What the sidecar records about any detector."""
    describe = getattr(detector, "describe", None)
    if callable(describe):
        out: dict[str, Any] = describe()
        return out
    return {"name": getattr(detector, "name", type(detector).__name__)}
