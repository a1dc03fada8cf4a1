"""Every experiment composes for train and eval; bad keys and values fail with the key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from faceprior.degradation import Degradation
from faceprior.utils.config import CONFIG_DIR

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
DEGRADATIONS = sorted(p.stem for p in (CONFIG_DIR / "degradation").glob("*.yaml"))


def _compose(overrides: list[str], name: str = "train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=True)


def test_config_dir_is_the_repository_conf() -> None:
    assert (CONFIG_DIR / "train.yaml").is_file()
    assert (CONFIG_DIR / "eval.yaml").is_file()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("app", ["train", "eval"])
def test_experiment_composes(experiment: str, app: str) -> None:
    extra = ["ckpt_path=x.ckpt"] if app == "eval" else []
    cfg = _compose([f"experiment={experiment}", *extra], app)
    assert cfg.model._target_
    assert cfg.data._target_ == "faceprior.data.FaceDataModule"
    assert cfg.benchmarks, "every experiment needs at least one benchmark"
    assert cfg.logger.wandb.offline is True


MULTI_STAGE = [
    e for e in EXPERIMENTS if "stages:" in (CONFIG_DIR / "experiment" / f"{e}.yaml").read_text()
]


@pytest.mark.parametrize("experiment", MULTI_STAGE)
def test_every_stage_of_a_multi_stage_experiment_composes(experiment: str) -> None:
    parent = _compose([f"experiment={experiment}"])
    assert parent.stages, experiment
    shared = [str(o) for o in parent.get("stage_overrides") or []]
    scored = {}
    for name, stage in parent.stages.items():
        cfg = _compose([*map(str, stage.overrides), *shared])
        assert cfg.model._target_.startswith("faceprior.models."), (experiment, name)
        assert cfg.benchmarks, (experiment, name)
        what = ("degradation", "benchmarks", "seed", "test_metrics")
        scored[name] = {k: OmegaConf.to_container(cfg, resolve=False).get(k) for k in what}
        scored[name]["size"] = cfg.data.size
    if "compare" in parent:  # a comparison trains and scores every method on the same terms
        first = next(iter(scored.values()))
        assert first["test_metrics"], experiment
        for name, settings in scored.items():
            assert settings == first, (experiment, name)


@pytest.mark.parametrize(
    "group,options",
    [
        ("trainer", ["cpu", "gpu", "ddp", "ddp_sim"]),
        ("debug", ["fdr", "overfit", "limit", "profiler"]),
        ("logger", ["wandb", "csv", "tensorboard", "none"]),
        ("degradation", ["gfpgan_v1", "gpen_simple", "codeformer", "mild", "severe", "none"]),
        ("data", ["synthetic", "ffhq512", "ffhq512_lmdb", "folder"]),
        ("metrics", ["basic", "fast", "paper", "random_init"]),
    ],
)
def test_group_options_compose(group: str, options: list[str]) -> None:
    for option in options:
        extra = ["data.train_root=/x"] if option == "folder" else []
        cfg = _compose([f"{group}={option}", *extra])
        assert cfg is not None


def test_degradation_preset_instantiates_in_config_order() -> None:
    cfg = _compose([])
    deg = hydra.utils.instantiate(cfg.degradation)
    assert list(deg.ops) == [
        "blur",
        "downsample",
        "noise",
        "jpeg",
        "upsample",
        "color_shift",
        "gray",
        "color_jitter",
        "quantize",
    ]


@pytest.mark.parametrize("preset", DEGRADATIONS)
def test_degradation_preset_degrades_a_tiny_batch(preset: str) -> None:
    cfg = _compose([f"degradation={preset}", "degradation.packing=canvas"])
    deg = hydra.utils.instantiate(cfg.degradation)
    assert isinstance(deg, Degradation) and deg.packing == "canvas"
    torch.manual_seed(0)
    gt = torch.rand(4, 3, 48, 48)
    lq, gt_out, params = deg(gt, [0, 1, 2, 3])
    assert lq.shape == gt.shape and gt_out.shape == gt.shape
    assert lq.min() >= 0 and lq.max() <= 1
    assert all(v.shape == (4,) for v in params.values())
    deg.packing = "groups"
    lq_groups, _, _ = deg(gt, [0, 1, 2, 3])
    assert torch.allclose(lq, lq_groups, atol=2e-2)  # equal up to rare 8-bit rounding flips
    if preset != "none":
        assert not torch.equal(lq, gt)


def test_new_presets_have_the_published_order_and_ranges() -> None:
    def ops(preset: str) -> dict[str, Any]:
        deg = hydra.utils.instantiate(_compose([f"degradation={preset}"]).degradation)
        return dict(deg.ops)

    gpen = ops("gpen_simple")
    assert list(gpen) == ["gray", "blur", "downsample", "noise", "jpeg", "quantize", "upsample"]
    assert gpen["gray"].gt_too and gpen["gray"].prob == 0.2
    codeformer = ops("codeformer")
    assert codeformer["blur"].sigma_x == (1.0, 15.0) and codeformer["blur"].sigma_y == (1.0, 15.0)
    assert codeformer["downsample"].scale == (4.0, 30.0)
    assert codeformer["noise"].sigma == (0.0, 20.0) and codeformer["jpeg"].quality == (30.0, 80.0)
    assert ops("severe")["downsample"].scale == (10.0, 200.0)


def test_misspelled_key_is_named() -> None:
    with pytest.raises(ConfigCompositionException, match=r"data\.batch_sise"):
        _compose(["data.batch_sise=3"])


def test_wrong_type_is_named() -> None:
    with pytest.raises(ConfigCompositionException) as info:
        _compose(["data.batch_size=abc"])
    text = str(info.value) + str(info.value.__cause__)
    assert "data.batch_size" in text


def test_unknown_experiment_lists_choices() -> None:
    with pytest.raises(MissingConfigException) as info:
        _compose(["experiment=does_not_exist"])
    assert "quickstart" in str(info.value)


def test_bad_degradation_value_names_the_key() -> None:
    cfg = _compose(["degradation.ops.blur.kernel_size=40"])
    with pytest.raises(Exception) as info:
        hydra.utils.instantiate(cfg.degradation)
    assert "degradation.ops.blur" in str(info.value) and "odd" in str(info.value)


def test_run_dirs_are_unique_per_compose() -> None:
    dirs = []
    for _ in range(2):
        cfg = _compose([])
        HydraConfig().set_config(cfg)
        dirs.append(cfg.hydra.run.dir)
    assert dirs[0] != dirs[1]
    # same second, different random suffix
    assert dirs[0].rsplit("_", 1)[0][:-3] == dirs[1].rsplit("_", 1)[0][:-3]


def test_local_configs_are_ignored_by_git() -> None:
    gitignore = (Path(__file__).resolve().parents[1] / ".gitignore").read_text()
    assert "conf/local/*" in gitignore
