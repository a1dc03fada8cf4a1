"""Procedural synthetic faces: the embedded default dataset.

The images are *synthetic* cartoon-like faces, not photographs. They exist so that the quickstart and
the test-suite can train and evaluate a restoration model without downloading anything. Every image is
a pure function of ``(seed, index, size)``: the same call always writes the same pixels.

Faces are placed on the FFHQ five-point alignment template (eyes, nose tip, mouth corners) after a small
random similarity transform (roll, scale, shift) and a yaw-like horizontal offset of the nose and mouth,
so aligned-face assumptions (component boxes, pyramid losses) hold as they do for FFHQ crops. Each image
comes with eye and mouth boxes in the FFHQ component-landmark file format
(``{"00000000": {"left_eye": [cx, cy, half_len], "right_eye": [...], "mouth": [...]}}``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

log = logging.getLogger(__name__)

#: FFHQ 512x512 five-point template (x, y): left eye, right eye, nose tip, left and right mouth corner.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)

SKIN_TONES = np.array(
    [
        [255, 224, 196],
        [241, 194, 167],
        [224, 172, 138],
        [198, 134, 99],
        [161, 102, 70],
        [120, 74, 48],
        [87, 53, 36],
    ],
    dtype=np.float64,
)
HAIR_COLOURS = np.array(
    [[20, 16, 14], [60, 40, 28], [110, 75, 45], [180, 140, 90], [220, 200, 160], [140, 60, 30]],
    dtype=np.float64,
)
IRIS_COLOURS = np.array(
    [[70, 45, 25], [110, 80, 50], [60, 100, 150], [70, 120, 80], [30, 25, 20]], dtype=np.float64
)

#: Supersampling factor used when drawing (the image is drawn large, then area-downsampled).
_SUPERSAMPLE = 4
_DRAW_SHIFT = 4  # fixed-point bits for sub-pixel cv2 drawing


@dataclass(frozen=True)
class SyntheticFace:
    """One rendered face: RGB uint8 image and its component boxes ``[cx, cy, half_len]``."""

    image: np.ndarray
    components: dict[str, list[float]]
    landmarks: np.ndarray  # (5, 2) five-point landmarks in image pixels


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(np.rint(p[0] * (1 << _DRAW_SHIFT))), int(np.rint(p[1] * (1 << _DRAW_SHIFT)))


def _axes(a: float, b: float) -> tuple[int, int]:
    return max(1, int(np.rint(a * (1 << _DRAW_SHIFT)))), max(
        1, int(np.rint(b * (1 << _DRAW_SHIFT)))
    )


def _ellipse(
    img: np.ndarray,
    centre: np.ndarray,
    axes: tuple[float, float],
    angle: float,
    colour: np.ndarray,
    thickness: int = -1,
) -> None:
    cv2.ellipse(
        img,
        _pt(centre),
        _axes(*axes),
        angle,
        0,
        360,
        tuple(float(c) for c in colour),
        thickness,
        cv2.LINE_AA,
        _DRAW_SHIFT,
    )


def _polyline(img: np.ndarray, pts: np.ndarray, colour: np.ndarray, thickness: int) -> None:
    fixed = np.round(pts * (1 << _DRAW_SHIFT)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(
        img,
        [fixed],
        False,
        tuple(float(c) for c in colour),
        max(1, thickness),
        cv2.LINE_AA,
        _DRAW_SHIFT,
    )


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def render_face(seed: int, index: int, size: int) -> SyntheticFace:
    """Render face number ``index`` of the stream ``seed`` at ``size`` x ``size`` pixels."""
    if size < 16:
        raise ValueError(f"synthetic face size must be >= 16 pixels, got {size}")
    rng = np.random.default_rng([int(seed), int(index)])
    canvas = size * _SUPERSAMPLE
    s = canvas / 512.0  # template units -> canvas pixels

    # Pose: similarity transform of the template plus a yaw-like offset of the central features.
    roll = math.radians(rng.uniform(-10, 10))
    scale = rng.uniform(0.92, 1.08)
    shift = rng.uniform(-10, 10, size=2)
    yaw = rng.uniform(-1.0, 1.0)
    centre = np.array([256.0, 300.0])
    rot = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    pts = FFHQ_TEMPLATE_512.copy()
    pts[2:, 0] += yaw * 14.0  # nose and mouth move sideways when the head turns
    pts = (pts - centre) @ rot.T * scale + centre + shift
    pts *= s
    eye_l, eye_r, nose, mouth_l, mouth_r = pts
    eye_dist = float(np.linalg.norm(eye_r - eye_l))
    angle = math.degrees(roll)
    face_axis = np.array([-math.sin(roll), math.cos(roll)])  # points "down" the face
    across = np.array([math.cos(roll), math.sin(roll)])

    # Background: a two-colour gradient with a few soft blobs.
    c0, c1 = rng.uniform(20, 235, size=(2, 3))
    g = np.linspace(0.0, 1.0, canvas)[:, None, None]
    direction = rng.uniform()
    grad = g if direction < 0.5 else g.transpose(1, 0, 2)
    img = (c0 * (1 - grad) + c1 * grad) * np.ones((canvas, canvas, 1))
    for _ in range(int(rng.integers(2, 6))):
        blob = rng.uniform(0, canvas, size=2)
        _ellipse(
            img,
            blob,
            tuple(rng.uniform(0.05, 0.25, size=2) * canvas),
            rng.uniform(0, 180),
            rng.uniform(0, 255, size=3),
        )
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=canvas * 0.02)

    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.93, 1.05, size=3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.9, 1.1, size=3)
    face_centre = (eye_l + eye_r) / 2 + face_axis * eye_dist * 0.55
    face_w = eye_dist * rng.uniform(0.98, 1.12)
    face_h = eye_dist * rng.uniform(1.35, 1.5)

    # Shoulders / neck, then hair behind the head, then the head itself.
    shirt = rng.uniform(0, 255, size=3)
    _ellipse(
        img, face_centre + face_axis * face_h * 2.1, (face_w * 2.2, face_h * 1.1), angle, shirt
    )
    _ellipse(
        img,
        face_centre + face_axis * face_h * 0.95,
        (face_w * 0.45, face_h * 0.6),
        angle,
        skin * 0.85,
    )
    hair_len = rng.uniform(0.9, 1.5)
    _ellipse(
        img,
        face_centre - face_axis * face_h * 0.15 + face_axis * face_h * (hair_len - 1.0) * 0.5,
        (face_w * 1.18, face_h * hair_len),
        angle,
        hair,
    )
    _ellipse(img, face_centre, (face_w, face_h), angle, skin)
    ear_y = (eye_l + eye_r) / 2 + face_axis * eye_dist * 0.35
    for side in (-1.0, 1.0):
        _ellipse(
            img,
            ear_y + across * side * face_w * 0.98,
            (face_w * 0.12, face_h * 0.2),
            angle,
            skin * 0.92,
        )
    # Fringe: the upper part of the head covered with hair.
    fringe = face_centre - face_axis * face_h * rng.uniform(0.72, 0.85)
    _ellipse(img, fringe, (face_w * 1.02, face_h * 0.38), angle, hair)

    # Eyes, brows.
    eye_w = eye_dist * rng.uniform(0.21, 0.27)
    eye_h = eye_w * rng.uniform(0.42, 0.55)
    iris = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))]
    gaze = across * rng.uniform(-0.25, 0.25) * eye_w
    brow_lift = rng.uniform(0.3, 0.45) * eye_dist
    brow_thick = max(1, int(np.rint(eye_dist * rng.uniform(0.03, 0.06))))
    for ec, side in ((eye_l, -1.0), (eye_r, 1.0)):
        _ellipse(img, ec, (eye_w, eye_h), angle, np.array([245.0, 245.0, 240.0]))
        _ellipse(img, ec + gaze, (eye_h * 0.95, eye_h * 0.95), angle, iris)
        _ellipse(img, ec + gaze, (eye_h * 0.45, eye_h * 0.45), angle, np.array([10.0, 10.0, 10.0]))
        _ellipse(img, ec, (eye_w, eye_h), angle, skin * 0.55, thickness=max(1, brow_thick // 2))
        b0 = ec - face_axis * brow_lift - across * side * eye_w * 1.1
        b2 = ec - face_axis * brow_lift + across * side * eye_w * 1.1
        b1 = (b0 + b2) / 2 - face_axis * eye_w * 0.35
        _polyline(img, _bezier(b0, b1, b2), hair * 0.8, brow_thick)

    # Nose: a soft shadow line and nostrils.
    bridge_top = (eye_l + eye_r) / 2 + face_axis * eye_dist * 0.1
    _polyline(img, np.stack([bridge_top, nose]), skin * 0.75, max(1, brow_thick // 2))
    for side in (-1.0, 1.0):
        _ellipse(
            img,
            nose + across * side * eye_dist * 0.1 + face_axis * eye_dist * 0.03,
            (eye_dist * 0.05, eye_dist * 0.03),
            angle,
            skin * 0.45,
        )

    # Mouth: lips and the mouth line through the two corners.
    lips = np.array([170.0, 60.0, 70.0]) * rng.uniform(0.75, 1.15, size=3)
    mouth_c = (mouth_l + mouth_r) / 2
    mouth_w = float(np.linalg.norm(mouth_r - mouth_l)) / 2
    smile = rng.uniform(-0.15, 0.45)
    open_h = mouth_w * rng.uniform(0.15, 0.4)
    _ellipse(img, mouth_c, (mouth_w, open_h), angle, lips)
    _polyline(
        img,
        _bezier(mouth_l, mouth_c + face_axis * mouth_w * smile, mouth_r),
        lips * 0.4,
        max(1, brow_thick // 2),
    )

    # Directional lighting and fine skin texture.
    light = rng.uniform(-1, 1, size=2)
    yy, xx = np.mgrid[0:canvas, 0:canvas] / canvas - 0.5
    shading = 1.0 + 0.35 * (light[0] * xx + light[1] * yy)
    img = img * shading[..., None]
    small = rng.normal(0.0, 1.0, size=(max(2, size // 2), max(2, size // 2), 3))
    img += cv2.resize(small, (canvas, canvas), interpolation=cv2.INTER_CUBIC) * rng.uniform(1, 4)

    image = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    # Component boxes in output pixels, FFHQ-file convention [cx, cy, half_len].
    to_px = size / canvas
    min_half = 16.0 * size / 512.0
    eye_half = max(eye_w * to_px, min_half)
    mouth_half = max(mouth_w * 1.05 * to_px, min_half)
    components = {
        "left_eye": [float(eye_l[0] * to_px), float(eye_l[1] * to_px), float(eye_half)],
        "right_eye": [float(eye_r[0] * to_px), float(eye_r[1] * to_px), float(eye_half)],
        "mouth": [float(mouth_c[0] * to_px), float(mouth_c[1] * to_px), float(mouth_half)],
    }
    return SyntheticFace(image=image, components=components, landmarks=pts * to_px)


def iter_faces(seed: int, count: int, size: int, start: int = 0) -> Iterator[SyntheticFace]:
    """Yield ``count`` faces of the stream ``seed`` starting at ``start``."""
    for index in range(start, start + count):
        yield render_face(seed, index, size)


def write_synthetic_split(
    root: str | Path, count: int, size: int, seed: int, *, progress: bool = False
) -> Path:
    """Write ``count`` faces to ``root/images/NNNNNNNN.png`` plus ``root/eye_mouth_landmarks.pth``.

    The component file follows the FFHQ landmark-file layout (keys are 8-digit image stems). A
    ``manifest.json`` records the generator arguments so a folder can be recognised as complete.
    Returns ``root``.
    """
    if size < 1 or count < 0:
        raise ValueError(f"synthetic faces need size >= 1 and count >= 0, got {size} and {count}")
    root = Path(root)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    components: dict[str, dict[str, list[float]]] = {}
    iterator: Iterable[SyntheticFace] = iter_faces(seed, count, size)
    if progress:
        from rich.progress import track

        iterator = track(iterator, total=count, description=f"synthetic faces -> {root}")
    for index, face in enumerate(iterator):
        stem = f"{index:08d}"
        bgr = cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(images / f"{stem}.png"), bgr):
            raise OSError(f"could not write {images / f'{stem}.png'}")
        components[stem] = face.components
    # a split regenerated with fewer faces must not keep the previous split's extra images
    for stale in images.glob("*.png"):
        if stale.stem.isdigit() and len(stale.stem) == 8 and stale.stem not in components:
            stale.unlink()
    torch.save(components, root / "eye_mouth_landmarks.pth")
    manifest = {"generator": "faceprior.data.synthetic", "count": count, "size": size, "seed": seed}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root


def synthetic_split_complete(root: str | Path, count: int, size: int, seed: int) -> bool:
    """True when ``root`` holds a finished split written with exactly these arguments."""
    manifest = Path(root) / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        info = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    if not (info.get("count") == count and info.get("size") == size and info.get("seed") == seed):
        return False
    # also catch folders left inconsistent (extra or missing images)
    return sum(1 for _ in (Path(root) / "images").glob("*.png")) == count


@dataclass
class SyntheticSplits:
    """Synthetic faces generated on first use: ``root/<split>/images`` for each split."""

    root: str
    size: int = 64
    seed: int = 0
    train: int = 512
    val: int = 32
    test: int = 64

    def __post_init__(self) -> None:
        """Range-check the options (``data.synthetic.*`` keys named) before anything is written."""
        for key, value, minimum in (
            ("size", self.size, 1),
            ("train", self.train, 0),
            ("val", self.val, 0),
            ("test", self.test, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f"data.synthetic.{key} must be an integer >= {minimum}, got {value!r}"
                )

    def prepare(self) -> None:
        """Write every split that is missing or was written with other arguments."""
        for offset, (split, count) in enumerate(
            (("train", self.train), ("val", self.val), ("test", self.test))
        ):
            if count <= 0:
                continue
            folder = Path(self.root) / split
            seed = self.seed * 1000 + offset  # disjoint image streams per split
            if not synthetic_split_complete(folder, count, self.size, seed):
                log.info(
                    "generating %d synthetic %dx%d faces in %s", count, self.size, self.size, folder
                )
                write_synthetic_split(folder, count, self.size, seed)
