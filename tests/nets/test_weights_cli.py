"""Weights dir, pretrained loading, downloads, ``faceprior-weights`` and the one weights registry."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from faceprior import nets
from faceprior.checkpoints import (
    ENV_VAR,
    PURPOSES,
    REGISTRY,
    WEIGHTS,
    CheckpointError,
    DownloadError,
    UnknownCheckpointError,
    download_weights,
    export_checkpoint,
    get_spec,
    get_weights,
    load_from_file,
    load_pretrained,
    resolve_weights,
    sha256sum,
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


def test_cli_random_writes_a_seeded_stand_in_in_the_official_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "w" / "GFPGANv1_net_d_left_eye.pth"
    assert main(["random", COMPONENT, str(dst), "--seed", "3"]) == 0
    assert "randomly initialised" in capsys.readouterr().out
    spec = get_spec(COMPONENT)
    torch.manual_seed(3)
    expected = spec.build(dict(spec.kwargs)).state_dict()
    raw = torch.load(dst, weights_only=True)
    sd = raw if spec.layout == "bare" else raw[spec.layout]
    # exact: the same seeded initialisation in this process, saved and loaded without arithmetic
    assert list(sd) == list(expected) and all(torch.equal(sd[k], expected[k]) for k in sd)
    assert main(["verify", str(dst), "--name", COMPONENT]) == 0
    before = dst.read_bytes()
    capsys.readouterr()
    assert main(["random", COMPONENT, str(dst), "--seed", "4"]) == 2  # never replaces silently
    assert "exists; pass --force" in capsys.readouterr().err and dst.read_bytes() == before
    assert main(["random", COMPONENT, str(dst), "--seed", "4", "--force"]) == 0
    assert dst.read_bytes() != before and not list(dst.parent.glob(".*tmp*"))
    assert main(["random", "vgg19", str(tmp_path / "v.pth")]) == 2
    assert "not a network checkpoint" in capsys.readouterr().err


def test_console_script_entry_point() -> None:
    scripts = entry_points(group="console_scripts")
    (script,) = [ep for ep in scripts if ep.name == "faceprior-weights"]
    assert script.value == "faceprior.checkpoints.cli:main"
    assert script.load() is main


# -- the one registry: networks, loss networks and metric files --------------------------------

CONF = Path(__file__).resolve().parents[2] / "conf"
MISSING = object()


def _config_key_exists(key: str) -> bool:
    """Whether some file of a config group defines the dotted key (``key=value``: the key part)."""
    parts = key.partition("=")[0].split(".")
    for split in range(1, len(parts)):
        group = CONF.joinpath(*parts[:split])
        for file in sorted(group.glob("*.yaml")) if group.is_dir() else []:
            node: Any = yaml.safe_load(file.read_text())
            for part in parts[split:]:
                node = node.get(part, MISSING) if isinstance(node, dict) else MISSING
            if node is not MISSING:
                return True
    return False


def test_one_registry_holds_every_file() -> None:
    assert set(REGISTRY) <= set(WEIGHTS)
    assert all(WEIGHTS[name] is spec for name, spec in REGISTRY.items())
    assert {"vgg19", "vgg16", "pt_inception", "inception_FFHQ_512", "niqe_pris_params"} <= set(
        WEIGHTS
    )
    assert set(WEIGHTS["arcface_resnet18"].purposes) == {"loss", "metric"}
    in_dir = [s.filename for s in WEIGHTS.values() if s.bundled is None]
    assert len(in_dir) == len(set(in_dir)), "two entries would share a file in the weights dir"
    for spec in WEIGHTS.values():
        assert spec.purposes and set(spec.purposes) <= set(PURPOSES), spec.name
        assert spec.url or spec.page, spec.name
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256), spec.name
        for key in spec.config_keys:
            assert _config_key_exists(key), f"{spec.name}: no config defines {key!r}"


def test_lookup_by_any_registered_name() -> None:
    assert get_weights("VGG16").name == "vgg16"
    assert get_weights("vgg19-dcbb9e9d.pth").name == "vgg19"
    with pytest.raises(UnknownCheckpointError, match=r"registered names: GFPGANv1, .*vgg16"):
        get_weights("nope")
    with pytest.raises(UnknownCheckpointError, match="'vgg16' is a registered metric file"):
        get_spec("vgg16")


def test_bundled_files_resolve_from_their_package(tmp_path: Path) -> None:
    path = resolve_weights("niqe_pris_params", weights_dir=tmp_path)
    assert path.parts[-3:] == ("metrics", "data", "niqe_pris_params.npz")
    assert WEIGHTS["niqe_pris_params"].check_digest(sha256sum(path)) is True
    assert resolve_weights("lpips_vgg").parts[-4:] == ("lpips", "weights", "v0.1", "vgg.pth")
    with pytest.raises(DownloadError, match="nothing to download"):
        download_weights("niqe_pris_params", tmp_path)


def test_resolve_a_metric_file_missing_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        resolve_weights("vgg16", tmp_path)
    text = str(info.value)
    assert "vgg16-397923af.pth" in text and str(tmp_path) in text
    assert "faceprior-weights download vgg16" in text
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in text


def test_download_metric_names_without_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["download", "pt_inception", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "could not download 'pt_inception' from https://github.com/mseitzer/" in err
    assert "network is unreachable" in err and str(tmp_path) in err
    assert main(["download", "inception_FFHQ_512", "--dir", str(tmp_path)]) == 1
    assert "no direct download URL" in capsys.readouterr().err
    assert main(["download", "lpips_vgg", "--dir", str(tmp_path)]) == 1
    assert "nothing to download" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_download_checks_the_hash_prefix_of_the_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"not vgg19"))
    assert main(["download", "vgg19", "--dir", str(tmp_path)]) == 1
    assert "expected it to start with dcbb9e9d" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # the wrong file is not kept


def test_cli_list_shows_metric_files_and_filters(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "vgg16-397923af.pth").write_bytes(b"x")
    assert main(["list", "--dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:-1]}
    assert set(lines) == set(WEIGHTS)
    assert lines["vgg16"].split()[1:] == [
        "metric",
        "-",
        "vgg16-397923af.pth",
        "-",
        "397923af*",
        "yes",
    ]
    assert lines["niqe_pris_params"].split()[-1] == "bundled"
    assert lines["GFPGANv1.4"].split()[1:3] == ["network", "GFPGANv1Clean"]
    assert main(["list", "--dir", str(tmp_path), "--for", "loss", "--long"]) == 0
    out = capsys.readouterr().out
    assert "model_ir_se50" in out and "vgg16 " not in out and "GFPGANv1.4" not in out
    assert "config: model.generator_losses.perceptual.weights_path" in out
    assert "from: https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in out


def test_cli_verify_a_metric_file_by_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    niqe = resolve_weights("niqe_pris_params")
    assert main(["verify", str(niqe), "--name", "niqe_pris_params"]) == 0
    assert "hash: OK (matches the registry)" in capsys.readouterr().out
    fake = tmp_path / "vgg16-397923af.pth"
    fake.write_bytes(b"random")
    assert main(["verify", str(fake), "--name", "vgg16"]) == 1
    assert "hash: MISMATCH (registry has 397923af...)" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "nope.pth"), "--name", "vgg16"]) == 2
    assert "file not found" in capsys.readouterr().err
