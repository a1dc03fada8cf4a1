"""``faceprior-restore``: restore the faces of real photos (files, folders, globs).

Examples::

    faceprior-restore photos/ --model GFPGANv1.4 --out restored/
    faceprior-restore 'scans/**/*.jpg' --model gpen --weights GPEN-BFR-512.pth --out out/ --upscale 1
    faceprior-restore crops/ --model logs/train/runs/<run>/checkpoints/last.ckpt --aligned --out out/

Every input is processed on its own terms: a file that cannot be used is reported with the reason
and the batch goes on; a photo without a face is still written (upscaled) with a note. At the end
the failures are listed. Exit status: 0 when at least one photo was written, 1 when none was,
2 when the model, detector or device cannot be set up.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from faceprior.clitools import DefaultsHelpFormatter, add_debug_flag, debugging
from faceprior.data.io import BadImageError
from faceprior.inference.detection import Face
from faceprior.inference.image_io import Photo, read_photo
from faceprior.inference.outputs import write_outputs
from faceprior.inference.restorer import FaceRestorer
from faceprior.inference.settings import RestoreSettings, build_restorer, max_pixels

#: photos are gathered for one pass until their faces fill a batch, or this many pixels (device
#: memory: each photo is on the device as float32 while its faces are pasted)
GROUP_PIXELS = 48_000_000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def expand_inputs(
    inputs: Sequence[str], recursive: bool = False
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (their images) and glob patterns -> ``(paths, [(input, why nothing)])``."""
    paths: list[Path] = []
    missing: list[tuple[str, str]] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_file():
            paths.append(p)
        elif p.is_dir():
            found = sorted(
                f for f in (p.rglob("*") if recursive else p.iterdir())
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )  # fmt: skip
            if not found:
                missing.append((item, "folder holds no image files"))
            paths.extend(found)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(p), recursive=True))  # noqa: PTH207
            files = [m for m in matches if m.is_file()]
            if not files:
                missing.append((item, "no such file, folder or matching pattern"))
            paths.extend(files)
    unique = list(dict.fromkeys(paths))
    return unique, missing


