"""Weights directory resolution, pretrained loading, download failures and ``faceprior-weights``."""

from __future__ import annotations

import urllib.error
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import torch

from faceprior import nets
from faceprior.checkpoints import (
    ENV_VAR,
    CheckpointError,
    DownloadError,
    download_weights,
    export_checkpoint,
    load_from_file,
    load_pretrained,
    resolve_weights,
    weights_dir,
)
from faceprior.checkpoints.cli import main

COMPONENT = "GFPGANv1_net_d_left_eye"  # a small registered network (1.1M parameters)


@pytest.fixture(scope="module")
def component_net() -> nets.FacialComponentDiscriminator:
    torch.manual_seed(0)
    return nets.FacialComponentDiscriminator()


@pytest.fixture(scope="module")
def component_files(
    tmp_path_factory: pytest.TempPathFactory, component_net: nets.FacialComponentDiscriminator
) -> dict[str, Path]:
    """The random component D saved in every official layout, plus a DataParallel variant."""
    folder = tmp_path_factory.mktemp("layouts")
    files = {
        layout: export_checkpoint(component_net, folder / f"{layout}.pth", layout)
        for layout in ("params_ema", "params", "bare", "g_ema")
    }
    prefixed = {f"module.{k}": v for k, v in component_net.state_dict().items()}
    files["module"] = export_checkpoint(prefixed, folder / "module.pth", "params")
    return files


def test_weights_dir_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert weights_dir() == Path("~/.cache/faceprior/weights").expanduser()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert weights_dir() == tmp_path


def test_resolve_weights_missing_file_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        resolve_weights("GFPGANv1.4")
    text = str(info.value)
    assert "GFPGANv1.4.pth" in text and str(tmp_path) in text
    assert "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth" in text
    with pytest.raises(FileNotFoundError, match=r"drive\.google\.com"):
        resolve_weights(COMPONENT, weights_dir=tmp_path)


def test_resolve_and_load_pretrained(
    tmp_path: Path, component_net: nets.FacialComponentDiscriminator
) -> None:
    export_checkpoint(component_net, tmp_path / f"{COMPONENT}.pth", "params")
    assert resolve_weights(COMPONENT, tmp_path) == tmp_path / f"{COMPONENT}.pth"
    loaded = load_pretrained(COMPONENT, weights_dir=tmp_path)
    assert isinstance(loaded, nets.FacialComponentDiscriminator) and not loaded.training
    for k, v in component_net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_load_from_file_identifies_the_architecture(
    component_files: dict[str, Path], tmp_path: Path, small_clean: nets.GFPGANv1Clean
) -> None:
    net = load_from_file(component_files["module"])
    assert isinstance(net, nets.FacialComponentDiscriminator) and not net.training
    assert isinstance(load_from_file(component_files["bare"], name=COMPONENT), type(net))
    own = export_checkpoint(small_clean, tmp_path / "own.pth", "params_ema")
    with pytest.raises(CheckpointError, match=r"\[params_ema\] fits no registered architecture"):
        load_from_file(own)


def test_download_fails_cleanly_without_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["download", "GPEN-BFR-512", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "could not download 'GPEN-BFR-512' from https://" in err
    assert "network is unreachable" in err and str(tmp_path) in err
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
    with pytest.raises(DownloadError, match="no direct download URL"):
        download_weights(COMPONENT, tmp_path)


def test_cli_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("GFPGANv1.4", "GPEN-BFR-256", "model_ir_se50", "arcface_resnet18"):
        assert name in out


@pytest.mark.parametrize("layout", ["params_ema", "params", "bare", "g_ema", "module"])
def test_cli_verify_each_layout(
    layout: str, component_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = component_files[layout]
    assert main(["verify", str(path), "--name", COMPONENT]) == 0
    out = capsys.readouterr().out
    assert f"OK: keys and shapes fit '{COMPONENT}'" in out
    expected_layout = "params (module. prefix removed)" if layout == "module" else layout
    assert f"layout: {expected_layout}; 12 tensors" in out
    assert main(["verify", str(path)]) == 0
    assert f"fits registry entry '{COMPONENT}'" in capsys.readouterr().out


def test_cli_verify_mismatch_and_custom_arch(
    tmp_path: Path, small_clean: nets.GFPGANv1Clean, capsys: pytest.CaptureFixture[str]
) -> None:
    path = export_checkpoint(small_clean, tmp_path / "small.pth", "params_ema")
    assert main(["verify", str(path), "--name", "GFPGANv1_net_d_mouth"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH: the file does not fit 'GFPGANv1_net_d_mouth'" in out
    assert "12 missing key(s) (in the network, not in the file): conv1.0.weight" in out
    assert main(["verify", str(path)]) == 1
    assert "no registered architecture fits this file" in capsys.readouterr().out
    cfg = '{"out_size": 32, "num_style_feat": 32, "channel_multiplier": 2, "narrow": 0.0625}'
    assert main(["verify", str(path), "--arch", "GFPGANv1Clean", "--kwargs", cfg]) == 0
    assert "OK: keys and shapes fit GFPGANv1Clean" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "nope.pth")]) == 2
    assert "checkpoint file not found" in capsys.readouterr().err
    assert main(["verify", str(path), "--arch", "NoSuchNet"]) == 2
    assert "unknown architecture 'NoSuchNet'" in capsys.readouterr().err
    assert main(["verify", str(path), "--arch", "GFPGANv1Clean", "--kwargs", '{"size": 3}']) == 2
    assert "cannot build GFPGANv1Clean(size=3)" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["params_ema", "params", "bare", "g_ema"])
def test_cli_convert_between_layouts(
    target: str, component_files: dict[str, Path], tmp_path: Path
) -> None:
    src = component_files["module"]
    dst = tmp_path / f"to_{target}.pth"
    assert main(["convert", str(src), str(dst), "--to", target]) == 0
    raw = torch.load(dst, weights_only=True)
    sd = raw if target == "bare" else raw[target]
    reference = torch.load(component_files["bare"], weights_only=True)
    assert list(sd) == list(reference)
    assert all(torch.equal(sd[k], reference[k]) for k in reference)
    assert main(["verify", str(dst), "--name", COMPONENT]) == 0


def test_console_script_entry_point() -> None:
    scripts = entry_points(group="console_scripts")
    (script,) = [ep for ep in scripts if ep.name == "faceprior-weights"]
    assert script.value == "faceprior.checkpoints.cli:main"
    assert script.load() is main
