"""Typed schemas for the config groups where types matter (data, trainer).

They are registered in Hydra's ConfigStore under ``schema/<group>`` and pulled into the YAML files
with ``defaults: [/schema/<group>@_here_: <name>, _self_]``, so a wrong type or an unknown key fails
at composition time with the full key named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class SyntheticSchema:
    """``data.synthetic``: generated faces. Without ``root`` (data that is not synthetic, e.g.
    ``experiment=quickstart data=folder``) the counts are ignored."""

    root: str | None = None
    size: int = 64
    seed: int = 0
    train: int = 512
    val: int = 32
    test: int = 64


@dataclass
class DataSchema:
    _target_: str = "faceprior.data.FaceDataModule"
    train_root: str = "???"
    size: int = 512
    batch_size: int = 12
    val_root: str | None = None
    train_components: str | None = None
    synthetic: SyntheticSchema | None = None
    val_batch_size: int | None = None
    num_workers: int = 2
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    flip_prob: float = 0.5
    crop_size: int | None = None
    eye_enlarge_ratio: float = 1.4
    channels_last: bool = False
    strict: bool = False
    verify: bool = True
    seed: int = 0
    val_seed: int = 1234


@dataclass
class TrainerSchema:
    _target_: str = "pytorch_lightning.Trainer"
    default_root_dir: str = "${paths.output_dir}"
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_steps: int = -1
    min_steps: int | None = None
    max_epochs: int | None = -1
    min_epochs: int | None = None
    max_time: Any = None
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int = 2
    log_every_n_steps: int = 50
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    overfit_batches: Any = 0.0
    fast_dev_run: Any = False
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    deterministic: Any = False
    benchmark: bool | None = None
    sync_batchnorm: bool = False
    profiler: Any = None
    detect_anomaly: bool = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    use_distributed_sampler: bool = True
    plugins: Any = None


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(group="schema/data", name="datamodule", node=DataSchema)
    cs.store(group="schema/trainer", name="trainer", node=TrainerSchema)
