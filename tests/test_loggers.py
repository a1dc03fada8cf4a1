"""The CSV logger keeps earlier rows when another process (or writer) reopens the run folder."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

from faceprior.utils.loggers import CSVLogger


def test_csv_logger_continues_existing_file(tmp_path: Path) -> None:
    first = CSVLogger(save_dir=str(tmp_path), name="csv", version=0)
    first.log_hyperparams({"lr": 0.1})
    stale = pickle.loads(pickle.dumps(first))  # what a spawned process receives
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.log_metrics({"train/loss": 0.5, "val/psnr": 20.0}, step=1)
    first.save()

    stale.log_metrics({"test/psnr": 21.0}, step=2)
    stale.save()
    again = CSVLogger(save_dir=str(tmp_path), name="csv", version=0)  # a brand-new writer
    again.log_metrics({"train/loss": 0.25}, step=3)
    again.save()

    path = Path(first.log_dir) / "metrics.csv"
    rows = list(csv.DictReader(path.open()))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[1]["val/psnr"] == "20.0" and rows[2]["test/psnr"] == "21.0"
    assert rows[3]["train/loss"] == "0.25"
    assert "lr" in (Path(first.log_dir) / "hparams.yaml").read_text()


def test_wandb_group_is_the_sweep_folder_in_multirun_jobs(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf, open_dict

    from faceprior.utils.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["logger=wandb"], return_hydra_config=True)
    assert OmegaConf.select(cfg, "logger.wandb.group") == ""  # outside a Hydra app: no group
    import copy

    single = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(tmp_path / "multiruns" / "2026-12-01_10-00-00_abc123")
    with open_dict(single):
        single.hydra.mode = RunMode.RUN
    previous = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().set_config(cfg)
        assert OmegaConf.select(cfg, "logger.wandb.group") == "2026-12-01_10-00-00_abc123"
        HydraConfig.instance().set_config(single)
        assert OmegaConf.select(single, "logger.wandb.group") == ""
    finally:
        HydraConfig.instance().cfg = previous


def test_results_callback_declares_best_summaries_and_logs_an_artifact(
    tmp_path: Path, monkeypatch
) -> None:
    from types import SimpleNamespace

    import wandb

    from faceprior.metrics import LPIPS, PSNR
    from faceprior.utils.results import BenchmarkResults

    calls: list[tuple[str, str]] = []
    logged: list[object] = []
    run = SimpleNamespace(
        id="abc",
        define_metric=lambda name, summary: calls.append((name, summary)),
        log_artifact=logged.append,
    )
    callback = BenchmarkResults(output_dir=str(tmp_path))
    monkeypatch.setattr(
        BenchmarkResults, "_wandb", staticmethod(lambda trainer: SimpleNamespace(experiment=run))
    )
    trainer = SimpleNamespace(is_global_zero=True)
    module = SimpleNamespace(metric_specs={"psnr": PSNR(), "lpips": LPIPS(random_backbone=True)})
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    assert calls == [("val/psnr", "max"), ("val/lpips", "min")]
    out = tmp_path / "results"
    out.mkdir()
    (out / "bench.csv").write_text("name,psnr\na,20\n")
    callback._log_artifact(trainer, out)  # type: ignore[arg-type]
    assert len(logged) == 1
    artifact = logged[0]
    assert isinstance(artifact, wandb.Artifact) and artifact.type == "results"
    assert artifact.name == "results-abc" and "bench.csv" in artifact.manifest.entries
