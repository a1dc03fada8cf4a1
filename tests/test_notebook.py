"""The example notebook's code runs top to bottom (executed without a Jupyter kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path
) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEPRIOR_ROOT", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    # small data for the test: shrink the synthetic splits the notebook generates
    code[0] = code[0].replace(
        "'data.num_workers=0'",
        "'data.num_workers=0', 'data.synthetic.train=8', 'data.synthetic.val=2', 'data.synthetic.test=2', 'data.batch_size=8'",
    )
    scope: dict[str, object] = {}
    for block in code:
        exec(compile(block, str(NOTEBOOK), "exec"), scope)
    out = scope["out"]
    assert out["lq"].shape == (8, 3, 64, 64)
    assert os.path.isdir(tmp_path / "data" / "synthetic_64" / "train" / "images")


COMPARE_NOTEBOOK = NOTEBOOK.with_name("compare_methods.ipynb")
BENCH = "celeba_test"
IMAGES = ["face_b", "face_a", "face_c"]  # written out of order: the crops sort them


def _png(path: Path, value: int) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((32, 32, 3), value, np.uint8)
    pixels[8:24, 8:24] = 255 - value  # not flat: a face-sized blob
    Image.fromarray(pixels).save(path)


def _fake_eval_run(root: Path, bench_dirs: tuple[Path, Path], method: int, sha: str) -> None:
    """A faceprior-eval run folder as BenchmarkResults writes it: results/<bench>.{json,csv,md}
    and restored/<bench>/<name>.png, plus an LQ-only benchmark (saved LQ inputs, NIQE only)."""
    import csv
    import json

    lq, gt = bench_dirs
    manifest = {"path": str(lq.parent / "manifest.json"), "sha256": "m" * 64}
    rows = [
        {
            "benchmark": BENCH,
            "name": name,
            "index": i,
            "psnr": 24.0 + method + 0.5 * i,
            "ssim": 0.70 + 0.05 * method,
            "lpips": 0.30 - 0.05 * method + 0.01 * i,
            "lq_psnr": 21.0 + 0.5 * i,
            "lq_ssim": 0.55,
            "lq_lpips": 0.50 + 0.01 * i,
        }
        for i, name in enumerate(IMAGES)
    ]
    means = {
        k: sum(r[k] for r in rows) / len(rows)
        for k in rows[0]
        if k not in {"benchmark", "name", "index"}
    }
    means |= {"fid": 60.0 - 10 * method, "lq_fid": 150.0}
    weights = {
        "name": None if method else "GFPGANv1.4",
        "checkpoint": f"/w/m{method}.pth",
        "sha256": sha,
    }
    protocols = {
        BENCH: {
            "benchmark": {
                "name": BENCH,
                "kind": "paired",
                "lq_root": str(lq),
                "gt_root": str(gt),
                "seed": 0,
                "manifest": manifest,
            },
            "weights": weights,
            "metrics": {
                "lpips": {
                    "convention": "test",
                    "higher_is_better": False,
                    "backbone": "random (untrained)",
                }
            },
            "seed": 0,
            "packages": {"torch": f"2.{method}"},
        },
        "lfw": {
            "benchmark": {
                "name": "lfw",
                "kind": "lq_only",
                "lq_root": str(root / "lq" / "lfw"),
                "lq_saved_by_run": True,
                "gt_root": None,
                "seed": 0,
                "manifest": None,
            },
            "weights": weights,
            "metrics": {},
            "seed": 0,
            "packages": {"torch": f"2.{method}"},
        },
    }
    lfw_rows = [
        {
            "benchmark": "lfw",
            "name": f"lfw_{i}",
            "index": i,
            "niqe": 5.0 - method + i,
            "lq_niqe": 9.0,
        }
        for i in range(2)
    ]
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    for bench, bench_rows, bench_means in (
        (BENCH, rows, means),
        ("lfw", lfw_rows, {"niqe": 5.5 - method, "lq_niqe": 9.0}),
    ):
        payload = {
            "benchmark": bench,
            "means": bench_means,
            "protocol": protocols[bench],
            "per_image": bench_rows,
        }
        (results / f"{bench}.json").write_text(json.dumps(payload))
        with (results / f"{bench}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(bench_rows[0]))
            writer.writeheader()
            writer.writerows(bench_rows)
        for row in bench_rows:
            _png(root / "restored" / bench / f"{row['name']}.png", 90 + 40 * method + row["index"])
    for i in range(2):
        _png(root / "lq" / "lfw" / f"lfw_{i}.png", 30 + i)


def test_compare_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lq, gt = tmp_path / "bench" / "lq", tmp_path / "bench" / "gt"
    for i, name in enumerate(sorted(IMAGES)):
        _png(lq / f"{name}.png", 20 + i)
        _png(gt / f"{name}.png", 200 + i)
    runs = [tmp_path / "eval_a", tmp_path / "eval_b"]
    for method, run in enumerate(runs):
        _fake_eval_run(run, (lq, gt), method, str(method) * 64)
    figures_dir = tmp_path / "figures"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEPRIOR_RESULTS", os.pathsep.join(map(str, runs)))
    monkeypatch.setenv("FACEPRIOR_NAMES", "A,B")
    monkeypatch.setenv("FACEPRIOR_FIGURES", str(figures_dir))

    nb = nbformat.read(COMPARE_NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in nb.cells
        if c.cell_type == "code"
    )
    scope: dict[str, object] = {}
    try:
        for block in (c.source for c in nb.cells if c.cell_type == "code"):
            exec(compile(block, str(COMPARE_NOTEBOOK), "exec"), scope)
        table = scope["table"]
        assert table.rows == ["LQ input", "A", "B"]
        assert table.benchmarks == [BENCH, "lfw"]
        assert table.values["B"][(BENCH, "fid")] == 50.0
        assert table.best((BENCH, "psnr")) == {"B"}
        assert "| LQ input | 21.50 |" in scope["markdown"]

        records = scope["records"]
        assert len(records) == 2 * (3 * 6 + 2 * 2)
        series = scope["series"]
        assert series[("A", BENCH, "psnr")].tolist() == [24.0, 24.5, 25.0]
        assert series[("LQ input", "lfw", "niqe")].tolist() == [9.0, 9.0]
        assert scope["per_image_metrics"] == {BENCH: ["psnr", "ssim", "lpips"], "lfw": ["niqe"]}

        figures = scope["figures"]
        assert set(figures) == {
            f"distributions_{BENCH}",
            "distributions_lfw",
            f"scatter_{BENCH}",  # lfw: NIQE only, no fidelity axis
            f"crops_{BENCH}",
            "crops_lfw",
        }
        assert {p.stem for p in figures_dir.glob("*.png")} == set(figures)
        assert len(figures[f"distributions_{BENCH}"].axes) == 3
        assert len(figures[f"scatter_{BENCH}"].axes) == 2  # FID and LPIPS vs PSNR
        assert len(figures[f"crops_{BENCH}"].axes) == 3 * 4  # 3 faces x LQ | A | B | GT
        assert len(figures["crops_lfw"].axes) == 2 * 3  # saved LQ | A | B, no GT
        assert scope["crop_names"] == {
            BENCH: ["face_a", "face_b", "face_c"],
            "lfw": ["lfw_0", "lfw_1"],
        }

        differences = scope["differences"]
        assert set(differences[BENCH]) == {
            "weights.name",
            "weights.checkpoint",
            "weights.sha256",
            "packages.torch",
        }
        assert differences[BENCH]["weights.sha256"] == {"A": "0" * 64, "B": "1" * 64}
    finally:
        plt.close("all")
