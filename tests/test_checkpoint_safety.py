"""Checkpoints are written atomically, say where they come from, and wrong files are named.

Most cases build tiny checkpoint files directly; one tiny real run checks the wiring (atomic
writer and metadata in a real training run), and three console-script runs check that a wrong
``ckpt_path`` ends ``faceprior-eval``/``faceprior-train`` with one line naming the file.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import OmegaConf
from pytorch_lightning.strategies import DDPStrategy

import faceprior
from faceprior.checkpoints import atomic
from faceprior.checkpoints.atomic import AtomicCheckpointIO, remove_orphans, temp_path
from faceprior.checkpoints.errors import CheckpointFileError, CheckpointNotFoundError
from faceprior.checkpoints.verify import describe_checkpoint, verify_checkpoint
from faceprior.runs import checkpoint_plugins
from faceprior.utils.runtime import resolve_checkpoint

BIN = Path(sys.executable).parent
RESTORER = "faceprior.models.restoration.RestorationModule"
GFPGAN = "faceprior.models.gfpgan.GFPGANModule"


def lightning_ckpt(
    iteration: int = 1,
    module_class: str | None = RESTORER,
    experiment: str | None = "quickstart",
    task_name: str = "train",
) -> dict[str, Any]:
    """A small dict shaped like a Lightning checkpoint of faceprior (``module_class=None``: old)."""
    ckpt: dict[str, Any] = {
        "pytorch-lightning_version": pl.__version__,
        "global_step": iteration,
        "iteration": iteration,
        "state_dict": {"net_g.weight": torch.randn(64, 64)},
    }
    if module_class is not None:
        ckpt["faceprior"] = {
            "module_class": module_class,
            "experiment": experiment,
            "task_name": task_name,
            "version": faceprior.__version__,
        }
    return ckpt


def save(obj: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


# --- atomic writes -----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr(tempfile, "tempdir", None)
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(lightning_ckpt(iteration=1), target)

    def breaks_midway(obj: Any, fh: Any) -> None:
        fh.write(b"PK\x03\x04" + bytes(4096))  # some bytes reach the disk, then the save dies
        raise error

    monkeypatch.setattr(atomic.torch, "save", breaks_midway)
    with pytest.raises(type(error)):
        io.save_checkpoint(lightning_ckpt(iteration=2), target)
    monkeypatch.undo()
    assert describe_checkpoint(target).iteration == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    assert list(elsewhere.iterdir()) == []


def test_save_replaces_whole_file_and_never_uses_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr(tempfile, "tempdir", None)
    seen: list[str] = []
    real_save = torch.save

    def watching(obj: Any, fh: Any) -> None:
        seen.append(fh.name)
        real_save(obj, fh)

    monkeypatch.setattr(atomic.torch, "save", watching)
    target = tmp_path / "ckpts" / "iter_00000002.ckpt"
    for iteration in (1, 2):
        AtomicCheckpointIO().save_checkpoint(lightning_ckpt(iteration), target)
    monkeypatch.undo()
    assert describe_checkpoint(target).iteration == 2
    assert all(Path(n).parent == target.parent and ".tmp-" in n for n in seen), seen
    assert list(elsewhere.iterdir()) == []
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_orphans_of_dead_writers_are_removed(tmp_path: Path, caplog: Any) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    target = tmp_path / "last.ckpt"
    dead = temp_path(target).with_name(f".last.ckpt.tmp-{finished.pid}-0badf00d")
    alive = temp_path(target).with_name(f".last.ckpt.tmp-{os.getppid()}-0badf00d")
    other = tmp_path / "notes.tmp-1-0badf00d"
    for path in (dead, alive, other):
        path.write_bytes(b"partial")
    assert remove_orphans(tmp_path) == [dead]
    assert alive.exists() and other.exists()
    # the first save into a folder cleans it too
    dead.write_bytes(b"partial")
    AtomicCheckpointIO().save_checkpoint(lightning_ckpt(), target)
    assert not dead.exists() and target.is_file()
    # resuming from a folder with a partial file reports it (and leaves it: not this run's folder)
    dead.write_bytes(b"partial")
    cfg = _latest_cfg(tmp_path, "quickstart", "faceprior.models.RestorationModule")
    cfg.ckpt_path = str(target)
    with caplog.at_level(logging.WARNING):
        assert resolve_checkpoint(cfg) == str(target)
    assert dead.name in caplog.text and dead.exists()


@pytest.mark.parametrize(
    "strategy",
    ["ddp_spawn", "ddp", DDPStrategy(find_unused_parameters=True, start_method="spawn")],
    ids=["ddp_spawn", "ddp", "DDPStrategy"],
)
def test_atomic_writer_reaches_every_strategy(strategy: Any) -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        plugins=checkpoint_plugins(None),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_configured_checkpoint_io_is_kept() -> None:
    plugins = checkpoint_plugins(
        OmegaConf.create([{"_target_": "lightning_fabric.plugins.TorchCheckpointIO"}])
    )
    assert len(plugins) == 1 and type(plugins[0]).__name__ == "TorchCheckpointIO"


# --- a real run -------------------------------------------------------------------------------


def test_tiny_run_writes_atomic_self_describing_checkpoints(
    make_cfg: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceprior.train import train

    written: list[str] = []
    real_write = atomic.atomic_write

    def recording(target: Any, write: Any) -> Path:
        written.append(Path(target).name)
        return real_write(target, write)

    monkeypatch.setattr(atomic, "atomic_write", recording)
    cfg = make_cfg(["experiment=quickstart", "logger=csv", "trainer.max_steps=2", "test=false"])
    _, run = train(cfg)
    # ModelCheckpoint's best file and its last.ckpt (a copy, not a link) both go through it
    assert sorted(written) == ["iter_00000002.ckpt", "last.ckpt"]
    assert isinstance(run["trainer"].strategy.checkpoint_io, AtomicCheckpointIO)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["iter_00000002.ckpt", "last.ckpt"], names
    for path in folder.iterdir():
        meta = torch.load(path, map_location="cpu", weights_only=False)["faceprior"]
        assert meta == {
            "module_class": RESTORER,
            "experiment": "quickstart",
            "task_name": "train",
            "version": faceprior.__version__,
        }
    info = verify_checkpoint(folder / "last.ckpt", RESTORER, "quickstart")
    assert info.iteration == 2 and info.module_name == "RestorationModule"
    with pytest.raises(CheckpointFileError) as err:
        verify_checkpoint(folder / "last.ckpt", GFPGAN, "gfpgan_tiny", app="faceprior-eval")
    assert "a RestorationModule checkpoint from experiment=quickstart" in str(err.value)
    assert "use `faceprior-eval experiment=quickstart ckpt_path=" in str(err.value)
    # the first half of the real file: a truncated zip archive
    half = folder / "half.ckpt"
    data = (folder / "last.ckpt").read_bytes()
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFileError, match="truncated") as err:
        describe_checkpoint(half)
    assert str(half) in str(err.value) and "\n" not in str(err.value)


# --- wrong files ------------------------------------------------------------------------------


def _text(path: Path) -> None:
    path.write_text("experiment: quickstart\nckpt_path: oops\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    save(lightning_ckpt(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _state_dict(path: Path) -> None:
    save({"conv.weight": torch.zeros(4, 3, 3, 3), "conv.bias": torch.zeros(4)}, path)


def _gfpgan_weights(path: Path) -> None:
    save({"params_ema": {"conv.weight": torch.zeros(2)}, "params": {}}, path)


def _not_a_dict(path: Path) -> None:
    save([torch.zeros(2)], path)


WRONG_FILES = {
    "text": (_text, "a text file"),
    "empty": (_empty, "an empty file"),
    "truncated zip": (_truncated, "a truncated or damaged checkpoint"),
    "plain state dict": (_state_dict, "a plain state dict of 2 tensor(s)"),
    "params_ema": (_gfpgan_weights, "a network weights file (params_ema/params layout)"),
    "not a dict": (_not_a_dict, "a pickled list"),
}


@pytest.mark.parametrize("case", WRONG_FILES)
def test_wrong_files_are_named_in_one_line(tmp_path: Path, case: str) -> None:
    make, what = WRONG_FILES[case]
    path = tmp_path / "model.ckpt"
    make(path)
    with pytest.raises(CheckpointFileError) as err:
        describe_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"'{path}' is {what}"), message
    assert "\n" not in message
    if case in ("plain state dict", "params_ema"):
        assert f"model.init_weights={path}" in message and "model=official" in message


def test_checkpoint_of_another_module_names_its_experiment(tmp_path: Path) -> None:
    path = save(lightning_ckpt(module_class=GFPGAN, experiment="gfpgan_tiny"), tmp_path / "g.ckpt")
    with pytest.raises(CheckpointFileError) as err:
        verify_checkpoint(path, RESTORER, "quickstart", app="faceprior-eval")
    assert str(err.value) == (
        f"'{path}' is a GFPGANModule checkpoint from experiment=gfpgan_tiny, not a "
        f"RestorationModule checkpoint; use `faceprior-eval experiment=gfpgan_tiny ckpt_path={path}`"
    )


def test_other_experiment_of_the_same_module(tmp_path: Path, caplog: Any) -> None:
    path = save(lightning_ckpt(experiment="gfpgan_finetune", module_class=GFPGAN), tmp_path / "c")
    with pytest.raises(CheckpointFileError, match="ckpt_verify=false"):
        verify_checkpoint(path, GFPGAN, "gfpgan_tiny")
    with caplog.at_level(logging.WARNING):
        info = verify_checkpoint(path, GFPGAN, "gfpgan_tiny", strict=False)
    assert info.experiment == "gfpgan_finetune" and "loading it anyway" in caplog.text


def test_old_checkpoint_without_metadata_loads_with_a_warning(tmp_path: Path, caplog: Any) -> None:
    path = save(lightning_ckpt(module_class=None), tmp_path / "old.ckpt")
    with caplog.at_level(logging.WARNING):
        info = verify_checkpoint(path, RESTORER, "quickstart")
    assert not info.has_metadata and info.iteration == 1
    assert str(path) in caplog.text and "no faceprior metadata" in caplog.text


def _cli(app: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", FACEPRIOR_ROOT=str(tmp_path))
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [str(BIN / app), "experiment=quickstart", "logger=csv", *overrides]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("app", "case", "what"),
    [
        ("faceprior-eval", "text", "a text file"),
        ("faceprior-eval", "plain state dict", "a plain state dict"),
        (
            "faceprior-train",
            "other module",
            "a GFPGANModule checkpoint from experiment=gfpgan_tiny",
        ),
    ],
)
def test_console_scripts_exit_with_one_line(tmp_path: Path, app: str, case: str, what: str) -> None:
    path = tmp_path / "given.ckpt"
    if case == "other module":
        save(lightning_ckpt(module_class=GFPGAN, experiment="gfpgan_tiny"), path)
    else:
        WRONG_FILES[case][0](path)
    proc = _cli(app, tmp_path, f"ckpt_path={path}")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert str(path) in last and what in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    task = "eval" if app == "faceprior-eval" else "train"
    (log_file,) = (tmp_path / "logs" / task / "runs").glob(f"*/{task}.log")
    assert "Traceback" in log_file.read_text()  # the details stay in the run's log file


# --- ckpt_path=latest -------------------------------------------------------------------------


def _run_dir(log_dir: Path, name: str, experiment: str | None) -> Path:
    run = log_dir / "train" / "runs" / name
    hydra_dir = run / ".hydra"
    hydra_dir.mkdir(parents=True)
    choices = {"experiment": experiment}
    (hydra_dir / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    return run / "checkpoints"


def _latest_cfg(log_dir: Path, experiment: str, target: str) -> Any:
    return OmegaConf.create(
        {
            "ckpt_path": "latest",
            "task_name": "train",
            "experiment_name": experiment,
            "model": {"_target_": target},
            "paths": {"log_dir": str(log_dir)},
        }
    )


def test_latest_picks_the_newest_valid_checkpoint_of_this_experiment(
    tmp_path: Path, caplog: Any
) -> None:
    logs = tmp_path / "logs"
    ours = _run_dir(logs, "a", "quickstart")
    save(lightning_ckpt(iteration=3), ours / "iter_00000003.ckpt")
    valid = save(lightning_ckpt(iteration=4), ours / "last.ckpt")
    theirs = _run_dir(logs, "b", "gfpgan_tiny")
    gfpgan = save(lightning_ckpt(9, GFPGAN, "gfpgan_tiny"), theirs / "last.ckpt")
    broken = _run_dir(logs, "c", "quickstart") / "last.ckpt"
    _truncated(broken)
    for i, path in enumerate([ours / "iter_00000003.ckpt", valid, gfpgan, broken]):
        os.utime(path, (1000 + i, 1000 + i))

    with caplog.at_level(logging.INFO):
        picked = resolve_checkpoint(
            _latest_cfg(logs, "quickstart", "faceprior.models.RestorationModule")
        )
    assert picked == str(valid)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(broken) in warnings[0] and "truncated" in warnings[0]
    assert f"ckpt_path=latest -> {valid}" in caplog.text and "skipping 1 unreadable" in caplog.text

    cfg = _latest_cfg(logs, "gfpgan_tiny", "faceprior.models.GFPGANModule")
    assert resolve_checkpoint(cfg) == str(gfpgan)
    with pytest.raises(
        CheckpointNotFoundError, match=r"no readable checkpoint of experiment=gpen_tiny"
    ):
        resolve_checkpoint(_latest_cfg(logs, "gpen_tiny", "faceprior.models.GPENModule"))
