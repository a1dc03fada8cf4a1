"""faceprior-compare on fake eval/training runs: golden table, LaTeX, CSV, HTML page, errors."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprior.compare import (
    CSV_COLUMNS,
    CompareError,
    compare,
    load_results,
    to_latex,
    to_markdown,
    write_outputs,
)
from faceprior.compare_cli import main

BENCH = "celeba_test"
NAMES = ["img3", "img0", "img2", "img1"]  # written out of order: crops must sort them

DIRECTIONS = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "niqe": False}


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


@pytest.fixture
def bench_dirs(tmp_path: Path) -> tuple[Path, Path]:
    lq, gt = tmp_path / "bench" / "lq", tmp_path / "bench" / "gt"
    for i, name in enumerate(sorted(NAMES)):
        _png(lq / f"{name}.png", 10 + i)
        _png(gt / f"{name}.png", 200 + i)
    return lq, gt


def _eval_run(
    root: Path,
    bench: str,
    means: dict[str, float],
    weights: dict,
    lq_gt: tuple[Path, Path] | None,
    names: list[str],
) -> None:
    protocol = {
        "benchmark": {
            "name": bench,
            "kind": "paired" if lq_gt else "lq_only",
            "lq_root": str(lq_gt[0]) if lq_gt else None,
            "gt_root": str(lq_gt[1]) if lq_gt else None,
            "seed": 0,
            "manifest": None,
        },
        "weights": weights,
        "metrics": {
            m: {"convention": "test", "higher_is_better": h} for m, h in DIRECTIONS.items()
        },
        "seed": 0,
        "packages": {},
    }
    rows = [{"benchmark": bench, "name": n, "index": i, "psnr": 25.0} for i, n in enumerate(names)]
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": bench, "means": means, "protocol": protocol, "per_image": rows}
    (results / f"{bench}.json").write_text(json.dumps(payload))
    for i, name in enumerate(names):
        _png(root / "restored" / bench / f"{name}.png", 100 + i)


@pytest.fixture
def runs(tmp_path: Path, bench_dirs: tuple[Path, Path]) -> tuple[Path, Path]:
    a, b = tmp_path / "eval_a", tmp_path / "run_b"
    lq_means = {"lq_psnr": 27.0, "lq_ssim": 0.7, "lq_lpips": 0.5, "lq_fid": 120.0}
    _eval_run(
        a,
        BENCH,
        {"psnr": 25.1234, "ssim": 0.6789, "lpips": 0.3012, "fid": 40.5, **lq_means},
        {"name": "GFPGANv1.4", "sha256": "0" * 64, "released_file": True},
        bench_dirs,
        NAMES,
    )
    _eval_run(a, "lfw", {"niqe": 4.1234, "lq_niqe": 9.0}, {"name": "GFPGANv1.4"}, None, [])
    _eval_run(
        b,
        BENCH,
        {"psnr": 26.0, "ssim": 0.67891, "lpips": 0.35, "fid": 38.1, **lq_means},
        {"checkpoint": "/x/last.ckpt"},
        bench_dirs,
        NAMES[:3],  # img1 is not restored by b: not a common face
    )
    return a, b


GOLDEN = """\
| Method | celeba_test PSNR↑ | celeba_test SSIM↑ | celeba_test LPIPS↓ | celeba_test FID↓ | lfw NIQE↓ |
|---|---|---|---|---|---|
| LQ input | 27.00 | 0.7000 | 0.5000 | 120.00 | 9.00 |
| GFPGANv1.4 | 25.12 | **0.6789** | **0.3012** | 40.50 | **4.12** |
| run_b | **26.00** | **0.6789** | 0.3500 | **38.10** | — |

