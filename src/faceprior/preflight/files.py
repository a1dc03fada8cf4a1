"""The files and folders a composed config reads, found by walking it (nothing is instantiated).

Three sources, each named by the config key that asks for it:

* the data (``data.train_root``, ``data.val_root``, ``data.train_components``) and the benchmark
  folders (``benchmarks.<name>.gt_root`` / ``lq_root``, with the benchmark's ``prepare`` text);
  paths inside ``data.synthetic.root`` are generated on first use;
* file-valued keys anywhere (``decoder_prior``, ``discriminator_prior``, ``init_weights``,
  ``weights_path``, ``reference_stats``, ``ckpt_path``);
* the registry files of the metric and model classes by their ``_target_`` (LPIPS backbone,
  FID Inception and statistics, ArcFace for the identity distance, FAN for LMD, NIQE's model,
  the released network of ``model=official``), looked up in their ``weights_dir`` as they do.

Where a file's name is registered (:data:`faceprior.checkpoints.WEIGHTS`), the fix names its
download command or page; otherwise a hint for the key says what to put there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from faceprior.checkpoints.errors import UnknownCheckpointError
from faceprior.checkpoints.registry import WEIGHTS, WeightsFile, get_weights
from faceprior.checkpoints.weights import ENV_VAR, locate_weights, weights_dir
from faceprior.data.benchmarks import DEFAULT_PREPARE, unset_optional
from faceprior.preflight.report import Need, PreflightReport

#: top-level keys that hold no inputs of the run (or are checked elsewhere)
SKIPPED = frozenset({"hydra", "paths", "stages", "stage_overrides", "compare", "benchmarks"})
#: keys that hold a file path wherever they appear, with what belongs there when it is missing
FILE_KEYS = {
    "decoder_prior": (
        "StyleGAN2 prior",
        "a prior in the params_ema layout: train one (experiment=gfpgan_prior or "
        "gpen_prior_ffhq512) and `faceprior-weights export <run>/checkpoints/last.ckpt FILE`, or "
        "set it to null for a random decoder",
    ),
    "discriminator_prior": (
        "discriminator weights",
        "`faceprior-weights export <run>/checkpoints/last.ckpt FILE --part discriminator`, or null",
    ),
    "init_weights": (
        "generator weights to start from",
        "a generator file in an official layout (`faceprior-weights list --for network`), or "
        "null to start from scratch",
    ),
    "weights_path": (
        "loss network weights",
        "the file `faceprior-weights list --for loss` names, or null for a random network (warned)",
    ),
    "decoder_load_path": (
        "decoder weights",
        "leave it null: the module loads the prior (model.decoder_prior)",
    ),
}
DATA_HINTS = {
    "train_root": (
        "training images (folder or LMDB)",
        "point data.train_root at aligned faces; `faceprior-prepare ffhq|celeba-hq|folder --src "
        "... --out DIR` makes DIR/images (README, 'Your own data')",
    ),
    "val_root": (
        "validation images (folder or LMDB)",
        "point data.val_root at aligned faces kept out of training, or set data.val_root=null",
    ),
    "train_components": (
        "eye/mouth landmark file",
        "`faceprior-prepare ffhq --landmarks ffhq-dataset-v2.json --out DIR` writes "
        "DIR/eye_mouth_landmarks_512.pth; or set data.train_components=null for a model without "
        "component losses",
    ),
}
#: metric classes and the registry files they read when no network is passed in
LPIPS_BACKBONES = {"vgg": "vgg16", "alex": "alexnet", "squeeze": "squeezenet1_1"}


def scalar(node: DictConfig, key: str) -> tuple[Any, str | None]:
    """``node[key]`` resolved, or ``(None, problem)`` for a missing or unresolvable value."""
    if key not in node:
        return None, None
    if OmegaConf.is_missing(node, key):
        return None, "is not set (mandatory value ???)"
    try:
        return node[key], None
    except Exception as err:  # an interpolation that cannot be resolved
        return None, f"cannot be resolved: {err}"


def walk(node: Any, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every mapping of the config with its dotted key, the root's :data:`SKIPPED` keys left out.

    A value that is an interpolation of another node (``model.metrics: ${metrics}``) is visited
    where it lives, not again under the referring key.
    """
    if isinstance(node, DictConfig):
        yield prefix, node
        items: Iterator[tuple[Any, str]] = ((k, str(k)) for k in node)
    elif isinstance(node, ListConfig):
        items = ((i, str(i)) for i in range(len(node)))
    else:
        return
    for key, name in items:
        if not prefix and name in SKIPPED:
            continue
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        try:
            child = node[key]
        except Exception:  # reported where the value is used
            continue
        if isinstance(child, DictConfig | ListConfig):
            yield from walk(child, f"{prefix}.{name}" if prefix else name)


