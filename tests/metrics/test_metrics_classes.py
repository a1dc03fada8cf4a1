"""The torchmetrics classes reproduce the CLI numbers: batched, in a MetricCollection, in DDP."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics import MetricCollection

from faceprior.metrics import NIQE, PSNR, SSIM
from faceprior.metrics.fid import FID
from faceprior.metrics.functional import calculate_niqe, calculate_psnr, calculate_ssim
from faceprior.metrics.identity import IdentityDistance


def _collection(prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "psnr": PSNR(),
            "ssim": SSIM(),
            "psnr_y": PSNR(test_y_channel=True),
            "ssim_y": SSIM(test_y_channel=True),
            "niqe": NIQE(),
        },
        prefix=prefix,
    )


@pytest.mark.real_data
def test_collection_matches_cli_on_reference_pairs(cli_results, reference_pairs, unit_rgb):
    ids = ["p02", "p05", "p07", "p08"]
    restored = unit_rgb([reference_pairs[i][0] for i in ids])
    gt = unit_rgb([reference_pairs[i][1] for i in ids])
    collection = _collection("test/reference/")
    collection.update(restored[:3], gt[:3])
    collection.update(restored[3:], gt[3:])
    values = collection.compute()
    for name in ("psnr", "ssim", "psnr_y", "ssim_y", "niqe"):
        expected = np.mean([cli_results["per_image"][i][name] for i in ids])
        assert float(values[f"test/reference/{name}"]) == pytest.approx(expected, abs=1e-9)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _shared_networks() -> tuple[torch.nn.Module, torch.nn.Module]:
    from faceprior.nets.arcface import ArcFaceResNet18

    torch.manual_seed(0)
    features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
    )
    return ArcFaceResNet18(), features


def _metrics() -> dict[str, torch.nn.Module]:
    arcface, features = _shared_networks()
    return {
        "psnr": PSNR(),
        "ssim_y": SSIM(test_y_channel=True),
        "niqe": NIQE(),
        "idd": IdentityDistance(network=arcface),
        "fid": FID(feature_extractor=features),
    }


def _values(metrics: dict[str, torch.nn.Module]) -> dict[str, float]:
    out = {name: float(m.compute()) for name, m in metrics.items()}  # type: ignore[operator]
    out["idd_all"] = float(metrics["idd"].compute_all()["idd_all"])  # type: ignore[operator]
    return out


def _ddp_worker(rank: int, world: int, port: int, data: Path, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        restored, gt = torch.load(data)
        metrics = _metrics()
        shard = slice(rank, None, world)  # uneven: 3 and 2 images
        for metric in metrics.values():
            metric.update(restored[shard], gt[shard])  # type: ignore[operator]
        values = _values(metrics)
        if rank == 0:
            out.write_text(json.dumps(values))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_data(make_face, unit_rgb):
    import cv2

    gts = [make_face(seed, size=192) for seed in range(5)]
    gts[3] = gts[1].copy()
    restored = [cv2.GaussianBlur(g, (5, 5), 1.0 + 0.3 * i) for i, g in enumerate(gts)]
    restored[3] = gts[3].copy()  # an identical pair: 0 degrees, excluded by the VQFR rule
    return unit_rgb(restored), unit_rgb(gts), restored, gts


@pytest.mark.slow
def test_two_process_ddp_equals_single_process(ddp_data, tmp_path):
    restored, gt, restored_bgr, gt_bgr = ddp_data
    data, out = tmp_path / "data.pt", tmp_path / "out.json"
    torch.save((restored, gt), data)
    mp.spawn(_ddp_worker, args=(2, _free_port(), data, out), nprocs=2, join=True)
    distributed = json.loads(out.read_text())
    single = _metrics()
    for metric in single.values():
        metric.update(restored, gt)  # type: ignore[operator]
    expected = _values(single)
    for name, value in expected.items():
        # network outputs are float32: batch size and thread count change the last bits
        rel = 1e-9 if name in ("psnr", "ssim_y", "niqe") else 1e-5
        assert distributed[name] == pytest.approx(value, rel=rel, abs=1e-9), name
    assert distributed["fid"] > 0
    # and the same numbers as the BasicSR-style functions (what the CLI computes)
    pairs = list(zip(restored_bgr, gt_bgr))
    finite = [calculate_psnr(r, g) for r, g in pairs]
    assert np.isinf(distributed["psnr"]) and np.isinf(finite).sum() == 1
    ssim_y = np.mean([calculate_ssim(r, g, test_y_channel=True) for r, g in pairs])
    assert distributed["ssim_y"] == pytest.approx(ssim_y, abs=1e-12)
    assert distributed["niqe"] == pytest.approx(np.mean([calculate_niqe(r) for r in restored_bgr]))
    assert distributed["idd_all"] < distributed["idd"]  # the excluded 0-degree pair