def build_parser() -> argparse.ArgumentParser:
    d = RestoreSettings()
    p = argparse.ArgumentParser(
        prog="faceprior-restore",
        description="Detect, align, restore and paste back the faces of real photos.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=d.model,
        help="gfpgan | gpen (with --weights), a registry name (GFPGANv1.4, GPEN-BFR-512, ...), a .pth file or a training .ckpt",
    )
    g.add_argument(
        "--weights",
        default=None,
        help="official-layout weights file for --model gfpgan|gpen or a registry name",
    )
    g.add_argument(
        "--weights-dir",
        default=None,
        help="folder of released files (default $FACEPRIOR_WEIGHTS_DIR)",
    )
    g.add_argument(
        "--config",
        default=None,
        help="run config.yaml for a .ckpt whose architecture is not a released one",
    )
    g.add_argument(
        "--trusted",
        action="store_true",
        help="allow Python objects in a .ckpt (only for files you trust)",
    )
    g.add_argument(
        "--face-size", type=int, default=None, help="crop side for a network that does not say"
    )
    g.add_argument(
        "--template",
        choices=["ffhq", "gpen"],
        default=None,
        help="alignment template (default: the model's)",
    )
    g.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default=d.dtype,
        help="precision of the network (autocast; weights stay float32)",
    )
    g.add_argument(
        "--device",
        default=d.device,
        help="auto | cpu | cuda | cuda:N (a missing device is an error)",
    )
    g.add_argument(
        "--nondeterministic",
        dest="deterministic",
        action="store_false",
        help="allow cuDNN autotuning and fresh GFP-GAN noise",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="faces per network call, across photos (default: 8 on a GPU, 1 on the CPU)",
    )
    g.add_argument(
        "--group-images",
        type=int,
        default=d.group_images,
        help="photos whose faces are gathered for one pass",
    )
    g = p.add_argument_group("detection")
    g.add_argument(
        "--aligned",
        action="store_true",
        help="inputs are aligned face crops (no detection, no paste)",
    )
    g.add_argument(
        "--detector",
        default=d.detector,
        help="auto | resnet50 | mobile0.25 (auto: R50 if its file exists, else MobileNet)",
    )
    g.add_argument(
        "--detector-weights",
        default=None,
        help="RetinaFace file or folder (default $FACEPRIOR_WEIGHTS_DIR/facexlib)",
    )
    g.add_argument(
        "--det-threshold", type=float, default=d.det_threshold, help="minimum detection score"
    )
    g.add_argument("--min-face", type=float, default=d.min_face, help="minimum box short side, px")
    g.add_argument(
        "--min-eye-distance",
        type=float,
        default=d.min_eye_distance,
        help="minimum eye distance, px",
    )
    g.add_argument(
        "--det-max-side",
        type=int,
        default=d.det_max_side,
        help="detect on a copy with this longer side (0: full size)",
    )
    g.add_argument(
        "--only-center-face", action="store_true", help="restore only the face nearest the centre"
    )
    g = p.add_argument_group("paste-back")
    g.add_argument("--upscale", type=float, default=d.upscale, help="output scale of the photo")
    g.add_argument(
        "--weight",
        type=float,
        default=d.weight,
        help="fidelity blend: 1 = restored face, 0 = input face",
    )
    g.add_argument(
        "--mask",
        choices=["feather", "parse"],
        default=d.mask,
        help="paste mask (parse needs --parse-weights)",
    )
    g.add_argument("--parse-weights", default=None, help="facexlib ParseNet file or folder")
    g.add_argument(
        "--bg-upsampler",
        default=d.bg_upsampler,
        help="bicubic, or package.module:callable taking and returning (1,3,H,W) in [0,1]",
    )
    g = p.add_argument_group("files")
    g.add_argument(
        "--ext",
        choices=["png", "jpg", "webp"],
        default=d.ext,
        help="format of restored photos (PNG where alpha/16 bits need it)",
    )
    g.add_argument(
        "--no-crops", dest="crops", action="store_false", help="do not write the face crops"
    )
    g.add_argument(
        "--no-compare", dest="compare", action="store_false", help="do not write comparisons"
    )
    g.add_argument(
        "--max-megapixels",
        type=float,
        default=d.max_megapixels,
        help="refuse larger outputs (0: no limit)",
    )
    g.add_argument("--recursive", action="store_true", help="search folders recursively")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return add_debug_flag(p)


@dataclass
class Report:
    """What happened to every input."""

    restored: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    faces: int = 0

    @property
    def written(self) -> int:
        return len(self.restored) + len(self.no_face)


@dataclass
class _Pending:
    photos: list[Photo] = field(default_factory=list)
    faces: list[list[Face]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(f) for f in self.faces)

    def pixels(self) -> int:
        return sum(p.height * p.width for p in self.photos)