def _inside(path: Path, root: str | None) -> bool:
    if not root:
        return False
    try:
        path.resolve().relative_to(Path(root).expanduser().resolve())
    except ValueError:
        return False
    return True


def registry_fix(spec: WeightsFile, folder: Path) -> str:
    """How to get a registered file into ``folder``."""
    if spec.bundled is not None:
        return f"it is installed with a package as {spec.bundled}: reinstall it"
    if spec.url:
        return f"`faceprior-weights download {spec.name} --dir {folder}` (or {spec.url})"
    if "://" not in spec.source():  # not released: how to make it
        return f"{spec.source()} (into {folder})"
    return f"get {spec.filename} from {spec.source()} into {folder}"


def registry_need(key: str, name: str, directory: Any, what: str = "") -> Need:
    """The need for a registered file looked up by name in ``directory`` (default: the platform
    weights directory, as the metrics do)."""
    try:
        spec = get_weights(name)
    except UnknownCheckpointError:
        known = ", ".join(WEIGHTS)
        return Need(key, "value", f"registry name {name!r}", ok=False, fix=f"known: {known}")
    folder = Path(str(directory)).expanduser() if directory else weights_dir()
    path = locate_weights(spec, folder)
    note = "bundled" if spec.bundled else ""
    label = what or spec.note or spec.name
    return Need(key, "file", label, str(path), path.is_file(), registry_fix(spec, folder), note)


def file_need(key: str, value: Any, what: str, hint: str) -> Need:
    """The need for a file named by path: registered names get their download command."""
    path = Path(str(value)).expanduser()
    fix = hint
    try:
        spec = get_weights(path.name)
    except UnknownCheckpointError:
        spec = None
    if spec is not None and spec.filename == path.name:
        fix = registry_fix(spec, path.parent)
        what = f"{what} ({spec.name})"
    else:
        named = [w.name for w in WEIGHTS.values() if key in w.config_keys]
        if named:
            fix += f"; registered files for {key}: {', '.join(named)}"
    return Need(key, "file", what, str(path), path.is_file(), fix)


def data_needs(cfg: DictConfig, report: PreflightReport, training: bool) -> None:
    """``data.*`` folders and files (training only: evaluation reads just the benchmarks)."""
    data = cfg.get("data")
    if not training or not isinstance(data, DictConfig):
        return
    synthetic = data.get("synthetic") if "synthetic" in data else None
    generated = synthetic.get("root") if isinstance(synthetic, DictConfig) else None
    for name, (what, fix) in DATA_HINTS.items():
        key = f"data.{name}"
        value, problem = scalar(data, name)
        if problem:
            report.add(Need(key, "value", f"{what} {problem}", ok=False, fix=fix))
            continue
        if value in (None, ""):
            continue
        path = Path(str(value)).expanduser()
        kind = "file" if name == "train_components" else "folder"
        if _inside(path, generated):
            report.add(Need(key, kind, what, str(path), note="data=synthetic generates it"))
        else:
            ok = path.is_file() if kind == "file" else path.exists()
            report.add(Need(key, kind, what, str(path), ok, fix))


def benchmark_needs(cfg: DictConfig, report: PreflightReport) -> None:
    """Every benchmark's folders (as :meth:`Benchmark.missing` words them), with its ``prepare``
    text as the fix; optional benchmarks without folders are left out, as the run does."""
    data = cfg.get("data")
    synthetic = data.get("synthetic") if isinstance(data, DictConfig) else None
    generated = synthetic.get("root") if isinstance(synthetic, DictConfig) else None
    kept = 0
    for name, node in (cfg.get("benchmarks") or {}).items():
        if not isinstance(node, DictConfig):
            continue
        key = f"benchmarks.{name}"
        try:
            if unset_optional(node):
                what = "left out: its folders are not configured"
                report.add(Need(key, "note", what, note=str(node.get("prepare") or "")))
                continue
            bench = hydra.utils.instantiate(node)
        except Exception as err:  # a missing (???) or unresolvable root, a bad kind
            report.add(Need(key, "value", one_line(err), ok=False, fix=DEFAULT_PREPARE))
            continue
        kept += 1
        prepare = bench.prepare or DEFAULT_PREPARE
        made = {k: v for k, v in bench.roots().items() if _inside(Path(v), generated)}
        for root, path in bench.roots().items():
            label = f"benchmark '{name}' {root}"
            if root in made:
                note = "data=synthetic generates it"
                report.add(Need(f"{key}.{root}", "folder", label, path, note=note))
            elif Path(path).exists():
                report.add(Need(f"{key}.{root}", "folder", label, path))
        missing = None if made else bench.missing()
        if missing:
            report.add(Need(key, "folder", missing, ok=False, fix=prepare))
    if not kept:
        what = "no benchmark to test on: the test stage is skipped"
        fix = "choose benchmarks with benchmark=[...] (conf/benchmark)"
        report.add(Need("benchmarks", "note", what, note=fix))


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def _class_name(node: DictConfig) -> str:
    target = str(node.get("_target_") or "")
    return target.rsplit(".", 1)[-1] if target.startswith("faceprior.") else ""


