"""Deterministic benchmark synthesis: degrade a folder of ground-truth faces into a paired test set.

:func:`synth_benchmark` reads the images of a folder (sorted by file name), optionally brings them
to ``size`` x ``size`` with the training pipeline's :func:`~faceprior.data.io.to_square` (centre
square crop, ``cv2.INTER_AREA`` to shrink, ``cv2.INTER_CUBIC`` to enlarge), degrades them with a
``conf/degradation`` preset and writes ``lq/<stem>.png``, ``gt/<stem>.png`` and ``manifest.json``.

Image ``i`` (its position in the listing) gets the per-sample seed of :func:`benchmark_seeds`, and
``Degradation`` draws each sample's parameters from its own generator: an LQ image depends only on
the seed, its index and its ground truth, not on the batch it was computed in.

The manifest has no timestamps and sorted keys, so a rerun writes identical bytes; its
``images_sha256`` digests the per-image entries (names, hashes, drawn parameters). A rerun with the
same settings only checks the recorded hashes and recomputes what is missing or changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
import PIL
import torch
import torchvision
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import faceprior
from faceprior.data.io import IMAGE_EXTENSIONS, BadImageError, decode_image_bytes, to_square
from faceprior.degradation import SEED_MULTIPLIER, Degradation, eval_seeds
from faceprior.utils.config import CONFIG_DIR, setup_config_system

log = logging.getLogger(__name__)

TOOL = "faceprior-prepare synth-benchmark"
MANIFEST_NAME = "manifest.json"
#: zlib level of the written PNGs (lossless; it only changes file size and speed)
PNG_COMPRESSION = 3
#: manifest keys that must match for an existing output folder to be resumed
COMPARED_KEYS = ("tool", "environment", "settings")
#: Knuth's multiplicative-hash constant (odd, so a bijection of the 32-bit seeds)
#: seconds between saves of the (incomplete) manifest while images are written
SAVE_EVERY_S = 10.0


class PrepareError(Exception):
    """Bad inputs or output folder, shown to the user as is; ``exit_code`` for the command line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class SynthSettings:
    """What decides the output: the degradation preset, the seed, the GT size and the device type."""

    degradation: str
    seed: int = 0
    size: int | None = None
    device: str = "cpu"
    preset: str | None = None


@dataclass
class Failure:
    """A ground-truth file that could not be used."""

    index: int
    source: str
    reason: str


@dataclass
class SynthResult:
    """What a run did; ``manifest`` is the written manifest."""

    out: Path
    selected: int
    written: int = 0
    reused: int = 0
    removed: int = 0
    failed: list[Failure] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return self.written + self.reused


