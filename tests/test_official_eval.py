"""`faceprior-eval model=official`: released weights by registry name, per-benchmark result files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceprior.checkpoints import export_checkpoint
from faceprior.checkpoints.registry import get_spec
from faceprior.eval import evaluate


def _official_file(weights_dir: Path, name: str) -> Path:
    """A randomly initialised network saved in the official layout under its official file name."""
    spec = get_spec(name)
    torch.manual_seed(0)
    net = spec.build(dict(spec.kwargs))
    weights_dir.mkdir(parents=True, exist_ok=True)
    return export_checkpoint(net, weights_dir / spec.filename, spec.layout)


def _folder(root: Path, count: int, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (7, 7), 2.0)
        cv2.imwrite(str(root / f"face_{i:03d}.png"), img)
    return root


def _overrides(tmp_path: Path, weights: str, *extra: str) -> list[str]:
    return [
        "model=official",
        f"weights={weights}",
        f"paths.weights_dir={tmp_path / 'weights'}",
        "benchmark=custom",
        f"benchmarks.custom.lq_root={tmp_path / 'bench' / 'lq'}",
        f"benchmarks.custom.gt_root={tmp_path / 'bench' / 'gt'}",
        "data.size=64",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "extras.print_config=false",
        "logger=csv",
        "metrics=basic",
        *extra,
    ]


def test_official_gpen_by_name_writes_every_result_file(make_cfg, tmp_path: Path) -> None:
    _official_file(tmp_path / "weights", "GPEN-BFR-256")
    _folder(tmp_path / "bench" / "gt", 4, 64, seed=0)
    _folder(tmp_path / "bench" / "lq", 4, 64, seed=1)
    cfg = make_cfg(_overrides(tmp_path, "GPEN-BFR-256"), config_name="eval", tiny=False)
    metrics, _ = evaluate(cfg)
    assert "test/custom/psnr" in metrics and "test/custom/lq_psnr" in metrics
    out = Path(cfg.paths.output_dir)
    # 64 px inputs go through the 256 px network and back
    restored = sorted((out / "restored" / "custom").glob("*.png"))
    assert [p.stem for p in restored] == [f"face_{i:03d}" for i in range(4)]
    assert cv2.imread(str(restored[0])).shape == (64, 64, 3)
    with (out / "results" / "custom.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {"name", "index", "psnr", "ssim", "lq_psnr"} <= set(rows[0])
    assert sorted(r["name"] for r in rows) == [p.stem for p in restored]
    payload = json.loads((out / "results" / "custom.json").read_text())
    assert payload["means"]["psnr"] == pytest.approx(float(metrics["test/custom/psnr"]))
    weights = payload["protocol"]["weights"]
    # no published hash in the registry: the file's own hash is what the protocol can record
    assert weights["name"] == "GPEN-BFR-256" and weights["released_file"] is None
    assert len(weights["sha256"]) == 64
    assert "psnr" in payload["protocol"]["metrics"] and payload["protocol"]["packages"]["torch"]
    md = (out / "results" / "custom.md").read_text()
    assert "| restored |" in md and "## Protocol" in md
    # PSNR of the saved PNGs equals the logged mean (the metrics score the same 8-bit images)
    gt = cv2.imread(str(tmp_path / "bench" / "gt" / "face_000.png")).astype(np.float64)
    pred = cv2.imread(str(restored[0])).astype(np.float64)
    psnr0 = 10 * np.log10(255.0**2 / np.mean((gt - pred) ** 2))
    first = next(r for r in rows if r["name"] == "face_000")
    assert float(first["psnr"]) == pytest.approx(psnr0, abs=1e-6)


@pytest.mark.slow
def test_official_gfpgan_v14_on_a_custom_benchmark(make_cfg, tmp_path: Path) -> None:
    _official_file(tmp_path / "weights", "GFPGANv1.4")
    _folder(tmp_path / "bench" / "gt", 2, 64, seed=0)
    _folder(tmp_path / "bench" / "lq", 2, 64, seed=1)
    cfg = make_cfg(_overrides(tmp_path, "GFPGANv1.4"), config_name="eval", tiny=False)
    metrics, run = evaluate(cfg)
    assert run["model"].weights_info["arch"] == "GFPGANv1Clean"
    assert np.isfinite(float(metrics["test/custom/psnr"]))
    again, _ = evaluate(
        make_cfg(_overrides(tmp_path, "GFPGANv1.4"), config_name="eval", tiny=False)
    )
    # constant stored noise: two evaluations give the same numbers
    assert float(again["test/custom/psnr"]) == float(metrics["test/custom/psnr"])


def test_official_errors_name_what_is_missing(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path / "bench" / "gt", 2, 64, seed=0)
    _folder(tmp_path / "bench" / "lq", 2, 64, seed=1)
    cfg = make_cfg(_overrides(tmp_path, "GPEN-BFR-256"), config_name="eval", tiny=False)
    with pytest.raises(Exception, match=r"GPEN-BFR-256\.pth"):
        evaluate(cfg)
    _official_file(tmp_path / "weights", "GPEN-BFR-256")
    # with a published hash, a different file is an error in strict mode
    import dataclasses

    import faceprior.checkpoints.registry as registry

    published = dataclasses.replace(get_spec("GPEN-BFR-256"), sha256="0" * 64)
    monkeypatch.setattr(registry, "get_spec", lambda name: published)
    strict = _overrides(tmp_path, "GPEN-BFR-256", "model.verify=strict")
    with pytest.raises(Exception, match="not the released file"):
        evaluate(make_cfg(strict, config_name="eval", tiny=False))
    with pytest.raises(ValueError, match="drop ckpt_path"):
        evaluate(make_cfg([*strict, "ckpt_path=x.ckpt"], config_name="eval", tiny=False))


def test_lq_only_benchmark_skips_full_reference_metrics(make_cfg, tmp_path: Path) -> None:
    _official_file(tmp_path / "weights", "GPEN-BFR-256")
    _folder(tmp_path / "bench" / "lq", 3, 64, seed=1)
    cfg = make_cfg(
        _overrides(
            tmp_path,
            "GPEN-BFR-256",
            "benchmarks.custom.kind=lq_only",
            "benchmarks.custom.gt_root=null",
        ),
        config_name="eval",
        tiny=False,
    )
    metrics, _ = evaluate(cfg)
    assert not any(k.startswith("test/custom/") and "psnr" in k for k in metrics)
    md = (Path(cfg.paths.output_dir) / "results" / "custom.md").read_text()
    assert "No ground truth" in md
    assert len(list((Path(cfg.paths.output_dir) / "restored" / "custom").glob("*.png"))) == 3


def test_wandb_gets_an_image_table_and_summary(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytorch_lightning.loggers import WandbLogger

    tables: list[dict[str, object]] = []
    monkeypatch.setattr(
        WandbLogger, "log_table", lambda self, key, columns, data: tables.append(
            {"key": key, "columns": columns, "data": data}
        ),
    )  # fmt: skip
    _official_file(tmp_path / "weights", "GPEN-BFR-256")
    _folder(tmp_path / "bench" / "gt", 3, 64, seed=0)
    _folder(tmp_path / "bench" / "lq", 3, 64, seed=1)
    overrides = _overrides(tmp_path, "GPEN-BFR-256", "logger=[wandb,csv]")
    cfg = make_cfg(overrides, config_name="eval", tiny=False)
    evaluate(cfg)
    assert len(tables) == 1 and tables[0]["key"] == "test/custom/images"
    columns = tables[0]["columns"]
    assert columns[:4] == ["name", "lq", "restored", "gt"] and "psnr" in columns
    data = tables[0]["data"]
    assert [row[0] for row in data] == ["face_000", "face_001", "face_002"]
    assert all(isinstance(v, float) for v in (row[columns.index("psnr")] for row in data))


def test_random_init_metrics_are_the_same_networks_in_every_run() -> None:
    # a comparison of several runs needs the same random feature networks in each
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from faceprior.utils.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["metrics=random_init"])
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    values = []
    for state in (1, 2):
        torch.manual_seed(state)  # different global RNG states before building the metrics
        metrics = {k: instantiate(cfg.metrics[k]) for k in ("lpips", "idd")}
        for m in metrics.values():
            m.update(x, y)
        values.append({k: float(m.compute()) for k, m in metrics.items()})
    assert values[0] == values[1] and values[0]["lpips"] > 0


def _eval_subprocess(tmp_path: Path, overrides: list[str], name: str) -> Path:
    """Run the ``faceprior-eval`` console script; returns its run folder."""
    import os
    import subprocess
    import sys

    root = tmp_path / name
    root.mkdir()
    env = dict(os.environ, WANDB_MODE="offline", FACEPRIOR_ROOT=str(root))
    cmd = [str(Path(sys.executable).parent / "faceprior-eval"), *overrides]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next((root / "logs" / "eval" / "runs").iterdir())


@pytest.mark.slow
def test_per_image_values_are_complete_under_two_process_ddp(tmp_path: Path) -> None:
    # 7 images over 2 ranks (4 + 3): no image lost to the split, none repeated by sampler padding
    _official_file(tmp_path / "weights", "GPEN-BFR-256")
    _folder(tmp_path / "bench" / "gt", 7, 64, seed=0)
    _folder(tmp_path / "bench" / "lq", 7, 64, seed=1)
    base = _overrides(tmp_path, "GPEN-BFR-256", "data.batch_size=4")
    single = _eval_subprocess(tmp_path, base, "single")
    ddp = _eval_subprocess(tmp_path, [*base, "trainer=ddp_sim"], "ddp")

    def per_image(run: Path) -> dict[str, dict[str, str]]:
        with (run / "results" / "custom.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 7, f"{run}: {len(rows)} rows"
        return {r["name"]: r for r in rows}

    one, two = per_image(single), per_image(ddp)
    assert sorted(two) == [f"face_{i:03d}" for i in range(7)]  # real names from every rank
    assert sorted(int(r["index"]) for r in two.values()) == list(range(7))
    for name, row in one.items():
        # the ranks batch other images together (rank 0: 0, 2, 4, 6), and float32 convolutions
        # (network, SSIM window) are not bit-stable across batch compositions: a small tolerance
        for key, rel in (("psnr", 1e-4), ("ssim", 1e-3), ("lq_psnr", 1e-6), ("lq_ssim", 1e-3)):
            assert float(two[name][key]) == pytest.approx(float(row[key]), rel=rel), (name, key)
    means = json.loads((ddp / "results" / "custom.json").read_text())["means"]
    # the logged mean is over the 7 distinct images (a padded 8th would shift it)
    psnr = [float(r["psnr"]) for r in two.values()]
    assert means["psnr"] == pytest.approx(sum(psnr) / 7, rel=1e-6)
    assert len(list((ddp / "restored" / "custom").glob("*.png"))) == 7
    assert len((ddp / "test_per_image.csv").read_text().splitlines()) == 8


def test_a_missing_benchmark_folder_names_the_prepare_command(make_cfg, tmp_path: Path) -> None:
    _official_file(tmp_path / "weights", "GPEN-BFR-256")
    overrides = [
        o for o in _overrides(tmp_path, "GPEN-BFR-256") if not o.startswith("benchmarks.custom")
    ]
    overrides = [o.replace("benchmark=custom", "benchmark=celeba_test") for o in overrides]
    cfg = make_cfg(overrides, config_name="eval", tiny=False)
    data = Path(cfg.paths.data_dir)
    assert not (data / "celeba_test").exists()
    with pytest.raises(FileNotFoundError) as info:
        evaluate(cfg)
    text = str(info.value)
    assert f"gt_root '{data / 'celeba_test' / 'gt'}'" in text
    assert "benchmarks.celeba_test" in text
    assert "faceprior-prepare synth-benchmark --preset celeba_test" in text
    assert f"--out {data / 'celeba_test'}" in text
    # a real-LQ set says where to download it
    lfw = [o.replace("benchmark=celeba_test", "benchmark=lfw_test") for o in overrides]
    cfg = make_cfg(lfw, config_name="eval", tiny=False)
    with pytest.raises(FileNotFoundError, match=r"lq_root '.*lfw_test' does not exist.*LFW-Test"):
        evaluate(cfg)