def target_needs(key: str, node: DictConfig) -> Iterator[Need]:
    """Registry files the ``_target_`` of ``node`` reads (metrics, ``model=official``)."""
    name = _class_name(node)
    folder = node.get("weights_dir") if "weights_dir" in node else None
    where = key or "(root)"
    if name == "LPIPS" and not node.get("random_backbone", False):
        net = str(node.get("net", "vgg"))
        if net in LPIPS_BACKBONES:
            yield registry_need(
                f"{where}.net", LPIPS_BACKBONES[net], folder, f"LPIPS {net} backbone"
            )
            yield registry_need(f"{where}.net", f"lpips_{net}", folder, f"LPIPS {net} heads")
    elif name == "FID":
        if node.get("feature_extractor") is None:
            yield registry_need(where, "pt_inception", folder, "FID Inception")
        stats = node.get("reference_stats")
        if isinstance(stats, str) and stats in WEIGHTS:
            yield registry_need(f"{where}.reference_stats", stats, folder, "FID statistics")
        elif stats:
            hint = (
                "statistics from `faceprior-fid-stats FOLDER --out FILE`, a registry name "
                "(inception_FFHQ_512), or null to compare with the ground truth"
            )
            yield file_need(f"{where}.reference_stats", stats, "FID statistics", hint)
    elif name == "IdentityDistance" and node.get("network") is None:
        weights = str(node.get("weights", "arcface_resnet18"))
        yield registry_need(f"{where}.weights", weights, folder, "identity-distance ArcFace")
    elif name == "LandmarkDistance" and node.get("network") is None:
        yield registry_need(where, "alignment_WFLW_4HG", folder, "LMD landmark network (FAN)")
    elif name == "NIQE":
        yield registry_need(where, "niqe_pris_params", folder, "NIQE pristine model")
    elif name == "OfficialRestorer":
        value, problem = scalar(node, "weights")
        if problem or not value:
            fix = "a registry name (`faceprior-weights list --for network`)"
            yield Need(
                f"{where}.weights",
                "value",
                f"released network {problem or 'is null'}",
                ok=False,
                fix=fix,
            )
        else:
            yield registry_need(f"{where}.weights", str(value), folder, f"released network {value}")


def weights_needs(cfg: DictConfig, report: PreflightReport) -> None:
    """File-valued keys and the registry files of every ``_target_`` node."""
    for key, node in walk(cfg):
        for name, (what, hint) in FILE_KEYS.items():
            value, problem = scalar(node, name)
            full = f"{key}.{name}" if key else name
            if problem:
                report.add(Need(full, "value", f"{what} {problem}", ok=False, fix=hint))
            elif value not in (None, ""):
                report.add(file_need(full, value, what, hint))
        if "_target_" in node:
            try:
                for need in target_needs(key, node):
                    report.add(need)
            except Exception as err:  # an unresolvable value: named with its node
                report.add(Need(key, "value", f"cannot be resolved: {err}", ok=False))


def checkpoint_need(cfg: DictConfig, report: PreflightReport) -> None:
    """``ckpt_path`` (a file; ``latest`` and null are resolved later)."""
    if "ckpt_path" not in cfg or OmegaConf.is_missing(cfg, "ckpt_path"):
        return
    value = cfg.get("ckpt_path")
    if value in (None, "", "latest"):
        return
    path = Path(str(value)).expanduser()
    fix = "a checkpoint of this experiment's runs, ckpt_path=latest, or null"
    report.add(Need("ckpt_path", "file", "checkpoint", str(path), path.is_file(), fix))


def weights_footer(cfg: DictConfig) -> str:
    """Where weights are looked up, and where to read about each file."""
    folder = OmegaConf.select(cfg, "paths.weights_dir", default=None)
    return (
        f"weights directory: {folder or weights_dir()} (paths.weights_dir=..., or ${ENV_VAR}); "
        "`faceprior-weights list --long` says where to get each registered file"
    )
