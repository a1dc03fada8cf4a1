"""Generator API contract: signatures, defaults, noise modes, decoder prior, export, precision."""

from __future__ import annotations

import inspect
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from faceprior import nets
from faceprior.checkpoints import StateDictMismatchError, export_checkpoint, load_pretrained_decoder


def _defaults(fn: Any) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_constructor_defaults_match_the_issue_contract() -> None:
    assert _defaults(nets.GFPGANv1Clean) == {
        "out_size": 512, "num_style_feat": 512, "channel_multiplier": 2,
        "decoder_load_path": None, "fix_decoder": False, "num_mlp": 8, "input_is_latent": True,
        "different_w": True, "narrow": 1, "sft_half": True,
    }  # fmt: skip
    gpen = _defaults(nets.GPENGenerator)
    empty = inspect.Parameter.empty
    assert [gpen[k] for k in ("size", "style_dim", "n_mlp")] == [empty] * 3
    assert gpen["channel_multiplier"] == 2 and tuple(gpen["blur_kernel"]) == (1, 3, 3, 1)
    assert (gpen["lr_mlp"], gpen["isconcat"], gpen["narrow"]) == (0.01, True, 1)
    assert _defaults(nets.GPENDiscriminator)["channel_multiplier"] == 2
    d = _defaults(nets.StyleGAN2Discriminator)
    assert (d["channel_multiplier"], d["stddev_group"], d["narrow"]) == (1, 4, 1)


def test_forward_signatures() -> None:
    gfp = inspect.signature(nets.GFPGANv1Clean.forward).parameters
    assert list(gfp) == ["self", "x", "return_latents", "return_rgb", "randomize_noise", "kwargs"]
    assert [gfp[k].default for k in ("return_latents", "return_rgb", "randomize_noise")] == [
        False,
        True,
        True,
    ]
    assert list(inspect.signature(nets.GFPGANv1.forward).parameters) == list(gfp)
    gpen = inspect.signature(nets.GPENGenerator.forward).parameters
    assert list(gpen)[:3] == ["self", "inputs", "return_latents"]
    comp = inspect.signature(nets.FacialComponentDiscriminator.forward).parameters
    assert comp["return_feats"].default is False


@pytest.mark.parametrize("fixture", ["small_clean", "small_v1"])
def test_gfpgan_noise_modes_and_outputs(
    fixture: str, image: torch.Tensor, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(fixture)
    with torch.no_grad():
        a, rgbs = model(image, randomize_noise=False, weight=0.5)  # extra kwargs are ignored
        b, _ = model(image, return_rgb=False, randomize_noise=False, return_latents=True)
        c, _ = model(image)
        d, _ = model(image)
    assert a.shape == image.shape
    assert [r.shape[-1] for r in rgbs] == [8, 16, 32]
    assert torch.equal(a, b)  # stored noise buffers: deterministic
    assert not torch.equal(c, d)  # default: fresh noise per call, like the official forward


def test_gpen_returns_latent_only_when_asked(
    small_gpen: nets.GPENGenerator, image: torch.Tensor
) -> None:
    with torch.no_grad():
        out, latent = small_gpen(image)
        out2, latent2 = small_gpen(image, return_latents=True)
    assert latent is None and out.shape == image.shape
    assert latent2 is not None and latent2.shape == (2, 8, 32)
    assert torch.equal(out, out2)
    w_avg = small_gpen.generator.mean_latent(64)
    with torch.no_grad():
        truncated, _ = small_gpen(image, truncation=0.7, truncation_latent=w_avg)
    assert truncated.shape == image.shape and not torch.equal(truncated, out)


def test_decoder_prior_loading_and_fix_decoder(tmp_path: Path) -> None:
    torch.manual_seed(1)
    prior = nets.StyleGAN2GeneratorClean(32, 32, 8, channel_multiplier=2, narrow=0.0625)
    prior_file = export_checkpoint(prior, tmp_path / "prior.pth", "params_ema")
    cfg = {"out_size": 32, "num_style_feat": 32, "channel_multiplier": 2, "narrow": 0.0625}
    model = nets.GFPGANv1Clean(**cfg, fix_decoder=True)
    load_pretrained_decoder(model.stylegan_decoder, prior_file)
    for k, v in prior.state_dict().items():
        assert torch.equal(model.stylegan_decoder.state_dict()[k], v), k
    assert not any(p.requires_grad for p in model.stylegan_decoder.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if "stylegan_decoder" not in n)
    trainable = nets.GFPGANv1Clean(**cfg, fix_decoder=False)
    assert all(p.requires_grad for p in trainable.parameters())

    torch.manual_seed(2)
    prior_v1 = nets.StyleGAN2Generator(32, 32, 8, channel_multiplier=1, narrow=0.0625)
    v1_file = export_checkpoint(prior_v1, tmp_path / "prior_v1.pth", "params_ema")
    v1 = nets.GFPGANv1(32, 32, 1, narrow=0.0625)
    load_pretrained_decoder(v1.stylegan_decoder, str(v1_file))
    assert torch.equal(
        v1.stylegan_decoder.style_conv1.modulated_conv.weight,
        prior_v1.style_conv1.modulated_conv.weight,
    )
    assert not any(p.requires_grad for p in v1.stylegan_decoder.parameters())  # default True


def test_networks_do_not_open_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"networks do not read files; set model.decoder_prior"):
        nets.GFPGANv1(32, 32, 1, narrow=0.0625, decoder_load_path=str(tmp_path / "prior.pth"))