def benchmark_seeds(seed: int, indices: Sequence[int]) -> list[int]:
    """Generator seed of image ``i``: the evaluation rule of the datamodule
    (:func:`faceprior.degradation.eval_seeds`, ``(seed * 0x9E3779B1 + i) mod 2**32``)."""
    return eval_seeds(seed, indices)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace) used for digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def images_digest(images: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the per-image entries in canonical JSON: one value to compare two sets by."""
    return sha256_bytes(stable_json(list(images)).encode())


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder`` (hidden files skipped), sorted by file name."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise PrepareError(f"--gt folder '{folder}' does not exist")
    if not folder.is_dir():
        raise PrepareError(f"--gt '{folder}' is not a folder")
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        ),
        key=lambda p: p.name,
    )
    if not files:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise PrepareError(f"--gt folder '{folder}' contains no images ({exts})")
    stems: dict[str, str] = {}
    for p in files:
        if stems.setdefault(p.stem, p.name) != p.name:
            raise PrepareError(f"'{stems[p.stem]}' and '{p.name}' would both be {p.stem}.png")
    return files


def load_degradation(name: str) -> tuple[Degradation, dict[str, Any]]:
    """Compose ``conf/degradation/<name>.yaml`` and build it; returns it and its resolved config."""
    available = sorted(p.stem for p in (CONFIG_DIR / "degradation").glob("*.yaml"))
    if name not in available:
        raise PrepareError(f"unknown degradation '{name}'; presets: {', '.join(available)}")
    setup_config_system()
    overrides = [f"+degradation={name}"]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: use its config search path
        cfg = compose(config_name=None, overrides=overrides)
    else:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name=None, overrides=overrides)
    resolved = OmegaConf.to_container(cfg.degradation, resolve=True)
    assert isinstance(resolved, dict)
    degradation = hydra.utils.instantiate(cfg.degradation)
    if not isinstance(degradation, Degradation):
        raise PrepareError(f"degradation '{name}' does not build a faceprior Degradation")
    return degradation, {str(k): v for k, v in resolved.items()}


def environment() -> dict[str, str]:
    """Versions of the libraries that decode, degrade or encode the pixels (compared on resume)."""
    libs = {"torch": torch, "torchvision": torchvision, "opencv": cv2, "numpy": np}
    return {k: m.__version__ for k, m in libs.items()} | {"kornia": metadata.version("kornia")}


def header(settings: SynthSettings, degradation_config: dict[str, Any]) -> dict[str, Any]:
    """The part of the manifest that must match for an output folder to be resumed."""
    resize = None
    if settings.size is not None:
        resize = {
            "function": "faceprior.data.io.to_square (centre square crop of side min(h, w))",
            "shrink": "cv2.INTER_AREA",
            "enlarge": "cv2.INTER_CUBIC",
        }
    return {
        "tool": {"name": TOOL, "version": faceprior.__version__},
        "environment": environment(),
        "settings": {
            "preset": settings.preset,
            "degradation": settings.degradation,
            "degradation_config": degradation_config,
            "seed": settings.seed,
            "seed_rule": f"image i uses generator seed (seed * {SEED_MULTIPLIER} + i) mod 2**32",
            "order": "image files of --gt sorted by file name; i = position in that list",
            "decode": "faceprior.data.io.decode_image_bytes (8-bit RGB; gray repeated, alpha "
            "over white, 16-bit / 257)",
            "size": settings.size,
            "resize": resize,
            "device": torch.device(settings.device).type,  # the device type decides the pixels
            "png": {"encoder": "cv2.imencode", "compression": PNG_COMPRESSION},
        },
    }


def encode_png(rgb: np.ndarray) -> bytes:
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` floats in [0, 1] -> ``(B, H, W, 3)`` uint8 (round to nearest)."""
    x8 = (x.detach() * 255.0).round().clamp(0, 255).to(torch.uint8)
    return x8.permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class _Pending:
    index: int
    path: Path
    source_sha: str
    source_size: list[int]
    resize: str
    image: np.ndarray


class _Run:
    """One synthesis run: the entries written so far and the batch waiting for the device."""

    def __init__(
        self, out: Path, head: dict[str, Any], degradation: Degradation, settings: SynthSettings
    ) -> None:
        self.out, self.head, self.degradation, self.settings = out, head, degradation, settings
        self.device = device = torch.device(settings.device)
        self.result = SynthResult(out=out, selected=0)
        self.entries: dict[int, dict[str, Any]] = {}
        # previous entries not visited yet, kept in intermediate saves for an interrupted resume
        self.unvisited: dict[int, dict[str, Any]] = {}
        self.pending: list[_Pending] = []
        self.saved_at = time.monotonic()
        self.runtime = {  # informational, not compared on resume
            "device": str(device),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version(),
            "pillow": PIL.__version__,
        }
        if device.type == "cuda":
            self.runtime["device_name"] = torch.cuda.get_device_name(device)

    def save(self, complete: bool) -> dict[str, Any]:
        """Write the manifest; ``complete`` is false while images are still being written."""
        entries = self.entries if complete else {**self.unvisited, **self.entries}
        images = [entries[i] for i in sorted(entries)]
        manifest = {
            **self.head,
            "runtime": self.runtime,
            "complete": complete,
            "count": len(images),
            "failed": [vars(f) for f in sorted(self.result.failed, key=lambda f: f.index)],
            "images": images,
            "images_sha256": images_digest(images),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        _write_atomic(self.out / MANIFEST_NAME, text.encode())
        self.saved_at = time.monotonic()
        return manifest

    def visit(self, index: int, path: Path, batch_size: int, strict: bool) -> None:
        """Reuse, queue or reject image ``index``."""
        previous = self.unvisited.pop(index, None)
        try:
            try:
                data = path.read_bytes()
            except OSError as err:
                raise BadImageError(path, f"cannot read file ({err.strerror or err})") from err
            source_sha = sha256_bytes(data)
            if _reusable(previous, self.out, path.name, source_sha):
                assert previous is not None
                self.entries[index] = previous
                self.result.reused += 1
                return
            image = decode_image_bytes(data, str(path))
        except BadImageError as err:
            self.result.failed.append(Failure(index, path.name, err.reason))
            if strict:
                self.flush()
                self.save(complete=False)
                raise PrepareError(f"{err} (--strict stops at the first bad image)", 1) from err
            log.warning("skipping %s", err)
            return
        h, w = image.shape[:2]
        size, how = self.settings.size, "none"
        if size is not None:
            if min(h, w) != size:
                how = "INTER_AREA" if min(h, w) > size else "INTER_CUBIC"
            image = to_square(image, size)[0]
        if self.pending and self.pending[0].image.shape != image.shape:
            self.flush()  # a batch holds images of one size
        self.pending.append(_Pending(index, path, source_sha, [w, h], how, image))
        if len(self.pending) >= batch_size:
            self.flush()

    def flush(self) -> None:
        """Degrade and write the pending batch; saves the incomplete manifest now and then."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        gt = torch.from_numpy(np.stack([p.image for p in batch])).permute(0, 3, 1, 2)
        seeds = benchmark_seeds(self.settings.seed, [p.index for p in batch])
        lq, gt_used, params = self.degradation(gt.to(self.device).float() / 255.0, seeds)
        lq8, gt8 = _to_uint8(lq), _to_uint8(gt_used)
        values = {k: v.detach().cpu().tolist() for k, v in params.items()}
        for j, (item, seed) in enumerate(zip(batch, seeds, strict=True)):
            entry: dict[str, Any] = {
                "index": item.index,
                "source": item.path.name,
                "source_sha256": item.source_sha,
                "source_size": item.source_size,
                "resize": item.resize,
                "seed": seed,
                "params": {k: float(v[j]) for k, v in values.items()},
            }
            for kind, pixels in (("gt", gt8[j]), ("lq", lq8[j])):
                png = encode_png(pixels)
                entry[kind] = f"{kind}/{item.path.stem}.png"
                entry[f"{kind}_sha256"] = sha256_bytes(png)
                _write_atomic(self.out / entry[kind], png)
            self.entries[item.index] = entry
        self.result.written += len(batch)
        if time.monotonic() - self.saved_at > SAVE_EVERY_S:
            self.save(complete=False)


def _claim_out(out: Path, head: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Check ``out`` against ``head``; returns the previous manifest to resume from, if any.

    ``overwrite`` removes the PNGs of ``lq/`` and ``gt/`` and the manifest instead.
    """
    path = out / MANIFEST_NAME
    previous = None
    if path.is_file() and not overwrite:
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise PrepareError(
                f"cannot read '{path}' ({err}); choose another --out or pass --overwrite"
            ) from err
        if not isinstance(previous, dict):
            raise PrepareError(f"'{path}' is not a manifest; choose another --out")
        diffs = []
        for key in COMPARED_KEYS:
            old = previous.get(key)
            old = old if isinstance(old, dict) else {}
            for sub in sorted(set(old) | set(head[key])):
                a, b = old.get(sub), head[key].get(sub)
                if a != b:
                    diffs.append(f"{key}.{sub}: {stable_json(a)} -> {stable_json(b)}")
        if diffs:
            raise PrepareError(
                f"'{out}' holds a benchmark made with other settings:\n  "
                + "\n  ".join(diffs)
                + "\nchoose another --out, or pass --overwrite to replace it"
            )
        return previous
    pngs = [*out.glob("lq/*.png"), *out.glob("gt/*.png")]
    if pngs and not overwrite:
        raise PrepareError(
            f"'{out}' has images in lq/ or gt/ but no {MANIFEST_NAME}; choose another --out, or "
            "pass --overwrite to replace them"
        )
    for png in pngs:
        png.unlink()
    path.unlink(missing_ok=True)
    return None


def _reusable(entry: dict[str, Any] | None, out: Path, name: str, source_sha: str) -> bool:
    """A previous entry for the same source whose files are on disk with the recorded hashes."""
    if entry is None or entry.get("source") != name or entry.get("source_sha256") != source_sha:
        return False
    files = {kind: out / str(entry.get(kind, "")) for kind in ("gt", "lq")}
    return all(
        f.is_file() and sha256_bytes(f.read_bytes()) == entry.get(f"{k}_sha256")
        for k, f in files.items()
    )


def synth_benchmark(
    gt: str | Path,
    out: str | Path,
    settings: SynthSettings,
    *,
    batch_size: int = 8,
    limit: int | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Write the degraded benchmark of the images in ``gt`` to ``out`` (see the module docstring).

    ``progress(done, total)`` is called after each image. Unusable images are skipped and listed in
    ``failed`` (``strict``: the first one raises :class:`PrepareError` with exit code 1).
    """
    gt, out = Path(gt).expanduser(), Path(out).expanduser()
    if min(batch_size, limit or 1, settings.size or 1) < 1 or not 0 <= settings.seed < 2**32:
        raise PrepareError("batch size, limit and size must be >= 1, 0 <= seed < 2**32")
    files = list_images(gt)[:limit]
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrepareError(f"--device {settings.device}: CUDA is not available")
    degradation, config = load_degradation(settings.degradation)
    head = header(settings, config)
    previous = _claim_out(out, head, overwrite)
    old_entries = {e["index"]: e for e in (previous or {}).get("images", []) if "index" in e}
    for sub in ("lq", "gt"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    run = _Run(out, {**head, "limit": limit}, degradation.to(device).eval(), settings)
    run.result.selected = len(files)
    run.unvisited = dict(old_entries)
    if previous is None:
        run.save(complete=False)  # claims the folder before the first image is written
    for index, path in enumerate(files):
        run.visit(index, path, batch_size, strict)
        if progress is not None:
            progress(index + 1, len(files))
    run.flush()
    result = run.result
    kept = {e[k] for e in run.entries.values() for k in ("gt", "lq")}
    for name in {str(e.get(k)) for e in old_entries.values() for k in ("gt", "lq")} - kept:
        parts = Path(name).parts  # only files this tool names: lq/<stem>.png, gt/<stem>.png
        if len(parts) == 2 and parts[0] in ("gt", "lq") and (out / name).is_file():
            (out / name).unlink()
            result.removed += 1
    result.manifest = run.save(complete=True)
    return result
