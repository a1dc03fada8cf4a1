"""What ``faceprior-restore`` writes per photo, under ``--out``:

- ``restored/<name>.<ext>``: the restored photo (input's channels, alpha and bit depth kept);
- ``faces/<name>_<k>_before.png`` / ``_after.png``: each aligned crop before and after;
- ``compare/<name>.jpg``: input (resized to the output size) and result side by side;
- ``sidecars/<name>.json``: boxes, scores, landmarks, the similarity and its residual per face,
  the settings (model, template, mask, detector, device, precision) and the timings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceprior.inference.image_io import output_suffix, write_photo
from faceprior.inference.restorer import Restored

#: longest side of each half of a comparison image
COMPARE_MAX_SIDE = 2048
FOLDERS = ("restored", "faces", "compare", "sidecars")


def _round(value: Any, digits: int = 4) -> Any:
    if isinstance(value, np.ndarray):
        return _round(value.tolist(), digits)
    if isinstance(value, float | np.floating):
        return round(float(value), digits)
    if isinstance(value, list | tuple):
        return [_round(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    return value


def comparison(
    before: np.ndarray, after: np.ndarray, max_side: int = COMPARE_MAX_SIDE
) -> np.ndarray:
    """``before`` resized to ``after``'s size and ``after``, side by side, RGB in [0, 1]."""
    h, w = after.shape[:2]
    left = (
        cv2.resize(before, (w, h), interpolation=cv2.INTER_CUBIC)
        if before.shape[:2] != (h, w)
        else before
    )
    pair = np.concatenate([np.clip(left, 0, 1), after], axis=1)
    scale = max_side / max(h, w)
    if scale < 1:
        size = (max(1, round(pair.shape[1] * scale)), max(1, round(pair.shape[0] * scale)))
        pair = cv2.resize(pair, size, interpolation=cv2.INTER_AREA)
    return np.asarray(pair, dtype=np.float32)


def face_entries(result: Restored, crops: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The sidecar's per-face records."""
    entries = []
    for k, face in enumerate(result.faces):
        entry: dict[str, Any] = {
            "index": k,
            "box": list(face.box),
            "score": face.score,
            "landmarks": None if face.landmarks is None else face.landmarks,
            "matrix": face.matrix,
            "alignment_residual_px": face.residual,
        }
        if k < len(crops):
            entry["crop_before"], entry["crop_after"] = crops[k]
        entries.append(entry)
    return entries


def write_outputs(
    result: Restored,
    out_dir: Path,
    name: str,
    settings: dict[str, Any],
    ext: str = "png",
    crops: bool = True,
    compare: bool = True,
) -> dict[str, Any]:
    """Write every output of one photo; returns the sidecar (also written)."""
    photo = result.photo
    suffix = output_suffix(ext, photo)
    notes = list(result.notes)
    if suffix != f".{ext.lower().lstrip('.')}":
        notes.append(f"written as {suffix[1:].upper()}: .{ext} cannot keep alpha or 16 bits")
    restored_path = write_photo(
        out_dir / "restored" / f"{name}{suffix}", result.image, photo, result.alpha
    )
    crop_paths: list[tuple[str, str]] = []
    if crops:
        for k, face in enumerate(result.faces):
            before = write_photo(out_dir / "faces" / f"{name}_{k:02d}_before.png", face.before)
            after = write_photo(out_dir / "faces" / f"{name}_{k:02d}_after.png", face.after)
            crop_paths.append((str(before), str(after)))
    compare_path = None
    if compare and photo is not None:
        pair = comparison(photo.rgb, result.image)
        compare_path = write_photo(out_dir / "compare" / f"{name}.jpg", pair)
    sidecar: dict[str, Any] = {
        "input": None if photo is None else photo.path,
        "input_size": None if photo is None else [photo.width, photo.height],
        "output": str(restored_path),
        "output_size": [int(result.image.shape[1]), int(result.image.shape[0])],
        "status": "restored" if result.faces else "no_face",
        "faces_found": len(result.faces),
        "notes": notes,
        "comparison": None if compare_path is None else str(compare_path),
        "faces": face_entries(result, crop_paths),
        "timings_s": result.timings,
        "settings": settings,
    }
    path = out_dir / "sidecars" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_round(sidecar), indent=2))
    return sidecar
