"""``conf/metrics/{paper,fast}.yaml`` instantiate to metric objects usable in a collection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchmetrics import Metric, MetricCollection

CONF = Path(__file__).resolve().parents[2] / "conf" / "metrics"


def _load(name: str, weights_dir: Path) -> dict[str, Metric]:
    node = OmegaConf.create({"paths": {"weights_dir": str(weights_dir)}})
    node.metrics = OmegaConf.load(CONF / f"{name}.yaml")
    metrics = instantiate(node.metrics)
    return dict(metrics)


def test_fast_config_in_a_prefixed_collection(fake_weights_dir, synthetic_pairs, unit_rgb):
    with pytest.warns(UserWarning, match="does not match"):
        metrics = _load("fast", fake_weights_dir)
    assert list(metrics) == ["psnr", "ssim", "lpips"]
    collection = MetricCollection(metrics, prefix="val/")
    restored = unit_rgb([r for r, _ in synthetic_pairs[:2]])
    gt = unit_rgb([g for _, g in synthetic_pairs[:2]])
    collection.update(restored, gt)
    values = collection.compute()
    assert set(values) == {"val/psnr", "val/ssim", "val/lpips"}
    assert all(torch.isfinite(v) for v in values.values())


@pytest.mark.slow
def test_paper_config_has_all_seven(fake_weights_dir):
    with pytest.warns(UserWarning, match="does not match"):
        metrics = _load("paper", fake_weights_dir)
    assert list(metrics) == ["psnr", "ssim", "niqe", "lpips", "fid", "idd", "lmd"]
    assert all(isinstance(m, Metric) for m in metrics.values())
    higher = {name for name, m in metrics.items() if m.higher_is_better}
    assert higher == {"psnr", "ssim"}
    assert metrics["fid"].protocol()["reference"]["name"] == "inception_FFHQ_512"
    assert metrics["lpips"].net == "vgg" and metrics["idd"].exclude_below_deg == 1.0


def test_weights_dir_falls_back_to_environment(fake_weights_dir, monkeypatch):
    monkeypatch.setenv("FACEPRIOR_WEIGHTS_DIR", str(fake_weights_dir))
    node = OmegaConf.load(CONF / "fast.yaml")  # no paths group: weights_dir resolves to null
    with pytest.warns(UserWarning, match="does not match"):
        lpips = instantiate(node.lpips)
    assert lpips.protocol()["backbone"]["path"].startswith(str(fake_weights_dir))