class Runner:
    """Feed photos through a restorer in groups and write the outputs."""

    def __init__(
        self, restorer: FaceRestorer, settings: RestoreSettings, out: Path, console: Console
    ) -> None:
        self.restorer, self.settings, self.out, self.console = restorer, settings, out, console
        self.report = Report()
        self.pending = _Pending()
        self.names: set[str] = set()
        self.describe = restorer.describe()
        #: called once per input photo when it is written or has failed (the progress bar)
        self.on_done: Callable[[], None] = lambda: None

    def _name(self, path: Path) -> str:
        base, k = path.stem, 1
        name = base
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def add(self, path: Path) -> None:
        t0 = time.perf_counter()
        try:
            photo = read_photo(
                path,
                max_pixels(self.settings),
                1.0 if self.settings.aligned else self.settings.upscale,
            )
        except BadImageError as err:
            self.fail(str(path), err.reason)
            return
        t_decode = time.perf_counter() - t0
        faces: list[Face] = []
        t0 = time.perf_counter()
        if not self.settings.aligned:
            try:
                faces = self.restorer.detect(photo)
            except Exception as err:  # a detector crash on one photo must not end the batch
                self.fail(str(path), f"face detection failed: {err}")
                return
        timings = {"decode": t_decode, "detect": time.perf_counter() - t0}
        self.pending.photos.append(photo)
        self.pending.faces.append(faces)
        self.pending.names.append(self._name(path))
        self.pending.timings.append(timings)
        if (
            self.pending.count() >= self.restorer.batch_size
            or len(self.pending.photos) >= self.settings.group_images
            or self.pending.pixels() >= GROUP_PIXELS
        ):
            self.flush()

    def fail(self, path: str, reason: str, photo: bool = True) -> None:
        self.report.failed.append((path, reason))
        self.console.print(f"[red]✗[/red] {escape(path)}: {escape(reason)}")
        if photo:
            self.on_done()

    def flush(self) -> None:
        group, self.pending = self.pending, _Pending()
        if not group.photos:
            return
        try:
            results = self.restorer.restore_batch(
                group.photos, None if self.settings.aligned else group.faces
            )
        except Exception as err:
            if len(group.photos) == 1:
                self.fail(group.photos[0].path, f"restoration failed: {type(err).__name__}: {err}")
                return
            for i in range(len(group.photos)):  # isolate the photo that fails
                self.pending = _Pending(
                    [group.photos[i]], [group.faces[i]], [group.names[i]], [group.timings[i]]
                )
                self.flush()
            return
        for result, name, timings in zip(results, group.names, group.timings):
            result.timings = {
                **timings,
                **{k: v for k, v in result.timings.items() if k != "detect"},
            }
            try:
                write_outputs(
                    result,
                    self.out,
                    name,
                    self.describe,
                    self.settings.ext,
                    self.settings.crops,
                    self.settings.compare,
                )
            except (OSError, ValueError) as err:
                self.fail(
                    result.photo.path if result.photo else name, f"cannot write outputs: {err}"
                )
                continue
            path = result.photo.path if result.photo else name
            self.on_done()
            self.report.faces += len(result.faces)
            (self.report.restored if result.faces else self.report.no_face).append(path)
            for note in result.notes:
                if note.startswith("no face"):
                    self.console.print(f"[yellow]![/yellow] {escape(path)}: {escape(note)}")


def print_summary(report: Report, out: Path, console: Console, seconds: float) -> None:
    console.print(
        f"{len(report.restored)} photo(s) restored ({report.faces} faces), {len(report.no_face)} "
        f"without a face, {len(report.failed)} failed, in {seconds:.1f} s -> {escape(str(out))}"
    )
    if report.no_face:
        console.print("written without a face found (check --det-threshold / --min-face):")
        for path in report.no_face:
            console.print(f"  {escape(path)}")
    if report.failed:
        console.print("[red]failed:[/red]")
        for path, reason in report.failed:
            console.print(f"  {escape(path)}: {escape(reason)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = RestoreSettings.from_mapping(vars(args))
    # soft wrap: paths and messages stay on one line (greppable logs); markup escaped where
    # file names or messages are printed (a file may be called "photo[1].jpg")
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    paths, missing = expand_inputs(args.inputs, settings.recursive)
    try:
        restorer = build_restorer(settings)
    except Exception as err:  # set-up: one line on stderr, as every faceprior console script
        if debugging(args):
            raise
        print(f"faceprior-restore: error: {err}", file=sys.stderr)
        return 2
    info = restorer.describe()
    mask = info["mask"]
    console.print(
        f"model {info['model']['name']} ({info['model']['family']}, {restorer.face_size} px, "
        f"template {info['template']}/{info['fit']}) | mask {mask['kind']} | detector "
        f"{(info['detector'] or {}).get('name', 'none (aligned inputs)')} | device {info['device']} "
        f"| {info['dtype']} | upscale {settings.upscale:g} | batch {restorer.batch_size}"
    )
    runner = Runner(restorer, settings, args.out, console)
    for item, reason in missing:
        runner.fail(item, reason, photo=False)
    start = time.perf_counter()
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=args.quiet, transient=False,
    ) as progress:  # fmt: skip
        task = progress.add_task("restoring", total=len(paths))
        runner.on_done = lambda: progress.advance(task)
        for path in paths:
            progress.update(task, description=f"reading {path.name}")
            runner.add(path)
        progress.update(task, description="restoring")
        runner.flush()
        progress.update(task, description="done")
    print_summary(runner.report, args.out, console, time.perf_counter() - start)
    return 0 if runner.report.written else 1


if __name__ == "__main__":
    sys.exit(main())