def test_decoder_prior_errors_are_readable(tmp_path: Path) -> None:
    wrong = nets.StyleGAN2GeneratorClean(64, 32, 8, channel_multiplier=1, narrow=0.125)
    path = export_checkpoint(wrong, tmp_path / "wrong.pth", "params_ema")
    decoder = nets.GFPGANv1Clean(64, 32, 2, narrow=0.125).stylegan_decoder
    with pytest.raises(StateDictMismatchError, match="shape mismatch") as info:
        load_pretrained_decoder(decoder, path)
    text = str(info.value)
    assert text.startswith(f"model.decoder_prior {path} does not fit StyleGAN2GeneratorCSFT:")
    assert "file [1, 32, 64, 3, 3] vs network [1, 64, 64, 3, 3]" in text
    missing = tmp_path / "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth"
    with pytest.raises(
        FileNotFoundError, match=r"model.decoder_prior: '.*800k.pth' does not exist"
    ):
        load_pretrained_decoder(decoder, missing)


def test_unconditional_stylegan2_generators() -> None:
    torch.manual_seed(0)
    for gen in (
        nets.StyleGAN2Generator(32, 16, 2, channel_multiplier=1, narrow=0.0625),
        nets.StyleGAN2GeneratorClean(32, 16, 2, channel_multiplier=1, narrow=0.0625),
    ):
        z = torch.randn(3, 16)
        with torch.no_grad():
            img, latent = gen([z], return_latents=True, randomize_noise=False)
            mixed, _ = gen([z, torch.randn(3, 16)], inject_index=2, randomize_noise=False)
            w_avg = gen.mean_latent(64)
            trunc, _ = gen([z], truncation=0.5, truncation_latent=w_avg, randomize_noise=False)
        assert img.shape == mixed.shape == trunc.shape == (3, 3, 32, 32)
        assert latent is not None and latent.shape == (3, 8, 16)
        assert len(gen.make_noise()) == gen.num_layers == 7


TRACE_NETS = {
    "clean": lambda: nets.GFPGANv1Clean(32, 16, 2, narrow=0.0625),
    "v1": lambda: nets.GFPGANv1(32, 16, 1, narrow=0.0625),
    "gpen": lambda: nets.GPENGenerator(32, 16, 2, 2, narrow=0.0625),
}


@pytest.mark.parametrize("name", sorted(TRACE_NETS))
def test_jit_trace_matches_eager(name: str) -> None:
    torch.manual_seed(0)
    export = nets.GeneratorExport(TRACE_NETS[name]()).eval()
    gen = torch.Generator().manual_seed(3)
    example, other = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit.trace is deprecated in torch 2.9+
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(export, example, check_trace=False)
        with torch.jit.optimized_execution(False):
            got = traced(other)
        torch.testing.assert_close(got, export(other), rtol=1e-4, atol=1e-4)


def test_bf16_autocast_small_is_finite(small_clean: nets.GFPGANv1Clean, image: torch.Tensor):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, rgbs = small_clean(image)
    assert torch.isfinite(out).all() and all(torch.isfinite(r).all() for r in rgbs)


@pytest.mark.slow
def test_gfpganv1clean_512_bf16_autocast_is_finite() -> None:
    torch.manual_seed(0)
    model = nets.GFPGANv1Clean().eval()  # released v1.3/v1.4 configuration, 86M parameters
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = model(x, return_rgb=False)
    assert out.shape == (1, 3, 512, 512)
    assert torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TRACE_NETS))
def test_onnx_export_matches_eager_in_onnxruntime(name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (optional)")
    pytest.importorskip("onnxscript", reason="onnxscript (torch.onnx dynamo exporter) missing")
    torch.manual_seed(0)
    export = nets.GeneratorExport(TRACE_NETS[name]()).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(export, (x,), str(path), dynamo=True, input_names=["x"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), export(x), rtol=1e-4, atol=1e-4)


def test_import_builds_and_compiles_nothing() -> None:
    code = (
        "import sys, faceprior.nets, faceprior.checkpoints; "
        "bad = [m for m in ('torch.utils.cpp_extension', 'torchvision') if m in sys.modules]; "
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
