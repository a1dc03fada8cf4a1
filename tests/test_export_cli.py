"""`faceprior-export` and `faceprior.export`: TorchScript / ONNX files equal to eager within 1e-4.

Tolerance: the exported graphs run the same float32 operations as eager (TorchScript, static
batch: identical kernels, observed difference 0); the batch-agnostic modulated convolution and
onnxruntime's kernels sum in a different order, observed up to ~1e-5 on these random-init nets
(outputs of magnitude ~1-4), so 1e-4 (the issue's bound) leaves a margin of ~10x for other CPUs.
ONNX tests need onnx + onnxscript (torch's exporter) and onnxruntime: the optional ``[onnx]``
extra; they skip without it.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from faceprior import nets
from faceprior.checkpoints import export_checkpoint, get_spec
from faceprior.export import (
    ExportError,
    Parity,
    check_onnx,
    check_torchscript,
    example_inputs,
    export_onnx,
    export_torchscript,
    format_for,
    formats,
    load_generator,
)
from faceprior.export import cli as export_cli
from faceprior.nets.export import BatchAgnosticModConv, GeneratorExport
from faceprior.utils.config import CONFIG_DIR

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning")

ATOL = 1e-4
SIZE = 32

#: tiny versions of the three exportable generators (32 px, narrow channels)
TINY: dict[str, Callable[[], nets.GFPGANv1 | nets.GFPGANv1Clean | nets.GPENGenerator]] = {
    "clean": lambda: nets.GFPGANv1Clean(SIZE, 16, 2, narrow=0.0625),
    "v1": lambda: nets.GFPGANv1(SIZE, 16, 1, narrow=0.0625),
    "gpen": lambda: nets.GPENGenerator(SIZE, 16, 2, 2, narrow=0.0625),
}


def _tiny(name: str) -> nets.GFPGANv1 | nets.GFPGANv1Clean | nets.GPENGenerator:
    torch.manual_seed(0)
    return TINY[name]().eval()


def _needs_onnx() -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (optional [onnx] extra)")
    pytest.importorskip("onnxscript", reason="onnxscript (torch's ONNX exporter) not installed")


def _official_file(weights_dir: Path, name: str) -> Path:
    """A randomly initialised registered network saved under its official name and layout."""
    spec = get_spec(name)
    torch.manual_seed(0)
    net = spec.build(dict(spec.kwargs))
    return export_checkpoint(net, weights_dir / spec.filename, spec.layout)


# -- the batch-agnostic modulated convolution ---------------------------------------------------
@pytest.mark.parametrize("name", sorted(TINY))
def test_batch_agnostic_form_equals_the_official_one(name: str) -> None:
    net = _tiny(name)
    before = copy.deepcopy(net.state_dict())
    official = GeneratorExport(net).eval()
    agnostic = GeneratorExport(net, batch_agnostic=True).eval()
    assert any(isinstance(m, BatchAgnosticModConv) for m in agnostic.modules())
    assert not any(isinstance(m, BatchAgnosticModConv) for m in net.modules())  # net untouched
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # copies: exact
    (x,) = example_inputs(SIZE, [3])
    with torch.no_grad():
        torch.testing.assert_close(agnostic(x), official(x), rtol=0, atol=ATOL)


def test_generator_export_rejects_other_networks() -> None:
    with pytest.raises(TypeError, match="GFPGANv1, GFPGANv1Clean or GPENGenerator"):
        GeneratorExport(nets.UNet())  # type: ignore[arg-type]


# -- library: TorchScript and ONNX against eager -----------------------------------------------
@pytest.mark.parametrize("name", sorted(TINY))
def test_torchscript_fixed_batch_matches_eager(name: str, tmp_path: Path) -> None:
    module = GeneratorExport(_tiny(name)).eval()
    (x,) = example_inputs(SIZE, [2])
    path = export_torchscript(module, x, tmp_path / f"{name}.pt")
    parity = check_torchscript(path, module, example_inputs(SIZE, [2], seed=1))
    assert parity.batch_sizes == (2,) and parity.max_abs_diff is not None
    assert parity.max_abs_diff <= ATOL, parity.line("torchscript", ATOL)


@pytest.mark.parametrize("name", sorted(TINY))
def test_torchscript_dynamic_batch_runs_at_other_batch_sizes(name: str, tmp_path: Path) -> None:
    net = _tiny(name)
    (x,) = example_inputs(SIZE, [2])
    path = export_torchscript(
        GeneratorExport(net, batch_agnostic=True).eval(), x, tmp_path / "g.pt"
    )
    parity = check_torchscript(path, GeneratorExport(net).eval(), example_inputs(SIZE, [1, 3]))
    assert parity.batch_sizes == (1, 3) and parity.max_abs_diff is not None
    assert parity.max_abs_diff <= ATOL, parity.line("torchscript", ATOL)


def test_official_grouped_graph_is_fixed_to_its_batch(tmp_path: Path) -> None:
    """Why --dynamic-batch exists: the grouped convolution records groups = traced batch."""
    module = GeneratorExport(_tiny("clean")).eval()
    (x,) = example_inputs(SIZE, [2])
    path = export_torchscript(module, x, tmp_path / "fixed.pt")
    with pytest.raises(RuntimeError):
        check_torchscript(path, module, example_inputs(SIZE, [3]))


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnx_dynamic_batch_matches_eager_in_onnxruntime(name: str, tmp_path: Path) -> None:
    _needs_onnx()
    net = _tiny(name)
    (x,) = example_inputs(SIZE, [2])
    module = GeneratorExport(net, batch_agnostic=True).eval()
    path = export_onnx(module, x, tmp_path / f"{name}.onnx", dynamic_batch=True)
    assert not Path(f"{path}.data").exists()  # weights inside the one file
    parity = check_onnx(path, GeneratorExport(net).eval(), example_inputs(SIZE, [1, 3]))
    assert parity.runtime.startswith("onnxruntime") and parity.max_abs_diff is not None
    assert parity.max_abs_diff <= ATOL, parity.line("onnx", ATOL)


def test_onnx_fixed_batch_and_opset(tmp_path: Path) -> None:
    _needs_onnx()
    module = GeneratorExport(_tiny("clean")).eval()
    (x,) = example_inputs(SIZE, [2])
    path = export_onnx(module, x, tmp_path / "clean.onnx", opset=18)
    assert formats.onnx_opset(path) == 18
    parity = check_onnx(path, module, example_inputs(SIZE, [2], seed=1))
    assert parity.max_abs_diff is not None and parity.max_abs_diff <= ATOL


def test_dynamic_onnx_needs_batch_two(tmp_path: Path) -> None:
    _needs_onnx()
    (x,) = example_inputs(SIZE, [1])
    with pytest.raises(ExportError, match="batch 2 or more"):
        export_onnx(GeneratorExport(_tiny("gpen")), x, tmp_path / "g.onnx", dynamic_batch=True)


def test_onnx_without_the_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(formats, "_missing", lambda *m: [x for x in m if x != "onnx"])
    (x,) = example_inputs(SIZE, [1])
    with pytest.raises(ExportError, match=r"onnxscript.*\[onnx\]"):
        export_onnx(GeneratorExport(_tiny("gpen")), x, tmp_path / "g.onnx")
    # the command line says so before loading anything (the weights file does not exist)
    assert export_cli.main(["--model", "x.pth", "--out", str(tmp_path / "g.onnx")]) == 2
    assert "pip install -c constraints.txt -e '.[onnx]'" in capsys.readouterr().err
    parity = check_onnx(tmp_path / "g.onnx", GeneratorExport(_tiny("gpen")), [x])
    assert parity.max_abs_diff is None and parity.ok(ATOL)
    assert "skipped (onnxruntime is not installed" in parity.line("onnx", ATOL)


def test_format_from_flag_or_suffix() -> None:
    assert format_for("a.onnx", None) == "onnx" and format_for("a.pt", None) == "torchscript"
    assert format_for("a.bin", "TorchScript") == "torchscript"
    with pytest.raises(ExportError, match="unsupported format 'tflite'"):
        format_for("a.onnx", "tflite")
    with pytest.raises(ExportError, match=r"--format onnx\|torchscript"):
        format_for("a.bin", None)


# -- building the network ------------------------------------------------------------------------
def test_load_by_registry_name_and_by_family(tmp_path: Path) -> None:
    path = _official_file(tmp_path, "GPEN-BFR-256")
    loaded = load_generator("GPEN-BFR-256", weights_dir=tmp_path)
    assert loaded.arch == "GPENGenerator" and loaded.size == 256
    assert loaded.kwargs["narrow"] == 0.5 and "GPEN-BFR-256" in loaded.source
    by_family = load_generator("gpen", weights=path)
    assert by_family.kwargs == loaded.kwargs
    ref = torch.load(path, weights_only=True)
    # exact: loading copies the stored tensors
    assert all(torch.equal(v, ref[k]) for k, v in by_family.net.state_dict().items())
    with pytest.raises(ExportError, match=r"it fits 'GPEN-BFR-256': pass --model GPEN-BFR-256"):
        load_generator("gfpgan", weights=path)


def _tiny_config(tmp_path: Path, name: str) -> Path:
    """A generator config with ``_target_`` and ``${data.size}``, like conf/model/generator."""
    if name == "v1":
        return CONFIG_DIR / "model" / "generator" / "gfpgan_tiny.yaml"
    if name == "gpen":
        return CONFIG_DIR / "model" / "generator" / "gpen_tiny.yaml"
    cfg = {"_target_": "faceprior.nets.GFPGANv1Clean", "out_size": "${data.size}",
           "num_style_feat": 16, "channel_multiplier": 2, "narrow": 0.0625}  # fmt: skip
    path = tmp_path / "clean_tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tiny_official_file(tmp_path: Path, name: str) -> tuple[Path, Path, torch.nn.Module]:
    from faceprior.export.source import config_generator

    config = _tiny_config(tmp_path, name)
    arch, kwargs = config_generator(config, SIZE)
    torch.manual_seed(0)
    net = getattr(nets, arch)(**kwargs).eval()
    layout = "bare" if name == "gpen" else "params_ema"
    return export_checkpoint(net, tmp_path / f"{name}_tiny.pth", layout), config, net


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TINY))
def test_cli_torchscript_on_official_layout_files(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights, config, net = _tiny_official_file(tmp_path, name)
    family = "gpen" if name == "gpen" else "gfpgan"
    out = tmp_path / "out" / f"{name}.pt"
    args = ["--model", family, "--weights", str(weights), "--config", str(config)]
    rc = export_cli.main([*args, "--size", str(SIZE), "--format", "torchscript", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert out.is_file() and f"wrote torchscript: {out}" in text
    assert "parity torchscript (torch.jit.load) vs eager, batch 1: max abs diff" in text
    assert text.rstrip().endswith("OK")
    (x,) = example_inputs(SIZE, [1], seed=5)
    with torch.no_grad():
        got = torch.jit.load(str(out))(x)
        torch.testing.assert_close(got, GeneratorExport(net)(x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["v1", "gpen"])
def test_cli_onnx_dynamic_batch(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _needs_onnx()
    weights, config, _ = _tiny_official_file(tmp_path, name)
    out = tmp_path / f"{name}.onnx"
    args = ["--model", str(weights), "--config", str(config), "--size", str(SIZE)]
    rc = export_cli.main([*args, "--out", str(out), "--dynamic-batch"])
    text = capsys.readouterr().out
    print(text)  # the parity line, shown by pytest -rP
    assert rc == 0, text
    assert out.is_file() and "batch any" in text
    assert "parity onnx (onnxruntime" in text and "batch 1, 3: max abs diff" in text


def test_cli_training_checkpoint_uses_the_ema_generator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    trained, ema = TINY["clean"](), TINY["clean"]()  # two different random inits
    state = {f"net_g.{k}": v for k, v in trained.state_dict().items()}
    state |= {f"ema.shadow.{k}": v for k, v in ema.state_dict().items()}
    state |= {"net_d.weight": torch.zeros(1)}
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").mkdir()
    torch.save({"state_dict": state, "global_step": 4}, run / "checkpoints" / "last.ckpt")
    generator = yaml.safe_load(_tiny_config(tmp_path, "clean").read_text())
    config = {"data": {"size": SIZE}, "model": {"generator": generator}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run.pt"
    assert (
        export_cli.main(["--model", str(run / "checkpoints" / "last.ckpt"), "--out", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert "the EMA generator (ema.shadow.*)" in text and ".hydra/config.yaml" in text
    (x,) = example_inputs(SIZE, [1], seed=2)
    with torch.no_grad():
        got = torch.jit.load(str(out))(x)
        torch.testing.assert_close(got, GeneratorExport(ema.eval())(x), rtol=0, atol=ATOL)
        assert (got - GeneratorExport(trained.eval())(x)).abs().max() > 1e-2

    # no EMA copy: the trained weights, said so; no run config: --arch or the registry decides
    no_ema = {k: v for k, v in state.items() if not k.startswith("ema.")}
    torch.save({"state_dict": no_ema}, tmp_path / "bare.ckpt")
    rc = export_cli.main(["--model", str(tmp_path / "bare.ckpt"), "--out", str(out)])
    assert rc == 2 and "fits no registered" in capsys.readouterr().err
    cfg = _tiny_config(tmp_path, "clean")
    rc = export_cli.main(
        [
            "--model",
            str(tmp_path / "bare.ckpt"),
            "--config",
            str(cfg),
            "--size",
            "32",
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and "the trained generator (net_g.*)" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fails(*args: str) -> str:
        assert export_cli.main(["--weights-dir", str(tmp_path), *args]) == 2
        return capsys.readouterr().err

    # .pt outputs: these errors come from resolving the model, which must not depend on whether
    # the optional ONNX packages are installed (CI runs without them)
    err = fails("--model", "GFPGANv9", "--out", "x.pt")
    assert "unknown model 'GFPGANv9'" in err and "GFPGANv1.4" in err and "GPEN-BFR-512" in err
    err = fails("--model", "GFPGANv1.4", "--out", "x.pt")  # empty weights dir
    assert "GFPGANv1.4.pth" in err and str(tmp_path) in err
    assert "https://github.com/TencentARC/GFPGAN/releases" in err
    err = fails("--model", "GPEN-BFR-512", "--weights", str(tmp_path / "no.pth"), "--out", "x.pt")
    assert f"weights file not found: {tmp_path / 'no.pth'}" in err and "GPEN-BFR-512.pth" in err
    err = fails("--model", "gpen", "--format", "tflite", "--out", "x.tflite")
    assert "unsupported format 'tflite'" in err
    err = fails("--model", "GPEN-BFR-512-D", "--out", "x.pt")
    assert "not a restoration generator" in err
    _official_file(tmp_path, "GPEN-BFR-256")
    err = fails("--model", "GPEN-BFR-256", "--size", "512", "--out", "x.pt")
    assert "--size 512 does not fit" in err and "256x256" in err
    assert not list(Path.cwd().glob("x.*"))


def test_onnx_without_the_extra_names_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def hide_onnx(name: str, *args: object) -> object:
        return None if name in ("onnx", "onnxscript") else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", hide_onnx)
    rc = export_cli.main(["--weights-dir", str(tmp_path), "--model", "GPEN-BFR-512",
                          "--out", str(tmp_path / "g.onnx")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "needs the optional packages onnx, onnxscript" in err
    assert "pip install -c constraints.txt -e '.[onnx]'" in err
    assert not (tmp_path / "g.onnx").exists()


def test_cli_exits_1_when_parity_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights, config, _ = _tiny_official_file(tmp_path, "gpen")
    monkeypatch.setattr(export_cli, "check", lambda *a: Parity("torch.jit.load", (1,), 0.5))
    args = ["--model", "gpen", "--weights", str(weights), "--config", str(config), "--size", "32"]
    rc = export_cli.main([*args, "--out", str(tmp_path / "g.pt"), "--atol", "0.1"])
    assert rc == 1 and "max abs diff 5.000e-01 (atol 1e-01) FAILED" in capsys.readouterr().out
    rc = export_cli.main([*args, "--out", str(tmp_path / "g.pt"), "--no-check"])
    assert rc == 0 and "not checked (--no-check)" in capsys.readouterr().out


# -- released sizes (random init, official names and layouts) ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "fmt"),
    [("GFPGANv1.4", "onnx"), ("GFPGANv1", "torchscript"), ("GPEN-BFR-512", "onnx"),
     ("GPEN-BFR-256", "torchscript")],
)  # fmt: skip
def test_cli_released_sizes(
    name: str, fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if fmt == "onnx":
        _needs_onnx()
    _official_file(tmp_path / "weights", name)
    out = tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'pt'}"
    args = ["--model", name, "--weights-dir", str(tmp_path / "weights"), "--format", fmt]
    rc = export_cli.main([*args, "--out", str(out), "--dynamic-batch"])
    text = capsys.readouterr().out
    print(text)  # the parity line, shown by pytest -rP
    assert rc == 0, text
    assert out.is_file() and "batch 1, 3: max abs diff" in text and text.rstrip().endswith("OK")
