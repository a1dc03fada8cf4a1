"""Caveats travel from the metric protocols to the comparison table; NIQE of small images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from faceprior.compare import compare, to_markdown
from faceprior.metrics import NIQE
from faceprior.metrics.matlab_resize import imresize
from faceprior.metrics.niqe import niqe_of_luma, upscale_factor
from faceprior.utils.config import CONFIG_DIR


def _random_init_metrics() -> dict[str, object]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["metrics=random_init"])
    return {k: instantiate(cfg.metrics[k]) for k in ("lpips", "fid", "idd", "psnr")}


def test_random_feature_networks_carry_a_caveat() -> None:
    protocols = {k: m.protocol() for k, m in _random_init_metrics().items()}  # type: ignore[attr-defined]
    for key, what in (("lpips", "vgg backbone"), ("fid", "Inception"), ("idd", "ArcFace")):
        caveat = protocols[key]["caveat"]
        assert f"randomly initialised {what} (seed 0" in caveat and "never published" in caveat
    assert "caveat" not in protocols["psnr"]


def test_niqe_upscales_small_images_when_asked() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 64, generator=gen)
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        NIQE()(images)
    with pytest.raises(ValueError, match="upscale_below must be at least 192"):
        NIQE(upscale_below=96)
    assert upscale_factor(64, 64, 192) == 3 and upscale_factor(512, 512, 192) == 1
    metric = NIQE(upscale_below=192)
    metric.update(images)
    values = metric.last_values
    assert values is not None and values.shape == (2,) and torch.isfinite(values).all()
    # by hand: rounded MATLAB Y, enlarged 3x by MATLAB bicubic, rounded and clipped
    from faceprior.metrics.base import to_uint8_range
    from faceprior.metrics.color import rgb_to_y

    luma = torch.round(rgb_to_y(to_uint8_range(images[:1]))[0, 0]).to(torch.float32)
    big = imresize(luma, 3.0).round().clamp(0, 255)
    assert big.shape == (192, 192)
    assert float(values[0]) == pytest.approx(niqe_of_luma(big.numpy()), rel=1e-12)
    assert "not comparable with published NIQE" in metric.protocol()["caveat"]
    # large images are scored as they are: the option changes nothing there
    large = torch.rand(1, 3, 192, 192, generator=gen)
    assert float(NIQE(upscale_below=192)(large)) == float(NIQE()(large))


def _results(root: Path, psnr: float, protocols: dict[str, object]) -> Path:
    out = root / "results"
    out.mkdir(parents=True)
    payload = {
        "benchmark": "synthetic_test",
        "means": {"psnr": psnr, "lpips": 0.3, "lq_psnr": 20.0},
        "protocol": {"benchmark": {"name": "synthetic_test"}, "metrics": protocols},
        "per_image": [],
    }
    (out / "synthetic_test.json").write_text(json.dumps(payload))
    return root


def test_comparison_table_states_the_caveats(tmp_path: Path) -> None:
    protocols = {k: m.protocol() for k, m in _random_init_metrics().items()}  # type: ignore[attr-defined]
    a = _results(tmp_path / "a", 25.0, protocols)
    b = _results(tmp_path / "b", 26.0, protocols)
    text = to_markdown(compare([a, b], names=["A", "B"]))
    lpips_notes = [line for line in text.splitlines() if line.startswith("> LPIPS:")]
    assert len(lpips_notes) == 1 and "randomly initialised vgg backbone" in lpips_notes[0]
    assert "> PSNR:" not in text
