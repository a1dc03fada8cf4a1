"""Shared fixtures: compose the REAL configs with tiny overrides, in temporary directories."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from faceprior.utils.config import CONFIG_DIR, setup_config_system

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
setup_config_system()

#: Overrides that make any experiment tiny and CPU-only.
TINY = [
    "data.size=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.synthetic.train=12",
    "data.synthetic.val=4",
    "data.synthetic.test=4",
    "model/generator=unet_tiny",
    "++model.generator_losses.perceptual.layer_weights={conv1_1: 1.0, conv1_2: 0, conv2_2: 0, conv3_4: 0, conv4_4: 0, conv5_4: 0}",
    "trainer=cpu",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "extras.print_config=false",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none available)")
    skip_shared = pytest.mark.skip(reason=f"needs the reference folder {SHARED} (absent)")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "real_data" in item.keywords and not SHARED.is_dir():
            item.add_marker(skip_shared)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir per session so synthetic faces are generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(tmp_path: Path, data_root: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose ``train``/``eval`` with overrides; paths point into temporary folders."""

    def _make(overrides: list[str], config_name: str = "train", tiny: bool = True) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(
                config_name,
                overrides=(TINY if tiny else []) + list(overrides),
                return_hydra_config=True,
            )
        with open_dict(cfg):
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.data_dir = str(data_root)
            cfg.paths.log_dir = str(tmp_path / "logs")
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.work_dir = str(tmp_path)
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
            cfg.hydra.job.num = 0
            cfg.hydra.job.id = 0
        HydraConfig().set_config(cfg)
        return cfg

    yield _make
    GlobalHydra.instance().clear()
