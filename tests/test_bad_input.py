"""Bad input through the real entry points: each case ends with its exit code and a message that
names the key or the file (issue #14).

Console scripts run as subprocesses where the exit status and the printed message are the point;
the other cases call the apps in-process on the tiny configs of ``conftest.TINY``. Covered
elsewhere, not repeated here: ``faceprior-eval`` with a text file, a plain state dict or another
module's checkpoint (``tests/test_checkpoint_safety.py``: one line naming the file and what it
is), truncated checkpoints and interrupted saves (same file), and a truncated JPEG via
``faceprior-data check`` and at start-up (``tests/test_data_integrity.py``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf, open_dict

import faceprior.train as train_app
from faceprior.checkpoints.cli import main as weights_main
from faceprior.compare_cli import main as compare_main
from faceprior.data.prepare_cli import main as prepare_main
from faceprior.data.synthetic import write_synthetic_split
from faceprior.metrics.cli import main as metrics_main
from faceprior.metrics.fid_stats_cli import main as fid_stats_main
from faceprior.preflight import MissingFilesError, PreflightError
from faceprior.runs import build_datamodule
from faceprior.train import train
from tests.conftest import TINY

BIN = Path(sys.executable).parent
#: every file and folder experiment=gfpgan_v1_ffhq512 reads, networks, losses and metrics alike
GFPGAN_V1_NEEDS = {
    "data.train_root": "ffhq/ffhq_512",
    "data.val_root": "ffhq/val_512",
    "data.train_components": "FFHQ_eye_mouth_landmarks_512.pth",
    "benchmarks.celeba_test": "celeba_test/lq",
    "model.decoder_prior": "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
    "model.generator_losses.perceptual.weights_path": "vgg19-dcbb9e9d.pth",
    "model.generator_losses.identity.weights_path": "arcface_resnet18.pth",
    "metrics.lpips.net": "vgg16-397923af.pth",
    "test_metrics.fid": "pt_inception-2015-12-05-6726825d.pth",
    "test_metrics.fid.reference_stats": "inception_FFHQ_512-f7b384ab.pth",
    "test_metrics.idd.weights": "arcface_resnet18.pth",
    "test_metrics.lmd": "alignment_WFLW_4HG.pth",
}


def run_cli(tmp_path: Path, app: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A console script in ``tmp_path`` (own HOME, offline W&B), its output captured."""
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "FACEPRIOR_WEIGHTS_DIR": str(tmp_path / "no_weights"),
    }
    env.pop("FACEPRIOR_DEBUG", None)
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [str(BIN / app), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def faces(root: Path, count: int, seed: int) -> Path:
    """A folder of ``count`` aligned 32 px faces (as ``faceprior-data synth`` writes them)."""
    return write_synthetic_split(root, count, 32, seed) / "images"


# --- preflight ----------------------------------------------------------------------------------


def test_preflight_only_lists_every_missing_file_in_one_report(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    common = [f"paths.weights_dir={empty}", f"paths.data_dir={empty}", f"paths.root_dir={tmp_path}"]
    done = run_cli(
        tmp_path, "faceprior-train", "experiment=gfpgan_v1_ffhq512", "preflight=only", *common
    )
    assert done.returncode == 1, done.stderr[-2000:]
    report = done.stdout
    assert "preflight: 11 problem(s) in faceprior-train experiment=gfpgan_v1_ffhq512" in report
    lines = [line for line in report.splitlines() if line.startswith("  - ")]
    for key, name in GFPGAN_V1_NEEDS.items():
        line = next((row for row in lines if f" {key}" in row.split(":")[0] + " "), None)
        assert line is not None and name in line, (key, report)
    # what to run for each: a download command, a page, a prepare command
    assert f"`faceprior-weights download vgg16 --dir {empty}`" in report
    assert "drive.google.com" in report  # inception_FFHQ_512 has no direct URL
    assert "faceprior-prepare synth-benchmark --preset celeba_test" in report
    # the bundled files are found (and listed as present)
    assert "niqe_pris_params.npz' (bundled)" in report
    # a normal run stops with the same report before anything is built: no checkpoints
    failed = run_cli(tmp_path, "faceprior-train", "experiment=gfpgan_v1_ffhq512", *common)
    assert failed.returncode == 1
    assert "error: preflight: 11 problem(s)" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not list(tmp_path.glob("logs/train/runs/*/checkpoints"))


def test_preflight_only_passes_a_ready_config(make_cfg, capsys: Any) -> None:
    metrics, run = train(make_cfg(["experiment=quickstart", "preflight=only"]))
    report = run["preflight"]
    assert report.ok and metrics == {}
    out = capsys.readouterr().out
    assert "faceprior-train experiment=quickstart is ready" in out
    assert "data=synthetic generates it" in out  # generated data is fine


def test_preflight_checks_every_stage_before_the_first(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        ["experiment=gpen_two_stage", "preflight=only", f"paths.weights_dir={tmp_path / 'none'}"],
        tiny=False,
    )
    _, run = train(cfg)
    text = run["preflight"].text()
    assert "[prior, gpen] data.train_root" in text
    assert "[gpen] benchmarks.celeba_test" in text
    # the prior the first stage writes is not missing: it is handed over
    assert "[gpen] model.decoder_prior: written by stage prior/generator_ema" in text
    assert "stylegan2_concat_ffhq512.pth" not in text


# --- benchmarks follow the data -----------------------------------------------------------------


def test_own_data_run_trains_and_tests_on_its_val_folder(tmp_path: Path) -> None:
    train_root, val_root = faces(tmp_path / "mine", 12, 0), faces(tmp_path / "val", 4, 1)
    done = run_cli(
        tmp_path,
        "faceprior-train",
        "data=folder",
        f"data.train_root={train_root}",
        f"data.val_root={val_root}",
        *(o for o in TINY if not o.startswith("data.synthetic.")),
        "trainer.max_steps=2",
        "logger=csv",
        f"paths.root_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = tmp_path.glob("logs/train/runs/*/results.md")
    assert "## val_folder" in results.read_text()
    assert "synthetic" not in results.read_text()


def test_quickstart_composes_with_own_data_and_skips_a_test_without_val(
    make_cfg, tmp_path: Path, caplog: Any
) -> None:
    train_root = faces(tmp_path / "mine", 12, 0)
    cfg = make_cfg(["experiment=quickstart", "data=folder", f"data.train_root={train_root}"])
    assert OmegaConf.select(cfg, "data.synthetic.root") is None  # the counts stay, unused
    assert list(cfg.benchmarks) == ["val_folder"]
    datamodule = build_datamodule(cfg)
    assert datamodule.synthetic is None and datamodule.benchmarks == {}
    with caplog.at_level(logging.WARNING, logger="faceprior"):
        metrics, _ = train(cfg)
    assert "train/loss" in metrics and not any(k.startswith("test/") for k in metrics)
    assert "the test stage is skipped" in caplog.text
    assert "benchmarks.val_folder left out" in caplog.text


# --- values named by their key ------------------------------------------------------------------


def test_wrong_type_in_model_names_the_key(make_cfg) -> None:
    cfg = make_cfg(["experiment=quickstart", "model.optimizers.generator.lr=abc"])
    with pytest.raises(PreflightError) as info:
        train(cfg)
    text = str(info.value)
    assert "model.optimizers.generator.lr: 'abc' does not fit torch.optim.Adam(lr:" in text
    assert "expected a number" in text
    cfg = make_cfg(["experiment=gfpgan_tiny", "model.discriminator_loss.r1_weight=[1,2]"])
    with pytest.raises(PreflightError, match=r"model\.discriminator_loss\.r1_weight: \[1, 2\]"):
        train(cfg)


def test_negative_data_size_names_the_key_before_data_is_generated(
    make_cfg, tmp_path: Path
) -> None:
    cfg = make_cfg(["experiment=quickstart", "data.size=-1"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(tmp_path / "data")
    with pytest.raises(PreflightError, match=r"data\.size must be an integer >= 1, got -1"):
        train(cfg)
    assert not (tmp_path / "data").exists()


def test_batch_not_divisible_by_devices_fails_before_spawning(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_build(cfg: Any) -> Any:
        raise AssertionError("the run was built (DDP would have spawned)")

    monkeypatch.setattr(train_app, "build_run", no_build)
    cfg = make_cfg(["experiment=quickstart", "trainer=ddp_sim", "data.batch_size=3"])
    with pytest.raises(PreflightError) as info:
        train(cfg)
    assert not isinstance(info.value, MissingFilesError)
    assert "data.batch_size=3 is the global batch and must be divisible by the number of " in str(
        info.value
    )
    assert "(2 = trainer.devices x trainer.num_nodes); e.g. data.batch_size=4" in str(info.value)


def test_train_false_logs_no_error(tmp_path: Path) -> None:
    done = run_cli(
        tmp_path,
        "faceprior-train",
        "experiment=quickstart",
        *TINY,
        "train=false",
        "test=false",
        "logger=csv",
        f"paths.root_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (done.stdout + done.stderr).splitlines()
    assert not [line for line in lines if "ERROR" in line]
    (said,) = [line for line in lines if "optimized_metric" in line]
    assert "INFO" in said and "not logged (nothing was validated)" in said


# --- console scripts: one line, an exit status, --debug for the traceback -----------------------


def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPRIOR_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    monkeypatch.delenv("FACEPRIOR_DEBUG", raising=False)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    assert weights_main(["verify", str(text)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"faceprior-weights: error: {text} is not a readable PyTorch checkpoint")
    assert "\n" not in err
    with pytest.raises(Exception, match="not a readable"):
        weights_main(["verify", str(text), "--debug"])
    capsys.readouterr()

    restored = faces(tmp_path / "restored", 2, 0)
    assert metrics_main([str(restored), "--gt", str(restored), "--metrics", "lpips"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "vgg16-397923af.pth" in err
    assert "--weights-dir DIR" in err and "FACEPRIOR_WEIGHTS_DIR" in err
    assert "weights_dir=" not in err  # names this CLI's flag, not a config key

    assert fid_stats_main([str(restored), "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceprior-fid-stats: error: weights 'pt_inception'") and "\n" not in err

    assert compare_main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceprior-compare: error:") and "nowhere" in err and "\n" not in err

    missing = tmp_path / "nothing"
    assert prepare_main(["folder", "--src", str(missing), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"faceprior-prepare: error: --src folder '{missing}' does not exist"


def test_console_script_error_has_no_traceback(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    done = run_cli(tmp_path, "faceprior-weights", "verify", str(text))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(text) in done.stderr
