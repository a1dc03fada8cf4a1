"""``faceprior-metrics`` and ``faceprior-fid-stats``: pairing, outputs, errors, network metrics."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from faceprior.metrics import PSNR, SSIM, cli, fid_stats_cli
from faceprior.metrics.fid import FID
from faceprior.metrics.frechet import load_reference_stats

#: the random networks in fake_weights_dir fail the registered hashes, by design
pytestmark = pytest.mark.filterwarnings("ignore:.*does not match the registered SHA-256")


@pytest.fixture
def folders(tmp_path, synthetic_pairs, save_pairs):
    return save_pairs(tmp_path / "set", synthetic_pairs[:3])


def test_outputs_json_and_csv(folders, tmp_path, synthetic_pairs, unit_rgb, capsys):
    restored_dir, gt_dir = folders
    out, table = tmp_path / "r.json", tmp_path / "r.csv"
    argv = [str(restored_dir), "--gt", str(gt_dir), "--metrics", "psnr,ssim_y", "--crop-border"]
    argv += ["2", "--out", str(out), "--per-image", str(table), "--batch-size", "2"]
    assert cli.main(argv) == 0
    assert "psnr" in capsys.readouterr().out
    results = json.loads(out.read_text())
    assert set(results) == {"mean", "per_image", "protocol"}
    assert list(results["per_image"]) == ["i00", "i01", "i02"]
    protocol = results["protocol"]
    assert protocol["crop_border"] == 2 and protocol["metrics"]["ssim_y"]["test_y_channel"]
    assert protocol["versions"]["torchmetrics"] and protocol["num_images"] == 3
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["stem"] for r in rows] == ["i00", "i01", "i02"]
    for row in rows:
        assert float(row["psnr"]) == results["per_image"][row["stem"]]["psnr"]
    # the metric classes on float batches give the CLI's means
    restored = unit_rgb([r for r, _ in synthetic_pairs[:3]])
    gt = unit_rgb([g for _, g in synthetic_pairs[:3]])
    psnr, ssim = PSNR(crop_border=2), SSIM(crop_border=2, test_y_channel=True)
    for metric in (psnr, ssim):
        metric.update(restored[:1], gt[:1])
        metric.update(restored[1:], gt[1:])
    assert float(psnr.compute()) == pytest.approx(results["mean"]["psnr"], abs=1e-12)
    assert float(ssim.compute()) == pytest.approx(results["mean"]["ssim_y"], abs=1e-12)


def test_unpaired_and_mismatched_files_are_listed(folders, capsys):
    restored_dir, gt_dir = folders
    (gt_dir / "i01.png").rename(gt_dir / "other.png")
    small = np.zeros((64, 64, 3), np.uint8)
    cv2.imwrite(str(gt_dir / "i02.png"), small)
    argv = [str(restored_dir), "--gt", str(gt_dir), "--metrics", "psnr"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "i01.png: no ground truth" in err and "other.png: no restored image" in err
    assert "i02: restored 128x128 vs gt 64x64" in err and "--skip-unpaired" in err
    assert cli.main([*argv, "--skip-unpaired"]) == 0
    assert "skipped: i01.png" in capsys.readouterr().err


def test_request_errors(folders, capsys):
    restored_dir, gt_dir = folders
    assert cli.main([str(restored_dir), "--metrics", "psnr"]) == 2
    assert "pass --gt" in capsys.readouterr().err
    assert cli.main([str(restored_dir), "--metrics", "fid"]) == 2
    assert "--fid-stats" in capsys.readouterr().err
    assert cli.main([str(restored_dir), "--gt", str(gt_dir), "--metrics", "psnr,bogus"]) == 2
    assert "unknown metric" in capsys.readouterr().err


def test_missing_weights_reported(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEPRIOR_WEIGHTS_DIR", str(tmp_path / "empty"))
    restored_dir, gt_dir = folders
    assert cli.main([str(restored_dir), "--gt", str(gt_dir), "--metrics", "lpips"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "vgg16-397923af.pth" in err and "download.pytorch.org/models/vgg16-397923af.pth" in err
    assert "empty" in err


@pytest.mark.slow
def test_network_metrics_through_cli(
    fake_weights_dir, tmp_path, monkeypatch, synthetic_pairs, save_pairs
):
    monkeypatch.setenv("FACEPRIOR_WEIGHTS_DIR", str(fake_weights_dir))
    restored_dir, gt_dir = save_pairs(tmp_path / "two", synthetic_pairs[:2])
    out = tmp_path / "r.json"
    argv = [str(restored_dir), "--gt", str(gt_dir), "--metrics", "lpips,idd,lmd", "--out"]
    with pytest.warns(UserWarning, match="does not match"):
        assert cli.main([*argv, str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results["mean"]) == {"lpips", "idd", "idd_all", "lmd"}
    assert all(set(row) == {"lpips", "idd", "lmd"} for row in results["per_image"].values())
    network = results["protocol"]["metrics"]["idd"]["network"]
    assert network["file"] == "arcface_resnet18.pth" and len(network["sha256"]) == 64
    assert results["protocol"]["metrics"]["lpips"]["backbone"]["verified"] is False


def test_fid_stats_command(folders, fake_weights_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEPRIOR_WEIGHTS_DIR", str(fake_weights_dir))
    restored_dir, _ = folders
    out = tmp_path / "stats" / "set.pth"
    argv = [str(restored_dir), "--out", str(out), "--name", "tiny", "--batch-size", "2"]
    assert fid_stats_cli.main(argv) == 0
    assert "3 images" in capsys.readouterr().out
    stats = load_reference_stats(out)
    assert stats.name == "tiny" and stats.num_images == 3 and stats.mean.shape == (2048,)
    metric = FID(weights_dir=fake_weights_dir)
    images = torch.stack(
        [
            torch.from_numpy(cv2.imread(str(p))[:, :, ::-1].copy()).permute(2, 0, 1)
            for p in sorted(restored_dir.glob("*.png"))
        ]
    )
    feats = metric.features(images).numpy()
    # batches of 2 vs one of 3: float32 convolutions may pick other kernels per batch size (and
    # CPU), so the features agree to ulps of their scale, not bitwise. The floor is relative to
    # that scale (the random network's features are ~1e-7, so a fixed atol=1e-7 tested nothing).
    floor = 1e-5 * float(np.abs(feats).max())
    np.testing.assert_allclose(stats.mean, feats.mean(0), rtol=1e-5, atol=floor)
    assert fid_stats_cli.main([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