> run_b: not evaluated on lfw (shown as —); the methods were evaluated on different benchmarks
"""


def test_golden_markdown_and_latex(runs: tuple[Path, Path]) -> None:
    table = compare(list(runs))
    assert table.methods == ["GFPGANv1.4", "run_b"]  # released name, then the run folder's name
    assert to_markdown(table) == GOLDEN
    tex = to_latex(table)
    assert "\\begin{tabular}{lccccc}" in tex
    assert "\\multicolumn{4}{c}{celeba\\_test}" in tex and "\\multicolumn{1}{c}{lfw}" in tex
    assert "PSNR$\\uparrow$" in tex and "FID$\\downarrow$" in tex
    assert (
        "run\\_b & \\textbf{26.00} & \\textbf{0.6789} & 0.3500 & \\textbf{38.10} & -- \\\\" in tex
    )
    assert "LQ input & 27.00 &" in tex and "\\textbf{27.00}" not in tex  # LQ is never best


def test_write_outputs_csv_and_html(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    paths = write_outputs(compare(list(runs)), out, crops=4)
    assert {p.name for p in paths.values()} == {
        f"compare.{k}" for k in ("md", "tex", "csv", "html")
    }
    with paths["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 5 + 5 + 4  # LQ row, a on both benchmarks, b on celeba only
    best = {(r["method"], r["metric"]) for r in rows if r["best"] == "True"}
    assert best == {("GFPGANv1.4", "ssim"), ("run_b", "ssim"), ("GFPGANv1.4", "lpips")} | {
        ("GFPGANv1.4", "niqe"),
        ("run_b", "psnr"),
        ("run_b", "fid"),
    }
    assert {r["higher_is_better"] for r in rows if r["metric"] == "fid"} == {"False"}

    html = paths["html"].read_text()
    sources = re.findall(r'<img src="([^"]+)"', html)
    # the common faces are img0, img2, img3 (b lacks img1), sorted; 4 columns each
    assert len(sources) == 3 * 4
    for name in ("img0", "img2", "img3"):
        for tag in ("lq", "m0_GFPGANv1.4", "m1_run_b", "gt"):
            assert f"crops/{BENCH}/{name}__{tag}.png" in sources
    assert "img1" not in html
    for src in sources:
        assert (out / src).is_file()
    assert "<svg" in html and "FID↓ vs PSNR↑" in html  # celeba has the fidelity/quality pair
    assert html.count("<svg") == 1  # lfw has NIQE only: no plot
    assert "<b>26.00</b>" in html and "not evaluated on lfw" in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_training_results_json_and_options(runs: tuple[Path, Path], tmp_path: Path) -> None:
    train = tmp_path / "train_run"
    train.mkdir()
    metrics = {"test/celeba_test/psnr": 24.5, "test/celeba_test/lq_psnr": 27.0}
    metrics |= {"test/celeba_test/ssim": 0.61, "val/psnr": 1.0}
    (train / "results.json").write_text(json.dumps({"checkpoint": "x.ckpt", "metrics": metrics}))
    (entry,) = load_results(train)
    assert entry.benchmark == BENCH and entry.means == {"psnr": 24.5, "lq_psnr": 27.0, "ssim": 0.61}

    table = compare([train, runs[0] / "results" / f"{BENCH}.json"], metrics=["ssim", "psnr"])
    assert table.methods == ["train_run", "GFPGANv1.4"]
    assert table.columns == [(BENCH, "ssim"), (BENCH, "psnr")]
    assert table.values["LQ input"][(BENCH, "psnr")] == 27.0  # first input that has it
    assert table.cell("train_run", (BENCH, "psnr")) == "24.50"

    same = compare([runs[0], runs[0]], benchmarks=["lfw"])
    assert same.methods == ["GFPGANv1.4", "GFPGANv1.4-2"]
    assert same.columns == [("lfw", "niqe")]

    # same benchmark name, other folders: flagged
    path = runs[1] / "results" / f"{BENCH}.json"
    data = json.loads(path.read_text())
    data["protocol"]["benchmark"]["lq_root"] = "/elsewhere"
    path.write_text(json.dumps(data))
    assert f"{BENCH}: the methods were scored on different data" in " ".join(compare(runs).notes)

    out = tmp_path / "cli"
    argv = [str(runs[0]), str(train), "--names", "A,B", "--out", str(out), "--crops", "1"]
    assert main(argv) == 0
    md = (out / "compare.md").read_text()
    assert "| A |" in md and "| B |" in md and "B: not evaluated on lfw" in md
    assert len(list((out / "crops").rglob("*.png"))) == 3  # one face: LQ, A, GT (B has none)


def test_bad_inputs(runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(CompareError, match=r"empty_run: a folder without results.*results\.json"):
        load_results(empty)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(CompareError, match=r"other\.json: not a results file"):
        load_results(other)
    with pytest.raises(CompareError, match="no such file"):
        load_results(tmp_path / "missing")
    with pytest.raises(CompareError, match="2 names for 1 inputs"):
        compare([runs[0]], names=["a", "b"])

    assert main([str(runs[0]), str(empty), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "faceprior-compare: error:" in err and "empty_run" in err
    assert not (tmp_path / "o").exists()
