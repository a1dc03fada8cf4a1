"""``ckpt_path=latest``: the newest readable checkpoint of this task, experiment and module.

Candidates are the ``*.ckpt`` files in ``<log_dir>/<task>/**/checkpoints/``, newest first by
modification time (``last.ckpt`` before an ``iter_*.ckpt`` written at the same moment). A file
belongs to the run about to resume when its metadata names the same task, experiment and module
class; a checkpoint without metadata (older versions) is matched by the experiment in its run's
``.hydra/hydra.yaml``. Unreadable files that may belong to the run (a truncated ``last.ckpt`` of an
interrupted save) are skipped with a warning naming each; the first valid match is used, and the
log says which file was picked and why.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from faceprior.checkpoints.errors import CheckpointFileError, CheckpointNotFoundError
from faceprior.checkpoints.verify import CheckpointInfo, describe_checkpoint, experiment_phrase

log = logging.getLogger(__name__)

_UNKNOWN = object()


@dataclass(frozen=True)
class RunFilter:
    """What a checkpoint must have been written by (``None`` module class: any)."""

    task_name: str
    experiment: str | None
    module_class: str | None = None

    def accepts(self, info: CheckpointInfo) -> bool:
        """Whether the metadata of ``info`` names this task, experiment and module class."""
        if info.task_name is not None and info.task_name != self.task_name:
            return False
        if self.module_class and info.module_class and info.module_class != self.module_class:
            return False
        return (info.experiment or None) == (self.experiment or None)


def candidates(log_dir: str | Path, task_name: str) -> list[Path]:
    """Every checkpoint below ``<log_dir>/<task_name>``, newest first, links resolved once."""
    root = Path(log_dir) / task_name
    seen: set[Path] = set()
    found: list[tuple[int, bool, Path]] = []
    for path in root.glob("**/checkpoints/*.ckpt"):
        real = path.resolve()
        if real in seen or not real.is_file():
            continue
        seen.add(real)
        found.append((real.stat().st_mtime_ns, path.name == "last.ckpt", path))
    return [p for *_, p in sorted(found, reverse=True)]


def run_experiment(ckpt: Path) -> object:
    """The experiment of the Hydra run that wrote ``ckpt`` (``_UNKNOWN`` when not recorded)."""
    hydra_file = ckpt.parent.parent / ".hydra" / "hydra.yaml"
    try:
        saved = yaml.safe_load(hydra_file.read_text())
        choices = saved["hydra"]["runtime"]["choices"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return _UNKNOWN
    return choices.get("experiment") if isinstance(choices, dict) else _UNKNOWN


def _may_belong(ckpt: Path, wanted: RunFilter) -> bool:
    experiment = run_experiment(ckpt)
    return experiment is _UNKNOWN or (experiment or None) == (wanted.experiment or None)


def _describe(path: Path) -> CheckpointInfo | CheckpointFileError:
    try:
        return describe_checkpoint(path)
    except CheckpointFileError as err:
        return err
    except OSError as err:  # removed or unreadable since the folder was listed
        return CheckpointFileError(path, f"unreadable ({err.strerror or err})")


def _belongs(info: CheckpointInfo, wanted: RunFilter) -> bool:
    """Whether a readable checkpoint is one of this run's (by its metadata, else its run's)."""
    if info.has_metadata:
        return wanted.accepts(info)
    experiment = run_experiment(info.path)
    return experiment is not _UNKNOWN and (experiment or None) == (wanted.experiment or None)


def _label(info: CheckpointInfo) -> str:
    return info.origin() if info.has_metadata else "an older checkpoint of another experiment"


def find_latest_checkpoint(
    log_dir: str | Path, task_name: str, experiment: str | None, module_class: str | None = None
) -> Path:
    """The newest valid checkpoint of this task and experiment (see the module docstring)."""
    wanted = RunFilter(task_name, experiment, module_class)
    files = candidates(log_dir, task_name)
    others: Counter[str] = Counter()
    skipped: list[Path] = []
    for path in files:
        found = _describe(path)
        if isinstance(found, CheckpointFileError):
            if _may_belong(path, wanted):
                log.warning("ckpt_path=latest: skipping %s", found)
                skipped.append(path)
        elif _belongs(found, wanted):
            _report(found, skipped, wanted)
            return path
        else:
            others[_label(found)] += 1
    root = Path(log_dir) / task_name
    raise CheckpointNotFoundError(_nothing_found(root, wanted, len(files), skipped, others))


def _report(info: CheckpointInfo, skipped: list[Path], wanted: RunFilter) -> None:
    why = f"the newest checkpoint of task {wanted.task_name!r}, {experiment_phrase(wanted.experiment)}"
    if skipped:
        why = f"{why} after skipping {len(skipped)} unreadable newer file(s)"
    at = f", iteration {info.iteration}" if info.iteration is not None else ""
    log.info("ckpt_path=latest -> %s (%s%s)", info.path, why, at)


def _nothing_found(
    root: Path, wanted: RunFilter, total: int, skipped: list[Path], others: Counter[str]
) -> str:
    msg = (
        f"ckpt_path=latest: no readable checkpoint of {experiment_phrase(wanted.experiment)} "
        f"below '{root}/**/checkpoints/'"
    )
    if not total:
        return f"{msg} (no *.ckpt files there)"
    parts = [f"{n} unreadable" for n in [len(skipped)] if n]
    parts += [f"{n} × {what}" for what, n in others.most_common(3)]
    return f"{msg} ({total} file(s): {', '.join(parts)})"
