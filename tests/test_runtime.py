"""ckpt_path resolution and the multirun-safe task wrapper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from faceprior.utils.runtime import metric_value, resolve_checkpoint, task_wrapper


def _cfg(tmp_path: Path, ckpt: str | None):
    return OmegaConf.create(
        {
            "ckpt_path": ckpt,
            "task_name": "train",
            "experiment_name": None,
            "paths": {"log_dir": str(tmp_path), "output_dir": str(tmp_path / "out")},
        }
    )


def test_ckpt_path_latest_picks_newest_last_ckpt(tmp_path: Path) -> None:
    old = tmp_path / "train" / "runs" / "a" / "checkpoints" / "last.ckpt"
    new = tmp_path / "train" / "multiruns" / "b" / "0" / "checkpoints" / "last.ckpt"
    for i, p in enumerate((old, new)):
        p.parent.mkdir(parents=True)
        meta = {"module_class": None, "experiment": None, "task_name": "train"}
        torch.save({"pytorch-lightning_version": "2", "faceprior": meta}, p)
        os.utime(p, (1000 + i, 1000 + i))
    assert resolve_checkpoint(_cfg(tmp_path, "latest")) == str(new)
    assert resolve_checkpoint(_cfg(tmp_path, None)) is None
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt"):
        resolve_checkpoint(_cfg(tmp_path, str(tmp_path / "nope.ckpt")))
    with pytest.raises(FileNotFoundError, match=r"no readable checkpoint .*no \*\.ckpt files"):
        resolve_checkpoint(_cfg(tmp_path / "empty", "latest"))


def test_task_wrapper_reraises_outside_multirun_and_writes_failed(tmp_path: Path) -> None:
    @task_wrapper
    def boom(cfg):  # type: ignore[no-untyped-def]
        raise RuntimeError("broken job")

    with pytest.raises(RuntimeError, match="broken job"):
        boom(_cfg(tmp_path, None))
    assert "broken job" in (tmp_path / "out" / "FAILED").read_text()


def test_metric_value_is_nan_when_missing() -> None:
    assert metric_value({"val/psnr": 20.5}, "val/psnr") == 20.5
    value = metric_value({}, "val/psnr")
    assert value is not None and value != value  # NaN
    assert metric_value({}, None) is None
